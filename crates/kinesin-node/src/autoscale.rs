//! On-demand capacity: the controller's leader measures the write throughput of every shard of
//! the ON_DEMAND streams and splits hot shards and merges cold neighbours, through the same
//! resharding procedure as SplitShard and MergeShards (so writes continue throughout).
//!
//! Throughput is the difference of the records and bytes a replica applied between two checks.
//! One change per stream per check, so each one is measured before the next is decided.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kinesin_controller::{
    ClusterState, Command, Controller, ShardMeta, StreamMeta, StreamMode, StreamStatus,
};
use kinesin_raft::MultiRaft;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::now_ms;
use crate::config::OnDemandScaling;

/// AWS's on-demand streams never have fewer shards than this.
const MIN_ON_DEMAND_SHARDS: usize = 4;

/// One reading of a shard's applied totals.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    records: u64,
    bytes: u64,
}

/// Records and bytes per second.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rate {
    records: f64,
    bytes: f64,
}

pub(crate) struct Autoscaler {
    pub raft: Arc<MultiRaft>,
    pub controller: Arc<Controller>,
    pub scaling: OnDemandScaling,
    pub replication_factor: u32,
    pub shard_limit: u32,
}

impl Autoscaler {
    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut samples: HashMap<u64, Sample> = HashMap::new();
        loop {
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => return,
                _ = tokio::time::sleep(Duration::from_secs(self.scaling.check_secs)) => {}
            }
            if !self.controller.group().is_some_and(|g| g.is_leader()) {
                samples.clear();
                continue;
            }
            let state = self.controller.state();
            for stream in state.streams.values().filter(|s| {
                s.mode == StreamMode::OnDemand
                    && s.status == StreamStatus::Active
                    && s.reshard.is_none()
            }) {
                if let Err(e) = self.check(&state, stream, &mut samples).await {
                    tracing::warn!(stream = %stream.key.name, error = %e, "on-demand scaling check failed");
                }
            }
        }
    }

    async fn check(
        &self,
        state: &ClusterState,
        stream: &StreamMeta,
        samples: &mut HashMap<u64, Sample>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut rates = Vec::new();
        for shard in stream.open_shards() {
            let bounds = self
                .raft
                .shard_bounds(shard.group, &state.addresses(&shard.replicas))
                .await?;
            let now = Sample {
                at: Instant::now(),
                records: bounds.written_records,
                bytes: bounds.written_bytes,
            };
            if let Some(before) = samples.insert(shard.group, now) {
                rates.push((shard, rate(before, now)));
            }
        }
        // Decide only once every open shard has been measured over a whole interval.
        if rates.len() != stream.open_shards().count() {
            return Ok(());
        }
        let Some(command) = decide(stream, &rates, &self.scaling) else {
            return Ok(());
        };
        let command = match command {
            Decision::Split { shard, at } => Command::SplitShard {
                key: stream.key.clone(),
                shard,
                new_starting_hash_key: at,
                now_ms: now_ms(),
                shard_limit: self.shard_limit,
                replication_factor: self.replication_factor,
                on_demand: true,
            },
            Decision::Merge { shard, adjacent } => Command::MergeShards {
                key: stream.key.clone(),
                shard,
                adjacent,
                now_ms: now_ms(),
                replication_factor: self.replication_factor,
                on_demand: true,
            },
        };
        tracing::info!(stream = %stream.key.name, ?command, "on-demand scaling");
        self.controller.propose(&command).await?;
        Ok(())
    }
}

fn rate(before: Sample, now: Sample) -> Rate {
    let secs = now.at.duration_since(before.at).as_secs_f64().max(0.001);
    Rate {
        // A different replica may have answered (its totals start elsewhere): never negative.
        records: now.records.saturating_sub(before.records) as f64 / secs,
        bytes: now.bytes.saturating_sub(before.bytes) as f64 / secs,
    }
}

#[derive(Debug, PartialEq)]
enum Decision {
    Split {
        shard: kinesin_types::ShardId,
        at: u128,
    },
    Merge {
        shard: kinesin_types::ShardId,
        adjacent: kinesin_types::ShardId,
    },
}

/// The hottest shard over the split thresholds is split in the middle of its range; otherwise
/// the first adjacent pair both under the merge thresholds is merged, while more than
/// [`MIN_ON_DEMAND_SHARDS`] are open.
fn decide(
    stream: &StreamMeta,
    rates: &[(&ShardMeta, Rate)],
    scaling: &OnDemandScaling,
) -> Option<Decision> {
    let load = |r: &Rate| {
        (r.records / scaling.split_records as f64).max(r.bytes / scaling.split_bytes as f64)
    };
    let hottest = rates
        .iter()
        .filter(|(shard, _)| shard.hash_range.end - shard.hash_range.start >= 2)
        .max_by(|a, b| load(&a.1).total_cmp(&load(&b.1)));
    if let Some((shard, rate)) = hottest {
        if load(rate) > 1.0 {
            let range = shard.hash_range;
            return Some(Decision::Split {
                shard: shard.id,
                at: range.start + (range.end - range.start) / 2 + 1,
            });
        }
    }
    if stream.open_shards().count() <= MIN_ON_DEMAND_SHARDS {
        return None;
    }
    let cold =
        |r: &Rate| r.records < scaling.merge_records as f64 && r.bytes < scaling.merge_bytes as f64;
    let mut sorted: Vec<&(&ShardMeta, Rate)> = rates.iter().collect();
    sorted.sort_by_key(|(shard, _)| shard.hash_range.start);
    sorted.windows(2).find_map(|pair| {
        let ((a, ra), (b, rb)) = (pair[0], pair[1]);
        (cold(ra) && cold(rb) && a.hash_range.is_adjacent_to(&b.hash_range)).then_some(
            Decision::Merge {
                shard: a.id,
                adjacent: b.id,
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinesin_types::{HashRange, ShardId};

    fn stream(count: u32) -> StreamMeta {
        let shards = HashRange::split_evenly(count)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, hash_range)| ShardMeta {
                id: ShardId(i as u32),
                group: i as u64 + 1,
                hash_range,
                parent: None,
                adjacent_parent: None,
                sequence_epoch: 1,
                created_ms: 0,
                closed_ms: None,
                ending_position: None,
                replicas: vec![1],
                founders: vec![1],
                leaving: vec![],
            })
            .collect();
        StreamMeta {
            key: kinesin_controller::StreamKey {
                account: "0".into(),
                region: "r".into(),
                name: "s".into(),
            },
            arn: String::new(),
            status: StreamStatus::Active,
            created_ms: 0,
            retention_hours: 24,
            mode: StreamMode::OnDemand,
            encryption: kinesin_controller::EncryptionType::None,
            shards,
            tags: Default::default(),
            enhanced_metrics: vec![],
            max_record_size_kib: 1024,
            next_shard_index: count,
            policy: None,
            reshard: None,
            mode_changes_ms: vec![],
        }
    }

    const SCALING: OnDemandScaling = OnDemandScaling {
        split_records: 1000,
        split_bytes: 1 << 20,
        merge_records: 100,
        merge_bytes: 100 << 10,
        check_secs: 1,
    };

    fn rates<'a>(stream: &'a StreamMeta, records: &[f64]) -> Vec<(&'a ShardMeta, Rate)> {
        stream
            .shards
            .iter()
            .zip(records)
            .map(|(s, &records)| {
                (
                    s,
                    Rate {
                        records,
                        bytes: records * 100.0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_hottest_shard_over_the_threshold_splits_in_the_middle() {
        let s = stream(4);
        let decision = decide(&s, &rates(&s, &[10.0, 1500.0, 2500.0, 50.0]), &SCALING);
        let third = s.shards[2].hash_range;
        assert_eq!(
            decision,
            Some(Decision::Split {
                shard: ShardId(2),
                at: third.start + (third.end - third.start) / 2 + 1
            })
        );
    }

    #[test]
    fn cold_neighbours_merge_but_never_below_four_shards() {
        let s = stream(4);
        assert_eq!(decide(&s, &rates(&s, &[1.0; 4]), &SCALING), None);
        let s = stream(6);
        assert_eq!(
            decide(
                &s,
                &rates(&s, &[500.0, 5.0, 5.0, 5.0, 500.0, 500.0]),
                &SCALING
            ),
            Some(Decision::Merge {
                shard: ShardId(1),
                adjacent: ShardId(2)
            })
        );
        assert_eq!(
            decide(&s, &rates(&s, &[500.0; 6]), &SCALING),
            None,
            "warm shards stay"
        );
    }
}
