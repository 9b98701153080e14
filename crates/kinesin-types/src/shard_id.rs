use std::fmt;
use std::str::FromStr;

use crate::error::{excerpt, TypesError};

/// A shard's index within its stream; rendered the way AWS names shards.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ShardId(pub u32);

const PREFIX: &str = "shardId-";

/// The API's ShardId member has max length 128; longer input is rejected before parsing.
const MAX_SHARD_ID_LEN: usize = 128;

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{:012}", self.0)
    }
}

impl FromStr for ShardId {
    type Err = TypesError;

    /// Accepts `shardId-000000000007`, `shardId-7`, and (as AWS does, normalising `123`
    /// to `shardId-000000000123`) a bare number such as `7` or `000007`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || TypesError::InvalidShardId(excerpt(s));
        if s.len() > MAX_SHARD_ID_LEN {
            return Err(invalid());
        }
        let digits = s.strip_prefix(PREFIX).unwrap_or(s);
        // Checked by hand because u32::from_str also accepts a leading '+'.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        digits.parse::<u32>().map(ShardId).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_aws() {
        assert_eq!(ShardId(7).to_string(), "shardId-000000000007");
        assert_eq!(ShardId(0).to_string(), "shardId-000000000000");
        assert_eq!(ShardId(u32::MAX).to_string(), "shardId-004294967295");
    }

    #[test]
    fn round_trips() {
        for n in [0, 1, 7, 123, 999_999, u32::MAX - 1, u32::MAX] {
            let id = ShardId(n);
            assert_eq!(id.to_string().parse::<ShardId>().unwrap(), id);
        }
    }

    #[test]
    fn accepts_the_short_forms() {
        assert_eq!("7".parse::<ShardId>().unwrap(), ShardId(7));
        assert_eq!("000007".parse::<ShardId>().unwrap(), ShardId(7));
        assert_eq!("123".parse::<ShardId>().unwrap(), ShardId(123));
        assert_eq!("shardId-7".parse::<ShardId>().unwrap(), ShardId(7));
        assert_eq!("4294967295".parse::<ShardId>().unwrap(), ShardId(u32::MAX));
        // Many leading zeros are fine as long as the whole stays within 128 chars.
        let padded = format!("{PREFIX}{}1", "0".repeat(119));
        assert_eq!(padded.len(), 128);
        assert_eq!(padded.parse::<ShardId>().unwrap(), ShardId(1));
    }

    #[test]
    fn rejects_malformed() {
        let too_long = format!("{PREFIX}{}1", "0".repeat(120));
        for bad in [
            "",
            "shardId-",
            "shardId",
            "shardid-000000000001",
            "ShardId-1",
            "shardId-abc",
            "abc",
            "+7",
            "-7",
            " 7",
            "7 ",
            "shardId-+7",
            "shardId--7",
            "4294967296",
            "shardId-004294967296",
            "99999999999999999999999",
            "7e3",
            too_long.as_str(),
        ] {
            assert!(
                matches!(bad.parse::<ShardId>(), Err(TypesError::InvalidShardId(_))),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn orders_numerically() {
        assert!(ShardId(2) < ShardId(10));
    }
}
