//! Mutual TLS on the cluster transport, the dialing side: every outgoing cluster connection
//! presents this node's certificate and verifies the peer's against the cluster's CA, under the
//! host name (or IP address) of the peer's cluster address. The rustls settings come from the
//! node (kinesin-node's `tls/cluster.rs`), whose certificate resolver reloads changed files: new
//! connections take the new certificate, open ones keep theirs.

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

/// Peers refused at a TLS handshake, each logged once (a liveness ping every 200 ms would
/// otherwise log five refusals a second per peer) until a handshake with it succeeds again.
#[derive(Debug, Default)]
pub struct RefusalLog {
    refused: Mutex<HashSet<String>>,
}

/// Peers remembered at most: a scan of the port from many addresses must not grow it forever.
const REFUSALS_KEPT: usize = 4096;

impl RefusalLog {
    /// Whether `peer`'s refusal is news (to be logged).
    pub fn refused(&self, peer: &str) -> bool {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.len() >= REFUSALS_KEPT && !refused.contains(peer) {
            refused.clear();
        }
        refused.insert(peer.to_string())
    }

    /// Whether `peer` had been refused (and so is worth logging as accepted again).
    pub fn accepted(&self, peer: &str) -> bool {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        !refused.is_empty() && refused.remove(peer)
    }
}

/// The client side of cluster mTLS.
pub(crate) struct TlsDialer {
    connector: TlsConnector,
    refusals: RefusalLog,
}

/// How long the trust check waits for a peer to answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// What an HTTP/2 client sends first; a server that accepted the connection answers with its
/// SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Why a peer failed [`TlsDialer::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustError {
    /// Nothing listens there (yet): worth trying again.
    Unreachable(String),
    /// The TLS handshake failed, or the peer closed the connection right after it (it refused
    /// this node's certificate): it does not hold a certificate of this cluster's CA, or does not
    /// trust this node's.
    Refused(String),
}

impl Display for TrustError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustError::Unreachable(why) | TrustError::Refused(why) => f.write_str(why),
        }
    }
}

/// The name the peer's certificate must carry: the host of its cluster address (a DNS name or
/// an IP address, `[v6]` unbracketed).
fn server_name(host: &str) -> std::io::Result<ServerName<'static>> {
    let host = unbracketed(host);
    ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{host}` cannot name a TLS server: {e}"),
        )
    })
}

/// An IPv6 host without the brackets it has in an address.
fn unbracketed(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `host:port` of a cluster address, split at its last colon.
fn host_port(addr: &str) -> std::io::Result<(&str, u16)> {
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bad peer address {addr}: host:port expected"),
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    Ok((host, port.parse().map_err(|_| bad())?))
}

impl TlsDialer {
    pub(crate) fn new(config: Arc<ClientConfig>) -> TlsDialer {
        TlsDialer {
            connector: TlsConnector::from(config),
            refusals: RefusalLog::default(),
        }
    }

    /// Connects to the cluster address `host:port` and completes the TLS handshake.
    pub(crate) async fn dial(
        &self,
        host: &str,
        port: u16,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = server_name(host)?;
        let tcp = TcpStream::connect((unbracketed(host), port)).await?;
        tcp.set_nodelay(true)?;
        let peer = format!("{host}:{port}");
        match self.connector.connect(name, tcp).await {
            Ok(tls) => {
                if self.refusals.accepted(&peer) {
                    tracing::info!(%peer, "cluster TLS handshake with the peer succeeds again");
                }
                Ok(tls)
            }
            Err(e) => {
                if self.refusals.refused(&peer) {
                    tracing::warn!(%peer, error = %e, "cluster TLS handshake failed: the peer's certificate is not one of this cluster's CA (or not for its address); no cluster traffic goes to it until it has one (logged once per peer)");
                }
                Err(e)
            }
        }
    }

    /// Whether the node at `addr` and this one accept each other's certificates: a handshake,
    /// then the HTTP/2 preface, which the peer answers only if it accepted this node's
    /// certificate (in TLS 1.3 a server refuses the client's certificate after the client's
    /// side of the handshake is done, so the handshake alone does not tell).
    pub(crate) async fn check(&self, addr: &str) -> Result<(), TrustError> {
        let (host, port) = host_port(addr).map_err(|e| TrustError::Refused(e.to_string()))?;
        let name = server_name(host).map_err(|e| TrustError::Refused(e.to_string()))?;
        let exchange = async {
            let tcp = TcpStream::connect((unbracketed(host), port))
                .await
                .map_err(|e| TrustError::Unreachable(format!("cannot connect to {addr}: {e}")))?;
            let refused = |what: &str, e: std::io::Error| {
                TrustError::Refused(format!("{what} with {addr} failed: {e}"))
            };
            let mut tls = self
                .connector
                .connect(name, tcp)
                .await
                .map_err(|e| refused("the TLS handshake", e))?;
            tls.write_all(H2_PREFACE)
                .await
                .map_err(|e| refused("the TLS session", e))?;
            tls.flush()
                .await
                .map_err(|e| refused("the TLS session", e))?;
            let mut first = [0u8; 9];
            match tls.read(&mut first).await {
                Ok(0) => Err(TrustError::Refused(format!(
                    "{addr} closed the connection after the TLS handshake: it does not accept this node's certificate"
                ))),
                Ok(_) => Ok(()),
                Err(e) => Err(TrustError::Refused(format!(
                    "{addr} refused this node's certificate: {e}"
                ))),
            }
        };
        tokio::time::timeout(CHECK_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(TrustError::Unreachable(format!(
                    "{addr} did not answer within {} s",
                    CHECK_TIMEOUT.as_secs()
                )))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_news_once_until_the_peer_is_accepted_again() {
        let log = RefusalLog::default();
        assert!(log.refused("node4:7000"));
        assert!(!log.refused("node4:7000"));
        assert!(log.refused("node5:7000"));
        assert!(!log.accepted("node1:7000"));
        assert!(log.accepted("node4:7000"));
        assert!(log.refused("node4:7000"));
    }

    #[test]
    fn cluster_addresses_name_their_host() {
        assert_eq!(host_port("node1:7000").unwrap(), ("node1", 7000));
        assert_eq!(host_port("[::1]:7000").unwrap(), ("[::1]", 7000));
        assert!(host_port("node1").is_err());
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("node1").unwrap(),
            ServerName::DnsName(_)
        ));
    }
}
