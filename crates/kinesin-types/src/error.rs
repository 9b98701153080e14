use thiserror::Error;

/// Why a value handed to this crate was rejected.
///
/// Variants carry (a bounded excerpt of) the offending input so callers can build the
/// Kinesis-style `InvalidArgumentException` / `ValidationException` messages from them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TypesError {
    #[error("invalid hash key {0:?}: expected a decimal integer between 0 and 2^128-1 without leading zeros")]
    InvalidHashKey(String),

    #[error("invalid hash range: start {start} is greater than end {end}")]
    InvalidHashRange { start: u128, end: u128 },

    #[error("invalid shard count {0}: must be at least 1")]
    InvalidShardCount(u32),

    #[error(
        "invalid shard id {0:?}: expected shardId-NNNNNNNNNNNN or a number that fits in 32 bits"
    )]
    InvalidShardId(String),

    #[error("invalid sequence number {0:?}")]
    InvalidSequenceNumber(String),

    #[error("invalid ARN {arn:?}: {reason}")]
    InvalidArn { arn: String, reason: &'static str },

    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
}

/// Inputs come straight off the wire and may be megabytes long; error messages (which end
/// up in logs and responses) only quote the beginning.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX_CHARS: usize = 200;
    match s.char_indices().nth(MAX_CHARS) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}...", &s[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_keeps_short_input_verbatim() {
        assert_eq!(excerpt(""), "");
        assert_eq!(excerpt("shardId-1"), "shardId-1");
        let exactly = "x".repeat(200);
        assert_eq!(excerpt(&exactly), exactly);
    }

    #[test]
    fn excerpt_truncates_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let e = excerpt(&long);
        assert!(e.ends_with("..."));
        assert_eq!(e.chars().count(), 203);
    }

    #[test]
    fn messages_quote_the_input() {
        let msg = TypesError::InvalidShardId("abc".into()).to_string();
        assert!(msg.contains("\"abc\""), "{msg}");
        let msg = TypesError::InvalidHashRange { start: 5, end: 1 }.to_string();
        assert_eq!(msg, "invalid hash range: start 5 is greater than end 1");
    }
}
