//! The engine's first failure: a write or an fsync that failed, or data that failed its checksum.
//! After a failed fsync the page cache may hold data the disk does not (PostgreSQL's
//! "fsyncgate"), and RocksDB refuses further writes anyway; after a checksum mismatch the disk
//! returned other bytes than were written. Either way a node must not limp on: it stops, and
//! restarts from what is durable (a failed write) or is rebuilt from its peers (corruption). This
//! is the signal for that.

use std::sync::Arc;

use tokio::sync::watch;

/// What failed first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFailure {
    pub what: String,
    /// The disk returned damaged data (as opposed to failing to write).
    pub corruption: bool,
}

impl std::fmt::Display for StorageFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

#[derive(Clone)]
pub(crate) struct FailureFlag(Arc<watch::Sender<Option<StorageFailure>>>);

impl FailureFlag {
    pub(crate) fn new() -> FailureFlag {
        FailureFlag(Arc::new(watch::channel(None).0))
    }

    /// Records a failed write or fsync unless an earlier failure was recorded already.
    pub(crate) fn raise(&self, what: String) {
        self.record(StorageFailure {
            what,
            corruption: false,
        });
    }

    /// Records damaged data unless an earlier failure was recorded already.
    pub(crate) fn raise_corruption(&self, what: String) {
        self.record(StorageFailure {
            what,
            corruption: true,
        });
    }

    fn record(&self, failure: StorageFailure) {
        self.0.send_if_modified(|first| {
            if first.is_some() {
                return false;
            }
            tracing::error!(failure = %failure.what, corruption = failure.corruption, "storage failed");
            *first = Some(failure.clone());
            true
        });
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<StorageFailure>> {
        self.0.subscribe()
    }
}
