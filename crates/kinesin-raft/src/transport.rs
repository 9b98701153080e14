//! The cluster transport: openraft's RPCs and forwarded proposals between nodes (proto/raft.proto).
//!
//! Every group of a node talks to a peer through the same [`Peers`], over one [`Wire`] (gRPC on
//! a real node: one HTTP/2 connection per node pair). Messages are openraft's own types,
//! bincode-encoded inside the proto envelope.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::alias::{LogIdOf, SnapshotOf, VoteOf};
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::storage::SnapshotMeta;
use openraft::vote::RaftLeaderId;
use openraft::{AnyError, BasicNode, OptionalSend};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::batch::{HeartbeatQueues, TransportStats};
use crate::cluster_tls::TrustError;
use crate::codec::{decode, encode};
use crate::error::RaftError;
use crate::faults::{MessageKind, NetworkFaults};
use crate::life::split_member_address;
use crate::liveness::{Liveness, Ping, SUPPORT_FOR};
use crate::node_stats::NodeStats;
use crate::query::{ShardQuery, WireAnswer};
use crate::quiesce::{Quiet, QuietPoint};
use crate::registry::MultiRaft;

/// The longest a remote reader may ask a replica to wait for records (a subscription asks for a
/// few seconds; this bounds what a confused or hostile peer can hold open).
const MAX_AWAIT_MS: u64 = 30_000;
use crate::snapshot::SnapshotData;
use crate::types::{Command, NodeId, Response, TypeConfig};
use crate::versions::{self, PeerVersion, CLUSTER_PROTOCOL};
use crate::wire::{GrpcWire, Wire, WireError};

pub mod pb {
    tonic::include_proto!("kinesin.raft.v1");
}

use pb::raft_transport_server::{RaftTransport, RaftTransportServer};
use pb::{
    ProposeReply, ProposeRequest, QueryReply, QueryRequest, RaftBatchReply, RaftBatchRequest,
    RaftKind, RaftReply, RaftRequest,
};

const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The least time an AppendEntries carrying entries or a commit index may take.
const APPEND_TIMEOUT_FLOOR: Duration = Duration::from_secs(2);

/// What the receiving node could not do, as sent back to the caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum RemoteError {
    NoSuchGroup,
    NotLeader { leader: Option<NodeId> },
    Failed(String),
    Throttled,
}

impl RemoteError {
    fn into_raft_error(self, group: u64) -> RaftError {
        match self {
            RemoteError::NoSuchGroup => RaftError::NoSuchGroup(group),
            RemoteError::NotLeader { leader } => RaftError::NotLeader { group, leader },
            RemoteError::Failed(reason) => RaftError::Unknown { group, reason },
            RemoteError::Throttled => RaftError::Throttled { group },
        }
    }
}

type Remote<T> = Result<T, RemoteError>;

/// This node's side of the cluster transport, shared by every group: encoding, fault filters,
/// heartbeat batching, and which failures may be retried elsewhere.
pub struct Peers {
    wire: Arc<dyn Wire>,
    faults: NetworkFaults,
    heartbeats: HeartbeatQueues,
    stats: Arc<TransportStats>,
    /// The controller's cluster version as this node last read it (`versions.rs`).
    cluster_version: std::sync::atomic::AtomicU32,
}

impl Peers {
    /// Over gRPC. `heartbeat_linger`: how long heartbeats wait to be batched per peer (zero:
    /// not batched).
    pub fn new(heartbeat_linger: Duration) -> Peers {
        Peers::over(Arc::new(GrpcWire::default()), heartbeat_linger)
    }

    /// Over `wire` (a simulated network, say).
    pub fn over(wire: Arc<dyn Wire>, heartbeat_linger: Duration) -> Peers {
        Peers {
            wire,
            faults: NetworkFaults::default(),
            heartbeats: HeartbeatQueues::new(heartbeat_linger),
            stats: Arc::default(),
            cluster_version: std::sync::atomic::AtomicU32::new(1),
        }
    }

    pub(crate) fn cluster_version(&self) -> u32 {
        self.cluster_version.load(Ordering::Relaxed)
    }

    /// Returns the version it replaces.
    pub(crate) fn set_cluster_version(&self, version: u32) -> u32 {
        self.cluster_version.swap(version, Ordering::Relaxed)
    }

    pub fn faults(&self) -> &NetworkFaults {
        &self.faults
    }

    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }

    async fn raft_call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        to: &Destination,
        kind: RaftKind,
        filtered_as: MessageKind,
        request: &Req,
        timeout: Duration,
    ) -> Result<Remote<Resp>, String> {
        self.faults.check(&to.addr, to.group, filtered_as)?;
        let request = to.request(kind, encode(request).map_err(|e| e.to_string())?);
        self.stats.rpcs_sent.fetch_add(1, Ordering::Relaxed);
        let reply = self
            .wire
            .raft(&to.addr, request, timeout)
            .await
            .map_err(|e| e.to_string())?;
        decode(&reply.payload).map_err(|e| e.to_string())
    }

    /// [`Self::raft_call`] for a heartbeat (or another small message of a group that waits as
    /// well as a heartbeat): it travels in the peer's next batch.
    async fn heartbeat_call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        to: &Destination,
        kind: RaftKind,
        filtered_as: MessageKind,
        request: &Req,
        timeout: Duration,
    ) -> Result<Remote<Resp>, String> {
        self.faults.check(&to.addr, to.group, filtered_as)?;
        let request = to.request(kind, encode(request).map_err(|e| e.to_string())?);
        let reply = self
            .heartbeats
            .send(&to.addr, &self.wire, &self.stats, request, timeout)
            .await?;
        decode(&reply).map_err(|e| e.to_string())
    }

    /// Whether the node at `addr` and this one accept each other on the cluster transport
    /// (mutual TLS); always without TLS.
    pub(crate) async fn check_trust(&self, addr: &str) -> Result<(), TrustError> {
        self.wire.check_trust(addr).await
    }

    /// Pings the node at `addr` (`liveness.rs`), telling it this build's version; its answer
    /// and the version it speaks. A peer whose protocol this build does not understand is an
    /// error.
    pub(crate) async fn ping(
        &self,
        addr: &str,
        ping: Ping,
        stopping: bool,
    ) -> Result<PingAnswer, WireError> {
        let to = Destination {
            group: 0,
            addr: addr.to_string(),
            life: 0,
        };
        let failed = |e: String| WireError::NoAnswer(e);
        self.faults
            .check(&to.addr, 0, MessageKind::Liveness)
            .map_err(failed)?;
        let payload = encode(&ping).map_err(|e| failed(e.to_string()))?;
        let mut request = to.request(RaftKind::Ping, payload);
        request.build = versions::BUILD.to_string();
        request.stopping = stopping;
        self.stats.rpcs_sent.fetch_add(1, Ordering::Relaxed);
        let reply = self.wire.raft(&to.addr, request, SUPPORT_FOR).await?;
        let peer = || format!("the node at {addr}");
        if let Some(refusal) = versions::refusal(reply.protocol, self.cluster_version(), peer) {
            return Err(WireError::Refused(refusal));
        }
        let version = PeerVersion::from_fields(reply.protocol, &reply.build);
        let answer: Remote<Ping> = decode(&reply.payload).map_err(|e| failed(e.to_string()))?;
        answer
            .map(|ping| PingAnswer {
                ping,
                version,
                stopping: reply.stopping,
            })
            .map_err(|e| failed(format!("{e:?}")))
    }

    /// Asks `member` (its membership address) of `group` to go quiet at `point`; whether it did.
    pub(crate) async fn quiesce(&self, group: u64, member: &str, point: QuietPoint) -> bool {
        self.ask_member(group, member, RaftKind::Quiesce, &point)
            .await
    }

    /// Wakes `member` (its membership address) of `group` if it is quiet there; whether it
    /// answered.
    pub(crate) async fn wake(&self, group: u64, member: &str) -> bool {
        self.ask_member(group, member, RaftKind::Wake, &()).await
    }

    /// A yes-or-no question about quiescence to `member` of `group`, in its next heartbeat batch;
    /// no answer is a no.
    async fn ask_member<Req: Serialize>(
        &self,
        group: u64,
        member: &str,
        kind: RaftKind,
        request: &Req,
    ) -> bool {
        let to = Destination::member(group, member);
        let answer: Result<Remote<bool>, String> = self
            .heartbeat_call(&to, kind, MessageKind::Quiesce, request, SUPPORT_FOR)
            .await;
        matches!(answer, Ok(Ok(true)))
    }

    /// Proposes `command` to `group` on the node at `addr`, which must lead it.
    pub async fn propose(
        &self,
        addr: &str,
        group: u64,
        command: &Command,
    ) -> Result<Response, RaftError> {
        let span = tracing::debug_span!("cluster.forward", group, peer = addr);
        self.forward(addr, group, command).instrument(span).await
    }

    async fn forward(
        &self,
        addr: &str,
        group: u64,
        command: &Command,
    ) -> Result<Response, RaftError> {
        let unreachable = unreachable(group, addr);
        self.faults
            .check(addr, group, MessageKind::Propose)
            .map_err(&unreachable)?;
        let command = encode(command).map_err(|e| RaftError::Other(e.to_string()))?;
        let request = ProposeRequest {
            group,
            command,
            protocol: CLUSTER_PROTOCOL,
            traceparent: crate::tracing_context::current(),
        };
        let reply = self
            .wire
            .propose(addr, request, PROPOSE_TIMEOUT)
            .await
            .map_err(|e| match e {
                // Never delivered (or refused unread): trying another node cannot apply it twice.
                WireError::NotSent(why) | WireError::Refused(why) => unreachable(why),
                WireError::NoAnswer(why) => RaftError::Unknown {
                    group,
                    reason: format!("forwarded proposal to {addr}: {why}"),
                },
            })?;
        if self.faults.answer_lost(addr, group, MessageKind::Propose) {
            return Err(RaftError::Unknown {
                group,
                reason: format!("forwarded proposal to {addr}: answer lost (fault injection)"),
            });
        }
        decode_remote(&reply, group)
    }

    /// Asks the replica of `group` on the node at `addr` a read-only question.
    pub(crate) async fn query(
        &self,
        addr: &str,
        group: u64,
        query: &ShardQuery,
        timeout: Duration,
    ) -> Result<WireAnswer, RaftError> {
        let unreachable = unreachable(group, addr);
        self.faults
            .check(addr, group, MessageKind::Query)
            .map_err(&unreachable)?;
        let query = encode(query).map_err(|e| RaftError::Other(e.to_string()))?;
        let request = QueryRequest {
            group,
            query,
            protocol: CLUSTER_PROTOCOL,
            traceparent: crate::tracing_context::current(),
        };
        let reply = self
            .wire
            .query(addr, request, timeout)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        decode_remote(&reply, group)
    }
}

/// A peer's answer to a liveness ping, and what it said of itself.
pub(crate) struct PingAnswer {
    pub ping: Ping,
    pub version: PeerVersion,
    /// It is stopping: no group should be handed to it.
    pub stopping: bool,
}

/// How a call that never reached `addr` fails.
fn unreachable(group: u64, addr: &str) -> impl Fn(String) -> RaftError + '_ {
    move |reason| RaftError::Unreachable {
        group,
        addr: addr.to_string(),
        reason,
    }
}

/// Decodes a peer's answer, turning the error it reports into ours.
fn decode_remote<T: DeserializeOwned>(payload: &[u8], group: u64) -> Result<T, RaftError> {
    let result: Remote<T> = decode(payload).map_err(|e| RaftError::Other(e.to_string()))?;
    result.map_err(|e| e.into_raft_error(group))
}

/// openraft's network factory for one group.
#[derive(Clone)]
pub(crate) struct Network {
    pub group: u64,
    pub peers: Arc<Peers>,
    /// Whether the group's heartbeats may wait in the per-peer batches. Not the controller's: a
    /// batch is answered when its slowest message is, and a shard group busy starting (thousands
    /// of them after a CreateStream) held the controller's heartbeat answers back until its
    /// leader could no longer confirm its leadership for reads.
    pub batched: bool,
    /// The group's quiescence here: appends right after a wake are not batched; and its last
    /// word from its leader, which may keep a pre-vote unsent (`pre_vote.rs`).
    pub quiet: Arc<Quiet>,
    pub liveness: Arc<Liveness>,
    pub node_stats: Arc<NodeStats>,
}

/// Where one group's Raft messages to one member go: the address to dial, and the life of the
/// member's node that the group's membership names (`life.rs`).
pub(crate) struct Destination {
    group: u64,
    addr: String,
    life: u64,
}

impl Destination {
    /// `member` of `group`, as its membership records it (`host:port#life`).
    fn member(group: u64, member: &str) -> Destination {
        let (addr, life) = split_member_address(member);
        Destination {
            group,
            addr: addr.to_string(),
            life,
        }
    }

    fn request(&self, kind: RaftKind, payload: Vec<u8>) -> RaftRequest {
        RaftRequest {
            group: self.group,
            kind: kind as i32,
            payload,
            target_life: self.life,
            protocol: CLUSTER_PROTOCOL,
            build: String::new(),
            traceparent: String::new(),
            stopping: false,
        }
    }
}

pub(crate) struct PeerClient {
    target: NodeId,
    to: Destination,
    peers: Arc<Peers>,
    /// The commit index of the last AppendEntries sent through this client (see [`may_batch`]).
    commit_sent: Option<LogIdOf<TypeConfig>>,
    batched: bool,
    quiet: Arc<Quiet>,
    liveness: Arc<Liveness>,
    node_stats: Arc<NodeStats>,
}

/// Whether an AppendEntries may wait for the peer's next heartbeat batch: only when it carries
/// neither entries nor a commit index newer than the last one sent. openraft's replication to a
/// follower waits for each answer before sending more, so a commit update that lingered in a batch
/// held back the next write's entries by the linger (PutRecord on one connection, 3 nodes: p50
/// 1.67 ms and p90 7.8 ms with commit updates batched; 1.37 ms and 2.3 ms without).
fn may_batch<T: PartialEq>(has_entries: bool, leader_commit: &T, commit_sent: &T) -> bool {
    !has_entries && leader_commit == commit_sent
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            to: Destination::member(self.group, &node.addr),
            peers: self.peers.clone(),
            commit_sent: None,
            batched: self.batched,
            quiet: self.quiet.clone(),
            liveness: self.liveness.clone(),
            node_stats: self.node_stats.clone(),
        }
    }
}

impl PeerClient {
    fn unreachable(&self, reason: impl std::fmt::Display) -> Unreachable<TypeConfig> {
        Unreachable::new(&AnyError::error(format!(
            "group {} to node {} at {}: {reason}",
            self.to.group, self.target, self.to.addr
        )))
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        kind: RaftKind,
        filtered_as: MessageKind,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, Unreachable<TypeConfig>> {
        let answer = self
            .peers
            .raft_call::<Req, Resp>(&self.to, kind, filtered_as, request, timeout)
            .await;
        self.unpack(answer)
    }

    fn unpack<Resp>(
        &self,
        answer: Result<Remote<Resp>, String>,
    ) -> Result<Resp, Unreachable<TypeConfig>> {
        match answer {
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
        let batchable = may_batch(
            !rpc.entries.is_empty(),
            &rpc.leader_commit,
            &self.commit_sent,
        );
        self.commit_sent = rpc.leader_commit;
        if batchable && self.batched && !self.quiet.woke_lately() && self.peers.heartbeats.enabled()
        {
            let answer = self
                .peers
                .heartbeat_call(
                    &self.to,
                    RaftKind::Append,
                    MessageKind::Heartbeat,
                    &rpc,
                    option.soft_ttl(),
                )
                .await;
            return self.unpack(answer).map_err(RPCError::Unreachable);
        }
        let filtered_as = if rpc.entries.is_empty() {
            MessageKind::Heartbeat
        } else {
            MessageKind::Append
        };
        // openraft gives an append the heartbeat interval (300 ms): less than a busy follower
        // may need to fsync it, and an append that times out is sent again, adding to what made
        // the follower slow. A follower that is gone is noticed by its connection's keepalive.
        let timeout = option.soft_ttl().max(APPEND_TIMEOUT_FLOOR);
        self.call(RaftKind::Append, filtered_as, &rpc, timeout)
            .await
            .map_err(RPCError::Unreachable)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RaftKind::Vote, MessageKind::Vote, &rpc, option.soft_ttl())
            .await
            .map_err(RPCError::Unreachable)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        if let Some(refusal) = self.quiet.leader_word.withholds(&rpc, &self.liveness) {
            self.node_stats
                .pre_votes_withheld
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                group = self.to.group,
                to = self.target,
                "pre-vote not sent: the leader's node is live and spoke lately"
            );
            return Ok(refusal);
        }
        // Why an election started is otherwise hard to tell after the fact: a timer that ran
        // out with the leader heard long ago, or not from the process that lives now.
        tracing::debug!(
            group = self.to.group,
            to = self.target,
            term = rpc.vote.leader_id().term(),
            last_leader_word = ?self.quiet.leader_word.last(),
            "pre-vote sent"
        );
        self.call(
            RaftKind::PreVote,
            MessageKind::PreVote,
            &rpc,
            option.soft_ttl(),
        )
        .await
        .map_err(RPCError::Unreachable)
    }

    /// Tells the chosen node to campaign now (leader transfer), instead of everyone waiting out
    /// the old leader's lease and electing whoever times out first.
    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(
            RaftKind::TransferLeader,
            MessageKind::TransferLeader,
            &rpc,
            option.soft_ttl(),
        )
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
        self.call(
            RaftKind::Snapshot,
            MessageKind::Snapshot,
            &message,
            option.hard_ttl(),
        )
        .await
        .map_err(StreamingError::Unreachable)
    }
}

/// The server side: hands each message to the group it names.
pub(crate) struct TransportService {
    raft: Weak<MultiRaft>,
}

fn reply<T: Serialize>(result: Remote<T>) -> Result<RaftReply, tonic::Status> {
    let payload = encode(&result).map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(raft_reply(payload))
}

fn raft_reply(payload: Vec<u8>) -> RaftReply {
    RaftReply {
        payload,
        protocol: CLUSTER_PROTOCOL,
        build: String::new(),
        stopping: false,
    }
}

/// Refuses a message in a protocol this node does not understand, or older than its cluster's
/// version (`versions.rs`), before anything of it is decoded.
fn check_protocol(multi: &MultiRaft, protocol: u32, group: u64) -> Result<(), tonic::Status> {
    let sender = || format!("the sender of a message to group {group}");
    match versions::refusal(protocol, multi.cluster_version(), sender) {
        None => Ok(()),
        Some(refusal) => {
            multi.versions.refused(&refusal, &refusal);
            Err(tonic::Status::failed_precondition(refusal))
        }
    }
}

fn decode_request<T: DeserializeOwned>(payload: &[u8]) -> Result<T, tonic::Status> {
    decode(payload)
        .map_err(|e| tonic::Status::invalid_argument(format!("undecodable payload: {e}")))
}

fn failed(e: impl std::fmt::Display) -> RemoteError {
    RemoteError::Failed(e.to_string())
}

impl TransportService {
    /// Hands one openraft RPC to its group.
    async fn handle(&self, request: RaftRequest) -> Result<RaftReply, tonic::Status> {
        let Some(multi) = self.raft.upgrade() else {
            return Err(tonic::Status::unavailable("node is shutting down"));
        };
        check_protocol(&multi, request.protocol, request.group)?;
        if request.kind == RaftKind::Ping as i32 {
            let ping: Ping = decode_request(&request.payload)?;
            multi.versions.heard(
                ping.from,
                PeerVersion::from_fields(request.protocol, &request.build),
            );
            multi.liveness.set_stopping(ping.from, request.stopping);
            multi.heard_from(ping);
            let mut answer = reply::<Ping>(Ok(multi.liveness.ping()))?;
            answer.build = versions::BUILD.to_string();
            answer.stopping = multi.is_stopping();
            return Ok(answer);
        }
        if request.target_life != multi.life() {
            // Meant for another copy of this node's data: the sender's membership is older
            // than the wipe this node came back from (`life.rs`).
            tracing::debug!(
                group = request.group,
                meant_for = request.target_life,
                life = multi.life(),
                "refusing a message meant for another life of this node"
            );
            return reply::<()>(Err(RemoteError::Failed(format!(
                "this node's data is life {:x}; the message was meant for life {:x}",
                multi.life(),
                request.target_life
            ))));
        }
        let Some(group) = multi.group(request.group) else {
            return reply::<()>(Err(RemoteError::NoSuchGroup));
        };
        drop(multi);
        let raft = group.raft();
        match RaftKind::try_from(request.kind) {
            Ok(RaftKind::Append) => {
                let rpc: AppendEntriesRequest<TypeConfig> = decode_request(&request.payload)?;
                let woken = group.woken_by_append(&rpc);
                let leader_id = rpc.vote.leader_id();
                let (leader, term) = (*leader_id.node_id(), leader_id.term());
                let answer = raft.append_entries(rpc).await.map_err(failed);
                let taken = answer
                    .as_ref()
                    .is_ok_and(|a| !matches!(a, AppendEntriesResponse::HigherVote(_)));
                if taken {
                    group.quiet.leader_word.heard(leader, term);
                }
                // After openraft has seen the leader's message: a follower woken before would
                // find its last word from the leader old and campaign on its first tick.
                if woken {
                    group.wake();
                }
                reply(answer)
            }
            Ok(kind @ (RaftKind::Vote | RaftKind::PreVote)) => {
                let rpc: VoteRequest<TypeConfig> = decode_request(&request.payload)?;
                // Only a real vote commits this replica to a candidate; a pre-vote promises
                // nothing, so it is answered at once.
                if let Some(hold) = group
                    .liveness
                    .vote_hold()
                    .filter(|_| kind == RaftKind::Vote)
                {
                    tokio::time::sleep(hold).await;
                }
                if let Some(refusal) = group.refuse_vote(&rpc) {
                    return reply(Ok(refusal));
                }
                if let Some(refusal) = group.hold_quiet_against(&rpc) {
                    return reply(Ok(refusal));
                }
                if kind == RaftKind::Vote {
                    reply(raft.vote(rpc).await.map_err(failed))
                } else {
                    reply(raft.pre_vote(rpc).await.map_err(failed))
                }
            }
            Ok(RaftKind::TransferLeader) => {
                let rpc = decode_request(&request.payload)?;
                if self.raft.upgrade().is_some_and(|multi| multi.is_stopping()) {
                    return reply::<()>(Err(RemoteError::Failed(
                        "this node is stopping: it takes no leadership".into(),
                    )));
                }
                group.wake();
                reply(raft.handle_transfer_leader(rpc).await.map_err(failed))
            }
            Ok(RaftKind::Quiesce) => {
                let point: QuietPoint = decode_request(&request.payload)?;
                reply::<bool>(Ok(group.quiesce_as_member(point)))
            }
            Ok(RaftKind::Wake) => {
                group.wake();
                reply::<bool>(Ok(true))
            }
            Ok(RaftKind::Ping) => Err(tonic::Status::invalid_argument(
                "a ping is not a group's message",
            )),
            Ok(RaftKind::Snapshot) => {
                group.wake();
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
}

#[tonic::async_trait]
impl RaftTransport for TransportService {
    async fn raft(
        &self,
        request: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        self.handle(request.into_inner())
            .await
            .map(tonic::Response::new)
    }

    async fn raft_batch(
        &self,
        request: tonic::Request<RaftBatchRequest>,
    ) -> Result<tonic::Response<RaftBatchReply>, tonic::Status> {
        let requests = request.into_inner().requests;
        let answers = futures::future::join_all(requests.into_iter().map(|r| self.handle(r))).await;
        let replies = answers
            .into_iter()
            .map(|answer| {
                // One group's failure must not fail the others' heartbeats.
                answer.or_else(|status| {
                    let failure: Remote<()> = Err(RemoteError::Failed(status.to_string()));
                    encode(&failure)
                        .map(raft_reply)
                        .map_err(|e| tonic::Status::internal(e.to_string()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(tonic::Response::new(RaftBatchReply { replies }))
    }

    async fn propose(
        &self,
        request: tonic::Request<ProposeRequest>,
    ) -> Result<tonic::Response<ProposeReply>, tonic::Status> {
        let request = request.into_inner();
        let Some(multi) = self.raft.upgrade() else {
            return Err(tonic::Status::unavailable("node is shutting down"));
        };
        check_protocol(&multi, request.protocol, request.group)?;
        let span = tracing::debug_span!("cluster.proposal", group = request.group);
        crate::tracing_context::continue_in(&span, &request.traceparent);
        let result: Remote<Response> = match multi.group(request.group) {
            None => Err(RemoteError::NoSuchGroup),
            Some(group) => {
                let command: Command = decode_request(&request.command)?;
                group
                    .write(command)
                    .instrument(span)
                    .await
                    .map_err(|e| match e {
                        RaftError::NotLeader { leader, .. } => RemoteError::NotLeader { leader },
                        RaftError::Throttled { .. } => RemoteError::Throttled,
                        other => failed(other),
                    })
            }
        };
        let payload = encode(&result).map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(tonic::Response::new(ProposeReply { payload }))
    }

    async fn query(
        &self,
        request: tonic::Request<QueryRequest>,
    ) -> Result<tonic::Response<QueryReply>, tonic::Status> {
        let request = request.into_inner();
        let Some(multi) = self.raft.upgrade() else {
            return Err(tonic::Status::unavailable("node is shutting down"));
        };
        check_protocol(&multi, request.protocol, request.group)?;
        let query: ShardQuery = decode_request(&request.query)?;
        let result: Remote<WireAnswer> = match (multi.group(request.group), query) {
            (Some(group), ShardQuery::ReadIndex) => match group.read_index().await {
                Ok(index) => Ok(WireAnswer::ReadIndex(index)),
                Err(RaftError::NotLeader { leader, .. }) => Err(RemoteError::NotLeader { leader }),
                Err(other) => Err(failed(other)),
            },
            // A replica behind its leader answers no read: the asker tries the next replica.
            (Some(_), _) if !multi.caught_up(request.group).await => Err(failed(format!(
                "this replica of group {} is behind its leader",
                request.group
            ))),
            (
                Some(group),
                ShardQuery::AwaitRecords {
                    from,
                    max_records,
                    max_bytes,
                    wait_ms,
                },
            ) => group
                .await_records(
                    from,
                    max_records as usize,
                    usize::try_from(max_bytes).unwrap_or(usize::MAX),
                    Duration::from_millis(wait_ms.min(MAX_AWAIT_MS)),
                )
                .await
                .map_err(failed),
            (Some(group), query) => match group.shard() {
                Some(view) => view.answer(&query).map_err(failed),
                None => Err(failed(format!("group {} is not a shard", request.group))),
            },
            (None, _) => Err(RemoteError::NoSuchGroup),
        };
        let payload = encode(&result).map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(tonic::Response::new(QueryReply { payload }))
    }
}

/// This node's side of the cluster transport with no network under it: a simulated [`Wire`]
/// hands each request to the receiving node's inbox, which answers as the tonic service would.
pub struct Inbox(TransportService);

fn status_text(status: tonic::Status) -> String {
    status.message().to_string()
}

impl Inbox {
    pub async fn raft(&self, request: RaftRequest) -> Result<RaftReply, String> {
        self.0.handle(request).await.map_err(status_text)
    }

    pub async fn raft_batch(&self, requests: Vec<RaftRequest>) -> Result<Vec<Vec<u8>>, String> {
        let reply =
            RaftTransport::raft_batch(&self.0, tonic::Request::new(RaftBatchRequest { requests }))
                .await
                .map_err(status_text)?;
        Ok(reply
            .into_inner()
            .replies
            .into_iter()
            .map(|r| r.payload)
            .collect())
    }

    pub async fn propose(&self, request: ProposeRequest) -> Result<Vec<u8>, String> {
        let reply = RaftTransport::propose(&self.0, tonic::Request::new(request))
            .await
            .map_err(status_text)?;
        Ok(reply.into_inner().payload)
    }

    pub async fn query(&self, request: QueryRequest) -> Result<Vec<u8>, String> {
        let reply = RaftTransport::query(&self.0, tonic::Request::new(request))
            .await
            .map_err(status_text)?;
        Ok(reply.into_inner().payload)
    }
}

impl MultiRaft {
    /// What a simulated network delivers to (see [`Inbox`]).
    pub fn inbox(self: &Arc<Self>) -> Inbox {
        Inbox(TransportService {
            raft: Arc::downgrade(self),
        })
    }

    /// Whether the node at the cluster address `addr` may join: with cluster mTLS, whether it and
    /// this node accept each other's certificates.
    pub async fn check_peer_trust(&self, addr: &str) -> Result<(), TrustError> {
        self.peers().check_trust(addr).await
    }

    /// The tonic service to serve on the node's cluster address.
    pub fn transport_service(self: &Arc<Self>) -> RaftTransportServer<impl RaftTransport> {
        RaftTransportServer::new(TransportService {
            raft: Arc::downgrade(self),
        })
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::WireFuture;

    /// A network on which every call fails the same way.
    struct Failing(WireError);

    impl Failing {
        fn fail<'a, T: Send + 'a>(&'a self) -> WireFuture<'a, T> {
            let error = self.0.clone();
            Box::pin(async move { Err(error) })
        }
    }

    impl Wire for Failing {
        fn raft<'a>(
            &'a self,
            _: &'a str,
            _: RaftRequest,
            _: Duration,
        ) -> WireFuture<'a, RaftReply> {
            self.fail()
        }
        fn raft_batch<'a>(
            &'a self,
            _: &'a str,
            _: Vec<RaftRequest>,
            _: Duration,
        ) -> WireFuture<'a, Vec<Vec<u8>>> {
            self.fail()
        }
        fn propose<'a>(
            &'a self,
            _: &'a str,
            _: ProposeRequest,
            _: Duration,
        ) -> WireFuture<'a, Vec<u8>> {
            self.fail()
        }
        fn query<'a>(
            &'a self,
            _: &'a str,
            _: QueryRequest,
            _: Duration,
        ) -> WireFuture<'a, Vec<u8>> {
            self.fail()
        }
    }

    #[tokio::test]
    async fn a_forwarded_proposal_that_may_have_arrived_is_never_called_unreachable() {
        let propose_over = |error: WireError| async move {
            let peers = Peers::over(Arc::new(Failing(error)), Duration::ZERO);
            peers.propose("10.0.0.9:7000", 5, &Command::Seal).await
        };
        // Unreachable may be retried on another node; Unknown must not be (it may be applied).
        let not_sent = propose_over(WireError::NotSent("connection refused".into())).await;
        assert!(
            matches!(not_sent, Err(RaftError::Unreachable { group: 5, .. })),
            "{not_sent:?}"
        );
        let no_answer = propose_over(WireError::NoAnswer("connection reset".into())).await;
        assert!(
            matches!(&no_answer, Err(RaftError::Unknown { group: 5, reason }) if reason.contains("connection reset")),
            "{no_answer:?}"
        );
    }

    /// A node refuses, unread and saying why, a message in a protocol it does not understand,
    /// and once the cluster version rose, one in an older protocol; the protocols it speaks pass.
    #[tokio::test]
    async fn messages_in_a_protocol_this_node_does_not_speak_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(
            kinesin_storage::Engine::open(dir.path(), &kinesin_storage::EngineOptions::default())
                .unwrap(),
        );
        let multi = Arc::new(MultiRaft::new(1, engine, &crate::RaftTuning::default()).unwrap());
        let inbox = multi.inbox();
        let ping = |protocol: u32| RaftRequest {
            group: 0,
            kind: RaftKind::Ping as i32,
            payload: encode(&Ping { from: 2, epoch: 9 }).unwrap(),
            target_life: 0,
            protocol,
            build: "9.0.0".into(),
            traceparent: String::new(),
            stopping: false,
        };
        let future = inbox.raft(ping(CLUSTER_PROTOCOL + 1)).await.unwrap_err();
        assert!(
            future.contains(&format!("speaks cluster protocol {}", CLUSTER_PROTOCOL + 1))
                && future.contains("upgrade this node"),
            "{future}"
        );
        assert_eq!(
            multi.peer_versions().of(2),
            None,
            "a refused message is not read"
        );
        let propose = inbox
            .propose(ProposeRequest {
                group: 5,
                command: Vec::new(),
                protocol: CLUSTER_PROTOCOL + 1,
                traceparent: String::new(),
            })
            .await
            .unwrap_err();
        assert!(propose.contains("upgrade this node"), "{propose}");

        // Builds from before protocol numbers (no field) are understood until every node speaks
        // protocol 2; then they are refused.
        let answer = inbox.raft(ping(0)).await.unwrap();
        assert_eq!(answer.protocol, CLUSTER_PROTOCOL);
        assert_eq!(answer.build, crate::BUILD);
        assert_eq!(multi.peer_versions().of(2).unwrap().protocol, 1);
        multi.set_cluster_version(2);
        let old = inbox.raft(ping(0)).await.unwrap_err();
        assert!(old.contains("upgraded to protocol 2"), "{old}");
        assert!(inbox.raft(ping(2)).await.is_ok());
    }

    #[test]
    fn only_appends_that_tell_the_follower_nothing_new_wait_for_a_batch() {
        // A heartbeat: no entries, the commit index the follower was last sent.
        assert!(may_batch(false, &Some(7), &Some(7)));
        assert!(may_batch(false, &None::<u64>, &None));
        // A commit update: the next write's entries wait for its answer, so it goes at once.
        assert!(!may_batch(false, &Some(8), &Some(7)));
        assert!(!may_batch(false, &Some(1), &None));
        // Entries always go at once.
        assert!(!may_batch(true, &Some(7), &Some(7)));
    }
}
