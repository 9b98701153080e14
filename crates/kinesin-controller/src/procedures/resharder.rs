//! Carries out resharding procedures on the controller's leader.
//!
//! The procedure itself lives in the controller state (see `crate::Reshard`): which
//! parents a round closes, which children it opens, which parents are sealed so far. This task
//! does the steps that need the shard groups, in an order that keeps writes flowing:
//!
//! 1. wait until every child group has a leader a majority follows, so children take writes the
//!    moment they are activated;
//! 2. seal each parent (a `Seal` entry in its own log: every later write to it is refused as
//!    `Sealed`, which the gateways hold and retry on the children);
//! 3. report each seal to the controller; the last report activates the children.
//!
//! Every step is idempotent (a repeated seal answers with the first one's position), so a new
//! controller leader, or a retry after any failure, simply runs the round again.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{ClusterState, Command, Controller, Round, StreamKey, StreamStatus};
use futures::future::try_join_all;
use kinesin_raft::{Command as RaftCommand, MultiRaft, Response};

use kinesin_types::SharedClock;

/// How long a round waits for its children's groups to elect leaders before trying again.
const CHILDREN_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one seal may take (a parent electing a new leader included).
const SEAL_TIMEOUT: Duration = Duration::from_secs(10);

type StepError = Box<dyn std::error::Error + Send + Sync>;

/// Fault injection for tests: stops resharding at its most delicate point.
#[derive(Debug, Default)]
pub struct ReshardFaults {
    /// Seal parents but do not report the seals (the children are then not activated), as if
    /// the controller's leader died right after sealing.
    pub hold_after_seal: AtomicBool,
}

pub(crate) struct Resharder {
    raft: Arc<MultiRaft>,
    controller: Arc<Controller>,
    faults: Arc<ReshardFaults>,
    clock: SharedClock,
    /// Streams whose round is being carried out here.
    running: Mutex<HashSet<StreamKey>>,
}

impl Resharder {
    pub fn new(
        raft: Arc<MultiRaft>,
        controller: Arc<Controller>,
        faults: Arc<ReshardFaults>,
        clock: SharedClock,
    ) -> Resharder {
        Resharder {
            raft,
            controller,
            faults,
            clock,
            running: Mutex::default(),
        }
    }

    /// Starts carrying out every round under way in `state` that is not already being carried
    /// out here. Called by the reconciler on the controller's leader.
    pub fn drive(self: &Arc<Self>, state: &ClusterState) {
        let live = state
            .streams
            .values()
            .filter(|s| s.status != StreamStatus::Deleting);
        for stream in live {
            let Some(reshard) = &stream.reshard else {
                continue;
            };
            if !self.lock().insert(stream.key.clone()) {
                continue;
            }
            let this = self.clone();
            let key = stream.key.clone();
            let round = reshard.round.clone();
            let started_ms = reshard.started_ms;
            tokio::spawn(async move {
                match this.carry_out(&key, &round).await {
                    Ok(()) => tracing::info!(
                        stream = %key.name,
                        parents = round.parents.len(),
                        children = round.children.len(),
                        elapsed_ms = this.clock.now_ms().saturating_sub(started_ms),
                        "resharding round done"
                    ),
                    Err(e) => {
                        tracing::warn!(stream = %key.name, error = %e, "resharding round failed; retrying")
                    }
                }
                this.lock().remove(&key);
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<StreamKey>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn carry_out(&self, key: &StreamKey, round: &Round) -> Result<(), StepError> {
        let state = self.controller.state();
        let children = round.children.iter().map(|child| {
            let replicas = state.addresses(&child.replicas);
            async move {
                self.raft
                    .confirm_leader(child.group, &replicas, CHILDREN_READY_TIMEOUT)
                    .await
            }
        });
        try_join_all(children).await?;
        tracing::info!(stream = %key.name, children = round.children.len(), "children lead; sealing the parents");
        let seals = round
            .unsealed()
            .map(|parent| self.seal(&state, key, parent.shard, parent.group));
        try_join_all(seals).await?;
        Ok(())
    }

    async fn seal(
        &self,
        state: &ClusterState,
        key: &StreamKey,
        shard: kinesin_types::ShardId,
        group: u64,
    ) -> Result<(), StepError> {
        let replicas = state
            .stream(key)
            .and_then(|s| s.shard(shard))
            .map(|s| state.addresses(&s.replicas))
            .unwrap_or_default();
        let sealed_at = match self
            .raft
            .propose(group, &RaftCommand::Seal, &replicas, SEAL_TIMEOUT)
            .await?
        {
            Response::Sealed { sealed_at } => sealed_at,
            other => return Err(format!("group {group} answered a seal with {other:?}").into()),
        };
        tracing::info!(stream = %key.name, %shard, sealed_at, "shard sealed");
        if self.faults.hold_after_seal.load(Ordering::Acquire) {
            return Err("test fault: the seal is not reported".into());
        }
        self.controller
            .propose(&Command::ShardSealed {
                key: key.clone(),
                shard,
                sealed_at,
                now_ms: self.clock.now_ms(),
            })
            .await?;
        Ok(())
    }
}
