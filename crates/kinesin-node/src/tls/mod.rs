//! TLS for the Kinesis API port: the certificate, reloaded without a restart, and a listener that
//! completes each handshake before the HTTP server sees the connection.
//!
//! Production clients (the KPL, Fluent Bit, the Java SDK) connect only over TLS; the Java async
//! client speaks HTTP/2, chosen by ALPN. Both HTTP versions are served on the one port.

mod certs;
mod cluster;
mod listener;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_rustls::rustls;

pub use certs::ReloadingCert;
pub use cluster::{ClusterConnection, ClusterTls, ClusterTlsConfig};
pub use listener::TlsListener;

/// ALPN protocols offered, most preferred first: rustls picks the first the client also offers.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The TLS listener's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
    /// How often the files are checked for a change; `None`: only on [`ReloadingCert::reload`]
    /// (SIGHUP).
    pub reload_every: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it")]
    NoCertificate { path: String },
    #[error("{path}: no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) in it")]
    NoKey { path: String },
    #[error("{path}: malformed PEM: {message}")]
    Pem { path: String, message: String },
    #[error("{path}: unusable certificate: {message}")]
    Certificate { path: String, message: String },
    #[error("{path}: unusable private key: {message}")]
    Key { path: String, message: String },
    #[error("the private key in {key} does not belong to the certificate in {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("TLS settings: {0}")]
    Settings(#[from] rustls::Error),
}

/// ring, not rustls' default aws-lc-rs: no CMake and C build, and the choice is explicit where
/// other crates in the build enable both providers.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reloads `cert` whenever its files change, checked `every` (never: `None`), until `stopped`.
async fn watch_files(
    cert: &ReloadingCert,
    every: Option<Duration>,
    mut stopped: watch::Receiver<bool>,
) {
    let Some(every) = every else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => cert.reload_if_changed(),
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// What the TLS listener serves with: the reloading certificate and rustls' settings around it.
pub struct TlsServer {
    cert: Arc<ReloadingCert>,
    config: Arc<rustls::ServerConfig>,
    reload_every: Option<Duration>,
}

impl TlsServer {
    /// Loads the certificate and key; an error names the file at fault.
    pub fn load(config: &TlsConfig) -> Result<TlsServer, TlsError> {
        let provider = provider();
        let cert = Arc::new(ReloadingCert::load(
            config.cert.clone(),
            config.key.clone(),
            provider.clone(),
        )?);
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(cert.clone());
        server.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(TlsServer {
            cert,
            config: Arc::new(server),
            reload_every: config.reload_every,
        })
    }

    pub fn cert(&self) -> &Arc<ReloadingCert> {
        &self.cert
    }

    /// Accepts TLS connections on `tcp` (must be called within a Tokio runtime).
    pub fn listener(&self, tcp: tokio::net::TcpListener) -> std::io::Result<TlsListener> {
        TlsListener::new(tcp, self.config.clone())
    }

    /// Reloads the certificate whenever its files change, until `stopped`.
    pub async fn watch(&self, stopped: watch::Receiver<bool>) {
        watch_files(&self.cert, self.reload_every, stopped).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::TlsConnector;

    use super::certs::tests::{provider, self_signed};
    use super::*;

    fn connector(cert_pem: &str, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("test PEM"))
            .expect("a root");
        let mut client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(client))
    }

    #[tokio::test]
    async fn alpn_chooses_h2_or_http11_and_plain_http_is_closed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = self_signed("localhost");
        let config = TlsConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            reload_every: None,
        };
        std::fs::write(&config.cert, &cert).expect("write cert");
        std::fs::write(&config.key, &key).expect("write key");
        let server = TlsServer::load(&config).expect("load");
        let tcp = TcpListener::bind(config.listen).await.expect("bind");
        let addr = tcp.local_addr().expect("address");
        let mut listener = server.listener(tcp).expect("listener");
        let localhost = ServerName::try_from("localhost").expect("name");

        // (protocols the client offers, the one ALPN must choose)
        type Offer<'a> = (&'a [&'a [u8]], Option<&'a [u8]>);
        let offers: [Offer; 3] = [
            (&[b"http/1.1", b"h2"], Some(b"h2")),
            (&[b"http/1.1"], Some(b"http/1.1")),
            (&[], None),
        ];
        for (offer, expected) in offers {
            let stream = TcpStream::connect(addr).await.expect("connect");
            let (client, (server_side, _)) = tokio::join!(
                connector(&cert, offer).connect(localhost.clone(), stream),
                axum::serve::Listener::accept(&mut listener),
            );
            let client = client.expect("handshake");
            assert_eq!(client.get_ref().1.alpn_protocol(), expected, "{offer:?}");
            assert_eq!(server_side.get_ref().1.alpn_protocol(), expected);
        }

        // Plain HTTP on the TLS port: the handshake fails and the connection is closed at once.
        let mut plain = TcpStream::connect(addr).await.expect("connect");
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("send");
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer))
            .await
            .expect("the connection is closed, not left hanging");
        assert!(
            closed.is_err() || !answer.starts_with(b"HTTP/"),
            "{answer:?}"
        );

        // And the listener goes on serving.
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (client, _) = tokio::join!(
            connector(&cert, &[b"h2"]).connect(localhost, stream),
            axum::serve::Listener::accept(&mut listener),
        );
        client.expect("handshake after the plain-HTTP attempt");
    }
}
