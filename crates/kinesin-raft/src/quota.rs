//! Per-shard throughput limits as token buckets. The write side lives here: what a shard's leader
//! admits per second, as Kinesis's 1,000 records/s and 1 MiB/s per shard. The leader checks them
//! before it proposes, so a shard over its limit refuses at once (the client backs off) instead of
//! queueing work without bound. The gateway limits reads with the same [`TokenBuckets`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A shard's write limits. Zero in a field switches that limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteQuota {
    pub records_per_sec: u64,
    pub bytes_per_sec: u64,
}

impl WriteQuota {
    /// Kinesis's per-shard write limits.
    pub const AWS: WriteQuota = WriteQuota {
        records_per_sec: 1000,
        bytes_per_sec: 1 << 20,
    };

    pub fn is_unlimited(&self) -> bool {
        self.records_per_sec == 0 && self.bytes_per_sec == 0
    }
}

/// `N` token buckets checked together (say records and bytes), each refilling at its rate per
/// second and holding at most one second of it; a rate of zero is no limit. A bucket may go below
/// zero: a request larger than a second's allowance is admitted when the bucket is full (AWS
/// absorbs large records, and 10 MiB GetRecords answers, the same way), and the debt is paid back
/// before the next request is admitted.
///
/// Plain data, driven by the instant the caller passes, so the arithmetic is tested against an
/// explicit clock; callers share one behind a lock.
#[derive(Debug, Clone)]
pub struct TokenBuckets<const N: usize> {
    per_sec: [u64; N],
    levels: [f64; N],
    refilled: Instant,
}

impl<const N: usize> TokenBuckets<N> {
    /// Buckets refilling at `per_sec`, full at `now`.
    pub fn full(per_sec: [u64; N], now: Instant) -> TokenBuckets<N> {
        TokenBuckets {
            per_sec,
            levels: per_sec.map(|rate| rate as f64),
            refilled: now,
        }
    }

    /// The levels at `now` (never above a second's worth).
    fn levels_at(&self, now: Instant) -> [f64; N] {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        let mut levels = self.levels;
        for (level, &rate) in levels.iter_mut().zip(&self.per_sec) {
            *level = (*level + elapsed * rate as f64).min(rate as f64);
        }
        levels
    }

    fn refill(&mut self, now: Instant) {
        self.levels = self.levels_at(now);
        self.refilled = self.refilled.max(now);
    }

    /// Takes `need` if every limited bucket holds that much or is full; `false` (nothing taken)
    /// if not. A need of zero asks only that the bucket be out of debt.
    pub fn try_take(&mut self, need: [u64; N], now: Instant) -> bool {
        self.refill(now);
        let fits =
            self.levels
                .iter()
                .zip(&need)
                .zip(&self.per_sec)
                .all(|((&level, &need), &rate)| {
                    rate == 0 || level >= need as f64 || level >= rate as f64
                });
        if fits {
            self.charge(need, now);
        }
        fits
    }

    /// Takes `amounts` unconditionally, into debt if need be: for what is only known after the
    /// request was admitted (the bytes a read returned).
    pub fn charge(&mut self, amounts: [u64; N], now: Instant) {
        self.refill(now);
        for ((level, &amount), &rate) in self.levels.iter_mut().zip(&amounts).zip(&self.per_sec) {
            if rate != 0 {
                *level -= amount as f64;
            }
        }
    }

    /// What each bucket holds at `now`: below zero while in debt, `None` where unlimited.
    pub fn levels(&self, now: Instant) -> [Option<f64>; N] {
        let levels = self.levels_at(now);
        std::array::from_fn(|i| (self.per_sec[i] != 0).then_some(levels[i]))
    }

    /// How long from `now` until no limited bucket is in debt (zero if none is).
    pub fn debt_cleared_in(&self, now: Instant) -> Duration {
        self.levels_at(now)
            .iter()
            .zip(&self.per_sec)
            .filter(|&(&level, &rate)| rate != 0 && level < 0.0)
            .map(|(&level, &rate)| Duration::from_secs_f64(-level / rate as f64))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Whether every bucket is full again at `now`: the buckets are then no different from new
    /// ones, and whoever keeps many may drop them.
    pub fn is_full(&self, now: Instant) -> bool {
        self.levels_at(now)
            .iter()
            .zip(&self.per_sec)
            .all(|(&level, &rate)| level >= rate as f64)
    }
}

/// A shard leader's write buckets: records and bytes.
#[derive(Debug)]
pub(crate) struct WriteBucket {
    buckets: Mutex<TokenBuckets<2>>,
}

impl WriteBucket {
    pub(crate) fn new(quota: WriteQuota) -> WriteBucket {
        WriteBucket {
            buckets: Mutex::new(TokenBuckets::full(
                [quota.records_per_sec, quota.bytes_per_sec],
                Instant::now(),
            )),
        }
    }

    /// Takes `records` and `bytes` if the shard is under its limits; `false` (nothing taken) if
    /// not.
    pub(crate) fn try_take(&self, records: u64, bytes: u64) -> bool {
        // Nothing inside the lock can panic, so a poisoned lock still holds consistent numbers.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.try_take([records, bytes], Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn aws_write(now: Instant) -> TokenBuckets<2> {
        TokenBuckets::full(
            [
                WriteQuota::AWS.records_per_sec,
                WriteQuota::AWS.bytes_per_sec,
            ],
            now,
        )
    }

    #[test]
    fn levels_and_the_time_until_debt_is_cleared() {
        let t0 = Instant::now();
        let mut buckets = TokenBuckets::full([1000, 0], t0);
        assert_eq!(buckets.levels(t0), [Some(1000.0), None]);
        assert_eq!(buckets.debt_cleared_in(t0), Duration::ZERO);
        buckets.charge([1500, 1 << 40], t0);
        assert_eq!(buckets.levels(t0), [Some(-500.0), None]);
        assert_eq!(buckets.debt_cleared_in(t0), Duration::from_millis(500));
        let later = t0 + Duration::from_millis(500);
        assert_eq!(buckets.debt_cleared_in(later), Duration::ZERO);
        assert_eq!(buckets.levels(later), [Some(0.0), None]);
    }

    #[test]
    fn admits_a_seconds_worth_then_refuses_until_refilled() {
        let start = Instant::now();
        let mut bucket = aws_write(start);
        assert!(bucket.try_take([500, 500 * 1024], start));
        assert!(bucket.try_take([500, 500 * 1024], start));
        assert!(
            !bucket.try_take([1, 1], start),
            "1,000 records taken already"
        );
        // A tenth of a second refills 100 records (less a rounding hair).
        let later = start + Duration::from_millis(100);
        assert!(bucket.try_take([99, 99], later));
        assert!(!bucket.try_take([2, 2], later));
    }

    #[test]
    fn a_record_over_the_byte_limit_passes_once_and_is_paid_back() {
        let start = Instant::now();
        let mut bucket = aws_write(start);
        assert!(bucket.try_take([1, 3 << 20], start), "a 3 MiB record");
        // 2 MiB in debt: still refused after one second, admitted after a little over two.
        assert!(!bucket.try_take([1, 1], start + Duration::from_secs(1)));
        assert!(bucket.try_take([1, 1], start + Duration::from_millis(3100)));
    }

    #[test]
    fn the_bucket_never_holds_more_than_one_second() {
        let start = Instant::now();
        let mut bucket = aws_write(start);
        let much_later = start + Duration::from_secs(60);
        assert!(bucket.try_take([1000, 1], much_later));
        assert!(!bucket.try_take([1, 1], much_later));
    }

    #[test]
    fn a_zero_limit_is_no_limit() {
        let start = Instant::now();
        let quota = WriteQuota {
            records_per_sec: 0,
            bytes_per_sec: 1 << 20,
        };
        let mut bucket = TokenBuckets::full([quota.records_per_sec, quota.bytes_per_sec], start);
        assert!(bucket.try_take([1_000_000, 1], start));
        assert!(bucket.try_take([1_000_000, 1], start));
        bucket.charge([u64::MAX, 0], start);
        assert!(
            bucket.try_take([1, 0], start),
            "a charge to an unlimited bucket is no debt"
        );
        assert!(quota != WriteQuota::AWS && !quota.is_unlimited());
    }

    #[test]
    fn a_charge_after_the_fact_runs_into_debt_that_refusals_do_not_deepen() {
        let start = Instant::now();
        let mut bucket = TokenBuckets::full([5, 2 << 20], start);
        assert!(bucket.try_take([1, 0], start));
        bucket.charge([0, 10 << 20], start);
        assert!(!bucket.is_full(start));
        // 8 MiB in debt at 2 MiB/s: refused for four seconds, however often asked.
        for ms in (0..4000).step_by(250) {
            assert!(
                !bucket.try_take([1, 0], start + Duration::from_millis(ms)),
                "{ms} ms"
            );
        }
        assert!(bucket.try_take([1, 0], start + Duration::from_millis(4001)));
        assert!(bucket.is_full(start + Duration::from_secs(6)));
    }

    #[test]
    fn an_instant_before_the_last_one_refills_nothing() {
        let start = Instant::now();
        let later = start + Duration::from_secs(1);
        let mut bucket = TokenBuckets::full([1], start);
        assert!(bucket.try_take([1], later));
        assert!(!bucket.try_take([1], start), "time does not run backwards");
        assert!(bucket.try_take([1], later + Duration::from_secs(1)));
    }
}
