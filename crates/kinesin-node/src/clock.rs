//! The clocks a node can run on: the system's, the system's shifted to start at a chosen moment,
//! or one a test sets by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use kinesin_types::Clock;

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Milliseconds since the Unix epoch (0 if the clock is before it).
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// The system's clock shifted by a fixed amount, so that it showed `start_ms` when it was made and
/// runs on at the system's pace: a node started on data written long ago sees it as fresh (the
/// test build's `clock::start-at` failpoint).
#[derive(Debug, Clone, Copy)]
pub struct ShiftedClock {
    shift_ms: i64,
}

impl ShiftedClock {
    pub fn starting_at(start_ms: u64) -> ShiftedClock {
        let shift_ms = start_ms as i64 - SystemClock.now_ms() as i64;
        ShiftedClock { shift_ms }
    }
}

impl Clock for ShiftedClock {
    fn now_ms(&self) -> u64 {
        (SystemClock.now_ms() as i64 + self.shift_ms).max(0) as u64
    }
}

/// A clock that shows what it was last set to: tests move time by hours at once.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock(AtomicU64::new(now_ms))
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_clock_starts_where_it_was_told_and_runs_on() {
        let start = 1_700_000_000_000;
        let clock = ShiftedClock::starting_at(start);
        let first = clock.now_ms();
        assert!((start..start + 60_000).contains(&first), "{first}");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(clock.now_ms() >= first + 5);
    }
}
