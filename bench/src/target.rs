//! The server under test: where its WebSocket and HTTP API listen and which app to use.
//! Only loopback addresses are accepted, so a typo cannot aim load at another machine.

use crate::sign::AppCredentials;
use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, ToSocketAddrs};

/// A resolved target.
#[derive(Clone, Debug)]
pub struct Target {
    /// WebSocket listener.
    pub ws_addr: SocketAddr,
    /// `host:port` as given, for the WebSocket `Host` header.
    pub ws_authority: String,
    /// HTTP API listener.
    pub api_addr: SocketAddr,
    /// `host:port` as given, for the HTTP `Host` header.
    pub api_authority: String,
    /// The app to use.
    pub app: AppCredentials,
}

impl Target {
    /// Resolves `ws://host:port` and `http://host:port`, refusing non-loopback addresses.
    pub fn new(ws_url: &str, api_url: &str, app: AppCredentials) -> Result<Self> {
        let (ws_authority, ws_addr) = resolve(ws_url, "ws://")?;
        let (api_authority, api_addr) = resolve(api_url, "http://")?;
        Ok(Self {
            ws_addr,
            ws_authority,
            api_addr,
            api_authority,
            app,
        })
    }

    /// The WebSocket URL of the app, as pusher-js would build it.
    pub fn ws_url(&self) -> String {
        format!(
            "ws://{}/app/{}?protocol=7&client=herald-bench&version=0.1.0&flash=false",
            self.ws_authority, self.app.key
        )
    }
}

fn resolve(url: &str, scheme: &str) -> Result<(String, SocketAddr)> {
    let rest = url
        .strip_prefix(scheme)
        .with_context(|| format!("{url}: expected a {scheme} URL (TLS is not supported)"))?;
    let authority = rest.split('/').next().unwrap_or(rest).to_owned();
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to nothing"))?;
    if !addr.ip().is_loopback() {
        bail!("{url}: herald-bench only targets loopback addresses");
    }
    Ok((authority, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppCredentials {
        AppCredentials {
            id: "1".into(),
            key: "k".into(),
            secret: "s".into(),
        }
    }

    #[test]
    fn loopback_targets_are_accepted() {
        let target = Target::new("ws://127.0.0.1:6001", "http://127.0.0.1:6001/", app());
        assert!(target.is_ok());
        let target = target.expect("ok");
        assert!(target
            .ws_url()
            .starts_with("ws://127.0.0.1:6001/app/k?protocol=7"));
    }

    #[test]
    fn other_addresses_are_refused() {
        assert!(Target::new("ws://10.0.0.1:6001", "http://127.0.0.1:1", app()).is_err());
        assert!(Target::new("wss://127.0.0.1:6001", "http://127.0.0.1:1", app()).is_err());
    }
}
