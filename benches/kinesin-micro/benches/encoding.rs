//! Record encoding on the write path: the same 100 × 1 KiB `Put` is serialized more than once.
//!
//! - `command`: bincode of the `Command::Put` alone, what a node sends when it forwards a
//!   proposal to a remote leader (kinesin-raft's `codec::encode`, which is `bincode::serialize`;
//!   `storage.rs` checks that the log store writes exactly bincode's bytes).
//! - `entry`: bincode of the openraft entry holding it (`LogStore::append` writes this, and
//!   AppendEntries carries such entries to followers), and decoding it back (log reads).
//! - `record_store`: the records in the record store's layout (`Engine::put_record` × 100 into a
//!   RocksDB `WriteBatch`, not written), what applying the entry adds to its batch.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kinesin_micro::{criterion, new_records, put_command, ARRIVAL_MS, RECORD_BYTES};
use kinesin_raft::TypeConfig;
use kinesin_storage::{Engine, EngineOptions, WriteBatch};
use openraft::alias::EntryOf;
use openraft::entry::RaftEntry;

const RECORDS: usize = 100;
const PAYLOAD_BYTES: u64 = (RECORDS * RECORD_BYTES) as u64;

fn raft_encoding(c: &mut Criterion) {
    let command = put_command(RECORDS, RECORD_BYTES);
    let entry = EntryOf::<TypeConfig>::new_normal(
        openraft::testing::log_id::<TypeConfig>(3, 1, 123_456),
        command.clone(),
    );
    let entry_bytes = bincode::serialize(&entry).expect("bincode");
    let decoded: EntryOf<TypeConfig> = bincode::deserialize(&entry_bytes).expect("bincode");
    assert_eq!(decoded.payload, entry.payload);

    let mut group = c.benchmark_group("raft_encoding");
    group.throughput(Throughput::Bytes(PAYLOAD_BYTES));
    group.bench_function("command_put_encode_100x1KiB", |b| {
        b.iter(|| bincode::serialize(black_box(&command)))
    });
    group.bench_function("entry_encode_100x1KiB", |b| {
        b.iter(|| bincode::serialize(black_box(&entry)))
    });
    group.bench_function("entry_decode_100x1KiB", |b| {
        b.iter(|| bincode::deserialize::<EntryOf<TypeConfig>>(black_box(&entry_bytes)))
    });
    group.finish();
}

fn record_store_encoding(c: &mut Criterion) {
    let (arrival_ms, records) = (ARRIVAL_MS, new_records(RECORDS, RECORD_BYTES));
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::open(dir.path(), &EngineOptions::default()).expect("open engine");
    let encoded: usize = records
        .iter()
        .map(|r| kinesin_storage::records::encoded_len(&r.partition_key, &r.data))
        .sum();
    assert!(encoded > RECORDS * RECORD_BYTES);

    let mut group = c.benchmark_group("record_store_encoding");
    group.throughput(Throughput::Bytes(PAYLOAD_BYTES));
    group.bench_function("put_record_into_batch_100x1KiB", |b| {
        b.iter(|| {
            let mut batch = WriteBatch::default();
            for (slot, record) in records.iter().enumerate() {
                engine.put_record(
                    &mut batch,
                    7,
                    (1 << 20) + slot as u64,
                    arrival_ms,
                    &record.partition_key,
                    &record.data,
                );
            }
            batch
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion(20, Duration::from_secs(2));
    targets = raft_encoding, record_store_encoding
}
criterion_main!(benches);
