//! Makes the groups hosted on this node match the controller's state.
//!
//! The controller decides (which shards exist, where their replicas go, which streams are being
//! deleted); this loop converges: it opens groups this node should host, drops groups of deleted
//! streams, and reports progress back (stream active, stream removed) as controller commands.
//! Every step is idempotent, so a crash anywhere is repaired by the next pass.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kinesin_controller::{ClusterState, Command, Controller, StreamStatus, CONTROLLER_GROUP};
use kinesin_raft::{GroupKind, GroupOptions, MultiRaft};
use tokio::sync::watch;

/// A pass also runs this often without a state change, to retry what failed.
const RETRY_EVERY: Duration = Duration::from_secs(1);

pub(crate) async fn run(
    raft: Arc<MultiRaft>,
    controller: Arc<Controller>,
    cluster_addr: String,
    mut stopped: watch::Receiver<bool>,
) {
    let mut changes = controller.watch();
    loop {
        let state = controller.state();
        if let Err(e) = reconcile(&raft, &controller, &cluster_addr, &state).await {
            tracing::warn!(error = %e, "reconcile pass failed; retrying");
        }
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            _ = changes.changed() => {}
            _ = tokio::time::sleep(RETRY_EVERY) => {}
        }
    }
}

pub(crate) async fn reconcile(
    raft: &MultiRaft,
    controller: &Controller,
    cluster_addr: &str,
    state: &ClusterState,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let me = raft.node_id();
    let leads_controller = controller.group().is_some_and(|g| g.is_leader());
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
            // Single-node placement: every replica is this node, reachable at our address.
            let members = shard
                .replicas
                .iter()
                .map(|&node| (node, cluster_addr.to_string()))
                .collect::<BTreeMap<_, _>>();
            raft.open_group(
                shard.group,
                GroupOptions {
                    kind: GroupKind::Shard,
                    initial_members: Some(members),
                },
            )
            .await?;
        }
        if stream.status == StreamStatus::Creating && leads_controller {
            let all_led = local.len() == stream.shards.len()
                && local
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
        if !wanted.contains(&group) {
            tracing::info!(group, "dropping a group no stream uses");
            raft.drop_group(group).await?;
        }
    }
    Ok(())
}
