//! Retention: each shard leader periodically proposes a `Trim` so that records older than the
//! stream's retention period disappear on every replica at the same log position.

use std::sync::Arc;

use crate::{Controller, StreamStatus};
use kinesin_raft::{Command, MultiRaft};
use kinesin_types::SharedClock;

use super::{PassError, Procedure, ProcedureSettings};

pub(super) struct Retention {
    raft: Arc<MultiRaft>,
    controller: Arc<Controller>,
    clock: SharedClock,
}

impl Retention {
    pub(super) fn new(
        raft: &Arc<MultiRaft>,
        controller: &Arc<Controller>,
        settings: &ProcedureSettings,
    ) -> Retention {
        Retention {
            raft: raft.clone(),
            controller: controller.clone(),
            clock: settings.clock.clone(),
        }
    }
}

impl Procedure for Retention {
    const NAME: &'static str = "retention";

    /// Failures are per shard: logged there, so one shard's never stops the others' trims.
    async fn pass(&mut self) -> Result<(), PassError> {
        trim_expired(&self.raft, &self.controller, &self.clock).await;
        Ok(())
    }
}

async fn trim_expired(raft: &MultiRaft, controller: &Controller, clock: &SharedClock) {
    let state = controller.state();
    for stream in state.streams.values() {
        if stream.status == StreamStatus::Deleting {
            continue;
        }
        let cutoff = clock.now_ms().saturating_sub(stream.retention_ms());
        for shard in &stream.shards {
            let Some(group) = raft.group(shard.group) else {
                continue;
            };
            let Some(view) = group.shard() else { continue };
            if !group.is_leader() {
                continue;
            }
            // Only log a Trim when there is something to remove: the oldest retained record.
            let oldest = match view.read(view.trim_position(), 1, usize::MAX) {
                Ok(records) => records.first().map(|r| r.arrival_ms),
                Err(e) => {
                    tracing::warn!(group = shard.group, error = %e, "retention read failed");
                    continue;
                }
            };
            if oldest.is_some_and(|arrival| arrival < cutoff) {
                match group.write(Command::Trim { before_ms: cutoff }).await {
                    Ok(response) => {
                        tracing::info!(stream = %stream.key.name, shard = %shard.id, ?response, "retention trimmed records")
                    }
                    Err(e) => {
                        tracing::warn!(stream = %stream.key.name, shard = %shard.id, error = %e, "retention trim failed")
                    }
                }
            }
        }
    }
}
