//! The WebSocket handshake: raw bytes through actix-http's HTTP/1 request decoder (what the
//! server runs before handing an upgrade over), then herald's `handshake::accept`.
//!
//! Beyond not panicking: an accepted upgrade is a `GET /app/{key}` with the RFC 6455 headers,
//! answered with exactly the `101` head and the accept key derived from the client's key; a
//! refusal is a complete 4xx response whose `Content-Length` is its body's length.
#![no_main]

use actix_codec::Decoder;
use actix_http::h1::{Codec, Message};
use actix_http::{HttpMessage, Method, ServiceConfig};
use bytes::BytesMut;
use herald::auth::api::parse_query;
use herald::fuzzing::accept;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tokio::task::LocalSet;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// actix-http's default server configuration, with what it needs alive: building it spawns its
/// date-keeping task, which takes a tokio runtime and a `LocalSet` to spawn on (the task never
/// runs here: decoding a request needs no date).
struct Harness {
    config: ServiceConfig,
    _local: LocalSet,
    _runtime: Runtime,
}

thread_local! {
    static HARNESS: Harness = {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let local = LocalSet::new();
        let config = {
            let _runtime = runtime.enter();
            let _local = local.enter();
            ServiceConfig::default()
        };
        Harness { config, _local: local, _runtime: runtime }
    };
}

fuzz_target!(|bytes: &[u8]| {
    let mut codec = Codec::new(HARNESS.with(|h| h.config.clone()));
    let mut buf = BytesMut::from(bytes);
    let Ok(Some(Message::Item(req))) = codec.decode(&mut buf) else {
        return;
    };
    match accept(&req) {
        Ok(accepted) => {
            assert_eq!(req.method(), Method::GET);
            assert!(req.path().starts_with("/app/"), "{}", req.path());
            assert!(!accepted.key.is_empty());
            assert_eq!(accepted.query, req.uri().query().unwrap_or(""));
            let client_key = req.headers().get("sec-websocket-key").unwrap();
            assert_eq!(
                accepted.response,
                format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    derive_accept_key(client_key.as_bytes())
                )
            );
            // What the server does next with the query (the protocol version check).
            let _ = parse_query(&accepted.query);
        }
        Err(response) => {
            assert!(
                ["400", "404", "405", "426"]
                    .iter()
                    .any(|code| response.starts_with(&format!("HTTP/1.1 {code} "))),
                "{response}"
            );
            let (head, body) = response.split_once("\r\n\r\n").expect("a complete head");
            assert!(
                head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
                "{response}"
            );
        }
    }
});
