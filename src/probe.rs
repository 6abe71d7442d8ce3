//! `herald --health`: asks the herald configured like this process whether it is ready, for
//! container health checks (the image's `HEALTHCHECK`), which then need no HTTP client of
//! their own. The probe reads the same configuration as the server (file and `HERALD_*`
//! variables), asks `GET /ready` on the metrics listener, or on the main one when the metrics
//! listener is off (over TLS if the main listener has it), at the configured address — loopback
//! when the server listens on every address — and succeeds only on `200`.
//!
//! It is a client only: it starts nothing and serves nothing. Only the binary uses it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::config::Config;

/// How long the probe waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Why the server is not (known to be) ready.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Port 0 is given a free port at start, which the probe cannot know.
    #[error("cannot probe {listener}: its port is 0 (picked at start)")]
    NoPort {
        /// `server.port` or `metrics.port`.
        listener: &'static str,
    },
    /// No answer: nothing listens there, or it did not answer in time.
    #[error("{url}: {reason}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// The client's error.
        reason: String,
    },
    /// An answer other than 200 (503 while shutting down, or the cluster unreachable).
    #[error("{url}: {status} {body}")]
    NotReady {
        /// What was asked.
        url: String,
        /// The status answered.
        status: u16,
        /// The reason given.
        body: String,
    },
}

/// `GET /ready` of the herald configured by `config`: `Ok` on 200.
pub async fn ready(config: &Config) -> Result<(), ProbeError> {
    let url = ready_url(config)?;
    let unreachable = |e: reqwest::Error| ProbeError::Unreachable {
        url: url.clone(),
        reason: error_chain(&e),
    };
    // The certificate is not checked: it names the server's public host, not loopback, and the
    // probe asks its own process on this machine.
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .danger_accept_invalid_certs(true)
        .build()
        .map_err(unreachable)?;
    let response = client.get(&url).send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    if status == 200 {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(ProbeError::NotReady {
        url,
        status,
        body: body.trim().to_owned(),
    })
}

/// Where to ask: the metrics listener if it is on, else the main listener.
fn ready_url(config: &Config) -> Result<String, ProbeError> {
    let (scheme, host, port, listener) = match config.metrics.enabled {
        true => (
            "http",
            config.metrics.host,
            config.metrics.port,
            "metrics.port",
        ),
        false => {
            let server = &config.server;
            let scheme = match server.tls_cert {
                Some(_) => "https",
                None => "http",
            };
            (scheme, server.host, server.port, "server.port")
        }
    };
    if port == 0 {
        return Err(ProbeError::NoPort { listener });
    }
    let host = match host {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!("{scheme}://{}/ready", SocketAddr::new(host, port)))
}

/// The error and its causes on one line (reqwest's own message says little alone).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(file: &str) -> Result<String, String> {
        let config = Config::load(Some(file), &|_| None).map_err(|e| e.to_string())?;
        ready_url(&config).map_err(|e| e.to_string())
    }

    const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";

    #[test]
    fn the_metrics_listener_is_asked_when_it_is_on() {
        assert_eq!(url("").unwrap(), "http://127.0.0.1:9601/ready");
        let file = format!(
            "[server]\nhost = \"0.0.0.0\"\n[metrics]\nhost = \"0.0.0.0\"\nport = 9700\n{APP}"
        );
        assert_eq!(url(&file).unwrap(), "http://127.0.0.1:9700/ready");
        let file = format!("[metrics]\nhost = \"::\"\n{APP}");
        assert_eq!(url(&file).unwrap(), "http://[::1]:9601/ready");
        let file = format!("[metrics]\nhost = \"10.0.0.5\"\n{APP}");
        assert_eq!(url(&file).unwrap(), "http://10.0.0.5:9601/ready");
    }

    #[test]
    fn else_the_main_listener_over_tls_if_it_has_it() {
        let off = "[metrics]\nenabled = false\n";
        let file = format!("[server]\nhost = \"0.0.0.0\"\nport = 7001\n{off}{APP}");
        assert_eq!(url(&file).unwrap(), "http://127.0.0.1:7001/ready");
        let tls = "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n";
        let file = format!("[server]\n{tls}{off}");
        assert_eq!(url(&file).unwrap(), "https://127.0.0.1:6001/ready");
    }

    #[test]
    fn port_0_cannot_be_probed() {
        let err = url("[metrics]\nport = 0\n").unwrap_err();
        assert_eq!(
            err,
            "cannot probe metrics.port: its port is 0 (picked at start)"
        );
        let err = url("[server]\nport = 0\n[metrics]\nenabled = false\n").unwrap_err();
        assert!(err.contains("server.port"), "{err}");
    }
}
