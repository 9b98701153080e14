//! The road bytes take between nodes: the one seam between the cluster transport's logic
//! ([`crate::Peers`]: encoding, fault filters, heartbeat batching, what may be retried) and the
//! network under it. A node runs over gRPC ([`GrpcWire`]: two HTTP/2 connections per peer, one
//! for the controller and liveness, one on which tonic multiplexes every shard group's calls); a
//! simulator or a test plugs in its own network.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio_rustls::rustls::ClientConfig;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::cluster_tls::{TlsDialer, TrustError};

use crate::transport::pb::raft_transport_client::RaftTransportClient;
use crate::transport::pb::{
    ProposeRequest, QueryRequest, RaftBatchRequest, RaftReply, RaftRequest,
};

/// Connection setup for cluster traffic.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 pings on each peer connection, and how long an unanswered one may wait before the
/// connection is declared dead.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The request never left this node (no connection could be made): trying another node
    /// cannot apply it twice.
    NotSent(String),
    /// It may have been delivered (the connection broke, the call timed out, the peer failed):
    /// its outcome is unknown.
    NoAnswer(String),
    /// The peer refused it unread: it does not understand this node's cluster protocol, or this
    /// node does not understand the peer's (`versions.rs`).
    Refused(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::NotSent(why) | WireError::NoAnswer(why) | WireError::Refused(why) => {
                f.write_str(why)
            }
        }
    }
}

/// An answer on its way: the payload the peer answered with.
pub type WireFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, WireError>> + Send + 'a>>;

/// A network between nodes, addressed by their cluster addresses. Every method sends one
/// request and waits at most `timeout` for its answer.
pub trait Wire: Send + Sync + 'static {
    /// One openraft message (or a liveness ping); the answer.
    fn raft<'a>(
        &'a self,
        to: &'a str,
        request: RaftRequest,
        timeout: Duration,
    ) -> WireFuture<'a, RaftReply>;

    /// Several openraft messages in one call; the answers' payloads in order.
    fn raft_batch<'a>(
        &'a self,
        to: &'a str,
        requests: Vec<RaftRequest>,
        timeout: Duration,
    ) -> WireFuture<'a, Vec<Vec<u8>>>;

    /// A write forwarded to a group's leader.
    fn propose<'a>(
        &'a self,
        to: &'a str,
        request: ProposeRequest,
        timeout: Duration,
    ) -> WireFuture<'a, Vec<u8>>;

    /// A read-only question to a replica.
    fn query<'a>(
        &'a self,
        to: &'a str,
        request: QueryRequest,
        timeout: Duration,
    ) -> WireFuture<'a, Vec<u8>>;

    /// Whether the node at `to` and this one may talk at all (cluster mTLS: each accepts the
    /// other's certificate). Asked before a node is let into the cluster. Without TLS, yes.
    fn check_trust<'a>(
        &'a self,
        to: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), TrustError>> + Send + 'a>> {
        let _ = to;
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Which of a peer's two connections a call takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    /// The controller group's messages, proposals and reads, and liveness pings (group 0).
    Control,
    /// Every shard group's.
    Data,
}

impl Lane {
    /// The controller's traffic and the pings that say who is alive must not queue behind a
    /// thousand shard groups' calls on one HTTP/2 connection (its stream limit, its flow
    /// control, its keepalive): creating 600 shards left the controller unable to confirm its
    /// leadership for over a minute.
    fn of(group: u64) -> Lane {
        if group == 0 {
            Lane::Control
        } else {
            Lane::Data
        }
    }
}

/// The network of a real node: gRPC over lazily connected HTTP/2 channels, two per peer
/// ([`Lane`]), in plain TCP or, [`GrpcWire::with_tls`], mutual TLS.
#[derive(Default)]
pub struct GrpcWire {
    channels: Mutex<HashMap<(String, Lane), RaftTransportClient<Channel>>>,
    tls: Option<Arc<TlsDialer>>,
}

impl GrpcWire {
    /// Over mutual TLS: `config` presents this node's certificate and verifies peers' against
    /// the cluster's CA (see `cluster_tls.rs`).
    pub fn with_tls(config: Arc<ClientConfig>) -> GrpcWire {
        GrpcWire {
            channels: Mutex::default(),
            tls: Some(Arc::new(TlsDialer::new(config))),
        }
    }

    fn client(&self, addr: &str, group: u64) -> Result<RaftTransportClient<Channel>, WireError> {
        let key = (addr.to_string(), Lane::of(group));
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = channels.get(&key) {
            return Ok(client.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| WireError::NotSent(format!("bad peer address {addr}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            // A peer cut off by a partition must be noticed in about two seconds: the connection
            // is then dropped and the next call dials afresh. Left to TCP, a connection that lost
            // packets during a partition resumes only at its next retransmission, which backs off
            // to several seconds and kept shards unavailable for ~10 s after a partition healed.
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let channel = match &self.tls {
            None => endpoint.connect_lazy(),
            Some(tls) => {
                let tls = tls.clone();
                // Endpoint's TCP settings apply to its own connector only: `dial` sets nodelay;
                // the connect timeout and HTTP/2 keepalives still apply.
                endpoint.connect_with_connector_lazy(tower::service_fn(move |uri: Uri| {
                    let tls = tls.clone();
                    async move {
                        let host = uri.host().unwrap_or_default().to_string();
                        let port = uri.port_u16().unwrap_or(80);
                        tls.dial(&host, port).await.map(TokioIo::new)
                    }
                }))
            }
        };
        let client = RaftTransportClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        channels.insert(key, client.clone());
        Ok(client)
    }
}

fn with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut call = tonic::Request::new(message);
    call.set_timeout(timeout);
    call
}

fn failed(status: tonic::Status) -> WireError {
    if status.code() == tonic::Code::FailedPrecondition {
        WireError::Refused(status.message().to_string())
    } else if never_sent(&status) {
        WireError::NotSent(status.to_string())
    } else {
        WireError::NoAnswer(status.to_string())
    }
}

/// Whether a call failed before any byte of it left this node: only a failed connection proves
/// that. `Unavailable` alone does not — tonic also reports a connection closed mid-call (a missed
/// keepalive ping, a reset) as `Unavailable`, after the peer may have received and applied the
/// request; retrying such a proposal elsewhere stored records twice (found by jepsen/).
fn never_sent(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

impl Wire for GrpcWire {
    fn raft<'a>(
        &'a self,
        to: &'a str,
        request: RaftRequest,
        timeout: Duration,
    ) -> WireFuture<'a, RaftReply> {
        Box::pin(async move {
            let mut client = self.client(to, request.group)?;
            let reply = client
                .raft(with_timeout(request, timeout))
                .await
                .map_err(failed)?;
            Ok(reply.into_inner())
        })
    }

    fn raft_batch<'a>(
        &'a self,
        to: &'a str,
        requests: Vec<RaftRequest>,
        timeout: Duration,
    ) -> WireFuture<'a, Vec<Vec<u8>>> {
        Box::pin(async move {
            // Batches carry shard groups' heartbeats only (the controller's go alone).
            let group = requests.first().map_or(1, |r| r.group);
            let mut client = self.client(to, group)?;
            let reply = client
                .raft_batch(with_timeout(RaftBatchRequest { requests }, timeout))
                .await
                .map_err(failed)?;
            Ok(reply
                .into_inner()
                .replies
                .into_iter()
                .map(|r| r.payload)
                .collect())
        })
    }

    fn propose<'a>(
        &'a self,
        to: &'a str,
        request: ProposeRequest,
        timeout: Duration,
    ) -> WireFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let mut client = self.client(to, request.group)?;
            let reply = client
                .propose(with_timeout(request, timeout))
                .await
                .map_err(failed)?;
            Ok(reply.into_inner().payload)
        })
    }

    fn query<'a>(
        &'a self,
        to: &'a str,
        request: QueryRequest,
        timeout: Duration,
    ) -> WireFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let mut client = self.client(to, request.group)?;
            let reply = client
                .query(with_timeout(request, timeout))
                .await
                .map_err(failed)?;
            Ok(reply.into_inner().payload)
        })
    }

    fn check_trust<'a>(
        &'a self,
        to: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), TrustError>> + Send + 'a>> {
        Box::pin(async move {
            match &self.tls {
                Some(tls) => tls.check(to).await,
                None => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::never_sent;

    #[test]
    fn only_a_failed_connection_counts_as_never_sent() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let connect = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))));
        assert_eq!(connect.code(), tonic::Code::Unavailable);
        assert!(never_sent(&connect));

        // What a keepalive timeout or a reset mid-call looks like: also Unavailable, but the
        // request may have arrived, so a retry elsewhere could store it twice.
        let dropped = tonic::Status::unavailable("connection closed: keep-alive timed out");
        assert!(!never_sent(&dropped));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert!(!never_sent(&tonic::Status::from_error(Box::new(reset))));
    }
}
