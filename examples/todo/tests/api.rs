//! The backend end to end over HTTP (in-process app, in-memory SQLite), with a small local
//! HTTP listener standing in for herald's trigger endpoint: it records each request so the
//! tests can check the event, the exclusion and the signature the example sends.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{test, web, App, HttpRequest, HttpResponse, HttpServer};
use clap::Parser;
use serde_json::{json, Value};
use todo_example::config::Config;
use todo_example::server;
use todo_example::signing;
use todo_example::store::Store;

const SECRET: &str = "012e3a040f1f7c25ef24";

/// One request the stand-in received.
#[derive(Clone, Debug)]
struct Captured {
    path: String,
    query: Vec<(String, String)>,
    body: String,
}

impl Captured {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Checks body_md5 and the HMAC as herald would.
    fn assert_signed(&self) {
        assert_eq!(self.param("auth_key"), Some("511a5abb7486107ce643"));
        assert_eq!(self.param("auth_version"), Some("1.0"));
        assert_eq!(
            self.param("body_md5"),
            Some(signing::body_md5(self.body.as_bytes()).as_str())
        );
        let expected = signing::hmac_sha256_hex(
            SECRET,
            &signing::string_to_sign("POST", &self.path, &self.query),
        );
        assert_eq!(self.param("auth_signature"), Some(expected.as_str()));
    }

    /// For the modern endpoint: (event name, decoded data, socket_id).
    fn event(&self) -> (String, Value, Option<String>) {
        let body: Value = serde_json::from_str(&self.body).expect("JSON body");
        let data = body["data"].as_str().expect("data is a string");
        (
            body["name"].as_str().unwrap_or_default().to_owned(),
            serde_json::from_str(data).expect("data is JSON"),
            body["socket_id"].as_str().map(str::to_owned),
        )
    }
}

type Log = Arc<Mutex<Vec<Captured>>>;

/// Starts the stand-in for herald on a free port; it answers `status` to every request.
fn stand_in(status: u16) -> (String, Log) {
    let log: Log = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let recorded = log.clone();
    let server = HttpServer::new(move || {
        let recorded = recorded.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let recorded = recorded.clone();
            async move {
                recorded.lock().expect("log").push(Captured {
                    path: req.path().to_owned(),
                    query: form_urlencoded::parse(req.query_string().as_bytes())
                        .into_owned()
                        .collect(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                HttpResponse::build(StatusCode::from_u16(status).expect("status"))
                    .content_type("application/json")
                    .body("{}")
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    (url, log)
}

async fn app(
    herald_url: &str,
    extra: &[&str],
) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error> {
    let mut args = vec!["herald-todo", "--herald-url", herald_url];
    args.extend_from_slice(extra);
    let config = Config::try_parse_from(args).expect("config");
    let (state, dirs) = server::build(&config, Store::in_memory().expect("store")).expect("build");
    let (state, dirs) = (web::Data::new(state), web::Data::new(dirs));
    test::init_service(App::new().configure(move |cfg| server::configure(cfg, state, dirs))).await
}

async fn new_list(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
) -> String {
    let res = test::call_service(app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers().get("location").expect("location");
    location
        .to_str()
        .expect("ascii")
        .trim_start_matches('/')
        .to_owned()
}

async fn send(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    req: test::TestRequest,
) -> (StatusCode, Value) {
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = test::read_body(res).await;
    assert!(
        content_type.starts_with("application/json"),
        "{status} {content_type}"
    );
    let value = serde_json::from_slice(&body).expect("JSON response");
    (status, value)
}

fn json_req(method: &str, uri: &str, body: &str) -> test::TestRequest {
    let req = match method {
        "POST" => test::TestRequest::post(),
        "PUT" => test::TestRequest::put(),
        _ => panic!("method"),
    };
    req.uri(uri)
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_owned())
}

#[actix_web::test]
async fn list_pages_and_unknown_lists() {
    let (url, _log) = stand_in(200);
    let app = app(&url, &[]).await;
    let token = new_list(&app).await;
    assert_eq!(token.len(), 11);

    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(&format!("/{token}"))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = String::from_utf8(test::read_body(res).await.to_vec()).expect("utf-8");
    assert!(html.contains(&format!("list-production-{token}")));
    assert!(html.contains("511a5abb7486107ce643"));

    for uri in [
        "/NoSuchList",
        "/no.such",
        "/NoSuchList/items.json",
        "/NoSuchList/items/1.json",
    ] {
        let res = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{uri}");
    }
    let res = test::call_service(
        &app,
        test::TestRequest::get().uri("/favicon.ico").to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[actix_web::test]
async fn items_speak_the_original_json_and_trigger_events() {
    let (url, log) = stand_in(200);
    let app = app(&url, &[]).await;
    let token = new_list(&app).await;
    let items = format!("/{token}/items.json");

    // Create, as backpusher 0.0.2 / our front-end do it: header socket id.
    let (status, item) = send(
        &app,
        json_req("POST", &items, r#"{"shortdesc":"buy milk","isdone":false}"#)
            .insert_header(("X-Pusher-Socket-ID", "123.456")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = item
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 5, "{item}");
    for key in ["id", "shortdesc", "isdone", "created_at", "updated_at"] {
        assert!(keys.contains(&key), "{key} in {item}");
    }
    let id = item["id"].as_i64().expect("integer id");
    assert!(item["created_at"].as_i64().expect("millis") > 1_600_000_000_000);
    assert_eq!(item["shortdesc"], "buy milk");

    {
        let log = log.lock().expect("log");
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].path, "/apps/5493/events");
        log[0].assert_signed();
        let (name, data, socket_id) = log[0].event();
        assert_eq!(name, "created");
        assert_eq!(data, item);
        assert_eq!(socket_id.as_deref(), Some("123.456"));
        let body: Value = serde_json::from_str(&log[0].body).expect("json");
        assert_eq!(
            body["channels"],
            json!([format!("list-production-{token}")])
        );
    }

    // Update, as the 2011 client does it: whole model back, socket id in the query.
    let whole = json!({"id": id, "shortdesc": "buy oat milk", "isdone": true, "created_at": 1,
                       "updated_at": 2, "longdesc": null, "list_id": 99});
    let (status, updated) = send(
        &app,
        json_req(
            "PUT",
            &format!("/{token}/items/{id}.json?socket_id=9.87"),
            &whole.to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["shortdesc"], "buy oat milk");
    assert_eq!(updated["isdone"], true);
    assert_eq!(updated["created_at"], item["created_at"]);

    // Reads with socket_id=undefined, with and without .json.
    for uri in [
        format!("{items}?socket_id=undefined"),
        format!("/{token}/items"),
    ] {
        let (status, list) = send(&app, test::TestRequest::get().uri(&uri)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list, json!([updated]));
    }
    let (_, shown) = send(
        &app,
        test::TestRequest::get().uri(&format!("/{token}/items/{id}")),
    )
    .await;
    assert_eq!(shown, updated);

    // Delete answers {} and announces {"id": id}.
    let (status, body) = send(
        &app,
        test::TestRequest::delete().uri(&format!("/{token}/items/{id}.json?socket_id=undefined")),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    let log = log.lock().expect("log");
    assert_eq!(log.len(), 3);
    let (name, data, socket_id) = log[1].event();
    assert_eq!(
        (name.as_str(), socket_id.as_deref()),
        ("updated", Some("9.87"))
    );
    assert_eq!(data, updated);
    let (name, data, socket_id) = log[2].event();
    assert_eq!((name.as_str(), socket_id), ("destroyed", None));
    assert_eq!(data, json!({ "id": id }));
    log.iter().for_each(Captured::assert_signed);
}

#[actix_web::test]
async fn bad_input_gets_clear_4xx() {
    let (url, log) = stand_in(200);
    let app = app(&url, &[]).await;
    let token = new_list(&app).await;
    let other = new_list(&app).await;
    let items = format!("/{token}/items.json");

    let (status, body) = send(&app, json_req("POST", &items, "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().expect("message").contains("JSON"));
    let (status, _) = send(&app, json_req("POST", &items, "[]")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(&app, json_req("POST", &items, r#"{"isdone":"yes"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, item) = send(&app, json_req("POST", &items, r#"{"shortdesc":"x"}"#)).await;
    let id = item["id"].as_i64().expect("id");
    for uri in [
        format!("/{other}/items/{id}.json"),
        format!("/{token}/items/abc.json"),
        format!("/{token}/items/{}.json", id + 1000),
    ] {
        let (status, body) = send(&app, json_req("PUT", &uri, "{}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(body["error"].is_string());
        let (status, _) = send(&app, test::TestRequest::delete().uri(&uri)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
    let (status, _) = send(
        &app,
        json_req("PUT", &format!("/{token}/items/{id}"), "nope"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        log.lock().expect("log").len(),
        1,
        "only the successful create triggered"
    );
}

#[actix_web::test]
async fn legacy_endpoint_is_signed_like_the_2011_gem() {
    let (url, log) = stand_in(202);
    let app = app(&url, &["--trigger-api", "legacy"]).await;
    let token = new_list(&app).await;
    let (status, item) = send(
        &app,
        json_req(
            "POST",
            &format!("/{token}/items.json?socket_id=1.2"),
            r#"{"shortdesc":"a"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let log = log.lock().expect("log");
    assert_eq!(
        log[0].path,
        format!("/apps/5493/channels/list-production-{token}/events")
    );
    assert_eq!(log[0].param("name"), Some("created"));
    assert_eq!(log[0].param("socket_id"), Some("1.2"));
    assert_eq!(
        serde_json::from_str::<Value>(&log[0].body).expect("json"),
        item
    );
    log[0].assert_signed();
}

#[actix_web::test]
async fn a_failed_trigger_never_fails_the_request() {
    // herald answering 500, then herald not running at all.
    let (url, log) = stand_in(500);
    let unreachable = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    for herald in [url.as_str(), unreachable.as_str()] {
        let app = app(herald, &[]).await;
        let token = new_list(&app).await;
        let (status, item) = send(
            &app,
            json_req("POST", &format!("/{token}/items"), r#"{"shortdesc":"a"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(item["id"].is_i64());
    }
    assert_eq!(log.lock().expect("log").len(), 1);
}
