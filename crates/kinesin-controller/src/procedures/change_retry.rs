//! When the reconciler may try a group's membership change again after one failed.
//!
//! A change that cannot go through now (the group is handing its leadership over, this node no
//! longer leads it, a new replica is unreachable) used to be retried at every pass, and passes
//! follow every controller state change: one group mid-transfer logged the same failure twenty
//! times a second. Each failure now doubles the group's wait, from [`FIRST_WAIT`] up to
//! [`LONGEST_WAIT`]; a change that succeeds clears it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The wait after a group's first failed change.
const FIRST_WAIT: Duration = Duration::from_millis(250);
/// The longest wait between two attempts: a move must still finish soon once it can.
const LONGEST_WAIT: Duration = Duration::from_secs(8);

#[derive(Default)]
pub(super) struct ChangeRetry {
    /// Group → (when the next attempt may start, the wait that led there).
    waiting: Mutex<HashMap<u64, (Instant, Duration)>>,
}

impl ChangeRetry {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Instant, Duration)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a change of `group` may start at `now`.
    pub(super) fn may_try(&self, group: u64, now: Instant) -> bool {
        self.waiting()
            .get(&group)
            .is_none_or(|(next, _)| now >= *next)
    }

    /// A change of `group` failed at `now`: the next waits twice as long as the last did.
    /// Returns the wait.
    pub(super) fn failed(&self, group: u64, now: Instant) -> Duration {
        let mut waiting = self.waiting();
        let wait = waiting
            .get(&group)
            .map_or(FIRST_WAIT, |(_, last)| (*last * 2).min(LONGEST_WAIT));
        waiting.insert(group, (now + wait, wait));
        wait
    }

    /// A change of `group` went through: the next failure starts from the first wait again.
    pub(super) fn succeeded(&self, group: u64) {
        self.waiting().remove(&group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_doubles_the_wait_up_to_the_longest_and_success_clears_it() {
        let retry = ChangeRetry::default();
        let start = Instant::now();
        assert!(retry.may_try(7, start));
        assert_eq!(retry.failed(7, start), FIRST_WAIT);
        assert!(!retry.may_try(7, start + FIRST_WAIT / 2));
        assert!(retry.may_try(7, start + FIRST_WAIT));
        assert!(retry.may_try(8, start), "other groups are not held back");
        let mut wait = FIRST_WAIT;
        for _ in 0..10 {
            let next = retry.failed(7, start);
            assert_eq!(next, (wait * 2).min(LONGEST_WAIT));
            wait = next;
        }
        assert_eq!(wait, LONGEST_WAIT);
        retry.succeeded(7);
        assert!(retry.may_try(7, start));
        assert_eq!(retry.failed(7, start), FIRST_WAIT);
    }
}
