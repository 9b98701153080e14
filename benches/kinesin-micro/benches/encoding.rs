//! Record encoding on the write path: the same 100 × 1 KiB `Put` is serialized more than once.
//!
//! - `command`: bincode of the `Command::Put` alone, what a node sends when it forwards a
//!   proposal to a remote leader (kinesin-raft's `codec::encode`, which is `bincode::serialize`;
//!   `storage.rs` checks that the log store writes exactly bincode's bytes).
//! - `entry`: bincode of the openraft entry holding it (`LogStore::append` writes this, and
//!   AppendEntries carries such entries to followers), and decoding it back (log reads).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kinesin_micro::{criterion, put_command, RECORD_BYTES};
use kinesin_raft::TypeConfig;
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

criterion_group! {
    name = benches;
    config = criterion(20, Duration::from_secs(2));
    targets = raft_encoding
}
criterion_main!(benches);
