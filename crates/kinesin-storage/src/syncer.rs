//! Group commit: one loop turns many "tell me when this is durable" requests into one WAL fsync.
//!
//! Writers put their batches into RocksDB without sync, then enqueue a completion here. The loop
//! takes everything queued, calls `flush_wal(true)` once, and completes every waiter. While one
//! fsync runs, the next batch of waiters accumulates, so the number of fsyncs adapts to the load:
//! one per write when idle, one per many hundreds of writes under load.
//!
//! A node runs the loop on a thread of its own ([`SyncMode::Thread`]). A simulation runs it as a
//! task of its single-threaded runtime ([`SyncMode::Task`]): an OS thread would finish its fsync
//! at a moment of its own choosing, and no run could be replayed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread;

use rocksdb::DB;

use crate::failure::FailureFlag;
use crate::StorageError;

pub(crate) type SyncCallback = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// Called after each fsync that made the WAL durable (a simulated disk records what survives a
/// power cut from it).
pub type AfterSync = Arc<dyn Fn() + Send + Sync>;

/// Where the group-commit loop runs.
#[derive(Clone, Default)]
pub enum SyncMode {
    /// On its own OS thread: a node.
    #[default]
    Thread,
    /// As a task of the tokio runtime that opens the engine, calling `after_sync` after every
    /// fsync: a deterministic simulation on one thread.
    Task { after_sync: Option<AfterSync> },
}

#[derive(Debug, Default)]
pub struct SyncStats {
    /// WAL fsyncs performed.
    pub syncs: AtomicU64,
    /// Waiters completed; `waiters / syncs` is the group-commit factor.
    pub waiters: AtomicU64,
    /// Microseconds spent in WAL fsyncs; divided by syncs, the mean fsync latency.
    pub sync_micros: AtomicU64,
}

enum Queue {
    Thread(mpsc::Sender<SyncCallback>),
    Task(tokio::sync::mpsc::UnboundedSender<SyncCallback>),
}

pub(crate) struct Syncer {
    queue: Option<Queue>,
    thread: Option<thread::JoinHandle<()>>,
    pub(crate) stats: Arc<SyncStats>,
}

impl Syncer {
    pub(crate) fn start(
        db: Arc<DB>,
        failure: FailureFlag,
        mode: SyncMode,
    ) -> std::io::Result<Syncer> {
        let stats = Arc::new(SyncStats::default());
        let commit = GroupCommit {
            db,
            stats: stats.clone(),
            failure,
        };
        let (queue, thread) = match mode {
            SyncMode::Thread => {
                let (tx, rx) = mpsc::channel::<SyncCallback>();
                let thread = thread::Builder::new()
                    .name("kinesin-wal-sync".into())
                    .spawn(move || commit.run_thread(rx))?;
                (Queue::Thread(tx), Some(thread))
            }
            SyncMode::Task { after_sync } => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let runtime = tokio::runtime::Handle::try_current()
                    .map_err(|e| std::io::Error::other(format!("SyncMode::Task: {e}")))?;
                runtime.spawn(commit.run_task(rx, after_sync));
                (Queue::Task(tx), None)
            }
        };
        Ok(Syncer {
            queue: Some(queue),
            thread,
            stats,
        })
    }

    /// Completes `callback` once everything written before this call is on disk.
    pub(crate) fn request(&self, callback: SyncCallback) {
        let refused = match &self.queue {
            None => Some(callback),
            Some(Queue::Thread(tx)) => tx.send(callback).err().map(|e| e.0),
            Some(Queue::Task(tx)) => tx.send(callback).err().map(|e| e.0),
        };
        if let Some(callback) = refused {
            callback(Err(StorageError::ShuttingDown));
        }
    }
}

impl Drop for Syncer {
    /// Completes every queued waiter and waits for the thread, so that the database is closed
    /// (its lock released) when the engine is dropped: a node restarted in the same process must
    /// be able to reopen it at once.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes the WAL's buffer to the file and fsyncs it; returns whether it fsynced.
///
/// Failpoint `storage::wal-fsync` (test builds): `return` skips the fsync — the TEST-ONLY fault of
/// a broker that acknowledges what only the page cache holds, which a power loss (the jepsen
/// harness's forgetting file system, the simulation's disk) must expose; `sleep(MS)` makes every
/// fsync slow.
fn sync_wal(db: &DB) -> Result<bool, rocksdb::Error> {
    fail::fail_point!("storage::wal-fsync", |_| db.flush_wal(false).map(|_| false));
    db.flush_wal(true).map(|_| true)
}

struct GroupCommit {
    db: Arc<DB>,
    stats: Arc<SyncStats>,
    failure: FailureFlag,
}

impl GroupCommit {
    fn run_thread(self, rx: Receiver<SyncCallback>) {
        let mut waiting = Vec::with_capacity(1024);
        while let Ok(first) = rx.recv() {
            waiting.push(first);
            waiting.extend(rx.try_iter());
            self.sync_and_complete(&mut waiting);
        }
    }

    async fn run_task(
        self,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<SyncCallback>,
        after_sync: Option<AfterSync>,
    ) {
        let mut waiting = Vec::new();
        while let Some(first) = rx.recv().await {
            waiting.push(first);
            while let Ok(more) = rx.try_recv() {
                waiting.push(more);
            }
            if self.sync_and_complete(&mut waiting) {
                if let Some(after_sync) = &after_sync {
                    after_sync();
                }
            }
        }
    }

    /// One fsync for every waiter in `waiting`, which it empties; whether the WAL was fsynced.
    fn sync_and_complete(&self, waiting: &mut Vec<SyncCallback>) -> bool {
        let started = std::time::Instant::now();
        let result = sync_wal(&self.db);
        self.stats
            .sync_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .waiters
            .fetch_add(waiting.len() as u64, Ordering::Relaxed);
        if let Err(e) = &result {
            self.failure.raise(format!("WAL fsync failed: {e}"));
        }
        for callback in waiting.drain(..) {
            callback(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| StorageError::SyncFailed(e.to_string())),
            );
        }
        matches!(result, Ok(true))
    }
}
