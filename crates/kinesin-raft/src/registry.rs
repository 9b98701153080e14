//! The node's groups: create, find, stop and drop Raft groups that all share one engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kinesin_storage::Engine;
use openraft::alias::LogIdOf;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError as OpenRaftError};
use openraft::{BasicNode, Config, Instant as _, LinearizerOption, ServerState, SnapshotPolicy};

use crate::coalesce::{Admission, PutQueue};
use crate::error::RaftError;
use crate::in_flight::InFlight;
use crate::liveness::Liveness;
use crate::log_store::{CatchUpThrottle, LogStore};
use crate::node_stats::NodeStats;
use crate::quiesce::Quiet;
use crate::quota::{WriteBucket, WriteQuota};
use crate::shard::ShardView;
use crate::state_machine::{ControllerApplier, GroupStateMachine};
use crate::tombstone::Tombstone;
use crate::transport::{Network, Peers};
use crate::types::{Command, NodeId, Response, TypeConfig};
use crate::versions::PeerVersions;
use crate::wire::{GrpcWire, Wire};
use futures::StreamExt;
use tracing::Instrument;

type Raft = openraft::Raft<TypeConfig, GroupStateMachine>;

/// Timing of every group on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTuning {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot (and purge the log behind it) every this many entries. A shard's snapshot
    /// is at its retention cut, so for shards this is how often a moved cut is noticed.
    pub snapshot_every: u64,
    /// Controller group: entries kept behind a snapshot so a slightly lagging follower can catch
    /// up from the log. Shards keep none behind theirs: every entry below the cut has expired.
    pub logs_kept_after_snapshot: u64,
    /// How long heartbeats to a peer wait to be sent together in one call (0: each on its own).
    pub heartbeat_batch_ms: u64,
    /// What each shard's leader admits per second.
    pub shard_write_quota: WriteQuota,
    /// Bytes per second this node sends to replicas far behind, over all groups (0: no limit).
    pub catch_up_bytes_per_sec: u64,
    /// A shard group unused this long, with every member caught up, goes quiet (`quiesce.rs`);
    /// 0: never.
    pub quiesce_after_ms: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning {
            // openraft ticks every awake group about five times per heartbeat interval (quiet
            // groups not at all, `quiesce.rs`). The election timeout is at least three
            // heartbeats, and its maximum is openraft's leader lease: a busy dead leader's groups
            // elect no sooner than that after its last word, so with liveness's 750 ms it bounds
            // failover (benches/README.md: 300 ms and 1,000–1,200 ms gave p99 1.69 s for 1,000
            // shards; 200 ms and 700–840 ms with 750 ms of liveness, 1.40 s).
            heartbeat_ms: 200,
            election_min_ms: 700,
            election_max_ms: 840,
            snapshot_every: 2000,
            logs_kept_after_snapshot: 500,
            heartbeat_batch_ms: 5,
            shard_write_quota: WriteQuota::AWS,
            // A quarter of what the 2-core machine writes at full load: a replica five minutes
            // behind a moderate load (20,000 records/s) catches up in minutes while the load's
            // p99 stays in milliseconds (benches/README.md, catch-up).
            catch_up_bytes_per_sec: 32 << 20,
            // Long enough that a producer writing every second or so keeps its shard awake
            // (waking costs a write one round trip), short enough that idle shards soon cost
            // nothing.
            quiesce_after_ms: 2000,
        }
    }
}

#[derive(Clone)]
pub enum GroupKind {
    Controller(Arc<dyn ControllerApplier>),
    Shard,
}

pub struct GroupOptions {
    pub kind: GroupKind,
    /// Voters to initialize a brand-new group with; `None` to wait to be added by a leader.
    pub initial_members: Option<BTreeMap<NodeId, String>>,
}

/// The slot of a write proposing alone: when the write ends (or its caller goes), the slot
/// passes to a flusher for whatever queued behind it.
struct AloneSlot<'a> {
    group: &'a GroupHandle,
}

impl Drop for AloneSlot<'_> {
    fn drop(&mut self) {
        let Some(puts) = &self.group.puts else {
            return;
        };
        if puts.hand_over() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(self.group.clone().flush_puts())),
                Err(_) => puts.release(),
            }
        }
    }
}

/// A handle on one group hosted here: one pointer, so the node's loops over thousands of groups
/// (quiescence, liveness, the reconciler) copy a handle for one atomic increment.
#[derive(Clone)]
pub struct GroupHandle(Arc<Group>);

impl std::ops::Deref for GroupHandle {
    type Target = Group;

    fn deref(&self) -> &Group {
        &self.0
    }
}

/// One group hosted here: its Raft and what this node keeps beside it.
pub struct Group {
    id: u64,
    raft: Raft,
    shard: Option<Arc<ShardView>>,
    /// A shard group's write limits, checked while this node leads it.
    write_bucket: Option<Arc<WriteBucket>>,
    /// A shard group's writes waiting to share an entry.
    puts: Option<Arc<PutQueue>>,
    /// The last log id of a replica of this group dropped here before (`tombstone.rs`): vote
    /// requests from candidates whose log ends before it are refused.
    vote_floor: Option<LogIdOf<TypeConfig>>,
    /// Writes proposed here and not answered yet (see [`MultiRaft::drop_group`]).
    in_flight: Arc<InFlight>,
    /// Whether the group is quiet here, and when it was last used (`quiesce.rs`).
    pub(crate) quiet: Arc<Quiet>,
    /// The node's cluster transport, to wake the group's members (`quiesce.rs`).
    pub(crate) peers: Arc<Peers>,
    /// This node's view of which nodes are alive (`liveness.rs`).
    pub(crate) liveness: Arc<Liveness>,
    /// What quiescence, elections and liveness did on this node, for `/metrics`.
    pub(crate) node_stats: Arc<NodeStats>,
    pub(crate) write_stats: Arc<WriteStats>,
}

/// Writes proposed through this node's replicas, for `/metrics`: with the count, the mean time
/// from proposal to committed on a majority and applied (batching and queueing included).
#[derive(Debug, Default)]
pub struct WriteStats {
    pub committed: std::sync::atomic::AtomicU64,
    pub commit_micros: std::sync::atomic::AtomicU64,
}

impl GroupHandle {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The read view of a shard group (`None` for the controller group).
    pub fn shard(&self) -> Option<&Arc<ShardView>> {
        self.shard.as_ref()
    }

    /// Proposes `command` and waits until it is committed on a majority and applied here. A `Put`
    /// over the shard's write limits is refused with [`RaftError::Throttled`] before it is
    /// proposed.
    pub async fn write(&self, command: Command) -> Result<Response, RaftError> {
        let span = tracing::debug_span!("raft.write", group = self.id);
        let started = std::time::Instant::now();
        let written = self.write_traced(command).instrument(span).await;
        if written.is_ok() {
            use std::sync::atomic::Ordering::Relaxed;
            self.write_stats.committed.fetch_add(1, Relaxed);
            let micros = started.elapsed().as_micros() as u64;
            self.write_stats.commit_micros.fetch_add(micros, Relaxed);
        }
        written
    }

    async fn write_traced(&self, command: Command) -> Result<Response, RaftError> {
        if let (Some(bucket), Command::Put { records, .. }) = (&self.write_bucket, &command) {
            // Only the leader's bucket counts: a follower's refusal would be a redirect anyway.
            let bytes = crate::types::counted_bytes(records);
            if self.is_leader() && !bucket.try_take(records.len() as u64, bytes) {
                return Err(RaftError::Throttled { group: self.id });
            }
        }
        let (puts, arrival_ms, records) = match (&self.puts, command) {
            (
                Some(puts),
                Command::Put {
                    arrival_ms,
                    records,
                },
            ) => (puts, arrival_ms, records),
            (_, command) => return self.write_entry(command).await,
        };
        match puts.admit(arrival_ms, records) {
            Admission::Alone(records) => {
                let _slot = AloneSlot { group: self };
                self.write_entry(Command::Put {
                    arrival_ms,
                    records,
                })
                .await
            }
            Admission::Queued {
                start_flusher,
                answer,
            } => {
                if start_flusher {
                    // On its own task: it goes on for the others if this caller gives up.
                    tokio::spawn(self.clone().flush_puts());
                }
                answer.await.unwrap_or_else(|_| {
                    Err(RaftError::Unknown {
                        group: self.id,
                        reason: "the shared write was dropped".into(),
                    })
                })
            }
        }
    }

    /// Proposes the waiting writes, one entry at a time, until none wait.
    async fn flush_puts(self) {
        let Some(puts) = self.puts.clone() else {
            return;
        };
        while let Some(mut shared) = puts.next_entry() {
            let outcome = self.write_entry(shared.take_command()).await;
            shared.answer(outcome);
        }
    }

    /// Proposes `command` as one entry and waits until it is committed and applied here.
    async fn write_entry(&self, command: Command) -> Result<Response, RaftError> {
        #[cfg(feature = "failpoints")]
        if let Some(appended) = crate::early_ack::register(self.id, &command) {
            return self.write_acknowledging_early(command, appended).await;
        }
        self.write_committed(command).await
    }

    /// The `raft::ack-on-append` fault (src/early_ack.rs): answers as soon as this node's log has
    /// the entry, while the honest write goes on in the background.
    #[cfg(feature = "failpoints")]
    async fn write_acknowledging_early(
        &self,
        command: Command,
        appended: tokio::sync::oneshot::Receiver<u64>,
    ) -> Result<Response, RaftError> {
        let arrival_ms = match &command {
            Command::Put { arrival_ms, .. } => *arrival_ms,
            _ => 0,
        };
        let handle = self.clone();
        let fingerprinted = command.clone();
        let mut committed = tokio::spawn(async move { handle.write_committed(command).await });
        tokio::select! {
            Ok(index) = appended => Ok(Response::Put {
                first_position: crate::shard::first_position(index),
                arrival_ms,
            }),
            result = &mut committed => {
                crate::early_ack::unregister(self.id, &fingerprinted);
                result.unwrap_or_else(|e| Err(RaftError::Other(e.to_string())))
            }
        }
    }

    async fn write_committed(&self, command: Command) -> Result<Response, RaftError> {
        let _in_flight = self.in_flight.enter();
        self.touch();
        self.renew_lease().await;
        match self.raft.client_write(command).await {
            Ok(response) => Ok(response.data),
            Err(OpenRaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                if f.reason == openraft::errors::ForwardReason::LeaseExpired {
                    self.node_stats
                        .lease_refusals
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(RaftError::NotLeader {
                    group: self.id,
                    leader: f.leader_id,
                })
            }
            Err(OpenRaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => {
                Err(RaftError::Unknown {
                    group: self.id,
                    reason: "leader changed before the entry committed".into(),
                })
            }
            Err(OpenRaftError::APIError(other)) => Err(RaftError::Other(other.to_string())),
            Err(OpenRaftError::Fatal(fatal)) => Err(RaftError::Stopped {
                group: self.id,
                reason: fatal.to_string(),
            }),
        }
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The cluster address of `node` as this group's membership records it.
    pub fn node_addr(&self, node: NodeId) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .get_node(&node)
            .map(|n| crate::life::split_member_address(&n.addr).0.to_string())
    }

    /// Members whose recorded life is not the one `desired` (node → member address) gives their
    /// node: their data was wiped since they were added, so they hold nothing the group counted
    /// on and must be replaced (`life.rs`).
    pub fn outlived(&self, desired: &BTreeMap<NodeId, String>) -> BTreeSet<NodeId> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .nodes()
            .filter(|(id, node)| {
                desired.get(id).is_some_and(|wanted| {
                    crate::life::split_member_address(wanted).1
                        != crate::life::split_member_address(&node.addr).1
                })
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whether the group's voters are exactly `desired` (node → member address), each in the
    /// life `desired` names, in a uniform membership. A joint membership whose voters add up to
    /// `desired` is not placed: a change whose leader died between its two steps leaves one, and
    /// it needs a majority of the old voters as well as of the new (a group that could stop on
    /// one lost node, and that nothing would finish if it counted as placed).
    pub fn is_placed(&self, desired: &BTreeMap<NodeId, String>) -> bool {
        let uniform = self
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .get_joint_config()
            .len()
            == 1;
        uniform && self.voters().iter().eq(desired.keys()) && self.outlived(desired).is_empty()
    }

    /// The node this replica is on.
    pub fn node_id(&self) -> NodeId {
        self.raft.metrics().borrow_watched().id
    }

    /// The current leader as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().state == ServerState::Leader
    }

    /// The refusal a vote request gets here because a replica dropped earlier had a longer log
    /// than the candidate (`tombstone.rs`); `None` to let openraft decide.
    pub(crate) fn refuse_vote(
        &self,
        request: &openraft::raft::VoteRequest<TypeConfig>,
    ) -> Option<openraft::raft::VoteResponse<TypeConfig>> {
        let floor = self.vote_floor.as_ref()?;
        let vote = self.raft.metrics().borrow_watched().vote;
        Tombstone::refuse(floor, request, &vote)
    }

    /// The term this replica is in.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    /// The term this node leads the group in, if it leads it.
    pub fn leading_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        (metrics.state == ServerState::Leader).then_some(metrics.current_term)
    }

    /// The group's voters as this node's latest membership records them.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.raft
            .metrics()
            .borrow_watched()
            .membership_config
            .voter_ids()
            .collect()
    }

    /// Voters and learners.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .nodes()
            .map(|(id, _)| *id)
            .collect()
    }

    /// On the leader: Raft's read index, the log index a replica must have applied to answer as
    /// of now. The leader's lease (a quorum acknowledged it within the last leader lease, during
    /// which no other leader can be elected) confirms it still leads without a round trip; past
    /// the lease it asks a quorum at once. Every replica's read asks this, so the round trip is
    /// saved where it is cheap to save.
    pub async fn read_index(&self) -> Result<u64, RaftError> {
        if let Some(index) = self.quiet_read_index() {
            return Ok(index);
        }
        self.touch();
        let lease_or_quorum = LinearizerOption::new(None, true);
        match self.raft.get_read_linearizer(lease_or_quorum).await {
            Ok(linearizer) => Ok(linearizer.read_log_id().log_id().index),
            Err(OpenRaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(RaftError::NotLeader {
                    group: self.id,
                    leader: f.leader_id,
                })
            }
            Err(other) => Err(RaftError::NotLinearizable {
                group: self.id,
                reason: other.to_string(),
            }),
        }
    }

    /// Waits (at most `timeout`) until this replica has applied through `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), RaftError> {
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|e| RaftError::NotLinearizable {
                group: self.id,
                reason: e.to_string(),
            })
    }

    /// Index of the last log entry applied here (0 before any).
    pub fn applied_index(&self) -> u64 {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics.last_applied.as_ref().map_or(0, |id| id.index)
    }

    /// Index of the newest snapshot this replica holds (built here or installed from the leader).
    pub fn snapshot_index(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics.snapshot.as_ref().map(|id| id.index)
    }

    /// Index of the newest log entry purged from this replica's log (behind a snapshot). A member
    /// that needs an entry at or below it can only catch up by installing a snapshot.
    pub fn purged_index(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics.purged.as_ref().map(|id| id.index)
    }

    /// On the leader: how long ago each other member last acknowledged a heartbeat or an append
    /// (`None` for a member that never did). `None` when this node does not lead the group.
    pub fn ack_ages(&self) -> Option<BTreeMap<NodeId, Option<Duration>>> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let heartbeat = metrics.heartbeat.as_ref()?;
        Some(
            heartbeat
                .iter()
                .filter(|(node, _)| **node != metrics.id)
                .map(|(node, acked)| (*node, acked.as_ref().map(|at| at.elapsed())))
                .collect(),
        )
    }

    /// On the leader: the log index each other member is known to hold (`None` when this node
    /// does not lead the group).
    pub fn matched_indexes(&self) -> Option<BTreeMap<NodeId, u64>> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let replication = metrics.replication.as_ref()?;
        Some(
            replication
                .iter()
                .map(|(node, matched)| (*node, matched.as_ref().map_or(0, |id| id.index)))
                .collect(),
        )
    }

    /// On the leader: makes the group's voters exactly `desired` (node → cluster address). New
    /// members join as learners and are promoted only once they have caught up, so the group never
    /// counts a node without the data towards its majority. Returns whether anything changed.
    pub async fn change_voters(
        &self,
        desired: &BTreeMap<NodeId, String>,
    ) -> Result<bool, RaftError> {
        let wanted: BTreeSet<NodeId> = desired.keys().copied().collect();
        if self.is_placed(desired) {
            return Ok(false);
        }
        self.touch();
        // A leader that its own latest membership leaves out only steps down once that
        // membership commits; until then openraft still routes membership changes to it, and
        // appending one there trips openraft's assertion that only a leader appends membership
        // (a panic that stops the group in debug builds; found by tests/simulation).
        let me = self.node_id();
        if !self.is_leader() {
            return Err(RaftError::NotLeader {
                group: self.id,
                leader: None,
            });
        }
        let voters = self.voters();
        if !voters.contains(&me) {
            // Refusing alone left such a leader leading for good (the jepsen soak: two shards
            // whose leader had been voted out kept a replica on a drained node): hand the group
            // to the voter furthest along, which makes the change instead. Only to one that
            // answered just now: a transfer stops this leader's writes and heartbeats until the
            // next term, and one sent to a dead node leaves that to an election.
            let successor = self.successor();
            if let Some(to) = successor {
                self.transfer_leader(to).await?;
            }
            return Err(RaftError::NotLeader {
                group: self.id,
                leader: successor,
            });
        }
        let management = |e: OpenRaftError<TypeConfig, ClientWriteError<TypeConfig>>| match e {
            OpenRaftError::APIError(ClientWriteError::ForwardToLeader(f)) => RaftError::NotLeader {
                group: self.id,
                leader: f.leader_id,
            },
            other => RaftError::Other(format!("group {} membership: {other}", self.id)),
        };
        // A member whose node came back with new data is removed first; the next change adds
        // it again as a learner that copies the log like any new member.
        let outlived = self.outlived(desired);
        if !outlived.is_empty() {
            let staying: BTreeSet<NodeId> = voters.difference(&outlived).copied().collect();
            if staying.is_empty() {
                return Err(RaftError::Other(format!(
                    "group {}: every voter's data was wiped; nothing is left to copy from",
                    self.id
                )));
            }
            tracing::warn!(group = self.id, nodes = ?outlived, "removing members whose node came back with new data");
            if staying != voters {
                self.raft
                    .change_membership(staying, false)
                    .await
                    .map_err(management)?;
            }
            self.remove_learners(&outlived).await?;
            return Ok(true);
        }
        let members = self.members();
        for (node, addr) in desired {
            if !members.contains(node) {
                tracing::info!(
                    group = self.id,
                    node,
                    "adding a learner; waiting for it to catch up"
                );
                self.raft
                    .add_learner(*node, BasicNode::new(addr.clone()), true)
                    .await
                    .map_err(management)?;
            }
        }
        self.raft
            .change_membership(wanted.clone(), false)
            .await
            .map_err(management)?;
        tracing::info!(group = self.id, voters = ?wanted, "group membership changed");
        Ok(true)
    }

    /// On the leader: removes `nodes` from the group's membership when they are learners there
    /// (voters are removed by [`Self::change_voters`] first). Returns whether anything changed.
    pub async fn remove_learners(&self, nodes: &BTreeSet<NodeId>) -> Result<bool, RaftError> {
        let voters = self.voters();
        let present: BTreeSet<NodeId> = self
            .members()
            .intersection(nodes)
            .filter(|n| !voters.contains(n))
            .copied()
            .collect();
        if present.is_empty() {
            return Ok(false);
        }
        self.touch();
        self.raft
            .change_membership(openraft::ChangeMembers::RemoveNodes(present.clone()), false)
            .await
            .map_err(|e| RaftError::Other(format!("group {} remove learners: {e}", self.id)))?;
        tracing::info!(group = self.id, nodes = ?present, "removed learners");
        Ok(true)
    }

    /// On the leader: adds each of `nodes` (node → cluster address) that is not a member yet as a
    /// learner, which receives the log but does not vote. Does not wait for them to catch up.
    pub async fn add_learners(&self, nodes: &BTreeMap<NodeId, String>) -> Result<(), RaftError> {
        let members = self.members();
        for (node, addr) in nodes {
            if !members.contains(node) {
                self.touch();
                self.raft
                    .add_learner(*node, BasicNode::new(addr.clone()), false)
                    .await
                    .map_err(|e| RaftError::Other(format!("group {} add learner: {e}", self.id)))?;
                tracing::info!(group = self.id, node, "added a learner");
            }
        }
        Ok(())
    }

    /// On the leader: asks `to` (an up-to-date voter) to take over leadership. Ignored when this
    /// node no longer leads.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), RaftError> {
        if self.is_quiet() {
            // The transfer stops this leader's heartbeats; a member left quiet would never
            // elect if the target missed the transfer (a drain of 150 shards left 14 leaderless
            // that way in a jepsen run).
            self.touch();
            self.wake_members().await;
        }
        self.touch();
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| RaftError::Stopped {
                group: self.id,
                reason: e.to_string(),
            })
    }

    /// Waits until some node leads the group.
    /// Waits at most `timeout` until this replica knows a leader other than `tried`.
    pub(crate) async fn wait_for_leader_other_than(
        &self,
        tried: Option<NodeId>,
        timeout: Duration,
    ) {
        let _known = self
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| m.current_leader.is_some_and(|l| Some(l) != tried),
                "another leader",
            )
            .await;
    }

    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, RaftError> {
        let metrics = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map_err(|e| RaftError::Other(format!("group {}: {e}", self.id)))?;
        metrics
            .current_leader
            .ok_or_else(|| RaftError::Other(format!("group {} has no leader", self.id)))
    }
}

/// Every group this node hosts.
pub struct MultiRaft {
    node_id: NodeId,
    engine: Arc<Engine>,
    /// The controller group's configuration.
    config: Arc<Config>,
    /// Shard groups': the same, but purging the log right up to the snapshot (the retention cut).
    shard_config: Arc<Config>,
    groups: RwLock<HashMap<u64, GroupHandle>>,
    /// Cloned into every log store and state machine openraft holds; see [`MultiRaft::shutdown`].
    lease: Arc<()>,
    peers: Arc<Peers>,
    /// Every node's cluster address, as the controller knows them (see [`Self::learn_addresses`]).
    addresses: RwLock<BTreeMap<NodeId, String>>,
    /// Which copy of this node's data the engine holds (`life.rs`).
    life: u64,
    shard_write_quota: WriteQuota,
    /// Shared by every group's log store: what replicas far behind are sent per second.
    catch_up: Arc<CatchUpThrottle>,
    /// Which peers are alive, from the pings of [`Self::start_upkeep`].
    pub(crate) liveness: Arc<Liveness>,
    /// The cluster protocol and build each peer last said it speaks (`versions.rs`).
    pub(crate) versions: PeerVersions,

    /// How long a shard group stays unused before it goes quiet (zero: never).
    pub(crate) quiesce_after: Duration,
    pub(crate) node_stats: Arc<NodeStats>,
    pub(crate) write_stats: Arc<WriteStats>,
    /// Set by [`Self::shutdown`]: the upkeep loops end.
    pub(crate) stopped: std::sync::atomic::AtomicBool,
    /// Set by [`Self::hand_over_leadership`]: the node is about to stop and takes no group's
    /// leadership when asked to.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
}

/// How long dropping a replica waits for the writes it accepted to be answered.
const SETTLE_BEFORE_DROP: Duration = Duration::from_secs(3);

/// Leadership transfers in flight at once when a node hands its groups over before stopping.
const HANDOVERS_AT_ONCE: usize = 64;

/// How long a stopping node waits for one group's leadership transfer to take effect.
const TRANSFER_WAIT: Duration = Duration::from_secs(1);

/// How long shutdown waits for openraft's tasks to let go of the storage they hold.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

impl MultiRaft {
    /// A node's groups, talking to their peers over gRPC.
    pub fn new(
        node_id: NodeId,
        engine: Arc<Engine>,
        tuning: &RaftTuning,
    ) -> Result<MultiRaft, RaftError> {
        MultiRaft::over(node_id, engine, tuning, Arc::new(GrpcWire::default()))
    }

    /// The same over `wire` (a simulated network).
    pub fn over(
        node_id: NodeId,
        engine: Arc<Engine>,
        tuning: &RaftTuning,
        wire: Arc<dyn Wire>,
    ) -> Result<MultiRaft, RaftError> {
        let config = Config {
            cluster_name: "kinesin".into(),
            heartbeat_interval: tuning.heartbeat_ms,
            election_timeout_min: tuning.election_min_ms,
            election_timeout_max: tuning.election_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_every),
            max_in_snapshot_log_to_keep: tuning.logs_kept_after_snapshot,
            // A node that restarts or returns from a partition asks first whether it could win
            // before raising its term; without it, it unseats a healthy leader and every group it
            // shares stalls for an election (~3 s: seen in the docker test and jepsen/ runs).
            enable_pre_vote: Some(true),
            // A node removed from the cluster, wiped and joined again under the same id comes
            // back with an empty log while the leader may still track its old progress; without
            // this the leader panics (the jepsen membership nemesis took the controller group
            // down that way). The log is re-sent instead.
            allow_log_reversion: Some(true),
            // A leader that restarts must be elected again, as in standard Raft. openraft would
            // let it resume its old term at once, but its read index is then the larger of the
            // term's first entry and its commit index, and the commit index it restarts with is
            // not synced: after a power cut it served reads without a write it had acknowledged
            // (simulation seed 29). Worse, an entry a majority of followers committed without it
            // could be lost from its own log and its index reused in the same term.
            enable_leader_restore: Some(false),
            // openraft's latency statistics keep six rings of this many entries per group (1,024
            // by default: 147 KiB per group, touched as entries pass); Kinesin reads none of them.
            log_stage_capacity: Some(16),
            ..Default::default()
        }
        .validate()
        .map_err(|e| RaftError::Other(format!("raft configuration: {e}")))?;
        let shard_config = Config {
            max_in_snapshot_log_to_keep: 0,
            ..config.clone()
        }
        .validate()
        .map_err(|e| RaftError::Other(format!("raft configuration: {e}")))?;
        Ok(MultiRaft {
            node_id,
            life: 0,
            engine,
            config: Arc::new(config),
            shard_config: Arc::new(shard_config),
            groups: RwLock::new(HashMap::new()),
            lease: Arc::new(()),
            peers: Arc::new(Peers::over(
                wire,
                Duration::from_millis(tuning.heartbeat_batch_ms),
            )),
            addresses: RwLock::default(),
            shard_write_quota: tuning.shard_write_quota,
            catch_up: Arc::new(CatchUpThrottle::new(tuning.catch_up_bytes_per_sec)),
            liveness: Arc::new(Liveness::new(node_id)),
            versions: PeerVersions::default(),

            quiesce_after: Duration::from_millis(tuning.quiesce_after_ms),
            node_stats: Arc::default(),
            write_stats: Arc::default(),
            stopped: Default::default(),
            stopping: Default::default(),
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The same, for a data directory in `life` (`life.rs`; 0 unless the node joined empty).
    pub fn in_life(mut self, life: u64) -> MultiRaft {
        self.life = life;
        self
    }

    /// This data directory's life (`life.rs`): fixed for as long as the engine is open.
    pub fn life(&self) -> u64 {
        self.life
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub(crate) fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    pub fn transport_stats(&self) -> &crate::TransportStats {
        self.peers.stats()
    }

    /// Fault injection on this node's outgoing cluster traffic (tests).
    pub fn network_faults(&self) -> &crate::NetworkFaults {
        self.peers.faults()
    }

    /// Records where every node of the cluster listens, so a proposal redirected to a leader
    /// that is not among the replicas its caller knew can still reach it.
    pub fn learn_addresses(&self, addresses: BTreeMap<NodeId, String>) {
        *self.addresses.write().unwrap_or_else(|p| p.into_inner()) = addresses;
    }

    /// Every node's cluster address as the controller last told this node.
    pub(crate) fn all_addresses(&self) -> BTreeMap<NodeId, String> {
        self.addresses
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(node, addr)| (*node, crate::life::split_member_address(addr).0.to_string()))
            .collect()
    }

    fn known_address(&self, node: NodeId) -> Option<String> {
        self.addresses
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&node)
            .cloned()
    }

    pub fn group(&self, id: u64) -> Option<GroupHandle> {
        self.read_groups().get(&id).cloned()
    }

    /// Groups hosted here whose replica knows no leader (an election under way, or a group cut
    /// off from a majority): a shard that cannot take writes while it lasts.
    pub fn leaderless_groups(&self) -> usize {
        self.read_groups()
            .values()
            .filter(|group| group.leader().is_none())
            .count()
    }

    /// A handle on every group hosted here (one lock, not one per group).
    pub(crate) fn all_groups(&self) -> Vec<GroupHandle> {
        self.read_groups().values().cloned().collect()
    }

    pub fn group_ids(&self) -> Vec<u64> {
        self.read_groups().keys().copied().collect()
    }

    fn read_groups(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, GroupHandle>> {
        // A panic while holding this lock cannot leave the map half-updated (inserts and removes are
        // single operations), so a poisoned lock is still safe to use.
        self.groups.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts group `id` from what is on disk (creating it when new). Idempotent.
    pub async fn open_group(
        &self,
        id: u64,
        options: GroupOptions,
    ) -> Result<GroupHandle, RaftError> {
        if let Some(existing) = self.group(id) {
            return Ok(existing);
        }
        let stored = |e: std::io::Error| RaftError::Other(format!("group {id}: {e}"));
        let tombstone = Tombstone::read(&self.engine, id).map_err(stored)?;
        if let Some(tombstone) = &tombstone {
            tombstone.revive_vote(&self.engine, id).map_err(stored)?;
        }
        let vote_floor = tombstone.as_ref().and_then(|t| t.last_log_id().copied());
        let log_store = LogStore::with_lease(id, self.engine.clone(), self.lease.clone())
            .throttled_by(self.catch_up.clone())
            .counting_term_moves_in(self.node_stats.clone());
        let (state_machine, shard) = match &options.kind {
            GroupKind::Shard => {
                let (sm, view) = GroupStateMachine::open_shard(id, self.engine.clone())
                    .map_err(|e| RaftError::Other(e.to_string()))?;
                (sm, Some(view))
            }
            GroupKind::Controller(applier) => (
                GroupStateMachine::open_controller(id, self.engine.clone(), applier.clone())
                    .map_err(|e| RaftError::Other(e.to_string()))?,
                None,
            ),
        };
        let state_machine = state_machine.with_lease(self.lease.clone());
        let quiet: Arc<crate::quiesce::Quiet> = Arc::default();
        let network = Network {
            group: id,
            peers: self.peers.clone(),
            batched: matches!(options.kind, GroupKind::Shard),
            quiet: quiet.clone(),
            liveness: self.liveness.clone(),
            node_stats: self.node_stats.clone(),
        };
        let config = match options.kind {
            GroupKind::Shard => self.shard_config.clone(),
            GroupKind::Controller(_) => self.config.clone(),
        };
        let raft = Raft::new(self.node_id, config, network, log_store, state_machine)
            .await
            .map_err(|e| RaftError::Stopped {
                group: id,
                reason: e.to_string(),
            })?;
        if let Some(members) = options.initial_members {
            let initialized = raft
                .is_initialized()
                .await
                .map_err(|e| RaftError::Stopped {
                    group: id,
                    reason: e.to_string(),
                })?;
            if !initialized {
                let members: BTreeMap<NodeId, BasicNode> = members
                    .into_iter()
                    .map(|(node, addr)| (node, BasicNode::new(addr)))
                    .collect();
                raft.initialize(members)
                    .await
                    .map_err(|e| RaftError::Other(format!("initialize group {id}: {e}")))?;
            }
        }
        // A group whose only voter is this node (a single-node cluster, or a restarted one)
        // need not wait out an election timeout: nobody else can be leader, so campaign now.
        let sole_voter = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow_watched();
            let voters: Vec<NodeId> = metrics.membership_config.voter_ids().collect();
            voters == [self.node_id]
        };
        if sole_voter && !raft.metrics().borrow_watched().state.is_leader() {
            if let Err(e) = raft.trigger().elect(false).await {
                tracing::warn!(group = id, error = %e, "could not start an election");
            }
        }
        let write_bucket = (shard.is_some() && !self.shard_write_quota.is_unlimited())
            .then(|| Arc::new(WriteBucket::new(self.shard_write_quota)));
        let puts = shard.is_some().then(Arc::default);
        let handle = GroupHandle(Arc::new(Group {
            id,
            raft,
            shard,
            write_bucket,
            puts,
            vote_floor,
            in_flight: Arc::default(),
            quiet,
            peers: self.peers.clone(),
            liveness: self.liveness.clone(),
            node_stats: self.node_stats.clone(),
            write_stats: self.write_stats.clone(),
        }));
        let mut groups = self.groups.write().unwrap_or_else(|p| p.into_inner());
        Ok(groups.entry(id).or_insert(handle).clone())
    }

    /// Commits `command` in group `id` wherever its leader is: here when this node leads it,
    /// else forwarded to the leader over the cluster transport. Leader changes and elections are
    /// retried until `timeout`; only failures after which the command cannot have been applied are
    /// retried, so a retry never applies a command twice. `replicas` (node, cluster address) are
    /// the group's nodes as the controller placed them, used when this node does not host the
    /// group or does not know its leader.
    pub async fn propose(
        &self,
        id: u64,
        command: &Command,
        replicas: &[(NodeId, String)],
        timeout: Duration,
    ) -> Result<Response, RaftError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut hint: Option<NodeId> = None;
        let mut backoff = Duration::from_millis(10);
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            let local = self.group(id);
            if let Some(group) = &local {
                if group.is_leader() {
                    // A leader cut off from its majority cannot commit, and openraft keeps the
                    // entry waiting: the deadline ends the wait, with the outcome unknown (a
                    // later leader may still commit the entry).
                    match tokio::time::timeout_at(deadline, group.write(command.clone())).await {
                        Err(_) => {
                            return Err(RaftError::Unknown {
                                group: id,
                                reason: "not committed before the deadline".into(),
                            })
                        }
                        Ok(Err(RaftError::NotLeader { leader, .. })) => hint = leader,
                        Ok(other) => return other,
                    }
                } else {
                    hint = hint.or(group.leader());
                }
            }
            let target = hint.filter(|&node| node != self.node_id).or_else(|| {
                let others: Vec<NodeId> = replicas
                    .iter()
                    .map(|(node, _)| *node)
                    .filter(|&node| node != self.node_id)
                    .collect();
                (!others.is_empty()).then(|| others[attempt % others.len()])
            });
            let addr = target.and_then(|node| {
                replicas
                    .iter()
                    .find(|(n, _)| *n == node)
                    .map(|(_, addr)| addr.clone())
                    .or_else(|| local.as_ref().and_then(|g| g.node_addr(node)))
                    .or_else(|| self.known_address(node))
            });
            if addr.is_none() {
                // A leader this node cannot reach by name (it joined the group after the caller
                // read the replicas): ask the replicas again instead of waiting on it.
                hint = None;
            }
            let error = match addr {
                Some(addr) => match self.peers.propose(&addr, id, command).await {
                    Ok(response) => return Ok(response),
                    Err(RaftError::NotLeader { leader, .. }) => {
                        hint = leader;
                        RaftError::NotLeader { group: id, leader }
                    }
                    Err(e @ (RaftError::NoSuchGroup(_) | RaftError::Unreachable { .. })) => {
                        hint = None;
                        e
                    }
                    Err(e) => return Err(e),
                },
                None => RaftError::NotLeader {
                    group: id,
                    leader: None,
                },
            };
            if tokio::time::Instant::now() + backoff >= deadline {
                return Err(error);
            }
            // A replica here sees the next leader the moment it is elected: retry then, not up
            // to a backoff later (most of a failover's tail for writers).
            match &local {
                Some(group) => group.wait_for_leader_other_than(target, backoff).await,
                None => tokio::time::sleep(backoff).await,
            }
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// Stops group `id` and deletes everything it stored on this node but its tombstone: its
    /// vote and last log id, which a replica of the group created here again starts from
    /// (`tombstone.rs`).
    pub async fn drop_group(&self, id: u64) -> Result<(), RaftError> {
        if let Some(group) = self.group(id) {
            // Still registered, so the group can settle them (`in_flight.rs`).
            if !group.in_flight.settled(SETTLE_BEFORE_DROP).await {
                tracing::info!(
                    group = id,
                    "dropping a replica with writes in flight: their outcome is unknown"
                );
            }
        }
        let handle = {
            let mut groups = self.groups.write().unwrap_or_else(|p| p.into_inner());
            groups.remove(&id)
        };
        if let Some(handle) = handle {
            if let Err(e) = handle.raft.shutdown().await {
                tracing::warn!(group = id, error = %e, "group did not shut down cleanly");
            }
        }
        let tombstone = Tombstone::of_replica(&self.engine, id)
            .await
            .map_err(|e| RaftError::Other(format!("group {id}: {e}")))?;
        self.engine.drop_group_keeping(id, &tombstone.state())?;
        Ok(())
    }

    /// Stops every group (data stays on disk), and returns once openraft's tasks have released
    /// the storage they held, so the engine can be closed (and reopened by a restarted node).
    /// Before a planned stop (SIGTERM): hands every group this node leads to its most
    /// up-to-date live voter, [`HANDOVERS_AT_ONCE`] at a time, and waits until they lead or
    /// `within` has passed; from now on this node takes no leadership it is offered. Without
    /// it, the shards this node led took no write until their followers noticed it was gone and
    /// elected (a second or more): a rolling restart of every node stalled each shard's writers
    /// for that long, once per node. Returns how many groups it led and how many it handed over.
    pub async fn hand_over_leadership(self: &Arc<Self>, within: Duration) -> (usize, usize) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
        self.announce_stopping().await;
        let led: Vec<GroupHandle> = self
            .all_groups()
            .into_iter()
            .filter(|g| g.is_leader())
            .collect();
        let deadline = tokio::time::Instant::now() + within;
        let handed = futures::stream::iter(led.iter())
            .map(|group| async move {
                let Some(to) = group.successor() else {
                    return false;
                };
                if group.transfer_leader(to).await.is_err() {
                    return false;
                }
                // A transfer takes a round trip or two; one that has not happened within a second
                // went to a node that is stopping too or has just died, and waiting longer would
                // only hold this node's stop up.
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                group
                    .wait_for_leader_other_than(Some(self.node_id), left.min(TRANSFER_WAIT))
                    .await;
                group.leader().is_some_and(|leader| leader != self.node_id)
            })
            .buffer_unordered(HANDOVERS_AT_ONCE)
            .filter(|handed| std::future::ready(*handed))
            .count()
            .await;
        (led.len(), handed)
    }

    /// Whether [`Self::hand_over_leadership`] has begun: the node is stopping.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    pub async fn shutdown(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        let handles: Vec<GroupHandle> = {
            let mut groups = self.groups.write().unwrap_or_else(|p| p.into_inner());
            groups.drain().map(|(_, h)| h).collect()
        };
        for handle in handles {
            if let Err(e) = handle.raft.shutdown().await {
                tracing::warn!(group = handle.id, error = %e, "group did not shut down cleanly");
            }
        }
        // RaftCore has returned, but its state machine and replication tasks end on their own a
        // moment later; there is no event for that, so watch the lease count fall.
        let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
        while Arc::strong_count(&self.lease) > 1 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    holders = Arc::strong_count(&self.lease) - 1,
                    "openraft tasks still hold storage after shutdown"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
