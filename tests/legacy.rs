//! The 2011 todo demo's wire behaviour (spec/todo-demo.md §4, spec §7.2 deprecated endpoints):
//! pusher-js 1.8.3 without `protocol`, object `data`, no pongs; the Ruby gem 0.6.0's
//! `POST /apps/{id}/channels/{channel}/events` that only accepts 202.

mod common;

use std::time::Duration;

use common::{Client, Server, Setup, Signing, KEY};

const QUIET: Duration = Duration::from_millis(300);
const LIST: &str = "list-production-AbC123xyz";

/// A pusher-js 1.8.3 client subscribed to the demo's list channel.
async fn browser_1_8_3(server: &Server) -> Client {
    let mut c = Client::connect(server, KEY, "client=js&version=1.8.3").await;
    c.established().await;
    c.send_text(&format!(
        r#"{{"event":"pusher:subscribe","data":{{"channel":"{LIST}"}}}}"#
    ))
    .await;
    c.expect_succeeded(LIST).await;
    c
}

fn events_path(server: &Server) -> String {
    server.api().path(&format!("/channels/{LIST}/events"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gem_trigger_answers_202_and_excludes_the_sender() {
    let server = Setup::new().start().await;
    let mut sender = browser_1_8_3(&server).await;
    let mut other = browser_1_8_3(&server).await;
    let item = r#"{"id":1,"shortdesc":"buy milk","longdesc":null,"isdone":false,"list_id":3}"#;
    let params = [
        ("name", "created"),
        ("socket_id", sender.socket_id.as_str()),
    ];
    let response = server
        .api()
        .request(
            "POST",
            &events_path(&server),
            &params,
            item,
            &Signing::default(),
        )
        .await;
    assert_eq!((response.status, response.body.as_str()), (202, "{}"));
    let want = format!(
        r#"{{"event":"created","channel":"{LIST}","data":"{}"}}"#,
        item.replace('"', "\\\"")
    );
    // Exact text: in particular no top-level socket_id, which 1.8.3 would drop as its own echo.
    assert_eq!(other.recv_text().await, want);
    sender.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gem_trigger_without_socket_id_reaches_everyone() {
    let server = Setup::new().start().await;
    let mut a = browser_1_8_3(&server).await;
    let mut b = browser_1_8_3(&server).await;
    let body = r#"{"id":"7"}"#;
    let response = server
        .api()
        .request(
            "POST",
            &events_path(&server),
            &[("name", "destroyed")],
            body,
            &Signing::default(),
        )
        .await;
    assert_eq!((response.status, response.body.as_str()), (202, "{}"));
    let want = format!(r#"{{"event":"destroyed","channel":"{LIST}","data":"{{\"id\":\"7\"}}"}}"#);
    assert_eq!(a.recv_text().await, want);
    assert_eq!(b.recv_text().await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_body_is_relayed_verbatim_even_if_not_json() {
    let server = Setup::new().start().await;
    let mut a = browser_1_8_3(&server).await;
    let response = server
        .api()
        .request(
            "POST",
            &events_path(&server),
            &[("name", "note")],
            "plain text",
            &Signing::default(),
        )
        .await;
    assert_eq!(response.status, 202, "{}", response.body);
    assert_eq!(
        a.recv_text().await,
        format!(r#"{{"event":"note","channel":"{LIST}","data":"plain text"}}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_socket_id_missing_name_or_bad_signature_publish_nothing() {
    let server = Setup::new().start().await;
    let mut a = browser_1_8_3(&server).await;
    let api = server.api();
    let path = events_path(&server);
    let body = r#"{"id":1}"#;
    // What backpusher sends with pusher-js 1.9+: the literal string "undefined".
    let undefined = [("name", "created"), ("socket_id", "undefined")];
    let response = api
        .request("POST", &path, &undefined, body, &Signing::default())
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
    let response = api
        .request("POST", &path, &[], body, &Signing::default())
        .await;
    assert_eq!(response.status, 400, "missing name: {}", response.body);
    let wrong = Signing {
        secret: Some("wrong".into()),
        ..Signing::default()
    };
    let response = api
        .request("POST", &path, &[("name", "created")], body, &wrong)
        .await;
    assert_eq!(response.status, 401, "{}", response.body);
    a.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_client_is_never_sent_pusher_ping_events() {
    let server = Setup::new()
        .server("activity_timeout", "\"1s\"")
        .server("pong_timeout", "\"1s\"")
        .start()
        .await;
    let mut a = browser_1_8_3(&server).await;
    // Only WebSocket pings (answered by the browser), never text frames it would not answer.
    a.expect_no_frame(Duration::from_millis(2500)).await;
    assert!(a.pings >= 1, "server checked liveness with WebSocket pings");
    let response = server
        .api()
        .request(
            "POST",
            &events_path(&server),
            &[("name", "created")],
            "{}",
            &Signing::default(),
        )
        .await;
    assert_eq!(response.status, 202);
    assert_eq!(a.recv_json().await["event"], "created");
}
