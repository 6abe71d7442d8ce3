//! The server under test: where its WebSocket and HTTP API listen and which app to use.
//! Only loopback addresses are accepted, so a typo cannot aim load at another machine.
//!
//! A server may be several nodes (a cluster): `--ws-url` then lists each node's WebSocket URL,
//! comma-separated, and a scenario's connection `i` goes to node `i mod n`
//! ([`Target::ws_node`]); the HTTP API is one node's.

use crate::sign::AppCredentials;
use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, ToSocketAddrs};

/// One node's WebSocket listener.
#[derive(Clone, Debug)]
pub struct WsNode {
    /// Its address.
    pub addr: SocketAddr,
    /// `host:port` as given, for the WebSocket `Host` header.
    pub authority: String,
}

/// A resolved target.
#[derive(Clone, Debug)]
pub struct Target {
    /// WebSocket listeners, one per node (at least one).
    ws_nodes: Vec<WsNode>,
    /// HTTP API listener.
    pub api_addr: SocketAddr,
    /// `host:port` as given, for the HTTP `Host` header.
    pub api_authority: String,
    /// The app to use.
    pub app: AppCredentials,
}

impl Target {
    /// Resolves `ws://host:port[,ws://host:port…]` and `http://host:port`, refusing
    /// non-loopback addresses.
    pub fn new(ws_urls: &str, api_url: &str, app: AppCredentials) -> Result<Self> {
        let ws_nodes = ws_urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                let (authority, addr) = resolve(url, "ws://")?;
                Ok(WsNode { addr, authority })
            })
            .collect::<Result<Vec<_>>>()?;
        if ws_nodes.is_empty() {
            bail!("--ws-url names no WebSocket URL");
        }
        let (api_authority, api_addr) = resolve(api_url, "http://")?;
        Ok(Self {
            ws_nodes,
            api_addr,
            api_authority,
            app,
        })
    }

    /// How many WebSocket nodes there are.
    pub fn nodes(&self) -> usize {
        self.ws_nodes.len()
    }

    /// The node that connection `index` of a scenario uses: `index mod n`.
    pub fn ws_node(&self, index: usize) -> &WsNode {
        &self.ws_nodes[index % self.ws_nodes.len()]
    }

    /// The `--ws-url` argument that names the same nodes, in the same order.
    pub fn ws_urls(&self) -> String {
        self.ws_nodes
            .iter()
            .map(|node| format!("ws://{}", node.authority))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The WebSocket URL of the app on `node`, as pusher-js would build it.
    pub fn ws_url(&self, node: &WsNode) -> String {
        format!(
            "ws://{}/app/{}?protocol=7&client=herald-bench&version=0.1.0&flash=false",
            node.authority, self.app.key
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
        assert_eq!(target.nodes(), 1);
        assert!(target
            .ws_url(target.ws_node(7))
            .starts_with("ws://127.0.0.1:6001/app/k?protocol=7"));
    }

    #[test]
    fn connections_go_round_robin_over_the_nodes() {
        let urls = "ws://127.0.0.1:7001,ws://127.0.0.1:7002, ws://127.0.0.1:7003";
        let target = Target::new(urls, "http://127.0.0.1:7001", app()).expect("ok");
        assert_eq!(target.nodes(), 3);
        let ports: Vec<u16> = (0..5).map(|i| target.ws_node(i).addr.port()).collect();
        assert_eq!(ports, [7001, 7002, 7003, 7001, 7002]);
        assert_eq!(target.ws_urls(), urls.replace(' ', ""));
        let one = Target::new(&target.ws_urls(), "http://127.0.0.1:7001", app()).expect("ok");
        assert_eq!(one.nodes(), 3);
    }

    #[test]
    fn other_addresses_are_refused() {
        assert!(Target::new("ws://10.0.0.1:6001", "http://127.0.0.1:1", app()).is_err());
        assert!(Target::new("wss://127.0.0.1:6001", "http://127.0.0.1:1", app()).is_err());
        let mixed = "ws://127.0.0.1:6001,ws://10.0.0.1:6001";
        assert!(Target::new(mixed, "http://127.0.0.1:1", app()).is_err());
        assert!(Target::new(",", "http://127.0.0.1:1", app()).is_err());
    }
}
