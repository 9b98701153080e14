//! Mutual TLS on the cluster port (`--cluster-tls-cert`, `--cluster-tls-key`,
//! `--cluster-tls-ca`): the listener requires a client certificate and verifies it against the
//! cluster's CA; outgoing connections (kinesin-raft's `cluster_tls.rs`) present the node's
//! certificate and verify the peer's against the same CA, under the host of its cluster address.
//! The node's certificate and key are reloaded when their files change (as the API port's); the
//! CA is read at start.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use kinesin_raft::RefusalLog;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore};

use super::certs::load_certificates;
use super::{ReloadingCert, TlsError, TlsListener};

/// ALPN of the cluster port: gRPC, HTTP/2 only.
const ALPN: &[u8] = b"h2";

/// The cluster TLS settings: all three files or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTlsConfig {
    /// PEM certificate chain of this node, issued by `ca`; presented both as server and client,
    /// so it should carry both extended key usages (or none) and the node's cluster host name
    /// or IP address as a subject alternative name.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// PEM certificate(s) of the cluster's CA: the only issuer whose certificates are accepted.
    pub ca: PathBuf,
    /// How often `cert` and `key` are checked for changes; `None`: only on SIGHUP.
    pub reload_every: Option<Duration>,
}

/// This node's side of cluster mTLS: the reloading certificate and rustls' settings around it.
pub struct ClusterTls {
    cert: Arc<ReloadingCert>,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    reload_every: Option<Duration>,
    refusals: Arc<RefusalLog>,
}

/// The cluster's CA as rustls' trust anchors; an error names the file.
fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certificates(path)? {
        roots.add(cert).map_err(|e| TlsError::Certificate {
            path: path.display().to_string(),
            message: format!("not usable as a CA certificate: {e}"),
        })?;
    }
    Ok(Arc::new(roots))
}

impl ClusterTls {
    /// Loads the certificate, key and CA; an error names the file at fault.
    pub fn load(config: &ClusterTlsConfig) -> Result<ClusterTls, TlsError> {
        let provider = super::provider();
        let cert = Arc::new(ReloadingCert::load(
            config.cert.clone(),
            config.key.clone(),
            provider.clone(),
        )?);
        let roots = load_roots(&config.ca)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Certificate {
                path: config.ca.display().to_string(),
                message: e.to_string(),
            })?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(cert.clone());
        server.alpn_protocols = vec![ALPN.to_vec()];
        // The peer's name is checked too (webpki's verifier, under the host of the cluster
        // address dialed): a certificate stolen from one node cannot stand in for another's
        // address.
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_cert_resolver(cert.clone());
        client.alpn_protocols = vec![ALPN.to_vec()];
        Ok(ClusterTls {
            cert,
            server: Arc::new(server),
            client: Arc::new(client),
            reload_every: config.reload_every,
            refusals: Arc::default(),
        })
    }

    pub fn cert(&self) -> &Arc<ReloadingCert> {
        &self.cert
    }

    /// What outgoing cluster connections use (`kinesin_raft::GrpcWire::with_tls`).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client.clone()
    }

    /// The connections of the cluster port that completed a handshake with a certificate of the
    /// cluster's CA, for tonic's server (must be called within a Tokio runtime).
    pub fn incoming(
        &self,
        tcp: TcpListener,
    ) -> std::io::Result<impl Stream<Item = std::io::Result<ClusterConnection>>> {
        let listener =
            TlsListener::logging_refusals(tcp, self.server.clone(), Some(self.refusals.clone()))?;
        Ok(futures::stream::unfold(
            listener,
            |mut listener| async move {
                let (stream, _) = axum::serve::Listener::accept(&mut listener).await;
                Some((Ok(ClusterConnection(stream)), listener))
            },
        ))
    }

    /// Reloads the certificate whenever its files change, until `stopped`.
    pub async fn watch(&self, stopped: watch::Receiver<bool>) {
        super::watch_files(&self.cert, self.reload_every, stopped).await
    }
}

/// A cluster connection after its handshake, as tonic's server takes it.
pub struct ClusterConnection(tokio_rustls::server::TlsStream<TcpStream>);

impl tonic::transport::server::Connected for ClusterConnection {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for ClusterConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClusterConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::TlsConnector;

    use super::*;

    /// A CA and the node certificates it issues, as PEM.
    struct TestCa {
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
        pem: String,
    }

    impl TestCa {
        fn new(name: &str) -> TestCa {
            let key = rcgen::KeyPair::generate().expect("CA key");
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let pem = params.self_signed(&key).expect("CA certificate").pem();
            TestCa {
                issuer: rcgen::Issuer::new(params, key),
                pem,
            }
        }

        /// Files of a node certificate for `name` and 127.0.0.1, trusting `self` as the CA.
        fn node(&self, dir: &Path, name: &str, issuer: &TestCa) -> ClusterTlsConfig {
            let key = rcgen::KeyPair::generate().expect("node key");
            let cert = rcgen::CertificateParams::new(vec![name.to_string(), "127.0.0.1".into()])
                .expect("params")
                .signed_by(&key, &issuer.issuer)
                .expect("node certificate");
            let config = ClusterTlsConfig {
                cert: dir.join(format!("{name}.pem")),
                key: dir.join(format!("{name}.key")),
                ca: dir.join("ca.pem"),
                reload_every: None,
            };
            std::fs::write(&config.cert, cert.pem()).expect("write");
            std::fs::write(&config.key, key.serialize_pem()).expect("write");
            std::fs::write(&config.ca, &self.pem).expect("write");
            config
        }
    }

    /// Whether a client with `client`'s settings, dialing `server`'s listener under `name`,
    /// gets a byte echoed: accepted by both sides.
    async fn talk(server: &ClusterTls, client: Arc<rustls::ClientConfig>, name: &str) -> bool {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("address");
        let mut incoming = Box::pin(server.incoming(tcp).expect("listener"));
        // A refused client never comes out of `incoming`.
        let serve = async {
            while let Some(Ok(mut conn)) = incoming.next().await {
                let mut byte = [0u8; 1];
                if conn.0.read_exact(&mut byte).await.is_ok() {
                    let _ = conn.0.write_all(&byte).await;
                    let _ = conn.0.flush().await;
                    std::future::pending::<()>().await;
                }
            }
        };
        let connect = async {
            let stream = TcpStream::connect(addr).await.ok()?;
            let name = ServerName::try_from(name.to_string()).ok()?;
            let mut tls = TlsConnector::from(client)
                .connect(name, stream)
                .await
                .ok()?;
            tls.write_all(b"x").await.ok()?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.ok()
        };
        let talked = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::select! {
                _ = serve => false,
                answer = connect => answer.is_some(),
            }
        });
        matches!(talked.await, Ok(true))
    }

    #[tokio::test]
    async fn only_nodes_with_certificates_of_the_cluster_ca_talk() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = TestCa::new("cluster CA");
        let other = TestCa::new("another CA");
        let load = |config: ClusterTlsConfig| ClusterTls::load(&config).expect("load");
        let node1 = load(ca.node(dir.path(), "node1", &ca));
        let node2 = load(ca.node(dir.path(), "node2", &ca));
        // A certificate of another CA (trusting the cluster's: refused all the same).
        let intruder = load(ca.node(dir.path(), "node4", &other));
        let anonymous = Arc::new(
            rustls::ClientConfig::builder_with_provider(super::super::provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(load_roots(&dir.path().join("ca.pem")).expect("roots"))
                .with_no_client_auth(),
        );

        assert!(
            talk(&node1, node2.client_config(), "node1").await,
            "same CA"
        );
        assert!(
            talk(&node1, node2.client_config(), "127.0.0.1").await,
            "by IP"
        );
        assert!(
            !talk(&node1, node2.client_config(), "node3").await,
            "a name it lacks"
        );
        assert!(
            !talk(&node1, intruder.client_config(), "node1").await,
            "client of another CA"
        );
        assert!(
            !talk(&intruder, node1.client_config(), "node4").await,
            "server of another CA"
        );
        assert!(
            !talk(&node1, anonymous, "node1").await,
            "no client certificate"
        );
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = TestCa::new("cluster CA");
        let mut config = ca.node(dir.path(), "node1", &ca);
        config.ca = dir.path().join("missing-ca.pem");
        let error = ClusterTls::load(&config).err().expect("no CA").to_string();
        assert!(error.contains("missing-ca.pem"), "{error}");
        std::fs::write(&config.ca, "not a certificate\n").expect("write");
        let error = ClusterTls::load(&config).err().expect("bad CA").to_string();
        assert!(
            error.contains("missing-ca.pem") && error.contains("no PEM certificate"),
            "{error}"
        );
    }
}
