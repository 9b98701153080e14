//! Kinesis's shared read limits per shard: 5 GetRecords calls and 2 MiB returned per second.
//!
//! A call is admitted when its shard has a call left and its byte budget is out of debt; the bytes
//! it returned are charged afterwards, so one call may return up to the 10 MiB GetRecords allows
//! and leave the shard in debt, refusing the next calls for a few seconds (4 s after 10 MiB at
//! 2 MiB/s; AWS documents "the next 5 seconds").
//!
//! Any replica serves reads, so the budget is kept where the calls arrive: per shard in each
//! gateway. A client spreading one shard's reads over N nodes gets up to N times the limit; a
//! cluster-wide budget would cost a round trip per read to whoever kept it. Enhanced fan-out reads
//! have their own throughput on AWS and must not be charged here: callers choose (see
//! `ops::records::Throughput`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kinesin_controller::StreamKey;
use kinesin_raft::TokenBuckets;
use kinesin_types::ShardId;

use crate::limits::ReadQuota;

/// A shard as the read budget knows it: a stream deleted and created again under the same name
/// starts afresh.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ShardKey {
    pub stream: StreamKey,
    pub stream_created_ms: u64,
    pub shard: ShardId,
}

/// How often budgets of shards nobody read lately are dropped (a full budget is the same as none).
const PRUNE_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct ReadLimiter {
    quota: ReadQuota,
    state: Mutex<Budgets>,
}

struct Budgets {
    /// Calls and bytes, per shard.
    shards: HashMap<ShardKey, TokenBuckets<2>>,
    pruned: Instant,
}

impl ReadLimiter {
    pub fn new(quota: ReadQuota) -> ReadLimiter {
        ReadLimiter {
            quota,
            state: Mutex::new(Budgets {
                shards: HashMap::new(),
                pruned: Instant::now(),
            }),
        }
    }

    /// Takes one call from `shard`'s budget if it has one and is out of byte debt; `false`
    /// (nothing taken) if the call is to be refused.
    pub fn admit(&self, shard: &ShardKey, now: Instant) -> bool {
        if self.quota.is_unlimited() {
            return true;
        }
        self.with(shard, now, |buckets| buckets.try_take([1, 0], now))
    }

    /// Charges `bytes` returned by an admitted call to `shard`'s budget, into debt if need be.
    pub fn charge(&self, shard: &ShardKey, bytes: u64, now: Instant) {
        if self.quota.is_unlimited() {
            return;
        }
        self.with(shard, now, |buckets| buckets.charge([0, bytes], now))
    }

    fn with<T>(
        &self,
        shard: &ShardKey,
        now: Instant,
        f: impl FnOnce(&mut TokenBuckets<2>) -> T,
    ) -> T {
        // Nothing inside the lock can panic, so a poisoned lock still holds consistent numbers.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_duration_since(state.pruned) >= PRUNE_EVERY {
            state.shards.retain(|_, buckets| !buckets.is_full(now));
            state.pruned = now;
        }
        let quota = self.quota;
        let buckets = state
            .shards
            .entry(shard.clone())
            .or_insert_with(|| TokenBuckets::full([quota.calls_per_sec, quota.bytes_per_sec], now));
        f(buckets)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shards
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(index: u32) -> ShardKey {
        ShardKey {
            stream: StreamKey {
                account: "000000000000".into(),
                region: "us-east-1".into(),
                name: "s".into(),
            },
            stream_created_ms: 1,
            shard: ShardId(index),
        }
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn five_calls_a_second_per_shard_then_refused_until_refilled() {
        let start = Instant::now();
        let limiter = ReadLimiter::new(ReadQuota::AWS);
        for call in 0..5 {
            assert!(limiter.admit(&shard(0), start), "call {call}");
        }
        assert!(
            !limiter.admit(&shard(0), start),
            "the sixth call in a second"
        );
        assert!(
            limiter.admit(&shard(1), start),
            "another shard has its own budget"
        );
        // A call comes back every 200 ms.
        assert!(!limiter.admit(&shard(0), start + Duration::from_millis(150)));
        assert!(limiter.admit(&shard(0), start + Duration::from_millis(201)));
        assert!(!limiter.admit(&shard(0), start + Duration::from_millis(202)));
    }

    #[test]
    fn a_ten_mib_answer_is_allowed_and_refuses_the_next_four_seconds() {
        let start = Instant::now();
        let limiter = ReadLimiter::new(ReadQuota::AWS);
        assert!(limiter.admit(&shard(0), start));
        limiter.charge(&shard(0), 10 * MIB, start);
        for ms in [1, 500, 1000, 2000, 3000, 3990] {
            assert!(
                !limiter.admit(&shard(0), start + Duration::from_millis(ms)),
                "{ms} ms after 10 MiB"
            );
        }
        assert!(limiter.admit(&shard(0), start + Duration::from_millis(4010)));
    }

    #[test]
    fn three_mib_in_one_call_throttles_the_next_call() {
        let start = Instant::now();
        let limiter = ReadLimiter::new(ReadQuota::AWS);
        assert!(limiter.admit(&shard(0), start));
        limiter.charge(&shard(0), 3 * MIB, start);
        assert!(!limiter.admit(&shard(0), start + Duration::from_millis(100)));
        assert!(limiter.admit(&shard(0), start + Duration::from_millis(510)));
    }

    #[test]
    fn small_reads_within_the_byte_rate_are_limited_by_calls_only() {
        let start = Instant::now();
        let limiter = ReadLimiter::new(ReadQuota::AWS);
        // 5 calls of 400 KiB each second for ten seconds: 2,000 KiB/s, under 2 MiB/s.
        for second in 0..10u64 {
            for call in 0..5u64 {
                let at = start + Duration::from_millis(second * 1000 + call * 200);
                assert!(limiter.admit(&shard(0), at), "second {second} call {call}");
                limiter.charge(&shard(0), 400 * 1024, at);
            }
        }
    }

    #[test]
    fn zero_switches_each_limit_off() {
        let start = Instant::now();
        let off = ReadLimiter::new(ReadQuota {
            calls_per_sec: 0,
            bytes_per_sec: 0,
        });
        for _ in 0..100 {
            assert!(off.admit(&shard(0), start));
            off.charge(&shard(0), 10 * MIB, start);
        }
        assert_eq!(off.tracked(), 0, "an unlimited limiter keeps no budgets");
        let bytes_only = ReadLimiter::new(ReadQuota {
            calls_per_sec: 0,
            bytes_per_sec: 2 * MIB,
        });
        for _ in 0..100 {
            assert!(bytes_only.admit(&shard(0), start));
        }
        bytes_only.charge(&shard(0), 3 * MIB, start);
        assert!(!bytes_only.admit(&shard(0), start));
    }

    #[test]
    fn budgets_of_idle_shards_are_dropped() {
        let start = Instant::now();
        let limiter = ReadLimiter::new(ReadQuota::AWS);
        assert!(limiter.admit(&shard(0), start));
        assert!(limiter.admit(&shard(1), start));
        limiter.charge(&shard(1), 100 * MIB, start);
        assert_eq!(limiter.tracked(), 2);
        let later = start + PRUNE_EVERY + Duration::from_secs(1);
        assert!(limiter.admit(&shard(2), later));
        // Shard 0 was full again and is dropped; shard 1 is still paying its debt.
        assert_eq!(limiter.tracked(), 2);
        assert!(!limiter.admit(&shard(1), later));
    }
}
