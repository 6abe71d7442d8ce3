//! Spec §7.2: channel queries, users, unknown routes and disabled apps.

mod common;

use common::{Setup, Signing};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_list_is_an_object_even_when_empty() {
    let server = Setup::new().start().await;
    let api = server.api();
    let response = api.get(&api.path("/channels"), &[]).await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, r#"{"channels":{}}"#)
    );
    assert!(
        response.content_type.starts_with("application/json"),
        "{}",
        response.content_type
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_list_filters_and_counts() {
    let server = Setup::new().start().await;
    let api = server.api();
    let mut a = server.client().await;
    a.join("news").await;
    a.join_private("private-x").await;
    a.join_presence("presence-one", r#"{"user_id":"1"}"#).await;
    a.signin(r#"{"id":"1"}"#).await;
    a.subscribe("#server-to-user-1").await;
    a.expect_succeeded("#server-to-user-1").await;
    let mut b = server.client().await;
    b.join_presence("presence-one", r#"{"user_id":"2"}"#).await;
    b.join_presence("presence-two", r#"{"user_id":"2"}"#).await;
    let all = api.get(&api.path("/channels"), &[]).await.ok();
    let want =
        json!({"channels": {"news": {}, "private-x": {}, "presence-one": {}, "presence-two": {}}});
    assert_eq!(all, want, "server-to-user channels are never listed");
    let presence = api
        .get(
            &api.path("/channels"),
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        )
        .await;
    let want =
        json!({"channels": {"presence-one": {"user_count": 2}, "presence-two": {"user_count": 1}}});
    assert_eq!(presence.ok(), want);
    let private = api
        .get(&api.path("/channels"), &[("filter_by_prefix", "private-")])
        .await
        .ok();
    assert_eq!(private, json!({"channels": {"private-x": {}}}));
    let none = api
        .get(&api.path("/channels"), &[("filter_by_prefix", "nothing-")])
        .await;
    assert_eq!(none.body, r#"{"channels":{}}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_count_on_channels_needs_presence_prefix() {
    let server = Setup::new().start().await;
    let api = server.api();
    for params in [
        vec![("info", "user_count")],
        vec![("info", "user_count"), ("filter_by_prefix", "private-")],
    ] {
        let response = api.get(&api.path("/channels"), &params).await;
        assert_eq!(response.status, 400, "{params:?}: {}", response.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_shows_occupied_and_counts() {
    let server = Setup::new().app("subscription_count", "true").start().await;
    let api = server.api();
    let empty = api.get(&api.path("/channels/nobody"), &[]).await;
    assert_eq!(
        (empty.status, empty.body.as_str()),
        (200, r#"{"occupied":false}"#)
    );
    let mut a = server.client().await;
    a.join("room").await;
    let mut b = server.client().await;
    b.join("room").await;
    let shown = api.get(&api.path("/channels/room"), &[]).await;
    assert_eq!(shown.ok(), json!({"occupied": true}));
    let counted = api
        .get(
            &api.path("/channels/room"),
            &[("info", "subscription_count")],
        )
        .await;
    assert_eq!(
        counted.ok(),
        json!({"occupied": true, "subscription_count": 2})
    );
    let refused = api
        .get(&api.path("/channels/room"), &[("info", "user_count")])
        .await;
    assert_eq!(
        refused.status, 400,
        "user_count on a public channel: {}",
        refused.body
    );
    let mut c = server.client().await;
    c.join_presence("presence-p", r#"{"user_id":"9"}"#).await;
    let presence = api
        .get(&api.path("/channels/presence-p"), &[("info", "user_count")])
        .await;
    assert_eq!(presence.ok(), json!({"occupied": true, "user_count": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_non_presence_channel_is_400() {
    let server = Setup::new().start().await;
    let api = server.api();
    let mut a = server.client().await;
    a.join("public").await;
    for channel in ["public", "private-x"] {
        let response = api
            .get(&api.path(&format!("/channels/{channel}/users")), &[])
            .await;
        assert_eq!(response.status, 400, "{channel}: {}", response.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_404() {
    let server = Setup::new().start().await;
    let api = server.api();
    for path in [
        "/nope",
        "/apps/test-id/nope",
        "/apps/test-id/channels/a/b/c",
    ] {
        let response = api.get(path, &[]).await;
        assert_eq!(
            (response.status, response.body.as_str()),
            (404, "404 NOT FOUND\n"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_app_is_403() {
    let server = Setup::new()
        .extra_app("id = \"off-id\"\nkey = \"off-key\"\nsecret = \"off-secret\"\nenabled = false")
        .start()
        .await;
    let off = server.api().for_app("off-id", "off-key", "off-secret");
    let response = off
        .trigger(json!({"name": "e", "channels": ["a"], "data": "x"}))
        .await;
    assert_eq!(response.status, 403, "{}", response.body);
    let response = off.get(&off.path("/channels"), &[]).await;
    assert_eq!(response.status, 403, "{}", response.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_names_with_special_characters_in_path() {
    let server = Setup::new().start().await;
    let api = server.api();
    let mut a = server.client().await;
    a.join("a=b@c,d;e").await;
    let response = api.get(&api.path("/channels/a=b@c,d;e"), &[]).await;
    assert_eq!(response.ok(), json!({"occupied": true}));
    let encoded = Signing::default();
    let response = api
        .request(
            "GET",
            &api.path("/channels/a%3Db%40c%2Cd%3Be"),
            &[],
            "",
            &encoded,
        )
        .await;
    assert_eq!(response.ok(), json!({"occupied": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unoccupied_channel_counts_are_zero() {
    let server = Setup::new().app("subscription_count", "true").start().await;
    let api = server.api();
    let presence = api
        .get(
            &api.path("/channels/presence-nobody"),
            &[("info", "user_count,subscription_count")],
        )
        .await;
    assert_eq!(
        presence.ok(),
        json!({"occupied": false, "user_count": 0, "subscription_count": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_but_unoccupied_channels_are_not_listed() {
    let server = Setup::new().start().await;
    let api = server.api();
    api.publish("cache-lonely", "e", "d").await;
    let mut c = server.client().await;
    c.join("news").await;
    c.join("left").await;
    c.unsubscribe("left").await;
    c.ping_pong().await;
    let list = api.get(&api.path("/channels"), &[]).await;
    assert_eq!(
        (list.status, list.body.as_str()),
        (200, r#"{"channels":{"news":{}}}"#)
    );
}

/// Spec §7.2: `subscription_count` "requires the app's subscription-count setting" — with the
/// setting off it must not be reported (refused with 400 or left out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_needs_the_app_setting() {
    let server = Setup::new().start().await;
    let api = server.api();
    let mut c = server.client().await;
    c.join("a").await;
    let requests = [
        api.get(&api.path("/channels"), &[("info", "subscription_count")])
            .await,
        api.get(&api.path("/channels/a"), &[("info", "subscription_count")])
            .await,
        api.trigger(
            json!({"name": "e", "channels": ["a"], "data": "x", "info": "subscription_count"}),
        )
        .await,
    ];
    for response in requests {
        let reported = response.status == 200 && response.body.contains("subscription_count");
        assert!(!reported, "{} {}", response.status, response.body);
    }
}
