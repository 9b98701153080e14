//! Writes a replica has proposed and not seen answered yet. Dropping a replica waits for them for a
//! while: a leader that hands its group over and leaves still has writes it accepted, which the
//! group settles soon after (committed by the next leader, or discarded); dropped at once, their
//! callers only learned that the outcome is unknown (test_resharding saw it during a join).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One write in flight, until dropped.
pub(crate) struct Entered(Arc<InFlight>);

impl Drop for Entered {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl InFlight {
    pub(crate) fn enter(self: &Arc<Self>) -> Entered {
        self.count.fetch_add(1, Ordering::AcqRel);
        Entered(self.clone())
    }

    /// Waits until no write is in flight, at most `within`; whether none is.
    pub(crate) async fn settled(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.count.load(Ordering::Acquire) == 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn settles_when_the_last_write_ends_or_gives_up_at_the_deadline() {
        let in_flight = Arc::new(InFlight::default());
        assert!(in_flight.settled(Duration::from_secs(1)).await);
        let first = in_flight.enter();
        let second = in_flight.enter();
        let waiter = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.settled(Duration::from_secs(10)).await }
        });
        drop(first);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one write is still in flight");
        drop(second);
        assert!(waiter.await.unwrap());
        let _stuck = in_flight.enter();
        assert!(!in_flight.settled(Duration::from_secs(3)).await);
    }
}
