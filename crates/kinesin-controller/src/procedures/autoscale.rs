//! On-demand capacity: the controller's leader measures the write throughput of every shard of
//! the ON_DEMAND streams and splits hot shards and merges cold neighbours, through the same
//! resharding procedure as SplitShard and MergeShards (so writes continue throughout).
//!
//! Throughput is the difference of the records and bytes a replica applied between two checks.
//! One change per stream per check, so each one is measured before the next is decided.
//!
//! A stream's warm throughput (UpdateStreamWarmThroughput, while its account's commitment is in
//! force) is a floor under its open shards, at AWS's 1 MiB/s per shard: below it the widest shard
//! is split whatever the load, and cold shards do not merge through it.

use std::collections::HashMap;
use std::sync::Arc;

use super::{PassError, Procedure, ProcedureSettings};
use crate::{ClusterState, Command, Controller, ShardMeta, StreamMeta, StreamMode, StreamStatus};
use kinesin_raft::MultiRaft;
use tokio::time::Instant;

use kinesin_types::SharedClock;

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

/// When the cluster splits and merges the shards of ON_DEMAND streams (per second, per shard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnDemandScaling {
    pub split_records: u64,
    pub split_bytes: u64,
    pub merge_records: u64,
    pub merge_bytes: u64,
    pub check_secs: u64,
}

pub(super) struct Autoscaler {
    raft: Arc<MultiRaft>,
    controller: Arc<Controller>,
    scaling: OnDemandScaling,
    replication_factor: u32,
    shard_limit: u32,
    clock: SharedClock,
    /// The last sample of each shard's applied counts, by group.
    samples: HashMap<u64, Sample>,
}

impl Procedure for Autoscaler {
    const NAME: &'static str = "on-demand scaling";

    /// Failures are per stream: logged there, so one stream's never stops the others' checks.
    async fn pass(&mut self) -> Result<(), PassError> {
        if !self.controller.group().is_some_and(|g| g.is_leader()) {
            self.samples.clear();
            return Ok(());
        }
        let state = self.controller.state();
        for stream in state.streams.values().filter(|s| {
            s.mode == StreamMode::OnDemand
                && s.status == StreamStatus::Active
                && s.reshard.is_none()
        }) {
            if let Err(e) = self.check(&state, stream).await {
                tracing::warn!(stream = %stream.key.name, error = %e, "on-demand scaling check failed");
            }
        }
        Ok(())
    }
}

impl Autoscaler {
    pub(super) fn new(
        raft: &Arc<MultiRaft>,
        controller: &Arc<Controller>,
        settings: &ProcedureSettings,
    ) -> Autoscaler {
        Autoscaler {
            raft: raft.clone(),
            controller: controller.clone(),
            scaling: settings.on_demand.clone(),
            replication_factor: settings.replication_factor,
            shard_limit: settings.shard_limit,
            clock: settings.clock.clone(),
            samples: HashMap::new(),
        }
    }

    async fn check(&mut self, state: &ClusterState, stream: &StreamMeta) -> Result<(), PassError> {
        let floor = shard_floor(state, stream, self.clock.now_ms());
        if let Some(decision) = warm_up(stream, floor) {
            return self.carry_out(stream, decision).await;
        }
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
            if let Some(before) = self.samples.insert(shard.group, now) {
                rates.push((shard, rate(before, now)));
            }
        }
        // Decide only once every open shard has been measured over a whole interval.
        if rates.len() != stream.open_shards().count() {
            return Ok(());
        }
        match decide(stream, &rates, &self.scaling, floor) {
            Some(decision) => self.carry_out(stream, decision).await,
            None => Ok(()),
        }
    }

    async fn carry_out(&self, stream: &StreamMeta, decision: Decision) -> Result<(), PassError> {
        let command = match decision {
            Decision::Split { shard, at } => Command::SplitShard {
                key: stream.key.clone(),
                shard,
                new_starting_hash_key: at,
                now_ms: self.clock.now_ms(),
                shard_limit: self.shard_limit,
                replication_factor: self.replication_factor,
                on_demand: true,
            },
            Decision::Merge { shard, adjacent } => Command::MergeShards {
                key: stream.key.clone(),
                shard,
                adjacent,
                now_ms: self.clock.now_ms(),
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

/// The fewest open shards the stream keeps: AWS's minimum, or more for its warm throughput.
fn shard_floor(state: &ClusterState, stream: &StreamMeta, now_ms: u64) -> usize {
    let warm = if state.committed_at(&stream.key, now_ms) {
        stream.warm_shard_floor()
    } else {
        0
    };
    warm.max(MIN_ON_DEMAND_SHARDS)
}

fn split_in_the_middle(shard: &ShardMeta) -> Decision {
    let range = shard.hash_range;
    Decision::Split {
        shard: shard.id,
        at: range.start + (range.end - range.start) / 2 + 1,
    }
}

/// Below its floor, the stream's widest shard splits (the first of the widest: deterministic).
fn warm_up(stream: &StreamMeta, floor: usize) -> Option<Decision> {
    if stream.open_shards().count() >= floor {
        return None;
    }
    let width = |s: &&ShardMeta| s.hash_range.end - s.hash_range.start;
    let widest = stream
        .open_shards()
        .filter(|s| width(s) >= 2)
        .max_by(|a, b| {
            width(a)
                .cmp(&width(b))
                .then(b.hash_range.start.cmp(&a.hash_range.start))
        })?;
    Some(split_in_the_middle(widest))
}

/// The hottest shard over the split thresholds is split in the middle of its range; otherwise
/// the first adjacent pair both under the merge thresholds is merged, while more than `floor`
/// shards are open.
fn decide(
    stream: &StreamMeta,
    rates: &[(&ShardMeta, Rate)],
    scaling: &OnDemandScaling,
    floor: usize,
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
            return Some(split_in_the_middle(shard));
        }
    }
    if stream.open_shards().count() <= floor {
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
                wanted_replicas: 1,
            })
            .collect();
        StreamMeta {
            mode: StreamMode::OnDemand,
            shards,
            next_shard_index: count,
            ..StreamMeta::new(
                crate::StreamKey {
                    account: "0".into(),
                    region: "r".into(),
                    name: "s".into(),
                },
                String::new(),
                0,
            )
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
        let decision = decide(&s, &rates(&s, &[10.0, 1500.0, 2500.0, 50.0]), &SCALING, 4);
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
        assert_eq!(decide(&s, &rates(&s, &[1.0; 4]), &SCALING, 4), None);
        let s = stream(6);
        assert_eq!(
            decide(
                &s,
                &rates(&s, &[500.0, 5.0, 5.0, 5.0, 500.0, 500.0]),
                &SCALING,
                4
            ),
            Some(Decision::Merge {
                shard: ShardId(1),
                adjacent: ShardId(2)
            })
        );
        assert_eq!(
            decide(&s, &rates(&s, &[500.0; 6]), &SCALING, 4),
            None,
            "warm shards stay"
        );
    }

    #[test]
    fn warm_throughput_keeps_shards_open_whatever_the_load() {
        let s = stream(6);
        let cold = rates(&s, &[1.0; 6]);
        assert!(
            decide(&s, &cold, &SCALING, 4).is_some(),
            "cold shards merge"
        );
        assert_eq!(
            decide(&s, &cold, &SCALING, 6),
            None,
            "but not through the warm floor"
        );
        assert_eq!(warm_up(&s, 6), None);
        // Below the floor the widest shard splits; the widest here is the last (it takes the
        // remainder of the hash space).
        let widest = s
            .shards
            .iter()
            .max_by_key(|sh| sh.hash_range.end - sh.hash_range.start)
            .unwrap();
        assert_eq!(warm_up(&s, 7), Some(split_in_the_middle(widest)));
    }

    #[test]
    fn the_warm_floor_counts_only_while_the_account_is_committed() {
        let mut state = ClusterState::default();
        let mut s = stream(4);
        s.warm_throughput_mibps = Some(9);
        assert_eq!(shard_floor(&state, &s, 1_000), MIN_ON_DEMAND_SHARDS);
        let settings = state.accounts.entry(crate::AccountKey {
            account: s.key.account.clone(),
            region: s.key.region.clone(),
        });
        settings.or_default().commitment = Some(crate::Commitment {
            started_ms: 0,
            earliest_end_ms: 10,
            ends_ms: None,
        });
        assert_eq!(shard_floor(&state, &s, 1_000), 9);
        s.warm_throughput_mibps = Some(2);
        assert_eq!(shard_floor(&state, &s, 1_000), MIN_ON_DEMAND_SHARDS);
    }
}
