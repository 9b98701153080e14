//! The seam through which the crates above this one read the wall clock. This crate reads no
//! clock itself: a node supplies one (the system's; a test's or the simulator's own), and every
//! part of the node asks that one, so a test can set the time a record arrives or a retention
//! cut happens instead of waiting for it.

use std::fmt::Debug;
use std::sync::Arc;

/// The wall clock, in milliseconds since the Unix epoch: the unit of arrival timestamps,
/// retention, and the times the controller records.
pub trait Clock: Send + Sync + Debug + 'static {
    fn now_ms(&self) -> u64;
}

/// One clock shared by a node's parts. Two are equal when they are the same clock.
#[derive(Clone, Debug)]
pub struct SharedClock(Arc<dyn Clock>);

impl SharedClock {
    pub fn new(clock: impl Clock) -> SharedClock {
        SharedClock(Arc::new(clock))
    }

    /// Shares a clock the caller keeps a handle on (a test that moves it).
    pub fn from_arc(clock: Arc<dyn Clock>) -> SharedClock {
        SharedClock(clock)
    }

    pub fn now_ms(&self) -> u64 {
        self.0.now_ms()
    }
}

impl PartialEq for SharedClock {
    fn eq(&self, other: &SharedClock) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(u64);

    impl Clock for Fixed {
        fn now_ms(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn a_shared_clock_reads_its_clock_and_equals_only_itself() {
        let clock = SharedClock::new(Fixed(7));
        assert_eq!(clock.now_ms(), 7);
        assert_eq!(clock.clone(), clock);
        assert_ne!(SharedClock::new(Fixed(7)), clock);
    }
}
