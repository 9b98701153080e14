//! The node-wide loops that look after every group at once: liveness pings (`liveness.rs`) and
//! quiescence rounds (`quiesce.rs`). One task each per node, never one per group.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use openraft::async_runtime::WatchReceiver;

use crate::liveness::{Change, Ping, PING_EVERY, SUPPORT_FOR};
use crate::quiesce::millis_since_origin;
use crate::registry::{GroupHandle, MultiRaft};
use crate::types::NodeId;
use crate::wire::WireError;
use tokio::task::JoinHandle;

/// Groups asked to go quiet, or woken after a lost leader, at a time: bounded so that a node
/// with thousands of groups never floods its peers or its runtime in one go.
const AT_A_TIME: usize = 64;

/// How late, at most, a peer's lapsed support is noticed.
const NOTICED_WITHIN: Duration = Duration::from_millis(50);
/// A check of support that runs later than this was held up by this node itself, not its peers.
const STALL_FORGIVEN_OVER: Duration = Duration::from_millis(50);

/// How often the peers to ping are gathered again from the groups' memberships.
const PEERS_EVERY_ROUNDS: u64 = 10;

impl MultiRaft {
    /// Starts this node's liveness pings and quiescence rounds; they end with [`Self::shutdown`]
    /// (or when the last handle on `self` is dropped).
    pub fn start_upkeep(self: &Arc<Self>) {
        tokio::spawn(ping_peers(Arc::downgrade(self)));
        tokio::spawn(withdraw_lapsed_support(Arc::downgrade(self)));
        if !self.quiesce_after.is_zero() {
            tokio::spawn(quiesce_idle_groups(Arc::downgrade(self)));
        }
    }

    /// This node's view of which nodes are alive.
    pub fn liveness(&self) -> &crate::Liveness {
        &self.liveness
    }

    /// The cluster protocol and build each peer last said it speaks.
    pub fn peer_versions(&self) -> &crate::PeerVersions {
        &self.versions
    }

    /// Writes committed through this node's groups, for `/metrics`.
    pub fn write_stats(&self) -> &crate::registry::WriteStats {
        &self.write_stats
    }

    /// Per peer, how many entries its replica lags behind the most in the groups this node
    /// leads (what the leader applied minus what the peer's log matches), for `/metrics`. A
    /// quiet group's voters all hold its last entry: they lag by nothing.
    pub fn replication_lag(&self) -> BTreeMap<NodeId, u64> {
        let mut lag: BTreeMap<NodeId, u64> = BTreeMap::new();
        for group in self.all_groups().into_iter().filter(|g| g.is_leader()) {
            if group.is_quiet() {
                for node in group.voters() {
                    if node != self.node_id() {
                        lag.entry(node).or_default();
                    }
                }
                continue;
            }
            let applied = group.applied_index();
            for (node, matched) in group.matched_indexes().unwrap_or_default() {
                if node != self.node_id() {
                    let behind = applied.saturating_sub(matched);
                    let worst = lag.entry(node).or_default();
                    *worst = (*worst).max(behind);
                }
            }
        }
        lag
    }

    /// How many groups this node leads.
    pub fn groups_led(&self) -> usize {
        self.all_groups().iter().filter(|g| g.is_leader()).count()
    }

    /// The controller's cluster version, as this node last read it: from then on, peers that
    /// speak an older protocol are refused.
    pub fn set_cluster_version(&self, version: u32) {
        if self.peers().set_cluster_version(version) != version {
            tracing::info!(version, "cluster version");
        }
    }

    pub fn cluster_version(&self) -> u32 {
        self.peers().cluster_version()
    }

    /// What this node's groups and its failure detector did, for `/metrics`.
    pub fn node_stats(&self) -> &crate::NodeStats {
        &self.node_stats
    }

    /// How many of this node's groups are quiet now.
    pub fn quiet_groups(&self) -> usize {
        self.all_groups().iter().filter(|g| g.is_quiet()).count()
    }

    /// A ping (or the answer to one) from a peer.
    pub(crate) fn heard_from(self: &Arc<Self>, ping: Ping) {
        let change = self.liveness.heard(ping);
        self.on_change(change);
    }

    fn on_change(self: &Arc<Self>, change: Option<Change>) {
        match change {
            Some(Change::Restarted(node)) => {
                tracing::info!(node, "peer restarted: its groups need new leaders");
                // Groups quiet here under this node's lead counted on the old process staying
                // quiet; the new one is not, so they must lead the ordinary way again.
                for group in self.all_groups() {
                    group.wake_if_led_here_with(node);
                }
                self.take_over_from(node);
            }
            Some(Change::Returned(node)) => tracing::info!(node, "peer reachable again"),
            Some(Change::Lost(_)) | None => {}
        }
    }

    /// Wakes the groups `lost` led here; in each, the chosen follower campaigns, at most
    /// [`AT_A_TIME`] at once, the most recently used first (the shards clients are writing to).
    fn take_over_from(self: &Arc<Self>, lost: NodeId) {
        let mut groups: Vec<GroupHandle> = self
            .all_groups()
            .into_iter()
            .filter(|g| g.shard().is_some() && g.voters().contains(&lost))
            .collect();
        groups.sort_by_key(|g| g.unused_for());
        let campaigns = Arc::new(tokio::sync::Semaphore::new(AT_A_TIME));
        for group in groups {
            let campaigns = campaigns.clone();
            tokio::spawn(async move { group.take_over_from(lost, &campaigns).await });
        }
    }

    /// Every peer this node should ping: the cluster's nodes as the controller knows them, and
    /// the members of every group hosted here.
    fn peer_addresses(&self) -> BTreeMap<NodeId, String> {
        let mut peers = self.all_addresses();
        // A quiet group's members are those it had when it went quiet, and a membership change
        // wakes it: only awake groups can add a peer (10,000 quiet ones cost a scan each time).
        for group in self.all_groups().into_iter().filter(|g| !g.is_quiet()) {
            let metrics = group.raft().metrics();
            let metrics = metrics.borrow_watched();
            for (node, member) in metrics.membership_config.nodes() {
                peers.entry(*node).or_insert_with(|| {
                    crate::life::split_member_address(&member.addr)
                        .0
                        .to_string()
                });
            }
        }
        peers.remove(&self.node_id());
        peers
    }
}

async fn ping_peers(multi: Weak<MultiRaft>) {
    let mut ticks = tokio::time::interval(PING_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peers = BTreeMap::new();
    for round in 0u64.. {
        ticks.tick().await;
        let Some(node) = multi.upgrade() else { return };
        if node.stopped.load(Ordering::Acquire) {
            return;
        }
        if round % PEERS_EVERY_ROUNDS == 0 {
            peers = node.peer_addresses();
        }
        node.ping_round(&peers);
    }
}

impl MultiRaft {
    /// Pings each of `peers` once, each on its own task (an unreachable peer's timeout never
    /// delays the others); the tasks.
    fn ping_round(self: &Arc<Self>, peers: &BTreeMap<NodeId, String>) -> Vec<JoinHandle<()>> {
        let ping = self.liveness.ping();
        let stopping = self.is_stopping();
        peers
            .values()
            .map(|addr| {
                let transport = self.peers().clone();
                let addr = addr.clone();
                let multi = Arc::downgrade(self);
                tokio::spawn(async move {
                    let sent_at = tokio::time::Instant::now();
                    match transport.ping(&addr, ping, stopping).await {
                        Ok(answer) => {
                            if let Some(node) = multi.upgrade() {
                                let from = answer.ping.from;
                                node.versions.heard(from, answer.version);
                                node.liveness.set_stopping(from, answer.stopping);
                                let change = node.liveness.answered(answer.ping, sent_at);
                                node.on_change(change);
                            }
                        }
                        Err(WireError::Refused(why)) => {
                            if let Some(node) = multi.upgrade() {
                                node.versions.refused(&addr, &why);
                            }
                        }
                        Err(_) => {}
                    }
                })
            })
            .collect()
    }

    /// Tells every peer now, rather than at the next ping, that this node is stopping, so that
    /// none hands it a group; waits for their answers at most [`SUPPORT_FOR`], and learns which
    /// of them are stopping too.
    pub(crate) async fn announce_stopping(self: &Arc<Self>) {
        let pings = self.ping_round(&self.peer_addresses());
        let _ = tokio::time::timeout(SUPPORT_FOR, futures::future::join_all(pings)).await;
    }
}

/// Withdraws support from peers silent for [`SUPPORT_FOR`], checked far more often than pings are
/// sent: a dead leader's groups campaign within [`NOTICED_WITHIN`] of its support lapsing,
/// not up to a ping interval later (failover time is mostly this wait).
async fn withdraw_lapsed_support(multi: Weak<MultiRaft>) {
    let mut ticks = tokio::time::interval(NOTICED_WITHIN);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = ticks.tick().await;
        let Some(node) = multi.upgrade() else { return };
        if node.stopped.load(Ordering::Acquire) {
            return;
        }
        // This loop ran late by as long as this node's runtime could not run it: the same
        // wait the handling of its peers' pings had (`Liveness::forgive`).
        let late = tokio::time::Instant::now().saturating_duration_since(due);
        if late > STALL_FORGIVEN_OVER {
            node.liveness.forgive(late);
        }
        for change in node.liveness.expire() {
            if let Change::Lost(lost) = change {
                tracing::warn!(
                    node = lost,
                    silent_ms = SUPPORT_FOR.as_millis() as u64,
                    "peer lost: no ping within its support window"
                );
                node.node_stats.peers_lost.fetch_add(1, Ordering::Relaxed);
                node.take_over_from(lost);
            }
        }
    }
}

async fn quiesce_idle_groups(multi: Weak<MultiRaft>) {
    let Some(after) = multi.upgrade().map(|m| m.quiesce_after) else {
        return;
    };
    let mut ticks = tokio::time::interval((after / 2).max(Duration::from_millis(50)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(node) = multi.upgrade() else { return };
        if node.stopped.load(Ordering::Acquire) {
            return;
        }
        let asked_at_ms = millis_since_origin();
        let idle: Vec<_> = node
            .all_groups()
            .into_iter()
            .filter(|g| !g.is_quiet())
            .filter_map(|g| g.quiet_point(after).map(|point| (g, point)))
            .collect();
        let peers = node.peers().clone();
        let node_stats = node.node_stats.clone();
        drop(node);
        futures::stream::iter(idle)
            .for_each_concurrent(AT_A_TIME, |(group, point)| {
                let peers = peers.clone();
                let node_stats = node_stats.clone();
                async move {
                    let members = group.other_members();
                    let agreed = futures::future::join_all(
                        members
                            .iter()
                            .map(|member| peers.quiesce(group.id(), member, point)),
                    )
                    .await;
                    if agreed.into_iter().all(|yes| yes)
                        && group.quiesce_as_leader(point, asked_at_ms)
                    {
                        node_stats.quiesced.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .await;
    }
}
