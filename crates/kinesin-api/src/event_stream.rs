//! The AWS event-stream framing (`application/vnd.amazon.eventstream`) that SubscribeToShard
//! answers in.
//!
//! A message is a prelude — total length (u32 BE), headers length (u32 BE) and the CRC32 of those
//! 8 bytes — then the headers, the payload and the CRC32 of everything before it (both CRCs IEEE,
//! as gzip's). Headers are `[name length u8][name][type u8][value]`; every header this server
//! writes is a string (type 7, u16 BE length). The first message of a subscription is the
//! `initial-response` event (boto3 refuses a stream without it; the Rust SDK awaits it), then
//! `SubscribeToShardEvent`s, or an `exception` message that ends the stream.

use crate::{KinesisError, Protocol};

/// The `Content-Type` of an event-stream response.
pub const CONTENT_TYPE_EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;
const STRING_HEADER: u8 = 7;

/// One framed message with string `headers` and `payload`.
pub fn message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let headers_len: usize = headers
        .iter()
        .map(|(name, value)| 1 + name.len() + 1 + 2 + value.len())
        .sum();
    let total = PRELUDE_LEN + headers_len + payload.len() + CRC_LEN;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers_len as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    for (name, value) in headers {
        // Names and values are this server's own constants and error type names: short.
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(STRING_HEADER);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// An event of type `event_type` (`initial-response`, `SubscribeToShardEvent`) whose payload is
/// already encoded in `protocol`.
pub fn event(protocol: Protocol, event_type: &str, payload: &[u8]) -> Vec<u8> {
    message(
        &[
            (":message-type", "event"),
            (":event-type", event_type),
            (":content-type", protocol.content_type()),
        ],
        payload,
    )
}

/// The message that ends a stream with `error`: the SDKs raise it as the error of that type.
pub fn exception(protocol: Protocol, error: &KinesisError) -> Vec<u8> {
    message(
        &[
            (":message-type", "exception"),
            (":exception-type", error.type_name()),
            (":content-type", protocol.content_type()),
        ],
        &protocol.encode_error(error),
    )
}

/// A message read back: its string headers and payload. For tests and tools; the server only
/// writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one message from the front of `bytes`: the message and how many bytes it took, or
/// `Ok(None)` when `bytes` does not hold a whole message yet.
pub fn read_message(bytes: &[u8]) -> Result<Option<(Message, usize)>, String> {
    if bytes.len() < PRELUDE_LEN {
        return Ok(None);
    }
    let word =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let total = word(0) as usize;
    let headers_len = word(4) as usize;
    if word(8) != crc32fast::hash(&bytes[..8]) {
        return Err("prelude CRC mismatch".into());
    }
    if total < PRELUDE_LEN + headers_len + CRC_LEN {
        return Err(format!("message length {total} is too short"));
    }
    if bytes.len() < total {
        return Ok(None);
    }
    if word(total - CRC_LEN) != crc32fast::hash(&bytes[..total - CRC_LEN]) {
        return Err("message CRC mismatch".into());
    }
    let mut headers = Vec::new();
    let mut at = PRELUDE_LEN;
    let end = PRELUDE_LEN + headers_len;
    while at < end {
        let name_len = bytes[at] as usize;
        let name = bytes
            .get(at + 1..at + 1 + name_len)
            .ok_or("header name cut")?;
        at += 1 + name_len;
        if bytes.get(at) != Some(&STRING_HEADER) {
            return Err("only string headers are read".into());
        }
        let len_bytes = bytes.get(at + 1..at + 3).ok_or("header length cut")?;
        let value_len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
        let value = bytes
            .get(at + 3..at + 3 + value_len)
            .ok_or("header value cut")?;
        at += 3 + value_len;
        headers.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    let payload = bytes[end..total - CRC_LEN].to_vec();
    Ok(Some((Message { headers, payload }, total)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn a_message_reads_back_with_its_headers_and_payload() {
        let framed = event(
            Protocol::Json,
            "SubscribeToShardEvent",
            br#"{"Records":[]}"#,
        );
        let (message, used) = read_message(&framed).unwrap().unwrap();
        assert_eq!(used, framed.len());
        assert_eq!(message.header(":message-type"), Some("event"));
        assert_eq!(message.header(":event-type"), Some("SubscribeToShardEvent"));
        assert_eq!(
            message.header(":content-type"),
            Some("application/x-amz-json-1.1")
        );
        assert_eq!(message.payload, br#"{"Records":[]}"#);
        // A partial message is not yet a message.
        assert_eq!(read_message(&framed[..framed.len() - 1]).unwrap(), None);
    }

    #[test]
    fn the_framing_matches_the_published_layout() {
        // An empty message: 16 bytes, the smallest there is (prelude + message CRC).
        let empty = message(&[], b"");
        assert_eq!(empty.len(), 16);
        assert_eq!(&empty[..8], &[0, 0, 0, 16, 0, 0, 0, 0]);
        // The prelude CRC of total=16, headers=0, as every event-stream implementation computes.
        // (The test vector `empty_message` of awslabs' event-stream test suite.)
        assert_eq!(&empty[8..12], &0x05c2_48ebu32.to_be_bytes());
        assert_eq!(&empty[12..], &0x7d98_c8ffu32.to_be_bytes());
    }

    #[test]
    fn corruption_is_detected() {
        let mut framed = event(Protocol::Cbor, "initial-response", &[0xa0]);
        let last = framed.len() - 5;
        framed[last] ^= 1;
        assert!(read_message(&framed).is_err());
    }

    #[test]
    fn exceptions_name_their_type() {
        let error = KinesisError::new(ErrorKind::ResourceInUse, "in use");
        let (message, _) = read_message(&exception(Protocol::Json, &error))
            .unwrap()
            .unwrap();
        assert_eq!(message.header(":message-type"), Some("exception"));
        assert_eq!(
            message.header(":exception-type"),
            Some("ResourceInUseException")
        );
    }
}
