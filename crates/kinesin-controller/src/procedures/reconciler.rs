//! Makes the groups hosted on this node match the controller's state.
//!
//! The controller decides (which shards exist, where their replicas go, which streams are being
//! deleted); this loop converges: it opens groups this node should host, drops groups of deleted
//! streams, and — on the controller's leader — reports progress back (cluster bootstrapped,
//! stream active, stream removed, consumer active or removed) as controller commands. Where this
//! node leads a shard whose replicas the controller moved (a dead node replaced), it changes the
//! group's membership to match. Every step is idempotent, so a crash anywhere is repaired by the
//! next pass.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{
    ClusterState, Command, ConsumerStatus, Controller, NodeInfo, ShardMeta, StreamStatus,
    CONTROLLER_GROUP,
};
use kinesin_raft::{GroupHandle, GroupKind, GroupOptions, MultiRaft};

use super::change_retry::ChangeRetry;
use super::controller_voter_count;
use super::group_starts::GroupStarts;
use super::resharder::{ReshardFaults, Resharder};
use kinesin_types::SharedClock;

/// A pass also runs this often without a state change, to retry what failed.
pub(super) const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How often a leader may hand a group to its preferred leader: a preferred node that cannot keep
/// the leadership (too slow, flapping) must not make the group change leaders all the time.
const LEADER_TRANSFER_EVERY: Duration = Duration::from_secs(10);
/// How long a pass may wait for starting groups to elect before it leaves the groups it could not
/// open yet to the next pass.
const OPENING_PER_PASS: Duration = Duration::from_secs(5);
/// How long one membership change may take (a new replica copying the shard included) before it
/// is abandoned and retried by a later pass.
const MEMBERSHIP_CHANGE_TIMEOUT: Duration = Duration::from_secs(120);

/// How far behind the leader's log a controller learner may be and still be made a voter.
const VOTER_CATCH_UP_SLACK: u64 = 100;

/// How long a removed node stays a learner of the controller group (several heartbeats).
const DEPARTED_GRACE: Duration = Duration::from_secs(3);

use super::{PassError, Procedure};

pub(crate) struct Reconciler {
    raft: Arc<MultiRaft>,
    controller: Arc<Controller>,
    /// The cluster's initial nodes, recorded by the bootstrap command.
    initial_nodes: BTreeMap<u64, NodeInfo>,
    /// This node's setting of `ClusterState::moves_at_once`, applied while it leads the controller.
    moves_at_once: u32,
    /// Groups whose membership change is under way here.
    changing: Arc<Mutex<HashSet<u64>>>,
    /// Groups whose last membership change failed here, and when to try again.
    retry: Arc<ChangeRetry>,
    /// When this node last handed each group to its preferred leader.
    transfers: Mutex<std::collections::HashMap<u64, tokio::time::Instant>>,
    /// When this node, leading the controller, first saw each removed node still in its group.
    departed: Mutex<std::collections::HashMap<u64, tokio::time::Instant>>,
    resharder: Arc<Resharder>,
    /// The groups this node opened that are still electing (`group_starts.rs`).
    starts: GroupStarts,
    /// How many groups the last pass left unopened.
    deferred: AtomicUsize,
    /// Quiet groups led here found with nothing to do (placed, nobody leaving, this node their
    /// preferred leader), by term, as of one state version: skipped by later passes until the
    /// state or the term changes (a quiet group's membership cannot change without waking it).
    /// (perf: walking 10,000 idle shards every second was the largest cost left on an idle node.)
    settled: Mutex<(u64, std::collections::HashMap<u64, u64>)>,
    clock: SharedClock,
}

/// Reports a finished membership change of a shard group (see `Command::ReplicasSettled`).
async fn settle(controller: &Controller, group: u64, replicas: Vec<u64>) {
    if let Err(e) = controller
        .propose(&Command::ReplicasSettled { group, replicas })
        .await
    {
        tracing::warn!(group, error = %e, "could not report a finished membership change");
    }
}

impl Reconciler {
    pub fn new(
        raft: Arc<MultiRaft>,
        controller: Arc<Controller>,
        initial_nodes: BTreeMap<u64, NodeInfo>,
        moves_at_once: u32,
        faults: Arc<ReshardFaults>,
        clock: SharedClock,
    ) -> Self {
        Reconciler {
            resharder: Arc::new(Resharder::new(
                raft.clone(),
                controller.clone(),
                faults,
                clock.clone(),
            )),
            clock,
            raft,
            controller,
            initial_nodes,
            moves_at_once,
            changing: Arc::default(),
            retry: Arc::default(),
            transfers: Mutex::default(),
            departed: Mutex::default(),
            starts: GroupStarts::default(),
            deferred: AtomicUsize::new(0),
            settled: Mutex::default(),
        }
    }

    /// Whether the last pass opened every group this node should host.
    pub fn opened_all(&self) -> bool {
        self.deferred.load(Ordering::Relaxed) == 0
    }

    async fn reconcile(&self) -> Result<(), PassError> {
        let raft = &self.raft;
        let controller = &self.controller;
        let me = raft.node_id();
        let leads_controller = controller.group().is_some_and(|g| g.is_leader());
        let state = controller.state();
        raft.learn_addresses(
            state
                .nodes
                .iter()
                .map(|(id, n)| (*id, n.cluster_addr.clone()))
                .collect(),
        );
        if state.iterator_secret.is_none() && leads_controller {
            controller
                .propose(&Command::Bootstrap {
                    iterator_secret: rand::random(),
                    nodes: self.initial_nodes.clone(),
                })
                .await?;
            tracing::info!(nodes = self.initial_nodes.len(), "cluster bootstrapped");
            return Ok(());
        }
        if leads_controller && state.moves_at_once != self.moves_at_once {
            controller
                .propose(&Command::SetMovesAtOnce {
                    moves: self.moves_at_once,
                })
                .await?;
            tracing::info!(moves = self.moves_at_once, "replica moves at once set");
        }
        raft.set_cluster_version(state.cluster_version());
        if leads_controller {
            let spoken = |node: u64| {
                if node == me {
                    Some(kinesin_raft::CLUSTER_PROTOCOL)
                } else {
                    raft.peer_versions().of(node).map(|v| v.protocol)
                }
            };
            if let Some(version) = state.cluster_version_to_set(spoken) {
                controller
                    .propose(&Command::SetClusterVersion { version })
                    .await?;
                tracing::info!(
                    version,
                    "every node speaks cluster protocol {version}: cluster version raised"
                );
            }
        }
        // Nodes beyond the controller's voters follow it as learners. Not while the voters are
        // changing, nor on a leader that is no longer a voter: a draining leader that removed
        // itself and then asked to add itself back as a learner made openraft panic ("Only
        // leader is allowed to call update_effective_membership"), stopping the controller group
        // on that node (a drain in test_resharding stuck for good).
        if leads_controller && !self.is_changing(CONTROLLER_GROUP) {
            if let Some(group) = controller.group().filter(|g| g.voters().contains(&me)) {
                let everyone: BTreeMap<u64, String> = state
                    .nodes
                    .iter()
                    .map(|(id, n)| (*id, n.member_address()))
                    .collect();
                group.add_learners(&everyone).await?;
            }
        }
        let mut wanted = HashSet::from([CONTROLLER_GROUP]);
        // Groups left for a later pass, so that only so many elect at once (`group_starts.rs`),
        // and the rest of the pass is not held up for long.
        let mut deferred = 0usize;
        let opening_until = tokio::time::Instant::now() + OPENING_PER_PASS;
        for stream in state.streams.values() {
            // Pending children of a reshard are hosted (and elect) before they take writes; a
            // node a replica moved away from keeps it until the group's membership no longer
            // counts it.
            let local: Vec<&ShardMeta> = stream
                .shards_and_pending()
                .filter(|s| s.replicas.contains(&me) || s.leaving.contains(&me))
                .collect();
            if stream.status == StreamStatus::Deleting {
                for shard in &local {
                    raft.drop_group(shard.group).await?;
                }
                if leads_controller {
                    controller
                        .propose(&Command::RemoveStream {
                            key: stream.key.clone(),
                            created_ms: stream.created_ms,
                        })
                        .await?;
                    tracing::info!(stream = %stream.key.name, "stream deleted");
                }
                continue;
            }
            for shard in &local {
                wanted.insert(shard.group);
                let group = match raft.group(shard.group) {
                    Some(group) => group,
                    None => {
                        if !self.starts.room_by(raft, opening_until).await {
                            deferred += 1;
                            continue;
                        }
                        // Only the shard's founders form its group; a node added later waits
                        // for the leader to bring it in (as a learner, with the data).
                        let initial_members = shard
                            .founders
                            .contains(&me)
                            .then(|| state.member_addresses(&shard.founders));
                        let group = raft
                            .open_group(
                                shard.group,
                                GroupOptions {
                                    kind: GroupKind::Shard,
                                    initial_members,
                                },
                            )
                            .await?;
                        self.starts.started(shard.group);
                        group
                    }
                };
                if group.is_leader() && !self.is_settled(&group, state.version) {
                    self.lead(&group, shard, &state).await;
                }
            }
            // The controller's leader activates a stream once the shards it can see have leaders;
            // shards placed elsewhere elect on their own nodes, and writes to them wait for that.
            if stream.status == StreamStatus::Creating && leads_controller {
                let all_led = local
                    .iter()
                    .all(|s| raft.group(s.group).is_some_and(|g| g.leader().is_some()));
                if all_led {
                    controller
                        .propose(&Command::MarkActive {
                            key: stream.key.clone(),
                            created_ms: stream.created_ms,
                        })
                        .await?;
                    tracing::info!(stream = %stream.key.name, shards = stream.shards.len(), "stream active");
                }
            }
        }
        self.deferred.store(deferred, Ordering::Relaxed);
        if deferred > 0 {
            tracing::info!(
                starting = self.starts.waiting(),
                waiting = deferred,
                "opening shard groups a batch at a time"
            );
        }
        if leads_controller {
            self.resharder.drive(&state);
            self.settle_consumers(&state).await;
            self.expire_closed_shards(&state).await?;
            self.manage_controller_members(&state).await?;
        }
        for group in raft.group_ids() {
            if !wanted.contains(&group) && !self.is_changing(group) {
                tracing::info!(group, "dropping a group no stream uses");
                raft.drop_group(group).await?;
            }
        }
        Ok(())
    }

    /// What the leader of a shard's group does: make the voters the controller's replicas (or,
    /// when this node is leaving the group, hand the leadership to a node that stays first),
    /// report a finished move, and hand the group to its preferred leader.
    async fn lead(&self, group: &GroupHandle, shard: &ShardMeta, state: &ClusterState) {
        let me = self.raft.node_id();
        if !shard.replicas.contains(&me) {
            // The staying voter that answered just now, the preferred leader first.
            let staying = shard
                .replicas
                .iter()
                .copied()
                .find(|node| group.ready_to_lead(*node));
            if let Some(to) = staying {
                if self.may_transfer(group.id()) {
                    tracing::info!(
                        group = group.id(),
                        to,
                        "leaving the group: handing its leadership over first"
                    );
                    if let Err(e) = group.transfer_leader(to).await {
                        tracing::warn!(group = group.id(), error = %e, "leader transfer failed");
                    }
                }
                return;
            }
        }
        let desired = state.member_addresses(&shard.replicas);
        if !group.is_placed(&desired) {
            // One change at a time: handing the group to another leader now would abandon it.
            self.change_voters(group.clone(), desired, Some(shard.replicas.clone()));
            return;
        }
        if !shard.leaving.is_empty() && group.is_settled(&desired) {
            settle(&self.controller, group.id(), shard.replicas.clone()).await;
        }
        if shard.leaving.is_empty() && shard.replicas.first() == Some(&me) && group.is_quiet() {
            self.remember_settled(group, state.version);
        }
        self.hand_to_preferred_leader(group, shard, state).await;
    }

    /// Whether `group` is quiet and was found with nothing to do at this state `version` and
    /// its current term.
    fn is_settled(&self, group: &GroupHandle, version: u64) -> bool {
        if !group.is_quiet() {
            return false;
        }
        let settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        settled.0 == version
            && settled
                .1
                .get(&group.id())
                .is_some_and(|term| *term == group.term())
    }

    fn remember_settled(&self, group: &GroupHandle, version: u64) {
        let mut settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        if settled.0 != version {
            *settled = (version, std::collections::HashMap::new());
        }
        settled.1.insert(group.id(), group.term());
    }

    /// Moves enhanced fan-out consumers on, as streams are: a CREATING consumer is activated, a
    /// DELETING one removed. Nothing needs building for a consumer (it reads through the shards'
    /// groups), so neither waits; clients still see CREATING and DELETING, as AWS's clients do.
    /// A step that fails is retried by the next pass and holds up nothing else.
    async fn settle_consumers(&self, state: &ClusterState) {
        let live = state
            .streams
            .values()
            .filter(|s| s.status != StreamStatus::Deleting);
        for stream in live {
            for consumer in stream.consumers.values() {
                let (key, name, created_ms) = (
                    stream.key.clone(),
                    consumer.name.clone(),
                    consumer.created_ms,
                );
                let command = match consumer.status {
                    ConsumerStatus::Active => continue,
                    ConsumerStatus::Creating => Command::ActivateConsumer {
                        key,
                        name,
                        created_ms,
                    },
                    ConsumerStatus::Deleting => Command::RemoveConsumer {
                        key,
                        name,
                        created_ms,
                    },
                };
                match self.controller.propose(&command).await {
                    Ok(_) => {
                        tracing::info!(stream = %stream.key.name, consumer = %consumer.name, was = consumer.status.as_str(), "consumer settled")
                    }
                    Err(e) => {
                        tracing::warn!(stream = %stream.key.name, consumer = %consumer.name, error = %e, "could not settle a consumer")
                    }
                }
            }
        }
    }

    /// Forgets closed shards whose records are all past retention (EXPIRED shards are not listed;
    /// their groups are dropped by the next pass on every node).
    async fn expire_closed_shards(&self, state: &ClusterState) -> Result<(), PassError> {
        let now = self.clock.now_ms();
        for stream in state.streams.values() {
            if stream.shards.iter().any(|s| stream.is_expired(s, now)) {
                self.controller
                    .propose(&Command::ExpireShards {
                        key: stream.key.clone(),
                        now_ms: now,
                    })
                    .await?;
                tracing::info!(stream = %stream.key.name, "closed shards expired");
            }
        }
        Ok(())
    }

    /// On the controller's leader: keeps the controller group's voters on nodes that are members
    /// and not draining (three, or five from five nodes on), and removes nodes that left the
    /// cluster from the group altogether.
    async fn manage_controller_members(&self, state: &ClusterState) -> Result<(), PassError> {
        let Some(group) = self.controller.group() else {
            return Ok(());
        };
        if state.nodes.is_empty() || self.is_changing(CONTROLLER_GROUP) {
            return Ok(());
        }
        let me = self.raft.node_id();
        let staying: Vec<u64> = state
            .nodes
            .iter()
            .filter(|(_, n)| !n.draining)
            .map(|(id, _)| *id)
            .collect();
        let count = controller_voter_count(staying.len());
        let current = group.voters();
        // Current voters that stay, this node first; then nodes that are up, lowest id first.
        let mut desired: Vec<u64> = current
            .iter()
            .copied()
            .filter(|id| staying.contains(id))
            .collect();
        desired.sort_by_key(|id| (*id != me, *id));
        // A node is made a voter only once it holds nearly the whole log as a learner: a node
        // that just joined (or came back wiped) would otherwise count towards majorities while it
        // holds nothing.
        let applied = group.applied_index();
        let matched = group.matched_indexes().unwrap_or_default();
        let caught_up = |id: &u64| {
            current.contains(id)
                || matched
                    .get(id)
                    .is_some_and(|&m| m + VOTER_CATCH_UP_SLACK >= applied)
        };
        let up = staying
            .iter()
            .copied()
            .filter(|id| state.nodes.get(id).is_some_and(|n| !n.is_down()))
            .filter(|id| caught_up(id));
        for id in up {
            if !desired.contains(&id) {
                desired.push(id);
            }
        }
        desired.truncate(count);
        let addresses = state.member_addresses(&desired);
        if !group.is_placed(&addresses) && !desired.is_empty() {
            tracing::info!(from = ?current, to = ?desired, "changing the controller's voters");
            self.change_voters(group, addresses, None);
            return Ok(());
        }
        // A departed node stays a learner for a few heartbeats, so that it applies the entry that
        // removed it (it then refuses clients) before the leader stops talking to it. A learner
        // whose node came back with new data goes at once, to be added again in its new life.
        let everyone: Vec<u64> = state.nodes.keys().copied().collect();
        let outlived = group.outlived(&state.member_addresses(&everyone));
        let gone: std::collections::BTreeSet<u64> = {
            let now = tokio::time::Instant::now();
            let mut departed = self.departed.lock().unwrap_or_else(|p| p.into_inner());
            departed.retain(|id, _| !state.nodes.contains_key(id));
            group
                .members()
                .into_iter()
                .filter(|id| !state.nodes.contains_key(id))
                .filter(|id| {
                    now.duration_since(*departed.entry(*id).or_insert(now)) >= DEPARTED_GRACE
                })
                .chain(outlived)
                .collect()
        };
        if !gone.is_empty() {
            group.remove_learners(&gone).await?;
        }
        Ok(())
    }

    fn is_changing(&self, group: u64) -> bool {
        self.changing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&group)
    }

    /// Starts making `group`'s voters `desired` in the background, unless they already are or a
    /// change is under way. A new member first copies the shard as a learner, which can take a
    /// while, so a pass does not wait for it.
    /// `settled`: the shard's replicas, reported to the controller once they are the voters.
    fn change_voters(
        &self,
        group: GroupHandle,
        desired: BTreeMap<u64, String>,
        settled: Option<Vec<u64>>,
    ) {
        if group.is_placed(&desired) || !self.retry.may_try(group.id(), tokio::time::Instant::now())
        {
            return;
        }
        if !self
            .changing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group.id())
        {
            return;
        }
        let changing = self.changing.clone();
        let retry = self.retry.clone();
        let controller = self.controller.clone();
        tokio::spawn(async move {
            let id = group.id();
            match tokio::time::timeout(MEMBERSHIP_CHANGE_TIMEOUT, group.change_voters(&desired))
                .await
            {
                Ok(Ok(_)) => {
                    retry.succeeded(id);
                    if let Some(replicas) = settled.filter(|_| group.is_settled(&desired)) {
                        settle(&controller, id, replicas).await;
                    }
                }
                Ok(Err(e)) => {
                    let wait = retry.failed(id, tokio::time::Instant::now());
                    tracing::warn!(group = id, error = %e, retry_in = ?wait, "membership change failed");
                }
                Err(_) => {
                    let wait = retry.failed(id, tokio::time::Instant::now());
                    tracing::warn!(group = id, retry_in = ?wait, "membership change timed out");
                }
            }
            changing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
    }

    /// Whether this node may hand `group` to another leader now (at most once per
    /// [`LEADER_TRANSFER_EVERY`]); records the attempt when it may.
    fn may_transfer(&self, group: u64) -> bool {
        let mut transfers = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        if transfers
            .get(&group)
            .is_some_and(|at| now.duration_since(*at) < LEADER_TRANSFER_EVERY)
        {
            return false;
        }
        transfers.insert(group, now);
        true
    }

    /// Leaderships spread over the nodes as the controller placed them: a leader that is not its
    /// shard's preferred leader hands the group over when that node is up and already votes in it.
    async fn hand_to_preferred_leader(
        &self,
        group: &GroupHandle,
        shard: &ShardMeta,
        state: &ClusterState,
    ) {
        let me = self.raft.node_id();
        let Some(&preferred) = shard.replicas.first() else {
            return;
        };
        let up = state.nodes.get(&preferred).is_some_and(|n| !n.is_down());
        if preferred == me || !up || !group.ready_to_lead(preferred) {
            return;
        }
        if !self.may_transfer(group.id()) {
            return;
        }
        tracing::info!(
            group = group.id(),
            to = preferred,
            "handing leadership to the preferred leader"
        );
        if let Err(e) = group.transfer_leader(preferred).await {
            tracing::warn!(group = group.id(), error = %e, "leader transfer failed");
        }
    }
}

impl Procedure for Arc<Reconciler> {
    const NAME: &'static str = "reconciler";

    async fn pass(&mut self) -> Result<(), PassError> {
        self.reconcile().await
    }
}
