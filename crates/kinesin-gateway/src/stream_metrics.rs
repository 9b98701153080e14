//! CloudWatch's Kinesis metrics, under AWS's names and units, per stream and, for the metrics a
//! stream's enhanced monitoring turns on, per shard: what this node's gateway served. A cluster's
//! figure is the sum over its nodes (`sum by (stream)` in Prometheus); gauges are this node's
//! latest. On `/metrics` an AWS name becomes `kinesis_` + the name with `.` as `_` (counters end
//! in `_total`, latencies are summaries in milliseconds); shard series are `kinesis_shard_…`.
//!
//! Counting is a few relaxed atomic adds per request; the map lookup takes a read lock.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kinesin_controller::{ClusterState, StreamKey, StreamMeta};
use kinesin_types::ShardId;

/// Stream-level counters, in the order of [`COUNTERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    IncomingBytes,
    IncomingRecords,
    PutRecordBytes,
    PutRecordSuccess,
    PutRecordsBytes,
    PutRecordsRecords,
    PutRecordsSuccess,
    PutRecordsFailedRecords,
    PutRecordsThrottledRecords,
    PutRecordsTotalRecords,
    GetRecordsBytes,
    GetRecordsRecords,
    GetRecordsSuccess,
    ReadProvisionedThroughputExceeded,
    WriteProvisionedThroughputExceeded,
    SubscribeToShardRateExceeded,
    SubscribeToShardEventBytes,
    SubscribeToShardEventRecords,
    SubscribeToShardEventSuccess,
}

/// AWS's name and what it counts, for every [`Counter`] in order.
const COUNTERS: [(Counter, &str, &str); 19] = [
    (Counter::IncomingBytes, "IncomingBytes", "Bytes (data and partition keys) of records put successfully."),
    (Counter::IncomingRecords, "IncomingRecords", "Records put successfully."),
    (Counter::PutRecordBytes, "PutRecord.Bytes", "Bytes put successfully with PutRecord."),
    (Counter::PutRecordSuccess, "PutRecord.Success", "Successful PutRecord calls."),
    (Counter::PutRecordsBytes, "PutRecords.Bytes", "Bytes put successfully with PutRecords."),
    (Counter::PutRecordsRecords, "PutRecords.Records", "Records PutRecords stored."),
    (Counter::PutRecordsSuccess, "PutRecords.Success", "PutRecords calls that stored at least one record."),
    (Counter::PutRecordsFailedRecords, "PutRecords.FailedRecords", "Records PutRecords failed for internal errors."),
    (Counter::PutRecordsThrottledRecords, "PutRecords.ThrottledRecords", "Records PutRecords refused for their shard's write limits."),
    (Counter::PutRecordsTotalRecords, "PutRecords.TotalRecords", "Records sent in PutRecords calls."),
    (Counter::GetRecordsBytes, "GetRecords.Bytes", "Bytes (data and partition keys) GetRecords returned."),
    (Counter::GetRecordsRecords, "GetRecords.Records", "Records GetRecords returned."),
    (Counter::GetRecordsSuccess, "GetRecords.Success", "Successful GetRecords calls."),
    (Counter::ReadProvisionedThroughputExceeded, "ReadProvisionedThroughputExceeded", "GetRecords calls refused for their shard's read limits."),
    (Counter::WriteProvisionedThroughputExceeded, "WriteProvisionedThroughputExceeded", "Records refused for their shard's write limits."),
    (Counter::SubscribeToShardRateExceeded, "SubscribeToShard.RateExceeded", "SubscribeToShard calls refused: the consumer already subscribed to the shard within 5 seconds."),
    (Counter::SubscribeToShardEventBytes, "SubscribeToShardEvent.Bytes", "Bytes pushed to SubscribeToShard subscribers."),
    (Counter::SubscribeToShardEventRecords, "SubscribeToShardEvent.Records", "Records pushed to SubscribeToShard subscribers."),
    (Counter::SubscribeToShardEventSuccess, "SubscribeToShardEvent.Success", "Events pushed to SubscribeToShard subscribers."),
];

/// Operations whose latency is measured, in the order of [`LATENCIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Latency {
    PutRecord,
    PutRecords,
    GetRecords,
}

const LATENCIES: [(Latency, &str); 3] = [
    (Latency::PutRecord, "PutRecord.Latency"),
    (Latency::PutRecords, "PutRecords.Latency"),
    (Latency::GetRecords, "GetRecords.Latency"),
];

/// Shard-level counters (enhanced monitoring), in the order of [`SHARD_COUNTERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShardCounter {
    IncomingBytes,
    IncomingRecords,
    OutgoingBytes,
    OutgoingRecords,
    ReadProvisionedThroughputExceeded,
    WriteProvisionedThroughputExceeded,
}

const SHARD_COUNTERS: [(ShardCounter, &str, &str); 6] = [
    (
        ShardCounter::IncomingBytes,
        "IncomingBytes",
        "Bytes put to the shard successfully.",
    ),
    (
        ShardCounter::IncomingRecords,
        "IncomingRecords",
        "Records put to the shard successfully.",
    ),
    (
        ShardCounter::OutgoingBytes,
        "OutgoingBytes",
        "Bytes GetRecords returned from the shard.",
    ),
    (
        ShardCounter::OutgoingRecords,
        "OutgoingRecords",
        "Records GetRecords returned from the shard.",
    ),
    (
        ShardCounter::ReadProvisionedThroughputExceeded,
        "ReadProvisionedThroughputExceeded",
        "GetRecords calls refused for the shard's read limits.",
    ),
    (
        ShardCounter::WriteProvisionedThroughputExceeded,
        "WriteProvisionedThroughputExceeded",
        "Records refused for the shard's write limits.",
    ),
];

const ITERATOR_AGE: &str = "IteratorAgeMilliseconds";

/// Reads a stream-level gauge from its figures.
type GaugeOf = fn(&StreamFigures) -> u64;

/// One stream's figures on this node.
#[derive(Default)]
pub(crate) struct StreamFigures {
    /// Which stream of the name: one deleted and made again starts from zero.
    created_ms: u64,
    counters: [AtomicU64; COUNTERS.len()],
    /// Per operation: microseconds spent, and calls.
    latencies: [(AtomicU64, AtomicU64); LATENCIES.len()],
    /// The latest SubscribeToShardEvent's MillisBehindLatest.
    millis_behind_latest: AtomicU64,
    shards: Mutex<HashMap<ShardId, Arc<ShardFigures>>>,
}

/// One shard's figures on this node.
#[derive(Default)]
pub(crate) struct ShardFigures {
    counters: [AtomicU64; SHARD_COUNTERS.len()],
    /// Of the latest GetRecords that read the shard: now minus the last record's arrival, or 0
    /// when it returned none (the reader is at the tip).
    iterator_age_ms: AtomicU64,
}

impl StreamFigures {
    pub fn add(&self, counter: Counter, n: u64) {
        self.counters[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn observe(&self, latency: Latency, took: Duration) {
        let (sum, count) = &self.latencies[latency as usize];
        sum.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_millis_behind_latest(&self, ms: u64) {
        self.millis_behind_latest.store(ms, Ordering::Relaxed);
    }

    pub fn shard(&self, id: ShardId) -> Arc<ShardFigures> {
        let mut shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        shards.entry(id).or_default().clone()
    }

    fn get(&self, counter: Counter) -> u64 {
        self.counters[counter as usize].load(Ordering::Relaxed)
    }
}

impl ShardFigures {
    pub fn add(&self, counter: ShardCounter, n: u64) {
        self.counters[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_iterator_age(&self, ms: u64) {
        self.iterator_age_ms.store(ms, Ordering::Relaxed);
    }
}

/// Every stream's figures on this node (a stream deleted and made again starts from zero).
#[derive(Default)]
pub(crate) struct StreamMetrics {
    streams: RwLock<HashMap<StreamKey, Arc<StreamFigures>>>,
}

/// A metric's name on `/metrics`.
fn exposed(aws_name: &str) -> String {
    format!("kinesis_{}", aws_name.replace('.', "_"))
}

fn labels(stream: &StreamMeta) -> String {
    format!(
        "account=\"{}\",region=\"{}\",stream=\"{}\"",
        stream.key.account, stream.key.region, stream.key.name
    )
}

impl StreamMetrics {
    /// The figures of `stream`, made on first use.
    pub fn of(&self, stream: &StreamMeta) -> Arc<StreamFigures> {
        let current = |figures: &&Arc<StreamFigures>| figures.created_ms == stream.created_ms;
        if let Some(figures) = self
            .streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&stream.key)
            .filter(current)
        {
            return figures.clone();
        }
        let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
        if let Some(figures) = streams.get(&stream.key).filter(current) {
            return figures.clone();
        }
        let figures = Arc::new(StreamFigures {
            created_ms: stream.created_ms,
            ..Default::default()
        });
        streams.insert(stream.key.clone(), figures.clone());
        figures
    }

    /// The figures of the streams that exist now (a deleted stream's are dropped).
    fn current<'a>(&self, state: &'a ClusterState) -> Vec<(&'a StreamMeta, Arc<StreamFigures>)> {
        let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
        streams.retain(|key, figures| {
            state
                .stream(key)
                .is_some_and(|s| s.created_ms == figures.created_ms)
        });
        let mut current: Vec<_> = streams
            .iter()
            .filter_map(|(key, figures)| Some((state.stream(key)?, figures.clone())))
            .collect();
        current.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        current
    }

    /// The Prometheus exposition of every stream's (and enabled shard's) figures.
    pub fn render(&self, state: &ClusterState, out: &mut String) {
        let streams = self.current(state);
        for (counter, aws_name, help) in COUNTERS {
            let name = format!("{}_total", exposed(aws_name));
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (stream, figures) in &streams {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(stream), figures.get(counter));
            }
        }
        for (latency, aws_name) in LATENCIES {
            let name = exposed(aws_name);
            let _ = writeln!(
                out,
                "# HELP {name} Time to serve the operation, in milliseconds.\n# TYPE {name} summary"
            );
            for (stream, figures) in &streams {
                let (sum, count) = &figures.latencies[latency as usize];
                let labels = labels(stream);
                let _ = writeln!(
                    out,
                    "{name}_sum{{{labels}}} {:.3}\n{name}_count{{{labels}}} {}",
                    sum.load(Ordering::Relaxed) as f64 / 1000.0,
                    count.load(Ordering::Relaxed)
                );
            }
        }
        let gauges: [(&str, &str, GaugeOf); 2] = [
            (
                "GetRecords.IteratorAgeMilliseconds",
                "Age of the last record the latest GetRecords of a shard returned (0 at the tip), the oldest over the stream's shards.",
                |figures| {
                    let shards = figures.shards.lock().unwrap_or_else(|p| p.into_inner());
                    shards
                        .values()
                        .map(|s| s.iterator_age_ms.load(Ordering::Relaxed))
                        .max()
                        .unwrap_or(0)
                },
            ),
            (
                "SubscribeToShardEvent.MillisBehindLatest",
                "MillisBehindLatest of the latest event pushed to a subscriber.",
                |figures| figures.millis_behind_latest.load(Ordering::Relaxed),
            ),
        ];
        for (aws_name, help, value) in gauges {
            let name = exposed(aws_name);
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (stream, figures) in &streams {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(stream), value(figures));
            }
        }
        self.render_shards(&streams, out);
    }

    /// Shard-level series of the metrics each stream's enhanced monitoring enabled.
    fn render_shards(&self, streams: &[(&StreamMeta, Arc<StreamFigures>)], out: &mut String) {
        let enabled = |stream: &StreamMeta, aws_name: &str| {
            stream.enhanced_metrics.iter().any(|m| m == aws_name)
        };
        let shards_of = |figures: &StreamFigures| {
            let shards = figures.shards.lock().unwrap_or_else(|p| p.into_inner());
            let mut all: Vec<(ShardId, Arc<ShardFigures>)> =
                shards.iter().map(|(id, s)| (*id, s.clone())).collect();
            all.sort_by_key(|(id, _)| *id);
            all
        };
        for (counter, aws_name, help) in SHARD_COUNTERS {
            let name = format!("kinesis_shard_{aws_name}_total");
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (stream, figures) in streams.iter().filter(|(s, _)| enabled(s, aws_name)) {
                for (id, shard) in shards_of(figures) {
                    let value = shard.counters[counter as usize].load(Ordering::Relaxed);
                    let _ = writeln!(out, "{name}{{{},shard=\"{id}\"}} {value}", labels(stream));
                }
            }
        }
        let name = format!("kinesis_shard_{ITERATOR_AGE}");
        let _ = writeln!(
            out,
            "# HELP {name} Age of the last record the latest GetRecords of the shard returned (0 at the tip).\n# TYPE {name} gauge"
        );
        for (stream, figures) in streams.iter().filter(|(s, _)| enabled(s, ITERATOR_AGE)) {
            for (id, shard) in shards_of(figures) {
                let value = shard.iterator_age_ms.load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{{},shard=\"{id}\"}} {value}", labels(stream));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_follow_their_enums() {
        for (i, (counter, ..)) in COUNTERS.iter().enumerate() {
            assert_eq!(*counter as usize, i, "{counter:?}");
        }
        for (i, (latency, _)) in LATENCIES.iter().enumerate() {
            assert_eq!(*latency as usize, i, "{latency:?}");
        }
        for (i, (counter, ..)) in SHARD_COUNTERS.iter().enumerate() {
            assert_eq!(*counter as usize, i, "{counter:?}");
        }
        // Shard-level names are the ones EnableEnhancedMonitoring takes.
        for (_, aws_name, _) in SHARD_COUNTERS {
            assert!(
                kinesin_controller::SHARD_LEVEL_METRICS.contains(&aws_name),
                "{aws_name}"
            );
        }
        assert!(kinesin_controller::SHARD_LEVEL_METRICS.contains(&ITERATOR_AGE));
    }

    #[test]
    fn a_stream_is_rendered_with_aws_names_and_its_shards_only_when_enabled() {
        let key = StreamKey {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            name: "s".into(),
        };
        let mut stream = StreamMeta::new(key, "arn".into(), 7);
        let mut state = ClusterState::default();
        state.streams.insert(stream.key.clone(), stream.clone());
        let metrics = StreamMetrics::default();
        let figures = metrics.of(&stream);
        figures.add(Counter::IncomingRecords, 3);
        figures.observe(Latency::PutRecord, Duration::from_micros(2500));
        figures
            .shard(ShardId(1))
            .add(ShardCounter::IncomingRecords, 3);
        let mut out = String::new();
        metrics.render(&state, &mut out);
        let labels = "account=\"000000000000\",region=\"us-east-1\",stream=\"s\"";
        assert!(
            out.contains(&format!("kinesis_IncomingRecords_total{{{labels}}} 3\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "kinesis_PutRecord_Latency_sum{{{labels}}} 2.500\n"
            )),
            "{out}"
        );
        assert!(
            !out.contains("kinesis_shard_IncomingRecords_total{"),
            "{out}"
        );

        stream.enhanced_metrics = vec!["IncomingRecords".into()];
        state.streams.insert(stream.key.clone(), stream.clone());
        let mut out = String::new();
        metrics.render(&state, &mut out);
        let shard = format!(
            "kinesis_shard_IncomingRecords_total{{{labels},shard=\"shardId-000000000001\"}} 3\n"
        );
        assert!(out.contains(&shard), "{out}");
        assert!(
            !out.contains("kinesis_shard_OutgoingRecords_total{"),
            "{out}"
        );

        // Deleted (or made again): its figures go.
        state.streams.clear();
        let mut out = String::new();
        metrics.render(&state, &mut out);
        assert!(!out.contains("stream=\"s\""), "{out}");
    }
}
