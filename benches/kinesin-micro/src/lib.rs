//! Criterion micro-benchmarks of Kinesin's hot path: what a PutRecords costs on one core before
//! and after the network, measured piece by piece. The benches live in `benches/` (this library
//! only builds their inputs and their Criterion settings, the same way for every bench):
//!
//! - `decode`: a PutRecords / PutRecord body through [`kinesin_api::decode_request`] (the
//!   gateway's entry point), and base64 alone;
//! - `routing`: partition key → MD5 hash key → owning shard, ExplicitHashKey parsing;
//! - `sequence`: sequence numbers to and from their decimal form, shard iterators;
//! - `storage`: a Raft log append with its fsync, group commit under concurrent appenders, a
//!   record-store batch write (RocksDB on a temporary directory);
//! - `encoding`: a `Put` command and its Raft entry in bincode, records in the record store's
//!   layout.
//!
//! Run them with the shared target directory (RocksDB's C++ is built once per machine):
//!
//! ```sh
//! export CARGO_TARGET_DIR=$HOME/.cache/kinesin-target
//! cargo bench -p kinesin-micro                      # all of them, about 2 minutes once built
//! cargo bench -p kinesin-micro --bench decode       # one file
//! cargo bench -p kinesin-micro --bench routing -- shards_1000   # a filter
//! ```
//!
//! Figures are per core and per call; they say where time goes, not what a node sustains (that
//! is `kinesin-bench`'s job). The storage benches measure the disk they run on.
//!
//! This crate must never ship in a binary or be depended on by another crate: it is
//! `publish = false`, and what it exports exists only to feed the benches.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use criterion::Criterion;
use kinesin_controller::ShardMeta;
use kinesin_raft::{Command, NewRecord};
use kinesin_types::{HashRange, ShardId};
use serde_json::{json, Value};

/// The Criterion settings every bench file runs with: `samples` samples measured over
/// `measurement`, after a half-second warm-up. Short on purpose: the figures compare changes on
/// one machine, and all the benches together should stay around two minutes. Only the sample
/// count and the window differ between files (the fsync-bound storage benches take fewer,
/// longer samples), so those are the parameters.
pub fn criterion(samples: usize, measurement: Duration) -> Criterion {
    Criterion::default()
        .sample_size(samples)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(measurement)
}

/// The record size of every bench unless said otherwise: 1 KiB, the size `kinesin-bench` uses.
pub const RECORD_BYTES: usize = 1024;

/// The stream name in request bodies.
pub const STREAM_NAME: &str = "micro-bench";

/// `len` pseudo-random bytes (xorshift, seeded): incompressible like real payloads, so RocksDB's
/// LZ4 gets no free win, and the same on every run.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The `i`th partition key: 22 ASCII characters (`partition-key-00000042`).
pub fn partition_key(i: usize) -> String {
    format!("partition-key-{i:08}")
}

fn entry_json(i: usize, len: usize) -> Value {
    json!({
        "Data": STANDARD.encode(payload(len, i as u64)),
        "PartitionKey": partition_key(i),
    })
}

/// A PutRecords body as an SDK sends it: `count` records of `len` bytes, distinct keys.
pub fn put_records_body(count: usize, len: usize) -> Vec<u8> {
    let records: Vec<Value> = (0..count).map(|i| entry_json(i, len)).collect();
    let body = json!({ "StreamName": STREAM_NAME, "Records": records });
    body.to_string().into_bytes()
}

/// A PutRecord body with one record of `len` bytes.
pub fn put_record_body(len: usize) -> Vec<u8> {
    let mut body = entry_json(0, len);
    body["StreamName"] = json!(STREAM_NAME);
    body.to_string().into_bytes()
}

/// `count` records of `len` bytes as the gateway hands them to a shard group.
pub fn new_records(count: usize, len: usize) -> Vec<NewRecord> {
    (0..count)
        .map(|i| NewRecord::plain(partition_key(i), payload(len, i as u64)))
        .collect()
}

/// The arrival time every benchmark batch carries.
pub const ARRIVAL_MS: u64 = 1_700_000_000_123;

/// The command one PutRecords batch for one shard becomes.
pub fn put_command(count: usize, len: usize) -> Command {
    Command::Put {
        arrival_ms: ARRIVAL_MS,
        records: new_records(count, len),
    }
}

/// The `count` open shards of a stream created with `count` shards (AWS's even split), as the
/// controller's state holds them.
pub fn open_shards(count: u32) -> Vec<ShardMeta> {
    let ranges = HashRange::split_evenly(count).unwrap_or_else(|_| vec![HashRange::FULL]);
    ranges
        .into_iter()
        .enumerate()
        .map(|(i, hash_range)| ShardMeta {
            id: ShardId(i as u32),
            group: 1_000 + i as u64,
            hash_range,
            parent: None,
            adjacent_parent: None,
            sequence_epoch: 1_700_000_000,
            created_ms: 1_700_000_000_000,
            closed_ms: None,
            ending_position: None,
            replicas: vec![1, 2, 3],
            founders: vec![1, 2, 3],
            leaving: Vec::new(),
            wanted_replicas: 1,
        })
        .collect()
}
