//! The node-wide loops that look after every group at once: liveness pings (`liveness.rs`) and
//! quiescence rounds (`quiesce.rs`). One task each per node, never one per group.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use openraft::async_runtime::WatchReceiver;

use crate::liveness::{Change, Ping, PING_EVERY};
use crate::quiesce::millis_since_origin;
use crate::registry::{GroupHandle, MultiRaft};
use crate::types::NodeId;

/// Groups asked to go quiet, or woken after a lost leader, at a time: bounded so that a node
/// with thousands of groups never floods its peers or its runtime in one go.
const AT_A_TIME: usize = 64;

/// How late, at most, a peer's lapsed support is noticed.
const NOTICED_WITHIN: Duration = Duration::from_millis(50);

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

    /// What quiescence did on this node, for `/metrics`.
    pub fn quiet_stats(&self) -> &crate::QuietStats {
        &self.quiet_stats
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
        let ping = node.liveness.ping();
        for addr in peers.values() {
            // Each on its own task: an unreachable peer's timeout never delays the others.
            let transport = node.peers().clone();
            let addr = addr.clone();
            let multi = multi.clone();
            tokio::spawn(async move {
                let sent_at = tokio::time::Instant::now();
                if let Ok(answer) = transport.ping(&addr, ping).await {
                    if let Some(node) = multi.upgrade() {
                        let change = node.liveness.answered(answer, sent_at);
                        node.on_change(change);
                    }
                }
            });
        }
    }
}

/// Withdraws support from peers silent for a second, checked far more often than pings are
/// sent: a dead leader's groups campaign within [`NOTICED_WITHIN`] of its support lapsing,
/// not up to a ping interval later (failover time is mostly this wait).
async fn withdraw_lapsed_support(multi: Weak<MultiRaft>) {
    let mut ticks = tokio::time::interval(NOTICED_WITHIN);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(node) = multi.upgrade() else { return };
        if node.stopped.load(Ordering::Acquire) {
            return;
        }
        for change in node.liveness.expire() {
            if let Change::Lost(lost) = change {
                tracing::warn!(node = lost, "peer lost: no ping for a second");
                node.quiet_stats.peers_lost.fetch_add(1, Ordering::Relaxed);
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
    let mut terms: HashMap<u64, u64> = HashMap::new();
    loop {
        ticks.tick().await;
        let Some(node) = multi.upgrade() else { return };
        if node.stopped.load(Ordering::Acquire) {
            return;
        }
        // Quiet groups need nothing here: their term cannot move without a message that wakes
        // them, and they are quiet already.
        let awake: Vec<GroupHandle> = node
            .all_groups()
            .into_iter()
            .filter(|g| !g.is_quiet())
            .collect();
        count_term_changes(&node, &awake, &mut terms);
        let asked_at_ms = millis_since_origin();
        let idle: Vec<_> = awake
            .into_iter()
            .filter_map(|g| g.quiet_point(after).map(|point| (g, point)))
            .collect();
        let peers = node.peers().clone();
        let stats = node.quiet_stats.clone();
        drop(node);
        futures::stream::iter(idle)
            .for_each_concurrent(AT_A_TIME, |(group, point)| {
                let peers = peers.clone();
                let stats = stats.clone();
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
                        stats.quiesced.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .await;
    }
}

/// Adds to the term-change counter every one of `awake` whose term moved since it was last
/// seen (a group that was quiet meanwhile keeps the term it had when it went quiet). Groups
/// dropped from this node are forgotten.
fn count_term_changes(node: &MultiRaft, awake: &[GroupHandle], terms: &mut HashMap<u64, u64>) {
    let mut changes = 0;
    for group in awake {
        let term = group.term();
        if let Some(before) = terms.insert(group.id(), term) {
            if before != term {
                changes += 1;
            }
        }
    }
    if terms.len() > node.group_count() {
        let hosted: std::collections::HashSet<u64> = node.group_ids().into_iter().collect();
        terms.retain(|id, _| hosted.contains(id));
    }
    node.quiet_stats
        .term_changes
        .fetch_add(changes, Ordering::Relaxed);
}
