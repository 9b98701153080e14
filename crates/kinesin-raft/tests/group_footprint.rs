//! What one shard group costs in memory, counted by the allocator: a node hosts thousands of
//! mostly idle groups (issue 16: at most 50 KiB of resident memory per replica). openraft as
//! published reserved about 1.4 MiB of queues per group up front, walked through as rings, so a
//! replica's resident memory grew with every command it handled (vendor/openraft/KINESIN.md);
//! this fails if such a reservation comes back, here or in openraft.
//!
//! Bytes are counted at Rust's global allocator: RocksDB's own (C++) memory is not in them, and
//! neither is the allocator's overhead, so the bound is on what the groups hold, not on RSS
//! (benches/idle_cpu.py measures that).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use kinesin_raft::{Command, MultiRaft, NewRecord, RaftTuning};
use kinesin_storage::{Engine, EngineOptions};

mod common;
use common::open_single_voter;

/// The system allocator, keeping count of the bytes allocated and not yet freed.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const GROUPS: u64 = 40;
/// Enough writes that a ring of the old sizes would have been walked through for a good part.
const WRITES_PER_GROUP: usize = 300;
/// What a written single-voter group may hold once its writes are done. Measured by this test:
/// ~30 KiB: openraft's tasks, watches and membership, its channels' blocks of boxed slots
/// (src/runtime.rs), our shard view, log store and write queue. It was ~41 KiB with openraft's
/// runtime statistics' histograms recorded (nothing reads them), ~81 with channel slots as large
/// as openraft's messages (160-224 bytes, 32 to a block, a few blocks kept by a channel that
/// carried traffic), and over 1,400 KiB with openraft's reservations back.
const BOUND_PER_GROUP: isize = 40 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_group_holds_tens_of_kilobytes_not_megabytes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(dir.path(), &EngineOptions::default()).unwrap());
    let raft = Arc::new(MultiRaft::new(1, engine, &RaftTuning::default()).unwrap());
    // One group first, so what every node has once (runtime, engine handles, transport) is
    // counted before the measurement starts.
    let first = open_single_voter(&raft, 1).await;
    write(&first, 1).await;
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut groups = Vec::new();
    for id in 2..=GROUPS + 1 {
        groups.push(open_single_voter(&raft, id).await);
    }
    for group in &groups {
        write(group, WRITES_PER_GROUP).await;
    }
    let per_group = (LIVE_BYTES.load(Ordering::Relaxed) - before) / GROUPS as isize;
    eprintln!("{} KiB per written group", per_group / 1024);
    assert!(
        per_group < BOUND_PER_GROUP,
        "each group holds {} KiB (bound {} KiB): a per-group reservation is back",
        per_group / 1024,
        BOUND_PER_GROUP / 1024
    );
    drop(groups);
    raft.shutdown().await;
}

async fn write(group: &kinesin_raft::GroupHandle, times: usize) {
    for i in 0..times {
        group
            .write(Command::Put {
                arrival_ms: 1_000 + i as u64,
                records: vec![NewRecord::plain("pk", b"x".to_vec())],
            })
            .await
            .unwrap();
    }
}
