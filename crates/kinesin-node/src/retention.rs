//! Retention: each shard leader periodically proposes a `Trim` so that records older than the
//! stream's retention period disappear on every replica at the same log position.

use std::sync::Arc;
use std::time::Duration;

use kinesin_controller::{Controller, StreamStatus};
use kinesin_raft::{Command, MultiRaft};
use tokio::sync::watch;

use kinesin_types::SharedClock;

pub(crate) async fn run(
    raft: Arc<MultiRaft>,
    controller: Arc<Controller>,
    clock: SharedClock,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        trim_expired(&raft, &controller, &clock).await;
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(every) => {}
        }
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
