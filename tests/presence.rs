//! Spec §4: presence member lists, one member per user, member_added/removed, limits,
//! user ids as strings, the users API.

mod common;

use std::time::Duration;

use common::{Client, Server, Setup};
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);
const ROOM: &str = "presence-room";

fn member(id: &str, name: &str) -> String {
    format!(r#"{{"user_id":"{id}","user_info":{{"name":"{name}"}}}}"#)
}

async fn joined(server: &Server, channel_data: &str) -> (Client, Value) {
    let mut client = server.client().await;
    let presence = client.join_presence(ROOM, channel_data).await;
    (client, presence)
}

fn sorted_ids(presence: &Value) -> Vec<String> {
    let mut ids: Vec<String> = presence["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("string id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_list_and_member_added_exact() {
    let server = Setup::new().start().await;
    let (mut a, first) = joined(&server, &member("1", "A")).await;
    assert_eq!(
        first,
        json!({"ids": ["1"], "hash": {"1": {"name": "A"}}, "count": 1})
    );
    let (mut b, second) = joined(&server, &member("2", "B")).await;
    assert_eq!(sorted_ids(&second), ["1", "2"]);
    assert_eq!(
        second["hash"],
        json!({"1": {"name": "A"}, "2": {"name": "B"}})
    );
    assert_eq!(second["count"], 2);
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"2\",\"user_info\":{\"name\":\"B\"}}"}"#
    );
    // The joining socket is not told about itself.
    b.expect_no_frame(QUIET).await;
    b.unsubscribe(ROOM).await;
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"2\"}"}"#
    );
    b.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_sockets_of_one_user_are_one_member() {
    let server = Setup::new().start().await;
    let (mut a, _) = joined(&server, &member("1", "A")).await;
    let (mut b1, _) = joined(&server, &member("2", "B")).await;
    let (b2, list) = joined(&server, &member("2", "B")).await;
    assert_eq!(list["count"], 2, "{list}");
    assert_eq!(sorted_ids(&list), ["1", "2"]);
    let added = a.recv_json().await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    a.expect_no_frame(QUIET).await;
    b1.expect_no_frame(QUIET).await;
    let users = server
        .api()
        .get(&server.api().path("/channels/presence-room/users"), &[])
        .await
        .ok();
    assert_eq!(users["users"].as_array().map(Vec::len), Some(2), "{users}");
    b1.unsubscribe(ROOM).await;
    a.expect_no_frame(QUIET).await;
    b2.close().await;
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"2\"}"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_removes_member_for_others() {
    let server = Setup::new().start().await;
    let (mut a, _) = joined(&server, &member("1", "A")).await;
    let (b, _) = joined(&server, &member("2", "B")).await;
    a.recv_json().await;
    b.close().await;
    let removed = a.recv_json().await;
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    assert_eq!(removed["data"], r#"{"user_id":"2"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_user_id_is_emitted_as_string() {
    let server = Setup::new().start().await;
    let (mut a, _) = joined(&server, &member("1", "A")).await;
    let (b, list) = joined(&server, r#"{"user_id":42,"user_info":{"name":"N"}}"#).await;
    assert_eq!(sorted_ids(&list), ["1", "42"]);
    assert_eq!(list["hash"]["42"], json!({"name": "N"}));
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"42\",\"user_info\":{\"name\":\"N\"}}"}"#
    );
    let users = server
        .api()
        .get(&server.api().path("/channels/presence-room/users"), &[])
        .await
        .ok();
    let mut ids: Vec<&str> = users["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["id"].as_str().expect("id"))
        .collect();
    ids.sort();
    assert_eq!(ids, ["1", "42"], "{users}");
    b.close().await;
    assert_eq!(a.recv_json().await["data"], r#"{"user_id":"42"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_api_lists_ids_only() {
    let server = Setup::new().start().await;
    let (_a, _) = joined(&server, &member("1", "A")).await;
    let response = server
        .api()
        .get(&server.api().path("/channels/presence-room/users"), &[])
        .await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, r#"{"users":[{"id":"1"}]}"#)
    );
    let empty = server
        .api()
        .get(&server.api().path("/channels/presence-empty/users"), &[])
        .await;
    assert_eq!(
        (empty.status, empty.body.as_str()),
        (200, r#"{"users":[]}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_members_then_refused() {
    let server = Setup::new().start().await;
    let mut members = Vec::new();
    for i in 0..100 {
        let mut c = server.client().await;
        c.join_presence(ROOM, &format!(r#"{{"user_id":"u{i}"}}"#))
            .await;
        members.push(c);
    }
    let mut extra = server.client().await;
    let data = r#"{"user_id":"u100"}"#;
    let auth = common::presence_auth(&extra.socket_id, ROOM, data);
    extra
        .subscribe_with(json!({"channel": ROOM, "auth": auth, "channel_data": data}))
        .await;
    extra.expect_error_code(None).await;
    extra.ping_pong().await;
    // An existing member may still open another connection to the full channel.
    let mut again = server.client().await;
    let list = again.join_presence(ROOM, r#"{"user_id":"u0"}"#).await;
    assert_eq!(list["count"], 100);
    let count = server
        .api()
        .get(
            &server.api().path("/channels/presence-room"),
            &[("info", "user_count")],
        )
        .await
        .ok();
    assert_eq!(count, json!({"occupied": true, "user_count": 100}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_over_1024_bytes_is_refused() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    // `{"a":"xx…"}` of exactly n bytes.
    let info = |n: usize| format!(r#"{{"a":"{}"}}"#, "x".repeat(n - 8));
    let too_big = format!(r#"{{"user_id":"1","user_info":{}}}"#, info(1025));
    let auth = common::presence_auth(&c.socket_id, ROOM, &too_big);
    c.subscribe_with(json!({"channel": ROOM, "auth": auth, "channel_data": too_big}))
        .await;
    c.expect_error_code(None).await;
    let fits = format!(r#"{{"user_id":"1","user_info":{}}}"#, info(1024));
    let list = c.join_presence(ROOM, &fits).await;
    assert_eq!(list["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_id_over_128_chars_is_refused() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    let long = format!(r#"{{"user_id":"{}"}}"#, "i".repeat(129));
    let auth = common::presence_auth(&c.socket_id, ROOM, &long);
    c.subscribe_with(json!({"channel": ROOM, "auth": auth, "channel_data": long}))
        .await;
    c.expect_error_code(None).await;
    let fits = format!(r#"{{"user_id":"{}"}}"#, "i".repeat(128));
    let list = c.join_presence(ROOM, &fits).await;
    assert_eq!(list["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_data_without_user_id_is_refused() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    let data = r#"{"user_info":{"name":"X"}}"#;
    let auth = common::presence_auth(&c.socket_id, ROOM, data);
    c.subscribe_with(json!({"channel": ROOM, "auth": auth, "channel_data": data}))
        .await;
    c.expect_error_code(None).await;
    c.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_user_new_info_replaces_without_event() {
    let server = Setup::new().start().await;
    let (mut a, _) = joined(&server, &member("1", "A")).await;
    let (mut b, _) = joined(&server, &member("2", "Old")).await;
    a.recv_json().await;
    let (_b2, list) = joined(&server, &member("2", "New")).await;
    assert_eq!(list["hash"]["2"], json!({"name": "New"}), "{list}");
    a.expect_no_frame(QUIET).await;
    b.expect_no_frame(Duration::ZERO).await;
    let (_c, list) = joined(&server, &member("3", "C")).await;
    assert_eq!(list["hash"]["2"], json!({"name": "New"}), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_user_joins_presence_without_channel_data() {
    let server = Setup::new().start().await;
    let (mut a, _) = joined(&server, &member("1", "A")).await;
    let mut c = server.client().await;
    c.signin(r#"{"id":"5","user_info":{"name":"Signed"}}"#)
        .await;
    let auth = common::private_auth(&c.socket_id, ROOM);
    c.subscribe_with(json!({"channel": ROOM, "auth": auth}))
        .await;
    let frame = c.recv_json().await;
    assert_eq!(
        frame["event"], "pusher_internal:subscription_succeeded",
        "{frame}"
    );
    let presence = common::json(frame["data"].as_str().expect("string data"))["presence"].clone();
    assert_eq!(sorted_ids(&presence), ["1", "5"]);
    assert_eq!(
        presence["hash"]["5"],
        json!({"name": "Signed"}),
        "the member is the signed-in user: {presence}"
    );
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"5\",\"user_info\":{\"name\":\"Signed\"}}"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_without_channel_data_needs_signin() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    let auth = common::private_auth(&c.socket_id, ROOM);
    c.subscribe_with(json!({"channel": ROOM, "auth": auth}))
        .await;
    c.expect_error_code(None).await;
    c.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_disconnect_removes_member() {
    let server = Setup::new().start().await;
    let (mut a, _) = joined(&server, &member("1", "A")).await;
    let (b, _) = joined(&server, &member("2", "B")).await;
    a.recv_json().await;
    drop(b); // TCP goes away without a close frame
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"2\"}"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_and_leaves_of_one_user_make_one_member() {
    let server = std::sync::Arc::new(Setup::new().start().await);
    let (mut observer, _) = joined(&server, &member("obs", "O")).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let (c, _) = joined(&server, &member("x", "X")).await;
            c
        }));
    }
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.expect("join"));
    }
    let added = observer.recv_json().await;
    assert_eq!(added["event"], "pusher_internal:member_added", "{added}");
    observer.expect_no_frame(QUIET).await;
    let closes: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(c.close()))
        .collect();
    for close in closes {
        close.await.expect("close");
    }
    let removed = observer.recv_json().await;
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    assert_eq!(removed["data"], r#"{"user_id":"x"}"#);
    observer.expect_no_frame(QUIET).await;
}

/// sdk-requests.md §1: Python's `json.dumps` spacing in `channel_data` is signed as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_spaced_channel_data_verifies_and_parses() {
    let server = Setup::new().start().await;
    let (mut a, _) = joined(&server, &member("1", "A")).await;
    let spaced = r#"{"user_id": "user-1", "user_info": {"name": "Alice"}}"#;
    let (_b, list) = joined(&server, spaced).await;
    assert_eq!(list["hash"]["user-1"], json!({"name": "Alice"}));
    let added = a.recv_json().await;
    assert_eq!(
        common::json(added["data"].as_str().expect("data")),
        json!({"user_id": "user-1", "user_info": {"name": "Alice"}})
    );
}
