//! The controller's reconciler as far as a shard group goes (`kinesin-controller`'s
//! `procedures/reconciler.rs`, which the simulation cannot link): on every node, the replica that
//! leads a group makes its voters the placement, hands the group over first when the placement
//! left it out, reports a finished move, and hands the group to its preferred leader. Changes run
//! in the background, one per node and group at a time, as each node's reconciler runs them, so
//! two nodes that both think they lead may each be changing the group.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kinesin_raft::{GroupHandle, NodeId};

use crate::cluster::Cluster;

/// How often each node's reconciler passes over its groups.
const PASS_EVERY: Duration = Duration::from_millis(200);
/// How long one membership change may take before a later pass tries again.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a node may hand one group to another leader.
const TRANSFER_EVERY: Duration = Duration::from_secs(2);
#[derive(Default)]
pub struct Reconciler {
    /// (node, group): a change under way there.
    changing: Mutex<BTreeSet<(NodeId, u64)>>,
    /// (node, group) → when that node last handed the group over.
    transfers: Mutex<BTreeMap<(NodeId, u64), tokio::time::Instant>>,
}

impl Reconciler {
    /// Passes until aborted.
    pub async fn run(self: Arc<Self>, cluster: Arc<Cluster>) {
        loop {
            for group in cluster.groups() {
                for node in cluster.replicas(group) {
                    cluster.open_placed(group, node).await;
                }
                for (node, handle) in cluster.handles(group) {
                    if handle.is_leader() {
                        self.lead(&cluster, node, &handle).await;
                    }
                }
            }
            tokio::time::sleep(PASS_EVERY).await;
        }
    }

    /// Whether every group's voters are its placement and no node still hosts a replica that
    /// moved away.
    pub fn settled(cluster: &Cluster) -> bool {
        cluster
            .groups()
            .into_iter()
            .all(|group| cluster.leaving(group).is_empty() && Self::placed(cluster, group))
    }

    /// Whether `group`'s leader has the placement as its voters, each in its node's current life,
    /// in a uniform membership that has committed.
    pub fn placed(cluster: &Cluster, group: u64) -> bool {
        let desired = cluster.member_addresses(&cluster.replicas(group));
        cluster
            .leader(group)
            .is_some_and(|h| h.is_settled(&desired))
    }

    fn may_transfer(&self, node: NodeId, group: u64) -> bool {
        let mut transfers = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        if transfers
            .get(&(node, group))
            .is_some_and(|at| now.duration_since(*at) < TRANSFER_EVERY)
        {
            return false;
        }
        transfers.insert((node, group), now);
        true
    }

    async fn lead(self: &Arc<Self>, cluster: &Arc<Cluster>, me: NodeId, group: &GroupHandle) {
        let id = group.id();
        let placement = cluster.replicas(id);
        if !placement.contains(&me) {
            let staying = placement.iter().copied().find(|n| group.ready_to_lead(*n));
            if let Some(to) = staying {
                if self.may_transfer(me, id) {
                    cluster
                        .trace
                        .event(format_args!("g{id}@n{me}: leaving, hands over to n{to}"));
                    let _ = group.transfer_leader(to).await;
                }
            }
            return;
        }
        if !group.is_placed(&cluster.member_addresses(&placement)) {
            self.change(cluster, me, group.clone(), placement);
            return;
        }
        if group.is_settled(&cluster.member_addresses(&placement)) {
            cluster.settle(id, &placement).await;
        }
        let preferred = placement.first().copied();
        if let Some(to) = preferred.filter(|to| *to != me && group.ready_to_lead(*to)) {
            if self.may_transfer(me, id) {
                cluster
                    .trace
                    .event(format_args!("g{id}@n{me}: hands over to preferred n{to}"));
                let _ = group.transfer_leader(to).await;
            }
        }
    }

    fn change(
        self: &Arc<Self>,
        cluster: &Arc<Cluster>,
        me: NodeId,
        group: GroupHandle,
        desired: BTreeSet<NodeId>,
    ) {
        let id = group.id();
        if !self
            .changing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((me, id))
        {
            return;
        }
        let this = self.clone();
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let voters = cluster.member_addresses(&desired);
            let outcome = tokio::time::timeout(CHANGE_TIMEOUT, group.change_voters(&voters)).await;
            let said = match outcome {
                Ok(Ok(_)) => {
                    if group.is_settled(&voters) {
                        cluster.settle(id, &desired).await;
                    }
                    "done".to_string()
                }
                Ok(Err(e)) => format!("failed: {e}"),
                Err(_) => "timed out".to_string(),
            };
            cluster
                .trace
                .event(format_args!("g{id}@n{me}: voters → {desired:?} {said}"));
            this.changing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(me, id));
        });
    }
}
