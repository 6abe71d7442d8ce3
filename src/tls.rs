//! TLS on the main listener (`server.tls_cert`, `server.tls_key`): [`load`] reads the
//! certificate chain and its private key (PEM) into a rustls configuration once, at start-up,
//! and refuses a missing or bad file with an error that names it; [`Tls::accept`] runs the
//! handshake of each accepted connection within a deadline.
//!
//! Only `server` uses it. It knows nothing of HTTP or WebSocket: after the handshake, REST
//! requests are read by actix-http through the TLS stream, and a WebSocket connection's records
//! are read and written by its [`Socket`](crate::connection::Socket), without waiting, like a
//! plain one's bytes.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;

/// How long a client has to complete the TLS handshake after its connection is accepted (the
/// HTTP request head then has its own deadline).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why TLS could not be set up; the message names the file (one line).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read or holds no usable certificate.
    #[error("TLS certificate {}: {problem}", path.display())]
    Certificate {
        /// `server.tls_cert`.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The key file cannot be read or holds no usable private key.
    #[error("TLS key {}: {problem}", path.display())]
    Key {
        /// `server.tls_key`.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// rustls refused the pair (e.g. the key is not the certificate's).
    #[error("TLS certificate {} with key {}: {problem}", cert.display(), key.display())]
    Pair {
        /// `server.tls_cert`.
        cert: PathBuf,
        /// `server.tls_key`.
        key: PathBuf,
        /// rustls's reason.
        problem: String,
    },
}

/// The main listener's TLS: the acceptor built from the configured certificate. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

/// Reads `server.tls_cert` and `server.tls_key`; `None` when TLS is not configured.
pub fn load(server: &ServerConfig) -> Result<Option<Tls>, TlsError> {
    let (Some(cert), Some(key)) = (&server.tls_cert, &server.tls_key) else {
        return Ok(None);
    };
    let chain = certificates(cert)?;
    let private_key = private_key(key)?;
    let pair = |e: rustls::Error| TlsError::Pair {
        cert: cert.clone(),
        key: key.clone(),
        problem: e.to_string(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(pair)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(pair)?;
    // WebSocket upgrades and the REST API are HTTP/1.1; herald speaks no HTTP/2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
    }))
}

impl Tls {
    /// The server side of the handshake on an accepted connection, within
    /// [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let problem = |problem: String| TlsError::Certificate {
        path: path.to_owned(),
        problem,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| problem(pem_problem(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(pem_problem(e)))?;
    if chain.is_empty() {
        return Err(problem(
            "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(chain)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_owned(),
        problem: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no private key in it (expected PEM: -----BEGIN PRIVATE KEY-----, or RSA / EC)"
                    .into()
            }
            e => pem_problem(e),
        },
    })
}

/// A PEM reading error as a short phrase; a missing file reads as the OS says it.
fn pem_problem(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        e => format!("not valid PEM ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cert: &Path, key: &Path) -> ServerConfig {
        ServerConfig {
            tls_cert: Some(cert.to_owned()),
            tls_key: Some(key.to_owned()),
            ..ServerConfig::default()
        }
    }

    /// A scratch directory of this test's own, removed at the end.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let dir =
                std::env::temp_dir().join(format!("herald-tls-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn file(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn self_signed() -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (made.cert.pem(), made.key_pair.serialize_pem())
    }

    #[test]
    fn not_configured_is_none() {
        assert!(load(&ServerConfig::default()).unwrap().is_none());
    }

    #[test]
    fn a_good_pair_loads() {
        let dir = Dir::new("good");
        let (cert, key) = self_signed();
        let config = config(&dir.file("cert.pem", &cert), &dir.file("key.pem", &key));
        assert!(load(&config).unwrap().is_some());
    }

    #[test]
    fn each_problem_names_its_file() {
        let dir = Dir::new("bad");
        let (cert, key) = self_signed();
        let (other_cert, _) = self_signed();
        let good_cert = dir.file("cert.pem", &cert);
        let good_key = dir.file("key.pem", &key);
        let missing = dir.0.join("missing.pem");
        let empty = dir.file("empty.pem", "");
        let garbage = dir.file("garbage.pem", "-----BEGIN CERTIFICATE-----\n!!!\n");
        let other = dir.file("other.pem", &other_cert);
        let cases = [
            (
                &missing,
                &good_key,
                "TLS certificate",
                &missing,
                "No such file",
            ),
            (
                &empty,
                &good_key,
                "TLS certificate",
                &empty,
                "no certificate in it",
            ),
            (
                &garbage,
                &good_key,
                "TLS certificate",
                &garbage,
                "not valid PEM",
            ),
            (&good_cert, &missing, "TLS key", &missing, "No such file"),
            // A certificate where the key should be: no key in it.
            (
                &good_cert,
                &good_cert,
                "TLS key",
                &good_cert,
                "no private key in it",
            ),
            (&other, &good_key, "TLS certificate", &other, "with key"),
        ];
        for (cert, key, kind, named, problem) in cases {
            let err = load(&config(cert, key)).unwrap_err().to_string();
            let expected = format!("{kind} {}", named.display());
            assert!(err.starts_with(&expected), "{err}");
            assert!(err.contains(problem), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
