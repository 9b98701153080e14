//! Group commit: one thread turns many "tell me when this is durable" requests into one WAL fsync.
//!
//! Writers put their batches into RocksDB without sync, then enqueue a completion here. The thread
//! takes everything queued, calls `flush_wal(true)` once, and completes every waiter. While one
//! fsync runs, the next batch of waiters accumulates, so the number of fsyncs adapts to the load:
//! one per write when idle, one per many hundreds of writes under load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread;

use rocksdb::DB;

use crate::failure::FailureFlag;
use crate::StorageError;

pub(crate) type SyncCallback = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

#[derive(Debug, Default)]
pub struct SyncStats {
    /// WAL fsyncs performed.
    pub syncs: AtomicU64,
    /// Waiters completed; `waiters / syncs` is the group-commit factor.
    pub waiters: AtomicU64,
}

pub(crate) struct Syncer {
    tx: Option<Sender<SyncCallback>>,
    thread: Option<thread::JoinHandle<()>>,
    pub(crate) stats: Arc<SyncStats>,
}

impl Syncer {
    pub(crate) fn start(db: Arc<DB>, failure: FailureFlag) -> std::io::Result<Syncer> {
        let (tx, rx) = mpsc::channel::<SyncCallback>();
        let stats = Arc::new(SyncStats::default());
        let thread_stats = stats.clone();
        let thread = thread::Builder::new()
            .name("kinesin-wal-sync".into())
            .spawn(move || run(db, rx, thread_stats, failure))?;
        Ok(Syncer {
            tx: Some(tx),
            thread: Some(thread),
            stats,
        })
    }

    /// Completes `callback` once everything written before this call is on disk.
    pub(crate) fn request(&self, callback: SyncCallback) {
        let Some(tx) = &self.tx else {
            return callback(Err(StorageError::ShuttingDown));
        };
        if let Err(mpsc::SendError(callback)) = tx.send(callback) {
            callback(Err(StorageError::ShuttingDown));
        }
    }
}

impl Drop for Syncer {
    /// Completes every queued waiter and waits for the thread, so that the database is closed
    /// (its lock released) when the engine is dropped: a node restarted in the same process must
    /// be able to reopen it at once.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes the WAL's buffer to the file and fsyncs it.
///
/// Failpoint `storage::wal-fsync` (test builds): `return` skips the fsync — the TEST-ONLY fault of
/// a broker that acknowledges what only the page cache holds, which a power loss (the jepsen
/// harness's forgetting file system) must expose; `sleep(MS)` makes every fsync slow.
fn sync_wal(db: &DB) -> Result<(), rocksdb::Error> {
    fail::fail_point!("storage::wal-fsync", |_| db.flush_wal(false));
    db.flush_wal(true)
}

fn run(db: Arc<DB>, rx: Receiver<SyncCallback>, stats: Arc<SyncStats>, failure: FailureFlag) {
    let mut waiting = Vec::with_capacity(1024);
    while let Ok(first) = rx.recv() {
        waiting.push(first);
        waiting.extend(rx.try_iter());
        let result = sync_wal(&db);
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        stats
            .waiters
            .fetch_add(waiting.len() as u64, Ordering::Relaxed);
        if let Err(e) = &result {
            failure.raise(format!("WAL fsync failed: {e}"));
        }
        for callback in waiting.drain(..) {
            callback(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| StorageError::SyncFailed(e.to_string())),
            );
        }
    }
}
