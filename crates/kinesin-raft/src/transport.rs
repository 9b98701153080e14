//! The cluster transport: openraft's RPCs and forwarded proposals over tonic (proto/raft.proto).
//!
//! Every group of a node talks to a peer through the same [`Peers`] entry — one HTTP/2 connection
//! per node pair, on which tonic multiplexes the groups' calls. Messages are openraft's own types,
//! bincode-encoded inside the proto envelope.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::SnapshotMeta;
use openraft::{AnyError, BasicNode, OptionalSend};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

use crate::codec::{decode, encode};
use crate::error::RaftError;
use crate::registry::MultiRaft;
use crate::snapshot::SnapshotData;
use crate::types::{Command, NodeId, Response, TypeConfig};

pub(crate) mod pb {
    tonic::include_proto!("kinesin.raft.v1");
}

use pb::raft_transport_client::RaftTransportClient;
use pb::raft_transport_server::{RaftTransport, RaftTransportServer};
use pb::{ProposeReply, ProposeRequest, RaftKind, RaftReply, RaftRequest};

/// Connection setup and per-call limits for cluster traffic.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the receiving node could not do, as sent back to the caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum RemoteError {
    NoSuchGroup,
    NotLeader { leader: Option<NodeId> },
    Failed(String),
}

impl RemoteError {
    fn into_raft_error(self, group: u64) -> RaftError {
        match self {
            RemoteError::NoSuchGroup => RaftError::NoSuchGroup(group),
            RemoteError::NotLeader { leader } => RaftError::NotLeader { group, leader },
            RemoteError::Failed(reason) => RaftError::Unknown { group, reason },
        }
    }
}

type Remote<T> = Result<T, RemoteError>;

/// One lazily connected channel per peer address, shared by every group.
#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, RaftTransportClient<Channel>>>,
}

impl Peers {
    fn client(&self, addr: &str) -> Result<RaftTransportClient<Channel>, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = channels.get(addr) {
            return Ok(client.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad peer address {addr}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let client = RaftTransportClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        channels.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    async fn raft_call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        group: u64,
        kind: RaftKind,
        request: &Req,
        timeout: Duration,
    ) -> Result<Remote<Resp>, String> {
        let mut client = self.client(addr)?;
        let payload = encode(request).map_err(|e| e.to_string())?;
        let mut call = tonic::Request::new(RaftRequest {
            group,
            kind: kind as i32,
            payload,
        });
        call.set_timeout(timeout);
        let reply = client
            .raft(call)
            .await
            .map_err(|status| status.to_string())?;
        decode(&reply.into_inner().payload).map_err(|e| e.to_string())
    }

    /// Proposes `command` to `group` on the node at `addr`, which must lead it.
    pub async fn propose(
        &self,
        addr: &str,
        group: u64,
        command: &Command,
    ) -> Result<Response, RaftError> {
        let unreachable = |reason: String| RaftError::Unreachable {
            group,
            addr: addr.to_string(),
            reason,
        };
        let mut client = self.client(addr).map_err(unreachable)?;
        let command = encode(command).map_err(|e| RaftError::Other(e.to_string()))?;
        let mut call = tonic::Request::new(ProposeRequest { group, command });
        call.set_timeout(PROPOSE_TIMEOUT);
        let reply = client
            .propose(call)
            .await
            .map_err(|status| match status.code() {
                // The connection could not be made: the proposal was never delivered, so trying
                // another node cannot apply it twice.
                tonic::Code::Unavailable => unreachable(status.to_string()),
                _ => RaftError::Unknown {
                    group,
                    reason: format!("forwarded proposal to {addr}: {status}"),
                },
            })?;
        let result: Remote<Response> =
            decode(&reply.into_inner().payload).map_err(|e| RaftError::Other(e.to_string()))?;
        result.map_err(|e| e.into_raft_error(group))
    }
}

/// openraft's network factory for one group.
#[derive(Clone)]
pub(crate) struct Network {
    pub group: u64,
    pub peers: Arc<Peers>,
}

pub(crate) struct PeerClient {
    group: u64,
    target: NodeId,
    addr: String,
    peers: Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            group: self.group,
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

impl PeerClient {
    fn unreachable(&self, reason: impl std::fmt::Display) -> Unreachable<TypeConfig> {
        Unreachable::new(&AnyError::error(format!(
            "group {} to node {} at {}: {reason}",
            self.group, self.target, self.addr
        )))
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        kind: RaftKind,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, Unreachable<TypeConfig>> {
        match self
            .peers
            .raft_call::<Req, Resp>(&self.addr, self.group, kind, request, timeout)
            .await
        {
            Ok(Ok(response)) => Ok(response),
            // A peer that does not host the group yet (its reconciler has not opened it) or that
            // failed looks like a down peer to openraft, which retries with backoff.
            Ok(Err(remote)) => Err(self.unreachable(format!("{remote:?}"))),
            Err(transport) => Err(self.unreachable(transport)),
        }
    }
}

/// A full snapshot as it travels.
#[derive(Serialize, Deserialize)]
struct SnapshotMessage {
    vote: VoteOf<TypeConfig>,
    meta: SnapshotMeta<openraft::alias::CommittedLeaderIdOf<TypeConfig>, NodeId, BasicNode>,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RaftKind::Append, &rpc, option.soft_ttl())
            .await
            .map_err(RPCError::Unreachable)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RaftKind::Vote, &rpc, option.soft_ttl())
            .await
            .map_err(RPCError::Unreachable)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RaftKind::PreVote, &rpc, option.soft_ttl())
            .await
            .map_err(RPCError::Unreachable)
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let data = snapshot.snapshot.into_wire().map_err(|e| {
            StreamingError::Unreachable(self.unreachable(format!("reading the snapshot: {e}")))
        })?;
        let message = SnapshotMessage {
            vote,
            meta: snapshot.meta,
            data,
        };
        self.call(RaftKind::Snapshot, &message, option.hard_ttl())
            .await
            .map_err(StreamingError::Unreachable)
    }
}

/// The server side: hands each message to the group it names.
pub(crate) struct TransportService {
    raft: Weak<MultiRaft>,
}

fn reply<T: Serialize>(result: Remote<T>) -> Result<tonic::Response<RaftReply>, tonic::Status> {
    let payload = encode(&result).map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(tonic::Response::new(RaftReply { payload }))
}

fn decode_request<T: DeserializeOwned>(payload: &[u8]) -> Result<T, tonic::Status> {
    decode(payload)
        .map_err(|e| tonic::Status::invalid_argument(format!("undecodable payload: {e}")))
}

fn failed(e: impl std::fmt::Display) -> RemoteError {
    RemoteError::Failed(e.to_string())
}

#[tonic::async_trait]
impl RaftTransport for TransportService {
    async fn raft(
        &self,
        request: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        let request = request.into_inner();
        let Some(multi) = self.raft.upgrade() else {
            return Err(tonic::Status::unavailable("node is shutting down"));
        };
        let Some(group) = multi.group(request.group) else {
            return reply::<()>(Err(RemoteError::NoSuchGroup));
        };
        let raft = group.raft();
        match RaftKind::try_from(request.kind) {
            Ok(RaftKind::Append) => {
                let rpc = decode_request(&request.payload)?;
                reply(raft.append_entries(rpc).await.map_err(failed))
            }
            Ok(RaftKind::Vote) => {
                let rpc = decode_request(&request.payload)?;
                reply(raft.vote(rpc).await.map_err(failed))
            }
            Ok(RaftKind::PreVote) => {
                let rpc = decode_request(&request.payload)?;
                reply(raft.pre_vote(rpc).await.map_err(failed))
            }
            Ok(RaftKind::Snapshot) => {
                let message: SnapshotMessage = decode_request(&request.payload)?;
                let data = SnapshotData::from_wire(&message.data).map_err(|e| {
                    tonic::Status::invalid_argument(format!("undecodable snapshot: {e}"))
                })?;
                let snapshot = SnapshotOf::<TypeConfig, SnapshotData> {
                    meta: message.meta,
                    snapshot: data,
                };
                reply(
                    raft.install_full_snapshot(message.vote, snapshot)
                        .await
                        .map_err(failed),
                )
            }
            Err(_) => Err(tonic::Status::invalid_argument(format!(
                "unknown raft kind {}",
                request.kind
            ))),
        }
    }

    async fn propose(
        &self,
        request: tonic::Request<ProposeRequest>,
    ) -> Result<tonic::Response<ProposeReply>, tonic::Status> {
        let request = request.into_inner();
        let Some(multi) = self.raft.upgrade() else {
            return Err(tonic::Status::unavailable("node is shutting down"));
        };
        let result: Remote<Response> = match multi.group(request.group) {
            None => Err(RemoteError::NoSuchGroup),
            Some(group) => {
                let command: Command = decode_request(&request.command)?;
                group.write(command).await.map_err(|e| match e {
                    RaftError::NotLeader { leader, .. } => RemoteError::NotLeader { leader },
                    other => failed(other),
                })
            }
        };
        let payload = encode(&result).map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(tonic::Response::new(ProposeReply { payload }))
    }
}

impl MultiRaft {
    /// The tonic service to serve on the node's cluster address.
    pub fn transport_service(self: &Arc<Self>) -> RaftTransportServer<impl RaftTransport> {
        RaftTransportServer::new(TransportService {
            raft: Arc::downgrade(self),
        })
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
    }
}
