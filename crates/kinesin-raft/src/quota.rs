//! Per-shard write throughput limits: what a shard's leader admits per second, as Kinesis's
//! 1,000 records/s and 1 MiB/s per shard. The leader checks them before it proposes, so a shard
//! over its limit refuses at once (the client backs off) instead of queueing work without bound.

use std::sync::Mutex;
use std::time::Instant;

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

/// Token buckets holding up to one second of each limit. A write is admitted when both buckets
/// hold enough for it; a write larger than a second's allowance is admitted when the bucket is
/// full and takes it below zero (AWS absorbs large records with a burst allowance too), and the
/// debt is paid back before the next write is admitted.
#[derive(Debug)]
pub(crate) struct WriteBucket {
    quota: WriteQuota,
    state: Mutex<Tokens>,
}

#[derive(Debug)]
struct Tokens {
    records: f64,
    bytes: f64,
    refilled: Instant,
}

impl WriteBucket {
    pub(crate) fn new(quota: WriteQuota) -> WriteBucket {
        WriteBucket::starting_at(quota, Instant::now())
    }

    fn starting_at(quota: WriteQuota, now: Instant) -> WriteBucket {
        WriteBucket {
            quota,
            state: Mutex::new(Tokens {
                records: quota.records_per_sec as f64,
                bytes: quota.bytes_per_sec as f64,
                refilled: now,
            }),
        }
    }

    /// Takes `records` and `bytes` if the shard is under its limits; `false` (nothing taken) if
    /// not.
    pub(crate) fn try_take(&self, records: u64, bytes: u64) -> bool {
        self.try_take_at(records, bytes, Instant::now())
    }

    fn try_take_at(&self, records: u64, bytes: u64, now: Instant) -> bool {
        // Nothing inside the lock can panic, so a poisoned lock still holds consistent numbers.
        let mut tokens = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(tokens.refilled).as_secs_f64();
        tokens.refilled = now;
        let refill =
            |level: f64, per_sec: u64| (level + elapsed * per_sec as f64).min(per_sec as f64);
        tokens.records = refill(tokens.records, self.quota.records_per_sec);
        tokens.bytes = refill(tokens.bytes, self.quota.bytes_per_sec);
        // A write fits if the bucket holds enough for it, or is full (so a write larger than a
        // second's allowance is not refused forever).
        let fits = |level: f64, need: u64, per_sec: u64| {
            per_sec == 0 || level >= need as f64 || level >= per_sec as f64
        };
        let records_ok = fits(tokens.records, records, self.quota.records_per_sec);
        let bytes_ok = fits(tokens.bytes, bytes, self.quota.bytes_per_sec);
        if !(records_ok && bytes_ok) {
            return false;
        }
        tokens.records -= records as f64;
        tokens.bytes -= bytes as f64;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn admits_a_seconds_worth_then_refuses_until_refilled() {
        let start = Instant::now();
        let bucket = WriteBucket::starting_at(WriteQuota::AWS, start);
        assert!(bucket.try_take_at(500, 500 * 1024, start));
        assert!(bucket.try_take_at(500, 500 * 1024, start));
        assert!(
            !bucket.try_take_at(1, 1, start),
            "1,000 records taken already"
        );
        // A tenth of a second refills 100 records (less a rounding hair).
        let later = start + Duration::from_millis(100);
        assert!(bucket.try_take_at(99, 99, later));
        assert!(!bucket.try_take_at(2, 2, later));
    }

    #[test]
    fn a_record_over_the_byte_limit_passes_once_and_is_paid_back() {
        let start = Instant::now();
        let bucket = WriteBucket::starting_at(WriteQuota::AWS, start);
        assert!(bucket.try_take_at(1, 3 << 20, start), "a 3 MiB record");
        // 2 MiB in debt: still refused after one second, admitted after a little over two.
        assert!(!bucket.try_take_at(1, 1, start + Duration::from_secs(1)));
        assert!(bucket.try_take_at(1, 1, start + Duration::from_millis(3100)));
    }

    #[test]
    fn the_bucket_never_holds_more_than_one_second() {
        let start = Instant::now();
        let bucket = WriteBucket::starting_at(WriteQuota::AWS, start);
        let much_later = start + Duration::from_secs(60);
        assert!(bucket.try_take_at(1000, 1, much_later));
        assert!(!bucket.try_take_at(1, 1, much_later));
    }

    #[test]
    fn a_zero_limit_is_no_limit() {
        let start = Instant::now();
        let quota = WriteQuota {
            records_per_sec: 0,
            bytes_per_sec: 1 << 20,
        };
        let bucket = WriteBucket::starting_at(quota, start);
        assert!(bucket.try_take_at(1_000_000, 1, start));
        assert!(bucket.try_take_at(1_000_000, 1, start));
        assert!(quota != WriteQuota::AWS && !quota.is_unlimited());
    }
}
