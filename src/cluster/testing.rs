//! The Redis harness of the cluster tests: a private `redis-server` (Debian package; the test
//! script installs it) on a free loopback port, without persistence, killed by its PID when the
//! test ends. Each test starts its own, so tests run in parallel without seeing each other.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a started server has to answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running `redis-server`; killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free 127.0.0.1 port and waits until it answers.
    pub fn start() -> Self {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut server = RedisServer { port, child: None };
        server.launch();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data goes with it: there is no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a fresh, empty server on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}); install it with \
                     `apt-get install -y redis-server` (scripts/test.sh does)"
                )
            });
        self.child = Some(child);
        let start = std::time::SystemTime::now();
        while !self.answers_ping() {
            let waited = start.elapsed().unwrap_or_default();
            assert!(waited < READY_WITHIN, "redis-server did not answer PING");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl RedisServer {
    /// The keys matching `pattern` (`KEYS`, a test's look at what the cluster left), sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = self.command(&["KEYS", pattern]);
        keys.sort();
        keys
    }

    /// A field of a hash (`HGET`), `None` when there is none.
    pub fn hget(&self, key: &str, field: &str) -> Option<String> {
        self.command(&["HGET", key, field]).pop()
    }

    /// How many times the server ran `command` (lower case, as `INFO commandstats` names it).
    pub fn calls(&self, command: &str) -> u64 {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("connect");
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        stream
            .write_all(b"INFO commandstats\r\n")
            .expect("a command");
        let mut reader = std::io::BufReader::new(stream);
        let mut header = String::new();
        std::io::BufRead::read_line(&mut reader, &mut header).expect("a reply line");
        let len: usize = header.trim_end()[1..].parse().expect("a bulk length");
        let mut info = vec![0; len];
        reader.read_exact(&mut info).expect("the bulk string");
        let prefix = format!("cmdstat_{command}:calls=");
        String::from_utf8_lossy(&info)
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Runs one command; its reply's strings (an array's elements, or the one bulk string; none
    /// for a nil).
    fn command(&self, args: &[&str]) -> Vec<String> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("connect");
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut command = format!("*{}\r\n", args.len());
        for arg in args {
            command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(command.as_bytes()).expect("a command");
        let mut reader = std::io::BufReader::new(stream);
        let mut next = || {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut reader, &mut line).expect("a reply line");
            line.trim_end().to_owned()
        };
        let header = next();
        match header.as_bytes().first() {
            Some(b'*') => {
                let n: usize = header[1..].parse().expect("an array length");
                (0..n)
                    .map(|_| {
                        next();
                        next()
                    })
                    .collect()
            }
            Some(b'$') if header != "$-1" => vec![next()],
            Some(b'$') => Vec::new(),
            _ => panic!("unexpected reply {header}"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `MONITOR` connection recording every command the server runs.
#[derive(Debug)]
pub struct Monitor {
    stream: TcpStream,
}

impl RedisServer {
    /// Starts recording every command the server runs.
    pub fn monitor(&self) -> Monitor {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("connect");
        stream.write_all(b"MONITOR\r\n").expect("MONITOR");
        let mut ok = [0u8; 5];
        stream.read_exact(&mut ok).expect("+OK");
        assert_eq!(&ok, b"+OK\r\n");
        Monitor { stream }
    }
}

impl Monitor {
    /// The recorded lines, read until `count` lines holding `last` arrived (or 5 s passed).
    pub fn finish(mut self, last: &str, count: usize) -> Vec<String> {
        let _ = self
            .stream
            .set_read_timeout(Some(Duration::from_millis(100)));
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        let start = std::time::SystemTime::now();
        while text.matches(last).count() < count
            && start.elapsed().unwrap_or_default() < Duration::from_secs(5)
        {
            if let Ok(n) = self.stream.read(&mut buf) {
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        text.lines().map(str::to_owned).collect()
    }
}
