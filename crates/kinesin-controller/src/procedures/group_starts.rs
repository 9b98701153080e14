//! How many shard groups a node starts at once.
//!
//! A CreateStream of a thousand shards asks every node to open a thousand groups; opened all at
//! once, each writes its membership, times out, votes and appends its first entry at about the
//! same moment, and the node's disk and both cores go to elections for seconds, while the
//! controller group waits behind them (a CreateStream answered "unknown", DescribeStreamSummary
//! "cannot read linearizably now"). The reconciler keeps at most [`STARTING_AT_ONCE`] groups
//! that have not elected yet, opening the next as earlier ones elect; what it could not open
//! within a pass's share of time waits for the next pass.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kinesin_raft::MultiRaft;
use tokio::time::Instant;

/// Groups a node may have opened and still be waiting on for a leader.
const STARTING_AT_ONCE: usize = 128;
/// How long a started group holds its place: one that cannot elect (its other founders are down)
/// must not stop the node from opening the rest.
const START_PATIENCE: Duration = Duration::from_secs(10);

/// The groups this node opened that have not elected yet, with when each was opened.
#[derive(Default)]
pub(super) struct GroupStarts {
    starting: Mutex<HashMap<u64, Instant>>,
}

impl GroupStarts {
    /// Whether another group may be opened now; forgets the groups that have a leader or waited
    /// out their patience.
    pub fn may_start(&self, raft: &MultiRaft) -> bool {
        let mut starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        if starting.len() < STARTING_AT_ONCE {
            return true;
        }
        let now = Instant::now();
        starting.retain(|group, opened| {
            now.duration_since(*opened) < START_PATIENCE
                && raft.group(*group).is_some_and(|g| g.leader().is_none())
        });
        starting.len() < STARTING_AT_ONCE
    }

    /// Waits until another group may be opened — the oldest starting group elected or ran out
    /// of patience — but not past `deadline`; whether one may.
    pub async fn room_by(&self, raft: &MultiRaft, deadline: Instant) -> bool {
        loop {
            if self.may_start(raft) {
                return true;
            }
            let oldest = {
                let starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
                starting
                    .iter()
                    .min_by_key(|(_, opened)| **opened)
                    .map(|(group, opened)| (*group, *opened))
            };
            let Some((group, opened)) = oldest else {
                return true;
            };
            let until = (opened + START_PATIENCE).min(deadline);
            if let Some(handle) = raft.group(group) {
                let left = until.saturating_duration_since(Instant::now());
                let _ = handle.wait_for_leader(left).await;
            }
            if Instant::now() >= deadline {
                return self.may_start(raft);
            }
        }
    }

    pub fn started(&self, group: u64) {
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group, Instant::now());
    }

    /// How many groups are waiting for a leader (for the pass's log line).
    pub fn waiting(&self) -> usize {
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}
