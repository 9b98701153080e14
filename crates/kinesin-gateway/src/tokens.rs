//! Paging tokens (`NextToken`) for ListShards, ListStreams and ListStreamConsumers. Opaque to clients: base64 of a small
//! JSON document. They carry no secret, so they are not signed — a client that edits one only pages
//! its own listing differently — but they do expire like AWS's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use kinesin_api::{ErrorKind, KinesisError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// AWS's ListShards tokens expire after 300 seconds.
pub(crate) const TOKEN_TTL_MS: u64 = 300_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ListShardsToken {
    pub account: String,
    pub region: String,
    pub stream: String,
    pub stream_created_ms: u64,
    /// Listing continues after this shard index.
    pub after_shard: u32,
    pub filter: Option<ShardFilterToken>,
    pub issued_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ShardFilterToken {
    pub kind: String,
    pub shard_id: Option<String>,
    pub timestamp_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ListStreamsToken {
    /// Listing continues after this stream name.
    pub after: String,
    pub issued_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ListConsumersToken {
    pub account: String,
    pub region: String,
    pub stream: String,
    pub stream_created_ms: u64,
    /// Listing continues after this consumer name.
    pub after: String,
    pub issued_ms: u64,
}

pub(crate) fn encode<T: Serialize>(token: &T) -> String {
    // Serializing these plain structs cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(token).unwrap_or_default())
}

pub(crate) fn decode<T: DeserializeOwned>(
    token: &str,
    issued_ms: impl Fn(&T) -> u64,
    now_ms: u64,
) -> Result<T, KinesisError> {
    let invalid = || KinesisError::new(ErrorKind::InvalidArgument, "Invalid NextToken.");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let token: T = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if now_ms.saturating_sub(issued_ms(&token)) > TOKEN_TTL_MS {
        return Err(KinesisError::new(
            ErrorKind::ExpiredNextToken,
            "The timestamp of the NextToken has expired.",
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(issued_ms: u64) -> ListStreamsToken {
        ListStreamsToken {
            after: "s".into(),
            issued_ms,
        }
    }

    #[test]
    fn round_trip_expiry_and_garbage() {
        let encoded = encode(&token(1_000));
        let decoded: ListStreamsToken =
            decode(&encoded, |t: &ListStreamsToken| t.issued_ms, 2_000).unwrap();
        assert_eq!(decoded, token(1_000));
        let expired =
            decode::<ListStreamsToken>(&encoded, |t| t.issued_ms, 1_000 + TOKEN_TTL_MS + 1)
                .unwrap_err();
        assert_eq!(expired.kind, ErrorKind::ExpiredNextToken);
        let garbage = decode::<ListStreamsToken>("!!!", |t| t.issued_ms, 0).unwrap_err();
        assert_eq!(garbage.kind, ErrorKind::InvalidArgument);
    }
}
