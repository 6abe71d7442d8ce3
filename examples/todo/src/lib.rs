//! herald-todo: the 2011 Backbone todo demo's backend (pusher/backbone-todo-app, Rails),
//! rewritten in Rust and made realtime through herald's Pusher-compatible HTTP API.
//!
//! # Layout
//!
//! ```text
//! signing     PURE  Pusher request signing (auth_version 1.0)
//! socket_id   PURE  the originator's socket id: X-Pusher-Socket-ID header or ?socket_id=
//! model       PURE  lists, items, their exact JSON, lenient request-body reading
//! token       PURE  share tokens
//! store             SQLite (rusqlite): schema and statements
//! trigger           created/updated/destroyed → herald (modern or legacy endpoint)
//! page              the list page for our front-end or the original one (+ pusher shim)
//! assets            static files: ours (compiled in), node_modules libraries, original public/
//! error             request errors → HTTP statuses, in one place
//! routes            the Rails app's routes as actix handlers
//! server            wiring: config → state → HttpServer on a bound listener
//! config            CLI flags / environment
//! ```
//!
//! Dependency rule: the pure modules import nothing of ours except `model`; `routes` is the
//! only module that sees both the store and the trigger; only `config` knows the CLI. This
//! crate does not depend on herald: it talks to it over HTTP like any Pusher app would.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod assets;
pub mod config;
pub mod error;
pub mod model;
pub mod page;
pub mod routes;
pub mod server;
pub mod signing;
pub mod socket_id;
pub mod store;
pub mod token;
pub mod trigger;
