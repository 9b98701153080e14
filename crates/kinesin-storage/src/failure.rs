//! The engine's first write or fsync failure. After a failed fsync the page cache may hold data
//! the disk does not (PostgreSQL's "fsyncgate"), and RocksDB refuses further writes anyway, so a
//! node must not limp on: it stops and restarts from what is durable. This is the signal for that.

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Clone)]
pub(crate) struct FailureFlag(Arc<watch::Sender<Option<String>>>);

impl FailureFlag {
    pub(crate) fn new() -> FailureFlag {
        FailureFlag(Arc::new(watch::channel(None).0))
    }

    /// Records `what` unless an earlier failure was recorded already.
    pub(crate) fn raise(&self, what: String) {
        self.0.send_if_modified(|failure| {
            let first = failure.is_none();
            if first {
                tracing::error!(failure = %what, "storage failed");
                *failure = Some(what.clone());
            }
            first
        });
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.0.subscribe()
    }
}
