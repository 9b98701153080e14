//! The AWS event-stream binary framing SubscribeToShard answers in (`application/vnd.amazon.eventstream`).
//!
//! A message is a 12-byte prelude (total length u32 BE, headers length u32 BE, CRC32 of those
//! 8 bytes), the headers, the payload and a CRC32 of everything before it. Both CRCs are
//! checked: a corrupted frame is an error, never a half-read event. The decoder is incremental
//! because HTTP/2 DATA frames split messages anywhere.

use bytes::{Buf, Bytes, BytesMut};

const PRELUDE: usize = 12;
const TRAILER: usize = 4;
/// Far above any real event (SubscribeToShard events carry at most a few MB).
const MAX_MESSAGE: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Bytes),
    String(String),
    Timestamp(i64),
    Uuid([u8; 16]),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Bytes,
}

impl Message {
    /// A string header's value (`:message-type`, `:event-type`, `:exception-type`, ...).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

#[derive(Debug, PartialEq)]
pub enum FrameError {
    PreludeCrc { expected: u32, actual: u32 },
    MessageCrc { expected: u32, actual: u32 },
    Length(String),
    Header(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::PreludeCrc { expected, actual } => {
                write!(f, "event-stream prelude CRC mismatch (frame says {expected:#010x}, computed {actual:#010x})")
            }
            FrameError::MessageCrc { expected, actual } => {
                write!(f, "event-stream message CRC mismatch (frame says {expected:#010x}, computed {actual:#010x})")
            }
            FrameError::Length(why) => write!(f, "event-stream frame length: {why}"),
            FrameError::Header(why) => write!(f, "event-stream header: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Buffers bytes as they arrive and hands out whole, checked messages.
#[derive(Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next whole message, `None` until enough bytes have arrived. After an error the
    /// stream cannot be resynchronised: the caller must drop it.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if self.buf.len() < PRELUDE {
            return Ok(None);
        }
        let total = u32::from_be_bytes(self.buf[0..4].try_into().expect("4 bytes")) as usize;
        let headers_len = u32::from_be_bytes(self.buf[4..8].try_into().expect("4 bytes")) as usize;
        let prelude_crc = u32::from_be_bytes(self.buf[8..12].try_into().expect("4 bytes"));
        let actual = crc32fast::hash(&self.buf[0..8]);
        if actual != prelude_crc {
            return Err(FrameError::PreludeCrc {
                expected: prelude_crc,
                actual,
            });
        }
        if !(PRELUDE + TRAILER..=MAX_MESSAGE).contains(&total) {
            return Err(FrameError::Length(format!("total length {total}")));
        }
        if headers_len > total - PRELUDE - TRAILER {
            return Err(FrameError::Length(format!(
                "headers length {headers_len} in a {total}-byte message"
            )));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        let message_crc = u32::from_be_bytes(frame[total - 4..].try_into().expect("4 bytes"));
        let actual = crc32fast::hash(&frame[..total - 4]);
        if actual != message_crc {
            return Err(FrameError::MessageCrc {
                expected: message_crc,
                actual,
            });
        }
        let headers = parse_headers(frame.slice(PRELUDE..PRELUDE + headers_len))?;
        let payload = frame.slice(PRELUDE + headers_len..total - TRAILER);
        Ok(Some(Message { headers, payload }))
    }
}

fn take(buf: &mut Bytes, n: usize, what: &str) -> Result<Bytes, FrameError> {
    if buf.remaining() < n {
        return Err(FrameError::Header(format!("{what} runs past the headers")));
    }
    Ok(buf.split_to(n))
}

fn parse_headers(mut buf: Bytes) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    let mut headers = Vec::new();
    while buf.has_remaining() {
        let name_len = take(&mut buf, 1, "a header name length")?[0] as usize;
        let name = take(&mut buf, name_len, "a header name")?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| FrameError::Header("a header name is not UTF-8".into()))?;
        let kind = take(&mut buf, 1, "a header type")?[0];
        let value =
            match kind {
                0 => HeaderValue::Bool(true),
                1 => HeaderValue::Bool(false),
                2 => HeaderValue::Byte(take(&mut buf, 1, "a byte header")?.get_i8()),
                3 => HeaderValue::Short(take(&mut buf, 2, "a short header")?.get_i16()),
                4 => HeaderValue::Int(take(&mut buf, 4, "an int header")?.get_i32()),
                5 => HeaderValue::Long(take(&mut buf, 8, "a long header")?.get_i64()),
                6 | 7 => {
                    let len = take(&mut buf, 2, "a value length")?.get_u16() as usize;
                    let value = take(&mut buf, len, "a value")?;
                    if kind == 6 {
                        HeaderValue::Bytes(value)
                    } else {
                        HeaderValue::String(String::from_utf8(value.to_vec()).map_err(|_| {
                            FrameError::Header(format!("header {name} is not UTF-8"))
                        })?)
                    }
                }
                8 => HeaderValue::Timestamp(take(&mut buf, 8, "a timestamp header")?.get_i64()),
                9 => {
                    let mut uuid = [0u8; 16];
                    uuid.copy_from_slice(&take(&mut buf, 16, "a uuid header")?);
                    HeaderValue::Uuid(uuid)
                }
                other => {
                    return Err(FrameError::Header(format!(
                        "header {name} has unknown type {other}"
                    )))
                }
            };
        headers.push((name, value));
    }
    Ok(headers)
}

/// Encodes a message (the tests' frames; the generator only decodes).
#[cfg(test)]
pub fn encode(headers: &[(&str, HeaderValue)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        match value {
            HeaderValue::Bool(true) => h.push(0),
            HeaderValue::Bool(false) => h.push(1),
            HeaderValue::Byte(v) => {
                h.push(2);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Short(v) => {
                h.push(3);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Int(v) => {
                h.push(4);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Long(v) => {
                h.push(5);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Bytes(v) => {
                h.push(6);
                h.extend_from_slice(&(v.len() as u16).to_be_bytes());
                h.extend_from_slice(v);
            }
            HeaderValue::String(v) => {
                h.push(7);
                h.extend_from_slice(&(v.len() as u16).to_be_bytes());
                h.extend_from_slice(v.as_bytes());
            }
            HeaderValue::Timestamp(v) => {
                h.push(8);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Uuid(v) => {
                h.push(9);
                h.extend_from_slice(v);
            }
        }
    }
    let total = PRELUDE + h.len() + payload.len() + TRAILER;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> HeaderValue {
        HeaderValue::String(v.to_string())
    }

    fn event(payload: &[u8]) -> Vec<u8> {
        encode(
            &[
                (":message-type", s("event")),
                (":event-type", s("SubscribeToShardEvent")),
                (":content-type", s("application/json")),
            ],
            payload,
        )
    }

    #[test]
    fn decodes_a_message_and_its_headers() {
        let payload = br#"{"Records":[],"ContinuationSequenceNumber":"42","MillisBehindLatest":0}"#;
        let mut decoder = Decoder::default();
        decoder.push(&event(payload));
        let message = decoder.next_message().unwrap().unwrap();
        assert_eq!(message.header(":message-type"), Some("event"));
        assert_eq!(message.header(":event-type"), Some("SubscribeToShardEvent"));
        assert_eq!(message.header(":exception-type"), None);
        assert_eq!(&message.payload[..], payload);
        assert_eq!(decoder.next_message().unwrap(), None);
    }

    #[test]
    fn decodes_every_header_type() {
        let headers = [
            ("t", HeaderValue::Bool(true)),
            ("f", HeaderValue::Bool(false)),
            ("b", HeaderValue::Byte(-3)),
            ("s", HeaderValue::Short(-300)),
            ("i", HeaderValue::Int(70_000)),
            ("l", HeaderValue::Long(-5_000_000_000)),
            ("y", HeaderValue::Bytes(Bytes::from_static(b"\x00\x01"))),
            ("str", s("text")),
            ("ts", HeaderValue::Timestamp(1_440_938_160_000)),
            ("u", HeaderValue::Uuid([7; 16])),
        ];
        let mut decoder = Decoder::default();
        decoder.push(&encode(&headers, b""));
        let message = decoder.next_message().unwrap().unwrap();
        let expected: Vec<(String, HeaderValue)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        assert_eq!(message.headers, expected);
        assert!(message.payload.is_empty());
    }

    #[test]
    fn messages_split_anywhere_and_back_to_back_are_decoded() {
        let first = event(b"{\"n\":1}");
        let second = encode(
            &[
                (":message-type", s("exception")),
                (":exception-type", s("ResourceInUseException")),
            ],
            br#"{"message":"busy"}"#,
        );
        let mut bytes = first.clone();
        bytes.extend_from_slice(&second);
        for split in 0..bytes.len() {
            let mut decoder = Decoder::default();
            let mut got = Vec::new();
            for chunk in [&bytes[..split], &bytes[split..]] {
                decoder.push(chunk);
                while let Some(message) = decoder.next_message().unwrap() {
                    got.push(message);
                }
            }
            assert_eq!(got.len(), 2, "split at {split}");
            assert_eq!(&got[0].payload[..], b"{\"n\":1}");
            assert_eq!(got[1].header(":message-type"), Some("exception"));
            assert_eq!(
                got[1].header(":exception-type"),
                Some("ResourceInUseException")
            );
        }
    }

    #[test]
    fn a_corrupted_payload_fails_the_message_crc() {
        let mut frame = event(b"{\"Records\":[]}");
        let at = frame.len() - 6;
        frame[at] ^= 0x20;
        let mut decoder = Decoder::default();
        decoder.push(&frame);
        assert!(matches!(
            decoder.next_message(),
            Err(FrameError::MessageCrc { .. })
        ));
    }

    #[test]
    fn a_corrupted_prelude_fails_the_prelude_crc() {
        let mut frame = event(b"{}");
        frame[3] ^= 0x01; // the total length
        let mut decoder = Decoder::default();
        decoder.push(&frame);
        assert!(matches!(
            decoder.next_message(),
            Err(FrameError::PreludeCrc { .. })
        ));
    }

    #[test]
    fn impossible_lengths_are_rejected_even_with_a_valid_crc() {
        let mut prelude = Vec::new();
        prelude.extend_from_slice(&20u32.to_be_bytes());
        prelude.extend_from_slice(&10u32.to_be_bytes()); // 10 > 20 - 16
        let crc = crc32fast::hash(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        let mut decoder = Decoder::default();
        decoder.push(&prelude);
        assert!(matches!(decoder.next_message(), Err(FrameError::Length(_))));
    }

    #[test]
    fn a_header_running_past_its_section_is_rejected() {
        // A string header claiming 200 bytes in a 10-byte header section; CRCs valid.
        let mut h = vec![1u8, b'x', 7];
        h.extend_from_slice(&200u16.to_be_bytes());
        h.extend_from_slice(b"abcde");
        let total = PRELUDE + h.len() + TRAILER;
        let mut frame = Vec::new();
        frame.extend_from_slice(&(total as u32).to_be_bytes());
        frame.extend_from_slice(&(h.len() as u32).to_be_bytes());
        let crc = crc32fast::hash(&frame);
        frame.extend_from_slice(&crc.to_be_bytes());
        frame.extend_from_slice(&h);
        let crc = crc32fast::hash(&frame);
        frame.extend_from_slice(&crc.to_be_bytes());
        let mut decoder = Decoder::default();
        decoder.push(&frame);
        assert!(matches!(decoder.next_message(), Err(FrameError::Header(_))));
    }
}
