use md5::{Digest, Md5};

use crate::error::{excerpt, TypesError};

/// Largest hash key, 2^128 - 1: the hash key space is exactly the range of MD5 digests.
pub const MAX_HASH_KEY: u128 = u128::MAX;

/// MD5 of the UTF-8 partition key read as an unsigned big-endian 128-bit integer (AWS's routing).
pub fn partition_key_hash(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// Parses an ExplicitHashKey: decimal string matching botocore's pattern `0|([1-9]\d{0,38})`
/// and <= 2^128-1.
pub fn parse_hash_key(s: &str) -> Result<u128, TypesError> {
    let invalid = || TypesError::InvalidHashKey(excerpt(s));
    let bytes = s.as_bytes();
    // Hand-rolled rather than u128::from_str, which also accepts '+' and leading zeros.
    if bytes.is_empty() || bytes.len() > 39 || (bytes[0] == b'0' && bytes.len() > 1) {
        return Err(invalid());
    }
    bytes.iter().try_fold(0u128, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(invalid());
        }
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(b - b'0')))
            .ok_or_else(invalid)
    })
}

/// An inclusive range of hash keys owned by one shard.
///
/// Serialized as `{"start": "<decimal>", "end": "<decimal>"}`: JSON numbers cannot carry
/// 128 bits faithfully, and strings work identically in every serde format.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "WireHashRange", into = "WireHashRange")]
pub struct HashRange {
    pub start: u128,
    pub end: u128,
}

impl HashRange {
    /// The whole key space, 0..=2^128-1.
    pub const FULL: HashRange = HashRange {
        start: 0,
        end: MAX_HASH_KEY,
    };

    pub fn new(start: u128, end: u128) -> Result<HashRange, TypesError> {
        if start > end {
            return Err(TypesError::InvalidHashRange { start, end });
        }
        Ok(HashRange { start, end })
    }

    pub fn contains(&self, key: u128) -> bool {
        self.start <= key && key <= self.end
    }

    /// Splits the full 0..=2^128-1 space into `n` (>=1) contiguous ranges the way AWS does
    /// for CreateStream: every shard gets width floor(2^128 / n), the last one takes the
    /// remainder up to 2^128-1.
    ///
    /// Allocates `n` ranges: callers must bound `n` by their shard limit first.
    pub fn split_evenly(n: u32) -> Result<Vec<HashRange>, TypesError> {
        if n == 0 {
            return Err(TypesError::InvalidShardCount(n));
        }
        if n == 1 {
            // 2^128 / 1 does not fit in a u128; the answer is simply everything.
            return Ok(vec![HashRange::FULL]);
        }
        let n128 = u128::from(n);
        // floor(2^128 / n) computed as floor((2^128 - 1) / n), plus one exactly when n
        // divides 2^128 (then (2^128 - 1) mod n is n - 1). For n >= 2 this cannot overflow.
        let width = MAX_HASH_KEY / n128 + u128::from(MAX_HASH_KEY % n128 == n128 - 1);
        let ranges = (0..n128)
            .map(|i| {
                let start = i * width;
                let end = if i + 1 == n128 {
                    MAX_HASH_KEY
                } else {
                    start + (width - 1)
                };
                HashRange { start, end }
            })
            .collect();
        Ok(ranges)
    }

    pub fn is_adjacent_to(&self, other: &HashRange) -> bool {
        // checked_add: a range ending at 2^128-1 has nothing after it.
        self.end.checked_add(1) == Some(other.start) || other.end.checked_add(1) == Some(self.start)
    }
}

/// The index of the open shard that owns `hash_key`: the first of `shards` (a stream's shards in
/// order, each as whether it is open and its hash range) that is open and whose range holds the
/// key. A stream's open shards partition the key space, so for a stream's shards at most one
/// matches and `None` means its metadata is inconsistent.
///
/// It takes (open, range) pairs rather than the controller's `ShardMeta`, which lives in a crate
/// that depends on this one. The gateway routes records with it and kinesin-micro measures it,
/// so the benchmark times the lookup that actually runs. A linear scan: closed parents stay in
/// the list after a reshard, so the ranges are not sorted by key, and a binary search would need
/// an index kept beside the list (benches/README.md has the figures for wide streams).
pub fn open_shard_index<'a>(
    shards: impl IntoIterator<Item = (bool, &'a HashRange)>,
    hash_key: u128,
) -> Option<usize> {
    shards
        .into_iter()
        .position(|(open, range)| open && range.contains(hash_key))
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename = "HashRange")]
struct WireHashRange {
    start: String,
    end: String,
}

impl From<HashRange> for WireHashRange {
    fn from(r: HashRange) -> Self {
        WireHashRange {
            start: r.start.to_string(),
            end: r.end.to_string(),
        }
    }
}

impl TryFrom<WireHashRange> for HashRange {
    type Error = TypesError;

    fn try_from(w: WireHashRange) -> Result<Self, Self::Error> {
        HashRange::new(parse_hash_key(&w.start)?, parse_hash_key(&w.end)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_key_hash_matches_md5_big_endian() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(
            partition_key_hash(""),
            0xd41d8cd98f00b204e9800998ecf8427e_u128
        );
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(
            partition_key_hash("a"),
            0x0cc175b9c0f1b6a831c399e269772661_u128
        );
        // Hashes the UTF-8 bytes, not chars: md5("é") = md5(c3 a9).
        assert_eq!(
            partition_key_hash("é"),
            u128::from_be_bytes(Md5::digest([0xc3, 0xa9]).into())
        );
    }

    #[test]
    fn parse_hash_key_accepts_the_whole_range() {
        assert_eq!(parse_hash_key("0").unwrap(), 0);
        assert_eq!(parse_hash_key("1").unwrap(), 1);
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211455").unwrap(),
            MAX_HASH_KEY
        );
        assert_eq!(
            parse_hash_key("85070591730234615865843651857942052864").unwrap(),
            1u128 << 126
        );
        for k in [0u128, 9, 10, 12345, u128::from(u64::MAX), MAX_HASH_KEY - 1] {
            assert_eq!(parse_hash_key(&k.to_string()).unwrap(), k);
        }
    }

    #[test]
    fn parse_hash_key_rejects_bad_input() {
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1.0",
            "1e3",
            "abc",
            "0x10",
            // 2^128
            "340282366920938463463374607431768211456",
            // 40 digits
            "1000000000000000000000000000000000000000",
            "٣",
        ] {
            assert!(
                matches!(parse_hash_key(bad), Err(TypesError::InvalidHashKey(_))),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn new_requires_start_le_end() {
        assert_eq!(
            HashRange::new(3, 3).unwrap(),
            HashRange { start: 3, end: 3 }
        );
        assert_eq!(
            HashRange::new(4, 3),
            Err(TypesError::InvalidHashRange { start: 4, end: 3 })
        );
    }

    #[test]
    fn contains_is_inclusive_at_both_ends() {
        let r = HashRange::new(10, 20).unwrap();
        assert!(!r.contains(9));
        assert!(r.contains(10));
        assert!(r.contains(20));
        assert!(!r.contains(21));
        assert!(HashRange::FULL.contains(0));
        assert!(HashRange::FULL.contains(MAX_HASH_KEY));
    }

    #[test]
    fn open_shard_index_skips_closed_parents() {
        let mid = MAX_HASH_KEY / 2;
        let low = HashRange::new(0, mid).unwrap();
        let high = HashRange::new(mid + 1, MAX_HASH_KEY).unwrap();
        // A split: the closed parent stays first in the list, its children follow.
        let shards = [(false, &HashRange::FULL), (true, &low), (true, &high)];
        assert_eq!(open_shard_index(shards, 0), Some(1));
        assert_eq!(open_shard_index(shards, mid), Some(1));
        assert_eq!(open_shard_index(shards, mid + 1), Some(2));
        assert_eq!(open_shard_index(shards, MAX_HASH_KEY), Some(2));
        // No open shard holds the key.
        assert_eq!(open_shard_index([(false, &HashRange::FULL)], 7), None);
        assert_eq!(open_shard_index([], 7), None);
    }

    #[test]
    fn open_shard_index_finds_each_key_of_an_even_split() {
        let ranges = HashRange::split_evenly(7).unwrap();
        for (i, r) in ranges.iter().enumerate() {
            for key in [r.start, r.end, r.start + (r.end - r.start) / 2] {
                let shards = ranges.iter().map(|r| (true, r));
                assert_eq!(open_shard_index(shards, key), Some(i));
            }
        }
    }

    #[test]
    fn split_one_is_full() {
        assert_eq!(HashRange::split_evenly(1).unwrap(), vec![HashRange::FULL]);
    }

    #[test]
    fn split_zero_is_rejected() {
        assert_eq!(
            HashRange::split_evenly(0),
            Err(TypesError::InvalidShardCount(0))
        );
    }

    #[test]
    fn split_four_matches_aws() {
        let r = HashRange::split_evenly(4).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].start, 0);
        assert_eq!(r[0].end, 85070591730234615865843651857942052863);
        assert_eq!(r[1].start, 85070591730234615865843651857942052864);
        assert_eq!(r[1].end, 170141183460469231731687303715884105727);
        assert_eq!(r[2].start, 170141183460469231731687303715884105728);
        assert_eq!(r[3].end, MAX_HASH_KEY);
    }

    #[test]
    fn split_three_gives_the_remainder_to_the_last() {
        let r = HashRange::split_evenly(3).unwrap();
        // floor(2^128 / 3) = 113427455640312821154458202477256070485
        let w = 113427455640312821154458202477256070485u128;
        assert_eq!(r[0], HashRange::new(0, w - 1).unwrap());
        assert_eq!(r[1], HashRange::new(w, 2 * w - 1).unwrap());
        assert_eq!(r[2], HashRange::new(2 * w, MAX_HASH_KEY).unwrap());
        assert_eq!(r[2].end - r[2].start, w);
    }

    #[test]
    fn splits_tile_the_key_space() {
        for n in [2u32, 3, 5, 7, 8, 10, 64, 100, 1000, 4096] {
            let r = HashRange::split_evenly(n).unwrap();
            assert_eq!(r.len(), n as usize);
            assert_eq!(r[0].start, 0);
            assert_eq!(r[r.len() - 1].end, MAX_HASH_KEY);
            for pair in r.windows(2) {
                assert!(pair[0].is_adjacent_to(&pair[1]), "n={n}");
                // Only the last range may be wider than the others.
                assert_eq!(pair[0].end - pair[0].start, r[0].end - r[0].start);
            }
        }
    }

    #[test]
    fn adjacency_is_symmetric_and_strict() {
        let a = HashRange::new(0, 9).unwrap();
        let b = HashRange::new(10, 20).unwrap();
        let c = HashRange::new(11, 20).unwrap();
        assert!(a.is_adjacent_to(&b));
        assert!(b.is_adjacent_to(&a));
        assert!(!a.is_adjacent_to(&c));
        assert!(!a.is_adjacent_to(&a));
        let top = HashRange::new(5, MAX_HASH_KEY).unwrap();
        assert!(!top.is_adjacent_to(&HashRange::FULL));
        assert!(!HashRange::FULL.is_adjacent_to(&HashRange::FULL));
    }

    #[test]
    fn json_uses_decimal_strings() {
        let json = serde_json::to_string(&HashRange::FULL).unwrap();
        assert_eq!(
            json,
            r#"{"start":"0","end":"340282366920938463463374607431768211455"}"#
        );
        assert_eq!(
            serde_json::from_str::<HashRange>(&json).unwrap(),
            HashRange::FULL
        );
    }

    #[test]
    fn json_rejects_invalid_ranges() {
        for bad in [
            r#"{"start":"5","end":"4"}"#,
            r#"{"start":"01","end":"4"}"#,
            r#"{"start":0,"end":"4"}"#,
            r#"{"start":"0","end":"340282366920938463463374607431768211456"}"#,
            r#"{"start":"0"}"#,
        ] {
            assert!(serde_json::from_str::<HashRange>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bincode_round_trips() {
        for r in HashRange::split_evenly(7).unwrap() {
            let bytes = bincode::serialize(&r).unwrap();
            assert_eq!(bincode::deserialize::<HashRange>(&bytes).unwrap(), r);
        }
    }
}
