//! Makes the groups hosted on this node match the controller's state.
//!
//! The controller decides (which shards exist, where their replicas go, which streams are being
//! deleted); this loop converges: it opens groups this node should host, drops groups of deleted
//! streams, and — on the controller's leader — reports progress back (cluster bootstrapped,
//! stream active, stream removed) as controller commands. Where this node leads a shard whose
//! replicas the controller moved (a dead node replaced), it changes the group's membership to
//! match. Every step is idempotent, so a crash anywhere is repaired by the next pass.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kinesin_controller::{Command, Controller, NodeInfo, StreamStatus, CONTROLLER_GROUP};
use kinesin_raft::{GroupKind, GroupOptions, MultiRaft};
use tokio::sync::watch;

/// A pass also runs this often without a state change, to retry what failed.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How often a leader may hand a group to its preferred leader: a preferred node that cannot keep
/// the leadership (too slow, flapping) must not make the group change leaders all the time.
const LEADER_TRANSFER_EVERY: Duration = Duration::from_secs(10);
/// A preferred leader must have acknowledged the current leader this recently to be handed a group.
const PREFERRED_LEADER_FRESHNESS: Duration = Duration::from_secs(1);
/// How long one membership change may take (a new replica copying the shard included) before it
/// is abandoned and retried by a later pass.
const MEMBERSHIP_CHANGE_TIMEOUT: Duration = Duration::from_secs(120);

type PassError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) struct Reconciler {
    raft: Arc<MultiRaft>,
    controller: Arc<Controller>,
    /// The cluster's initial nodes, recorded by the bootstrap command.
    initial_nodes: BTreeMap<u64, NodeInfo>,
    /// Groups whose membership change is under way here.
    changing: Arc<Mutex<HashSet<u64>>>,
    /// When this node last handed each group to its preferred leader.
    transfers: Mutex<std::collections::HashMap<u64, tokio::time::Instant>>,
}

impl Reconciler {
    pub fn new(
        raft: Arc<MultiRaft>,
        controller: Arc<Controller>,
        initial_nodes: BTreeMap<u64, NodeInfo>,
    ) -> Self {
        Reconciler {
            raft,
            controller,
            initial_nodes,
            changing: Arc::default(),
            transfers: Mutex::default(),
        }
    }

    pub async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut changes = self.controller.watch();
        loop {
            self.pass_and_log().await;
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => return,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(RETRY_EVERY) => {}
            }
        }
    }

    pub async fn pass_and_log(&self) {
        if let Err(e) = self.pass().await {
            tracing::warn!(error = %e, "reconcile pass failed; retrying");
        }
    }

    async fn pass(&self) -> Result<(), PassError> {
        let raft = &self.raft;
        let controller = &self.controller;
        let me = raft.node_id();
        let leads_controller = controller.group().is_some_and(|g| g.is_leader());
        let state = controller.state();
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
        if leads_controller {
            // Nodes beyond the controller's voters follow it as learners.
            if let Some(group) = controller.group() {
                let everyone: BTreeMap<u64, String> = state
                    .nodes
                    .iter()
                    .map(|(id, n)| (*id, n.cluster_addr.clone()))
                    .collect();
                group.add_learners(&everyone).await?;
            }
        }
        let mut wanted = HashSet::from([CONTROLLER_GROUP]);
        for stream in state.streams.values() {
            let local: Vec<_> = stream
                .shards
                .iter()
                .filter(|s| s.replicas.contains(&me))
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
                // Only the shard's founders form its group; a node added later waits for the
                // leader to bring it in (as a learner, with the data).
                let initial_members = shard
                    .founders
                    .contains(&me)
                    .then(|| state.addresses(&shard.founders).into_iter().collect());
                let group = raft
                    .open_group(
                        shard.group,
                        GroupOptions {
                            kind: GroupKind::Shard,
                            initial_members,
                        },
                    )
                    .await?;
                if group.is_leader() {
                    self.change_voters(
                        group.clone(),
                        state.addresses(&shard.replicas).into_iter().collect(),
                    );
                    self.hand_to_preferred_leader(&group, shard, &state).await;
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
        for group in raft.group_ids() {
            if !wanted.contains(&group) && !self.is_changing(group) {
                tracing::info!(group, "dropping a group no stream uses");
                raft.drop_group(group).await?;
            }
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
    fn change_voters(&self, group: kinesin_raft::GroupHandle, desired: BTreeMap<u64, String>) {
        let wanted: std::collections::BTreeSet<u64> = desired.keys().copied().collect();
        if group.voters() == wanted {
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
        tokio::spawn(async move {
            let id = group.id();
            match tokio::time::timeout(MEMBERSHIP_CHANGE_TIMEOUT, group.change_voters(&desired))
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(group = id, error = %e, "membership change failed"),
                Err(_) => tracing::warn!(group = id, "membership change timed out"),
            }
            changing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
    }

    /// Leaderships spread over the nodes as the controller placed them: a leader that is not its
    /// shard's preferred leader hands the group over when that node is up and already votes in it.
    async fn hand_to_preferred_leader(
        &self,
        group: &kinesin_raft::GroupHandle,
        shard: &kinesin_controller::ShardMeta,
        state: &kinesin_controller::ClusterState,
    ) {
        let me = self.raft.node_id();
        let Some(&preferred) = shard.replicas.first() else {
            return;
        };
        // Only to a node that answered this leader just now: handing a group to a node that has
        // just died would cost it an election.
        let answering = group
            .ack_ages()
            .and_then(|ages| ages.get(&preferred).copied().flatten())
            .is_some_and(|age| age < PREFERRED_LEADER_FRESHNESS);
        let up = state.nodes.get(&preferred).is_some_and(|n| !n.is_down());
        if preferred == me || !up || !answering || !group.voters().contains(&preferred) {
            return;
        }
        {
            let mut transfers = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
            let now = tokio::time::Instant::now();
            if transfers
                .get(&group.id())
                .is_some_and(|at| now.duration_since(*at) < LEADER_TRANSFER_EVERY)
            {
                return;
            }
            transfers.insert(group.id(), now);
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
