//! The binary configured from the environment alone: a value that does not parse stops it naming
//! the variable, `--print-config` shows what the variables set, `HERALD_LOG_FORMAT=json`
//! writes one JSON object per line on stderr, the connection's `app_id` and `socket_id` (from
//! its span) and the `channel` on the events of a subscription, and `--health` asks the server
//! configured by the same variables for `/ready` (its metrics listener, else its main one, with
//! TLS too).
//!
//! Like `exhaustion.rs` this starts `herald` as a child process: the environment must be the
//! server's alone, and the global log subscriber is the binary's own.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Client, WAIT};
use serde_json::Value;

/// `herald` with no `HERALD_*` variable of the test's environment, only `vars`.
fn herald(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("HERALD_")) {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied()).stdin(Stdio::null());
    command
}

fn run(vars: &[(&str, &str)], args: &[&str]) -> Output {
    herald(vars).args(args).output().expect("run herald")
}

#[test]
fn a_bad_value_stops_start_up_naming_the_variable() {
    let cases = [
        (
            "ten",
            "HERALD_OUTBOUND_QUEUE: expected a whole number, got \"ten\"",
        ),
        // Parsed, but out of range: named by its key, as from the file.
        ("0", "server.outbound_queue: must be at least 1"),
    ];
    for (value, problem) in cases {
        let output = run(&[("HERALD_OUTBOUND_QUEUE", value)], &["--print-config"]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(problem), "{stderr}");
    }
}

#[test]
fn print_config_shows_what_the_variables_set() {
    let vars = [
        ("HERALD_ACTIVITY_TIMEOUT", "90s"),
        ("HERALD_SOCKET_SEND_BUFFER", "0"),
        ("HERALD_WEBHOOK_BATCH_WINDOW", "1s"),
        ("HERALD_LOG_FORMAT", "json"),
    ];
    let output = run(&vars, &["--print-config"]);
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    for line in [
        "activity_timeout = \"1m 30s\"",
        "socket_send_buffer = 0",
        "batch_window = \"1s\"",
        "log_format = \"json\"",
    ] {
        assert!(printed.lines().any(|l| l == line), "{line} in\n{printed}");
    }
}

/// The binary running with its stderr in a file; killed and the file removed on drop.
struct Herald {
    child: Child,
    log: PathBuf,
}

impl Herald {
    /// Starts herald on free ports, returns it and the address it listens on.
    fn start(vars: &[(&str, &str)]) -> (Herald, SocketAddr) {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let log =
            std::env::temp_dir().join(format!("herald-environment-{}-{n}", std::process::id()));
        let ports = [("HERALD_PORT", "0"), ("HERALD_METRICS_PORT", "0")];
        let child = herald(&[&ports[..], vars].concat())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("start herald");
        let mut herald = Herald { child, log };
        let stdout = herald.child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = lines
            .find_map(|line| {
                let line = line.ok()?;
                let url = line.strip_prefix("herald listening on ")?;
                let addr = url
                    .strip_prefix("http://")
                    .or(url.strip_prefix("https://"))?;
                addr.parse().ok()
            })
            .unwrap_or_else(|| panic!("herald did not listen:\n{}", herald.log()));
        (herald, addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asks herald to stop (SIGTERM) and returns its log once it has.
    fn stop(mut self) -> String {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill only sends a signal, to the child this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
        let status = self.child.wait().expect("wait for herald");
        assert!(status.success(), "herald exited with {status}");
        self.log()
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("herald's log:\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The one line whose `message` is `message`.
fn line<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    let mut found = lines.iter().filter(|l| l["message"] == message);
    let first = found
        .next()
        .unwrap_or_else(|| panic!("no {message:?} line"));
    assert!(found.next().is_none(), "more than one {message:?} line");
    first
}

#[tokio::test]
async fn json_logs_carry_the_connection_and_the_channel() {
    let (herald, addr) = Herald::start(&[
        ("HERALD_LOG_FORMAT", "json"),
        ("HERALD_LOG", "info,herald=debug"),
        ("HERALD_SHUTDOWN_TIMEOUT", "1s"),
    ]);
    let url = format!("ws://{addr}/app/app-key?protocol=7");
    let mut client = Client::connect_url(&url, WAIT).await.expect("connect");
    client.established().await;
    let socket_id = client.socket_id.clone();
    client.join("news").await;
    client.unsubscribe("news").await;
    client.subscribe("private-nope").await;
    client.expect_error_code(None).await;
    client.close().await;
    let log = herald.stop();

    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    for l in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(l[field].is_string(), "{field} in {l}");
        }
    }
    let ready = line(&lines, "app ready");
    assert_eq!(
        (&ready["app_id"], &ready["level"]),
        (&"1".into(), &"INFO".into())
    );
    let connection = |l: &Value| {
        assert_eq!(l["span"]["name"], "connection", "{l}");
        assert_eq!(l["span"]["app_id"], "1", "{l}");
        assert_eq!(l["span"]["socket_id"], socket_id.as_str(), "{l}");
    };
    for message in ["subscribed", "unsubscribed", "subscription refused"] {
        let l = line(&lines, message);
        connection(l);
        assert_eq!(l["level"], "DEBUG", "{l}");
    }
    assert_eq!(line(&lines, "subscribed")["channel"], "news");
    assert_eq!(line(&lines, "unsubscribed")["channel"], "news");
    let refused = line(&lines, "subscription refused");
    assert_eq!(refused["channel"], "private-nope");
    assert!(refused["error"].is_string(), "{refused}");
    connection(line(&lines, "connected"));
}

/// A port on 127.0.0.1 that is free now.
fn free_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("addr").port().to_string()
}

/// `--health` with the server's own variables: it fails, naming what it asked, while nothing
/// listens, and succeeds once herald runs; with the metrics listener off it asks the main
/// listener, over TLS when herald serves TLS.
#[test]
fn health_asks_the_server_configured_by_the_same_variables() {
    let (port, metrics_port) = (free_port(), free_port());
    let vars = [
        ("HERALD_PORT", port.as_str()),
        ("HERALD_METRICS_PORT", metrics_port.as_str()),
    ];
    let down = run(&vars, &["--health"]);
    assert!(!down.status.success());
    let stderr = String::from_utf8_lossy(&down.stderr);
    let asked = format!("herald: not ready: http://127.0.0.1:{metrics_port}/ready: ");
    assert!(stderr.starts_with(&asked), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let (herald, _) = Herald::start(&vars);
    let up = run(&vars, &["--health"]);
    assert!(up.status.success(), "{up:?}");
    drop(herald);

    let made = rcgen::generate_simple_self_signed(vec!["herald.example".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("herald-health-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let port = free_port();
    let vars = [
        ("HERALD_PORT", port.as_str()),
        ("HERALD_METRICS", "false"),
        ("HERALD_TLS_CERT", cert.to_str().unwrap()),
        ("HERALD_TLS_KEY", key.to_str().unwrap()),
    ];
    let (herald, _) = Herald::start(&vars);
    let up = run(&vars, &["--health"]);
    drop(herald);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(up.status.success(), "{up:?}");
}
