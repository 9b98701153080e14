//! The disk: RocksDB on a temporary directory, as a node opens it (`Engine::open` with the
//! default options).
//!
//! - `log_append_fsync`: one Raft entry holding a `Put` of 100 × 1 KiB records through the log
//!   store openraft calls (`LogStore::append`, exposed as `kinesin_raft::testing::LogStore`):
//!   bincode, the unsynced write, then the wait for the group-commit syncer's WAL fsync (the
//!   `IOFlushed` callback). `engine_write_fsync` is the same bytes without the log store, to
//!   separate encoding from I/O.
//! - `group_commit`: N appenders (N shard groups of one node, on a 2-worker runtime) each append
//!   one such entry at once; one iteration is all N durable. Throughput is appends per second;
//!   the waiters per fsync are printed at the end.
//! - `record_store_write`: what applying that entry writes (`Engine::put_record` × 100 and a time
//!   index entry, one unsynced batch), as `shard::apply_put` does.
//!
//! What these measure is the disk of the machine they run on, fsync latency above all.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use kinesin_micro::{criterion, put_command, RECORD_BYTES};
use kinesin_raft::testing::LogStore;
use kinesin_raft::{Command, TypeConfig};
use kinesin_storage::{Engine, EngineOptions, WriteBatch};
use openraft::alias::EntryOf;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt;

const RECORDS: usize = 100;
const ENTRY_BYTES: u64 = (RECORDS * RECORD_BYTES) as u64;

fn open_engine() -> (tempfile::TempDir, Arc<Engine>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::open(dir.path(), &EngineOptions::default()).expect("open engine");
    (dir, Arc::new(engine))
}

fn entry(command: &Command, index: u64) -> EntryOf<TypeConfig> {
    EntryOf::<TypeConfig>::new_normal(
        openraft::testing::log_id::<TypeConfig>(1, 1, index),
        command.clone(),
    )
}

/// `LogStore::append` of one entry, returning once the entry is durable.
async fn append_durably(log: &mut LogStore, entry: EntryOf<TypeConfig>) {
    let (tx, rx) = TypeConfig::oneshot();
    log.append([entry], IOFlushed::signal(tx))
        .await
        .expect("append");
    rx.await.expect("flush callback").expect("fsync");
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn log_append(c: &mut Criterion) {
    let command = put_command(RECORDS, RECORD_BYTES);
    let mut group = c.benchmark_group("log_append_fsync");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(ENTRY_BYTES));

    let (_dir, engine) = open_engine();
    let rt = current_thread();
    let mut log = LogStore::new(1, engine.clone());
    let next = Cell::new(1u64);
    group.bench_function("log_store_1_entry_100x1KiB", |b| {
        b.iter_batched(
            || {
                let index = next.replace(next.get() + 1);
                entry(&command, index)
            },
            |entry| rt.block_on(append_durably(&mut log, entry)),
            BatchSize::SmallInput,
        )
    });
    // The log store wrote exactly bincode's bytes: the engine-only bench writes the same.
    let (index, stored) = engine.last_log_entry(1).expect("read").expect("an entry");
    let bytes = bincode::serialize(&entry(&command, index)).expect("bincode");
    assert_eq!(stored, bytes, "LogStore encodes entries with bincode");

    let next = Cell::new(index + 1);
    group.bench_function("engine_write_fsync_100x1KiB", |b| {
        b.iter(|| {
            let index = next.replace(next.get() + 1);
            let mut batch = WriteBatch::default();
            engine.put_log_entry(&mut batch, 2, index, &bytes);
            engine.write(batch).expect("write");
            let (tx, rx) = mpsc::channel();
            engine.sync_then(move |result| {
                let _ = tx.send(result);
            });
            rx.recv().expect("sync callback").expect("fsync");
        })
    });
    group.finish();
}

fn group_commit(c: &mut Criterion) {
    let command = Arc::new(put_command(RECORDS, RECORD_BYTES));
    let mut group = c.benchmark_group("group_commit");
    group.sampling_mode(SamplingMode::Flat);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut report = Vec::new();
    for appenders in [1u64, 4, 16, 64] {
        let (_dir, engine) = open_engine();
        let logs: Vec<LogStore> = (0..appenders)
            .map(|i| LogStore::new(100 + i, engine.clone()))
            .collect();
        let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
        group.throughput(Throughput::Elements(appenders));
        group.bench_with_input(
            BenchmarkId::new("appends_100x1KiB", format!("{appenders}_appenders")),
            &appenders,
            |b, _| {
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        // Entries built before the clock starts.
                        let work: Vec<_> = logs
                            .iter()
                            .map(|log| (log.clone(), entry(&command, index)))
                            .collect();
                        let started = Instant::now();
                        rt.block_on(async {
                            let tasks: Vec<_> = work
                                .into_iter()
                                .map(|(mut log, entry)| {
                                    tokio::spawn(
                                        async move { append_durably(&mut log, entry).await },
                                    )
                                })
                                .collect();
                            for task in tasks {
                                task.await.expect("appender");
                            }
                        });
                        elapsed += started.elapsed();
                    }
                    elapsed
                })
            },
        );
        let stats = engine.sync_stats();
        let syncs = stats.syncs.load(Ordering::Relaxed);
        let waiters = stats.waiters.load(Ordering::Relaxed);
        report.push((appenders, syncs, waiters));
    }
    group.finish();
    for (appenders, syncs, waiters) in report {
        eprintln!(
            "group_commit {appenders} appenders: {waiters} waiters / {syncs} fsyncs = {:.1} per fsync",
            waiters as f64 / syncs.max(1) as f64
        );
    }
}

criterion_group! {
    name = benches;
    // Every iteration waits for an fsync (milliseconds; tens of them with 64 appenders), so
    // Criterion's fewest samples and a longer window, to keep several iterations per sample.
    config = criterion(10, Duration::from_secs(3));
    targets = log_append, group_commit
}
criterion_main!(benches);
