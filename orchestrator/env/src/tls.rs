//! TLS for real mode: a server side (the API, store peers) and a client
//! side (the project's API client, store peers), over any [`BoxConn`].
//!
//! Real mode only. rustls checks certificate validity against the machine's
//! wall clock and draws its randomness from the operating system, so the
//! simulator keeps its transport plain: a simulated run stays a function of
//! its seed (see `docs/architecture.md`).
//!
//! Certificates and keys are PEM. A server given a client CA verifies any
//! client certificate against it and refuses one from another CA; with
//! `require_client_cert` it also refuses a client that presents none
//! (mutual TLS, for store peers).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::BoxConn;

/// A TLS setting that could not be built, naming the file or part at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

// ring rather than rustls's default aws-lc-rs: aws-lc-rs builds a large C
// library (with cmake) for a post-quantum key exchange that loopback and
// container-network clusters do not need.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Prefixes an error with the file it is about.
fn in_file(path: &Path) -> impl Fn(TlsError) -> TlsError + '_ {
    move |e| TlsError(format!("{}: {}", path.display(), e.0))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("{}: {e}", path.display())))
}

/// Every certificate in a PEM text (at least one).
fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{what}: not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError(format!("{what}: no PEM certificate in it")));
    }
    Ok(certs)
}

fn key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| TlsError(format!("{what}: not a PEM private key: {e}")))
}

fn roots(pem: &[u8], what: &str) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(pem, what)? {
        roots
            .add(c)
            .map_err(|e| TlsError(format!("{what}: not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// The server side of TLS: accepts connections with a certificate.
#[derive(Clone)]
pub struct TlsServer {
    acceptor: TlsAcceptor,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsServer")
    }
}

/// Where a server's certificate, key and client CA come from.
#[derive(Debug, Clone, Copy)]
pub struct ServerPem<'a> {
    /// The certificate chain, leaf first.
    pub cert: &'a [u8],
    pub key: &'a [u8],
    /// Verify client certificates against this CA.
    pub client_ca: Option<&'a [u8]>,
    /// Refuse clients without a certificate (mutual TLS).
    pub require_client_cert: bool,
}

impl TlsServer {
    pub fn from_pem(pem: ServerPem<'_>) -> Result<TlsServer, TlsError> {
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS versions: {e}")))?;
        let builder = match pem.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(roots(ca, "client CA")?, provider);
                let verifier = if pem.require_client_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError(format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut cfg = builder
            .with_single_cert(certs(pem.cert, "certificate")?, key(pem.key, "key")?)
            .map_err(|e| TlsError(format!("certificate and key: {e}")))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsServer {
            acceptor: TlsAcceptor::from(Arc::new(cfg)),
        })
    }

    /// Reads the PEM files; errors name the file.
    pub fn from_files(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
        require_client_cert: bool,
    ) -> Result<TlsServer, TlsError> {
        let (c, k) = (read(cert)?, read(key)?);
        let ca = client_ca.map(read).transpose()?;
        // Check each file on its own first, so an error names the file.
        certs(&c, "certificate").map_err(in_file(cert))?;
        self::key(&k, "key").map_err(in_file(key))?;
        if let (Some(p), Some(ca)) = (client_ca, &ca) {
            roots(ca, "client CA").map_err(in_file(p))?;
        }
        TlsServer::from_pem(ServerPem {
            cert: &c,
            key: &k,
            client_ca: ca.as_deref(),
            require_client_cert,
        })
    }

    /// The TLS handshake on an accepted connection.
    pub async fn accept(&self, conn: BoxConn) -> io::Result<BoxConn> {
        let tls = self.acceptor.accept(conn).await?;
        Ok(Box::pin(tls))
    }
}

/// The client side of TLS: verifies servers against a CA, and presents a
/// certificate of its own when given one.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsClient")
    }
}

impl TlsClient {
    /// `ca`: the CA servers' certificates must chain to; `identity`: this
    /// client's certificate chain and key, if it has one.
    pub fn from_pem(ca: &[u8], identity: Option<(&[u8], &[u8])>) -> Result<TlsClient, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS versions: {e}")))?
            .with_root_certificates(roots(ca, "CA")?);
        let mut cfg = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, k)) => builder
                .with_client_auth_cert(certs(cert, "client certificate")?, key(k, "client key")?)
                .map_err(|e| TlsError(format!("client certificate and key: {e}")))?,
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(cfg)),
        })
    }

    /// Reads the PEM files; errors name the file.
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<TlsClient, TlsError> {
        let ca_pem = read(ca)?;
        roots(&ca_pem, "CA").map_err(in_file(ca))?;
        match identity {
            None => TlsClient::from_pem(&ca_pem, None),
            Some((c, k)) => TlsClient::from_pem(&ca_pem, Some((&read(c)?, &read(k)?))),
        }
    }

    /// The TLS handshake on a connection to `addr` (`host:port`; the
    /// server's certificate must name `host`, a DNS name or an IP address).
    pub async fn connect(&self, addr: &str, conn: BoxConn) -> io::Result<BoxConn> {
        let host = match addr.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => addr,
        };
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host:?} is not a server name: {e}"),
            )
        })?;
        let tls = self.connector.connect(name, conn).await?;
        Ok(Box::pin(tls))
    }
}
