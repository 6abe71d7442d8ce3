//! TLS on the main listener, with a self-signed certificate made here (rcgen) for `localhost`
//! and 127.0.0.1, trusted by the clients as their only certificate authority: events triggered
//! over `https://` reach `wss://` subscribers; large broadcasts to a reader that pauses arrive
//! whole and in order (TLS records left for the session to write); a reader that stops is closed
//! with 4100 and shutdown closes with 4200 as on plain connections; a plain-text request on the
//! TLS port is not answered; and the binary refuses a missing or bad certificate file at
//! start-up with one line naming it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Api, Client, Frame, Server, Setup, KEY, WAIT};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A self-signed certificate and its key, as PEM files in a directory of their own (removed on
/// drop).
struct Certificate {
    dir: PathBuf,
    pem: String,
    cert: PathBuf,
    key: PathBuf,
}

impl Certificate {
    fn new(name: &str) -> Certificate {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let made = rcgen::generate_simple_self_signed(names).expect("self-signed certificate");
        let dir = std::env::temp_dir().join(format!("herald-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("certificate directory");
        let pem = made.cert.pem();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &pem).expect("cert.pem");
        std::fs::write(&key, made.key_pair.serialize_pem()).expect("key.pem");
        Certificate {
            dir,
            pem,
            cert,
            key,
        }
    }

    /// The test setup with TLS on.
    fn setup(&self) -> Setup {
        Setup::new()
            .server("tls_cert", &toml_path(&self.cert))
            .server("tls_key", &toml_path(&self.key))
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn toml_path(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

/// A `wss://` client of the test app that has read `connection_established`.
async fn wss_client(server: &Server, cert: &Certificate) -> Client {
    let url = format!(
        "wss://127.0.0.1:{}/app/{KEY}?protocol=7&client=js&version=8.4.0&flash=false",
        server.addr.port()
    );
    let mut client = Client::connect_tls(&url, &cert.pem)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.established().await;
    client
}

fn https_api(server: &Server, cert: &Certificate) -> Api {
    server.api().over_tls(&cert.pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_triggered_over_https_reach_wss_subscribers() {
    let cert = Certificate::new("events");
    let server = cert.setup().start().await;
    let mut client = wss_client(&server, &cert).await;
    client.join("secure-news").await;
    let api = https_api(&server, &cert);
    api.publish("secure-news", "headline", "over TLS").await;
    let frame = client.recv_json().await;
    assert_eq!(
        frame,
        json!({"event": "headline", "channel": "secure-news", "data": "over TLS"})
    );
    let channels = api
        .get(&api.path("/channels"), &[("filter_by_prefix", "secure-")])
        .await;
    assert_eq!(channels.ok(), json!({"channels": {"secure-news": {}}}));
    // WebSocket pings are answered through the same TLS state.
    client.ping_pong().await;
    // Client events travel the other way over TLS.
    let mut peer = wss_client(&server, &cert).await;
    client.join_private("private-room").await;
    peer.join_private("private-room").await;
    client
        .trigger("private-room", "client-typing", json!({"who": "a"}))
        .await;
    let relayed = peer.recv_json().await;
    assert_eq!(relayed["event"], "client-typing");
    assert_eq!(relayed["data"], r#"{"who":"a"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_reader_gets_every_large_event_in_order_over_tls() {
    const EVENTS: usize = 150;
    let cert = Certificate::new("paused");
    let server = cert
        .setup()
        .server("outbound_queue", "4096")
        .server("slow_consumer_timeout", "\"60s\"")
        .app("max_event_data_bytes", "200000")
        .start()
        .await;
    let mut reader = wss_client(&server, &cert).await;
    reader.join("paused").await;
    // 150 events of 64 KiB, 9.4 MiB: far more than the socket buffers and rustls's 64 KiB of
    // records hold, so most of it waits in the outbox for the session to write.
    https_api(&server, &cert)
        .publish_large("paused", EVENTS)
        .await;
    reader.expect_large_events(EVENTS, WAIT).await;
    reader.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_is_closed_4100_over_tls() {
    let cert = Certificate::new("stopped");
    let server = cert
        .setup()
        .server("outbound_queue", "16")
        .server("slow_consumer_timeout", "\"500ms\"")
        .app("max_event_data_bytes", "200000")
        .start()
        .await;
    let mut stopped = wss_client(&server, &cert).await;
    stopped.join("firehose").await;
    let mut healthy = wss_client(&server, &cert).await;
    healthy.join("firehose").await;
    let reader = tokio::spawn(async move {
        healthy
            .expect_large_events(40, Duration::from_secs(10))
            .await;
        healthy
    });
    // 40 events of 64 KiB: more than the queue of 16 and every buffer on the way.
    https_api(&server, &cert)
        .publish_large("firehose", 40)
        .await;
    let mut healthy = reader.await.expect("the healthy reader got every event");
    // The stopped reader now reads: some events, then pusher:error 4100 and the close.
    let mut events = 0;
    loop {
        match stopped.next_frame(Duration::from_secs(10)).await {
            Some(Frame::Text(text)) => {
                let frame = common::json(&text);
                if frame["event"] == "pusher:error" {
                    assert_eq!(frame["data"]["code"], 4100, "{text:.200}");
                    break;
                }
                events += 1;
            }
            Some(Frame::Ping(_) | Frame::Pong(_)) => {}
            other => panic!("expected events then 4100, got {other:?} after {events} events"),
        }
    }
    assert!(events < 40, "cut off after {events} events");
    assert_eq!(stopped.expect_close().await.0, Some(4100));
    healthy.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_wss_connections_with_4200() {
    let cert = Certificate::new("shutdown");
    let mut server = cert.setup().start().await;
    let mut client = wss_client(&server, &cert).await;
    client.join("before-shutdown").await;
    let (result, took) = server.stop(Duration::from_secs(5)).await;
    client
        .expect_error_and_close(4200, Some("Server is restarting; reconnect"))
        .await;
    result.expect("run returns Ok");
    assert!(took < Duration::from_secs(3), "drained in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_on_the_tls_port_is_not_answered_in_plain_text() {
    let cert = Certificate::new("plain");
    let server = cert.setup().start().await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /up HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT * 3, tcp.read_to_end(&mut answer)).await;
    // The handshake fails: the connection ends (a TLS alert at most), no HTTP response.
    assert!(read.is_ok(), "the connection was not closed");
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    // The server still serves TLS afterwards.
    let response = https_api(&server, &cert).raw("GET", "/up", "").await;
    assert_eq!(response.status, 200);
}

/// The binary with a certificate from the environment that it cannot use: it stops before
/// listening, with one line naming the file.
#[test]
fn a_missing_or_bad_certificate_stops_start_up_naming_the_file() {
    let cert = Certificate::new("startup");
    let missing = cert.dir.join("missing.pem");
    let not_pem = cert.dir.join("not-pem.pem");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let cases = [
        (
            &missing,
            &cert.key,
            format!("TLS certificate {}: ", missing.display()),
        ),
        (
            &not_pem,
            &cert.key,
            format!("TLS certificate {}: no certificate", not_pem.display()),
        ),
        (
            &cert.cert,
            &missing,
            format!("TLS key {}: ", missing.display()),
        ),
        (
            &cert.cert,
            &cert.cert,
            format!("TLS key {}: no private key", cert.cert.display()),
        ),
    ];
    for (cert_file, key_file, expected) in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("HERALD_")) {
            command.env_remove(name);
        }
        let output = command
            .env("HERALD_PORT", "0")
            .env("HERALD_METRICS", "false")
            .env("HERALD_TLS_CERT", cert_file)
            .env("HERALD_TLS_KEY", key_file)
            .stdin(Stdio::null())
            .output()
            .expect("run herald");
        assert!(!output.status.success());
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!stdout.contains("listening"), "{stdout}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(
            lines[0].starts_with(&format!("herald: {expected}")),
            "{stderr}"
        );
    }
}
