//! The real server (`server::run` on 127.0.0.1:0) over real HTTP: redirects, our static
//! assets, the `node_modules` libraries, and the `--frontend` folder of the 2011 front-end
//! (here a stand-in folder with placeholder files; the real ones are third-party code).

use std::net::TcpListener;
use std::path::Path;

use clap::Parser;
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use todo_example::config::Config;
use todo_example::server;
use todo_example::store::Store;

/// Starts the server with `args`; returns its base URL.
fn start(args: &[&str]) -> String {
    let mut argv = vec!["herald-todo", "--herald-url", "http://127.0.0.1:9"];
    argv.extend_from_slice(args);
    let config = Config::try_parse_from(argv).expect("config");
    let (state, dirs) = server::build(&config, Store::in_memory().expect("store")).expect("build");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    actix_web::rt::spawn(server::run(listener, state, dirs));
    url
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

async fn get(url: &str) -> (StatusCode, String, String) {
    let res = client().get(url).send().await.expect("request");
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, res.text().await.expect("body"))
}

async fn new_list(base: &str) -> String {
    let res = client()
        .get(format!("{base}/"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers().get("location").expect("location");
    format!("{base}{}", location.to_str().expect("ascii"))
}

#[actix_web::test]
async fn serves_our_front_end_and_its_libraries() {
    let modules = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(modules.path().join("jquery/dist")).expect("mkdir");
    std::fs::write(modules.path().join("jquery/dist/jquery.js"), "/* jq */").expect("write");
    let node_modules = modules.path().to_str().expect("utf-8 path");
    let base = start(&["--node-modules", node_modules]);

    let page_url = new_list(&base).await;
    let (status, content_type, page) = get(&page_url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"));
    for script in ["/vendor/pusher.js", "/vendor/backbone.js", "/assets/app.js"] {
        assert!(page.contains(script), "{script}");
    }
    assert!(page.contains(&format!("value=\"{page_url}\"")), "share URL");

    let (status, content_type, body) = get(&format!("{base}/assets/app.js")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/javascript"));
    assert!(body.contains("Realtime.sendSocketId"));

    let (status, _, body) = get(&format!("{base}/vendor/jquery.js")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "/* jq */"));
    let (status, _, body) = get(&format!("{base}/vendor/backbone.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("npm ci"), "{body}");
    let (status, _, _) = get(&format!("{base}/vendor/..%2Fsecret.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn write(dir: &Path, relative: &str, contents: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, contents).expect("write");
}

#[actix_web::test]
async fn serves_the_original_front_end_folder() {
    let repo = tempfile::tempdir().expect("tempdir");
    write(repo.path(), "public/javascripts/application.js", "// app");
    write(repo.path(), "public/stylesheets/todos.css", "/* css */");
    let base = start(&["--frontend", repo.path().to_str().expect("utf-8 path")]);

    let page_url = new_list(&base).await;
    let (status, _, page) = get(&page_url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/javascripts/backpusher.js"));
    assert!(page.contains("window.app.list_channel"));
    let (status, _, body) = get(&format!("{base}/javascripts/application.js")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "// app"));
    let (status, _, _) = get(&format!("{base}/stylesheets/todos.css")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(&format!("{base}/javascripts/missing.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn refuses_a_frontend_folder_without_application_js() {
    let empty = tempfile::tempdir().expect("tempdir");
    let config = Config::try_parse_from([
        "herald-todo",
        "--frontend",
        empty.path().to_str().expect("utf-8 path"),
    ])
    .expect("config");
    let built = server::build(&config, Store::in_memory().expect("store"));
    assert!(built.is_err());
}
