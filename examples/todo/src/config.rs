//! Command-line flags and environment variables of `herald-todo`, parsed once at startup.
//!
//! Owns every setting and its default (the published 2011 demo credentials, herald on
//! 127.0.0.1:6001) plus the derived browser-side WebSocket endpoint. Nothing else in the crate
//! reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::trigger::Api;

/// `herald-todo`: the 2011 Backbone todo demo's backend, realtime through herald.
#[derive(Clone, Debug, Parser)]
#[command(name = "herald-todo", version, about)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the bound URL is printed on stdout).
    #[arg(long, env = "TODO_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// SQLite database file, created (with its directory) on first run.
    #[arg(long, env = "TODO_DB", default_value = "todo.sqlite3")]
    pub db: PathBuf,

    /// herald's base URL, for the signed HTTP API (and, by default, the browsers' WebSocket).
    #[arg(long, env = "TODO_HERALD_URL", default_value = "http://127.0.0.1:6001")]
    pub herald_url: String,

    /// WebSocket host the browsers connect to [default: the host of --herald-url].
    #[arg(long, env = "TODO_WS_HOST")]
    pub ws_host: Option<String>,

    /// WebSocket port the browsers connect to [default: the port of --herald-url].
    #[arg(long, env = "TODO_WS_PORT")]
    pub ws_port: Option<u16>,

    /// Pusher app id configured in herald.
    #[arg(long, env = "TODO_APP_ID", default_value = "5493")]
    pub app_id: String,

    /// Pusher app key (the 2011 application.js hard-codes this one).
    #[arg(long, env = "TODO_APP_KEY", default_value = "511a5abb7486107ce643")]
    pub app_key: String,

    /// Pusher app secret, used to sign trigger requests.
    #[arg(long, env = "TODO_APP_SECRET", default_value = "012e3a040f1f7c25ef24")]
    pub app_secret: String,

    /// Which herald endpoint to trigger events on.
    #[arg(long, env = "TODO_TRIGGER_API", value_enum, default_value = "events")]
    pub trigger_api: Api,

    /// Serve the original 2011 front-end from this folder (its `public/`, or the repository
    /// root containing `public/`) instead of our own front-end.
    #[arg(long, env = "TODO_FRONTEND")]
    pub frontend: Option<PathBuf>,

    /// The `node_modules` folder our front-end's libraries are served from.
    #[arg(long, env = "TODO_NODE_MODULES", default_value = default_node_modules())]
    pub node_modules: PathBuf,
}

fn default_node_modules() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/frontend/node_modules")
}

/// Where browsers open their WebSocket to herald.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsEndpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `wss://` rather than `ws://`.
    pub tls: bool,
}

/// A setting that makes no sense.
#[derive(Debug, thiserror::Error)]
#[error("invalid --herald-url {0:?}: expected http://HOST[:PORT] or https://HOST[:PORT]")]
pub struct BadHeraldUrl(pub String);

impl Config {
    /// The browsers' WebSocket endpoint: `--ws-host`/`--ws-port`, else herald's URL.
    pub fn ws_endpoint(&self) -> Result<WsEndpoint, BadHeraldUrl> {
        let bad = || BadHeraldUrl(self.herald_url.clone());
        let (tls, rest) = if let Some(rest) = self.herald_url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = self.herald_url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h.to_owned(), p.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (authority.to_owned(), if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(WsEndpoint {
            host: self.ws_host.clone().unwrap_or(host),
            port: self.ws_port.unwrap_or(port),
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["herald-todo"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv).expect("parse")
    }

    #[test]
    fn defaults_are_the_demo_app_on_local_herald() {
        let c = config(&[]);
        assert_eq!(c.app_key, "511a5abb7486107ce643");
        assert_eq!(c.app_id, "5493");
        assert_eq!(
            c.ws_endpoint().ok(),
            Some(WsEndpoint {
                host: "127.0.0.1".into(),
                port: 6001,
                tls: false
            })
        );
    }

    #[test]
    fn ws_endpoint_overrides_and_defaults() {
        let c = config(&["--herald-url", "https://push.example/", "--ws-port", "7000"]);
        assert_eq!(
            c.ws_endpoint().ok(),
            Some(WsEndpoint {
                host: "push.example".into(),
                port: 7000,
                tls: true
            })
        );
        assert!(config(&["--herald-url", "ftp://x"]).ws_endpoint().is_err());
        assert!(config(&["--herald-url", "http://h:notaport"])
            .ws_endpoint()
            .is_err());
    }
}
