//! Running out of file descriptors, against the real binary: herald under an open-files limit of
//! 128 (set in the child before it execs) takes WebSocket clients until accepting fails, keeps
//! serving the ones it has (an API trigger reaches them all), stays idle at the limit, logs the
//! episode once, and accepts again once clients leave.
//!
//! Unlike the other files this one starts `herald` as a child process: the limit must apply to
//! the server alone, not to the test.

mod common;

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Api, Client, Setup, Signing, APP_ID, KEY, SECRET, WAIT};
use herald::logging::EPISODE_QUIET;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// herald's open-files limit (soft and hard).
const NOFILE: libc::rlim_t = 128;
const CHANNEL: &str = "fd";
/// A client that is not connected and subscribed within this long is taken as not accepted (the
/// log then has to confirm it).
const HANDSHAKE: Duration = Duration::from_secs(2);
/// What the log says when `accept()` fails for lack of descriptors (EMFILE).
const EMFILE: &str = "Too many open files";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_open_files_limit_herald_serves_its_clients_idles_logs_once_and_recovers() {
    let herald = Herald::start();
    let url = format!(
        "ws://{}/app/{KEY}?protocol=7&client=js&version=8.4.0&flash=false",
        herald.addr
    );
    let mut api = ApiConnection::open(herald.addr).await;

    let mut clients = Vec::new();
    let refused = loop {
        assert!(
            clients.len() < NOFILE as usize,
            "{} clients accepted under a limit of {NOFILE} descriptors",
            clients.len()
        );
        api.keep_alive().await;
        let error = match join(&url, HANDSHAKE).await {
            Ok(client) => {
                clients.push(client);
                continue;
            }
            Err(error) => error,
        };
        // herald logs a failed accept at once (and every 500 ms while a connection waits).
        let log = herald.log_within(EMFILE, WAIT, Some(&mut api)).await;
        if log.is_some() {
            break error;
        }
        println!("{error}, yet herald is not at its limit (a slow machine?): again");
    };
    let episode = Instant::now();
    println!(
        "{} clients connected and subscribed, then: {refused}",
        clients.len()
    );
    // Kept waiting in the listen backlog, so that herald keeps trying to accept it.
    let waiting = TcpStream::connect(herald.addr)
        .await
        .expect("the kernel completes the TCP handshake");

    // (a) The clients it has are served: an event triggered through the API reaches each one.
    let body = json!({"name": "still-served", "channels": [CHANNEL], "data": "at the limit"});
    let path = api.api.path("/events");
    let (status, answer) = api.request("POST", &path, &body.to_string()).await;
    assert_eq!((status, answer.as_str()), (200, "{}"));
    for client in &mut clients {
        let frame = client.recv_json().await;
        assert_eq!(frame["event"], "still-served", "{frame}");
    }

    // (b) At the limit, with a connection waiting, herald idles.
    let (ticks, started) = (herald.cpu_ticks(), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ticks, elapsed) = (herald.cpu_ticks() - ticks, started.elapsed());
    let percent = ticks as f64 / clock_ticks_per_second() / elapsed.as_secs_f64() * 100.0;
    println!("herald's CPU at the limit: {percent:.2} % of one core over {elapsed:.1?}");
    assert!(percent < 5.0, "{percent:.2} % of one core at the limit");

    // (c) One warning for the episode, however many accepts failed (two a second).
    let log = herald.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(EMFILE)).collect();
    println!(
        "log lines about the accept error {:.1?} into the episode: {}",
        episode.elapsed(),
        lines.len()
    );
    assert_eq!(lines.len(), 1, "{log}");
    println!("{}", lines[0]);
    assert!(
        lines[0].contains("WARN") && lines[0].contains("open-files limit reached"),
        "{}",
        lines[0]
    );

    // (d) Half the clients leave: a new client gets in within a few seconds.
    let left = clients.len() / 2;
    clients.truncate(clients.len() - left);
    let closed = Instant::now();
    let mut newcomer = join(&url, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("no new client after {left} of them left: {e}"));
    println!(
        "a new client connected and subscribed {:.1?} after {left} clients left",
        closed.elapsed()
    );
    drop(waiting);
    // The API accepts new connections again; old and new clients get its events.
    Api::new(herald.addr, APP_ID, KEY, SECRET)
        .publish(CHANNEL, "recovered", "again")
        .await;
    for client in clients.iter_mut().chain([&mut newcomer]) {
        let frame = client.recv_json().await;
        assert_eq!(frame["event"], "recovered", "{frame}");
    }

    // The episode's end, once no accept has failed for the quiet period: one line, still one
    // warning.
    let again = "accepting connections again";
    let log = herald
        .log_within(again, EPISODE_QUIET + WAIT, None)
        .await
        .unwrap_or_else(|| panic!("no {again:?} in the log:\n{}", herald.log()));
    let end = log.lines().find(|l| l.contains(again)).unwrap_or_default();
    println!("{end}");
    assert!(end.contains("failed accepts over"), "{end}");
    assert_eq!(
        log.lines().filter(|l| l.contains(EMFILE)).count(),
        1,
        "{log}"
    );
}

/// Connects to `url`, reads `connection_established` and subscribes to [`CHANNEL`], with the
/// connection and WebSocket handshake done within `within`.
async fn join(url: &str, within: Duration) -> Result<Client, String> {
    let mut client = Client::connect_url(url, within).await?;
    client.established().await;
    client.join(CHANNEL).await;
    Ok(client)
}

/// The herald binary in a child process, its stdout and stderr in files; killed (by its PID)
/// and the files removed on drop, when the test panics too (the log is printed then).
struct Herald {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Herald {
    /// Starts herald with [`NOFILE`] descriptors, one worker, the test app, long activity
    /// timeouts (the idle clients must not be pinged off), logging at `info`; returns once it
    /// listens.
    fn start() -> Herald {
        let dir = std::env::temp_dir().join(format!("herald-exhaustion-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let toml = Setup::new()
            .server("fanout_threads", "1")
            .server("activity_timeout", "\"120s\"")
            .toml();
        let config = dir.join("herald.toml");
        std::fs::write(&config, toml).expect("write the configuration");
        let output = |name: &str| File::create(dir.join(name)).expect("output file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .arg("--config")
            .arg(&config)
            .env("HERALD_LOG", "info")
            .env_remove("HERALD_HOST")
            .env_remove("HERALD_PORT")
            .env_remove("HERALD_APP_ID")
            .env_remove("HERALD_APP_KEY")
            .env_remove("HERALD_APP_SECRET")
            .stdin(Stdio::null())
            .stdout(output("stdout"))
            .stderr(output("stderr"));
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls may be made: it allocates nothing and calls only setrlimit.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: NOFILE,
                    rlim_max: NOFILE,
                };
                match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(io::Error::last_os_error()),
                }
            });
        }
        let child = command.spawn().expect("start herald");
        let mut herald = Herald {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        herald.addr = herald.listening();
        herald
    }

    /// The address from the "herald listening on http://…" line on stdout.
    fn listening(&mut self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stdout = std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default();
            if let Some(rest) = stdout.split("herald listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                return addr.parse().unwrap_or_else(|e| panic!("{addr:?}: {e}"));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("herald exited with {status}");
            }
            assert!(Instant::now() < deadline, "herald did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).expect("herald's log")
    }

    /// The log once it contains `needle`, or `None` if it does not within `within`; keeps `api`
    /// open meanwhile.
    async fn log_within(
        &self,
        needle: &str,
        within: Duration,
        mut api: Option<&mut ApiConnection>,
    ) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return Some(log);
            }
            if Instant::now() >= deadline {
                return None;
            }
            if let Some(api) = api.as_deref_mut() {
                api.keep_alive().await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// CPU time herald has used so far (user + system), in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = std::fs::read_to_string(&path).expect("/proc/<pid>/stat");
        // The fields after the command name (which is in parentheses and may hold spaces)
        // start with the third, `state`; utime and stime are the 14th and 15th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("(comm)")
            .1
            .split_whitespace()
            .collect();
        let field = |n: usize| fields[n - 3].parse::<u64>().expect("a number of ticks");
        field(14) + field(15)
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default();
            eprintln!("herald's log:\n{log}");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(ticks > 0, "sysconf(_SC_CLK_TCK)");
    ticks as f64
}

/// One keep-alive HTTP/1.1 connection to the REST API, opened before descriptors run out, so
/// that API requests still reach herald while it cannot accept new connections. actix closes a
/// connection that stays idle for 5 s, so a cheap request goes out whenever it has been idle
/// for a second ([`ApiConnection::keep_alive`]).
struct ApiConnection {
    stream: TcpStream,
    api: Api,
    used: Instant,
}

impl ApiConnection {
    async fn open(addr: SocketAddr) -> ApiConnection {
        let stream = TcpStream::connect(addr).await.expect("connect to the API");
        let mut connection = ApiConnection {
            stream,
            api: Api::new(addr, APP_ID, KEY, SECRET),
            used: Instant::now(),
        };
        connection.query_channels().await;
        connection
    }

    async fn keep_alive(&mut self) {
        if self.used.elapsed() >= Duration::from_secs(1) {
            self.query_channels().await;
        }
    }

    async fn query_channels(&mut self) {
        let path = self.api.path("/channels");
        let (status, body) = self.request("GET", &path, "").await;
        assert_eq!(status, 200, "{body}");
    }

    /// A signed request on this connection: the status and the body.
    async fn request(&mut self, method: &str, path: &str, body: &str) -> (u16, String) {
        let query = self
            .api
            .signed_query(method, path, &[], body, &Signing::default());
        let request = format!(
            "{method} {path}?{query} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.api_host(),
            body.len()
        );
        let exchange = async {
            self.stream.write_all(request.as_bytes()).await?;
            read_response(&mut self.stream).await
        };
        let response = tokio::time::timeout(WAIT, exchange)
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no response within {WAIT:?}"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        self.used = Instant::now();
        response
    }

    fn api_host(&self) -> String {
        self.stream
            .peer_addr()
            .map_or_else(|_| "127.0.0.1".into(), |a| a.to_string())
    }
}

/// Reads one HTTP/1.1 response with a `Content-Length` body.
async fn read_response(stream: &mut TcpStream) -> io::Result<(u16, String)> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_string();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("status line: {head}"));
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or_else(|| panic!("no Content-Length: {head}"));
            if bytes.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]);
                return Ok((status, body.into_owned()));
            }
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the API connection",
            ));
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}
