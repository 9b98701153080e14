//! The request bodies, built once before the run so the send loop never encodes JSON.
//!
//! Each record's data starts with a 12-byte tag (4 magic bytes, then the send time as
//! nanoseconds since the UNIX epoch, big-endian). Twelve bytes at offset 0 are exactly 16
//! base64 characters at the start of the record's `Data` string, so stamping a request is a
//! copy of the prebuilt body plus a 16-byte overwrite per record; consumers decode those 16
//! characters to get the send time back.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};

use crate::sigv4::sha256_hex;

pub const TAG_BYTES: usize = 12;
pub const TAG_CHARS: usize = 16;
const MAGIC: [u8; 4] = *b"KnB\x01";

/// One prebuilt request body.
pub struct Body {
    pub json: Bytes,
    /// SHA-256 of `json`, for signing bodies sent untouched.
    pub sha256: String,
    /// Byte offsets of each record's `Data` string (where the tag goes).
    pub tag_offsets: Vec<usize>,
    pub records: u64,
}

pub struct Workload {
    /// `PutRecords` or `PutRecord`.
    pub op: &'static str,
    pub bodies: Vec<Body>,
    pub tagged: bool,
}

/// A small deterministic generator: the data only has to be incompressible-looking and the
/// keys spread, not random in any stronger sense.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn record_data(rng: &mut SplitMix, size: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        data.extend_from_slice(&rng.next().to_le_bytes());
    }
    data.truncate(size);
    if size >= TAG_BYTES {
        data[..TAG_BYTES].copy_from_slice(&tag_bytes(0));
    }
    data
}

fn tag_bytes(nanos: u64) -> [u8; TAG_BYTES] {
    let mut tag = [0u8; TAG_BYTES];
    tag[..4].copy_from_slice(&MAGIC);
    tag[4..].copy_from_slice(&nanos.to_be_bytes());
    tag
}

/// The 16 base64 characters of a tag carrying `nanos`.
pub fn encode_tag(nanos: u64) -> [u8; TAG_CHARS] {
    let mut out = [0u8; TAG_CHARS];
    let written = BASE64
        .encode_slice(tag_bytes(nanos), &mut out)
        .expect("12 bytes are 16 characters");
    debug_assert_eq!(written, TAG_CHARS);
    out
}

/// The send time (ns since the epoch) a record's base64 `Data` carries, if it is one of ours.
pub fn decode_tag(data_base64: &str) -> Option<u64> {
    let head = data_base64.as_bytes().get(..TAG_CHARS)?;
    let mut tag = [0u8; TAG_BYTES];
    let n = BASE64.decode_slice(head, &mut tag).ok()?;
    if n != TAG_BYTES || tag[..4] != MAGIC {
        return None;
    }
    let nanos = u64::from_be_bytes(tag[4..].try_into().expect("8 bytes"));
    (nanos != 0).then_some(nanos)
}

/// Bodies for `count` requests of `batch` records (`batch` 0: PutRecord) of `record_size`
/// bytes. Every record of every body gets its own partition key, so a run's records hash
/// evenly over the stream's shards.
pub fn build(
    stream: &str,
    batch: usize,
    record_size: usize,
    count: usize,
    tagged: bool,
) -> Workload {
    let stream_json = serde_json::to_string(stream).expect("a string encodes");
    let mut rng = SplitMix(0x6b69_6e65_7369_6e21);
    let per_request = batch.max(1);
    let mut bodies = Vec::with_capacity(count);
    for n in 0..count {
        let mut json = String::with_capacity(64 + per_request * (record_size * 4 / 3 + 64));
        let mut tag_offsets = Vec::with_capacity(per_request);
        json.push_str("{\"StreamName\":");
        json.push_str(&stream_json);
        if batch > 0 {
            json.push_str(",\"Records\":[");
        } else {
            json.push(',');
        }
        for i in 0..per_request {
            if i > 0 {
                json.push(',');
            }
            if batch > 0 {
                json.push('{');
            }
            json.push_str("\"Data\":\"");
            tag_offsets.push(json.len());
            BASE64.encode_string(record_data(&mut rng, record_size), &mut json);
            json.push_str("\",\"PartitionKey\":\"");
            json.push_str(&format!("{:016x}-{n}-{i}", rng.next()));
            json.push('"');
            if batch > 0 {
                json.push('}');
            }
        }
        if batch > 0 {
            json.push(']');
        }
        json.push('}');
        let json = Bytes::from(json);
        bodies.push(Body {
            sha256: sha256_hex(&json),
            json,
            tag_offsets: if tagged { tag_offsets } else { Vec::new() },
            records: per_request as u64,
        });
    }
    Workload {
        op: if batch > 0 { "PutRecords" } else { "PutRecord" },
        bodies,
        tagged,
    }
}

impl Body {
    /// A copy of the body with every record tagged with `nanos`.
    pub fn stamped(&self, nanos: u64) -> Bytes {
        let tag = encode_tag(nanos);
        let mut copy = BytesMut::from(&self.json[..]);
        for &offset in &self.tag_offsets {
            copy[offset..offset + TAG_CHARS].copy_from_slice(&tag);
        }
        copy.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn tags_round_trip_through_base64() {
        let nanos = 1_764_180_000_123_456_789u64;
        let chars = encode_tag(nanos);
        assert_eq!(chars.len(), 16);
        let text = std::str::from_utf8(&chars).unwrap();
        assert_eq!(decode_tag(text), Some(nanos));
        // With data following the tag, as in a record.
        let mut data = tag_bytes(nanos).to_vec();
        data.extend_from_slice(b"some more bytes of the record");
        assert_eq!(decode_tag(&BASE64.encode(&data)), Some(nanos));
        // Not ours, too short, or never stamped.
        assert_eq!(decode_tag(&BASE64.encode(b"hello world, hi there")), None);
        assert_eq!(decode_tag("AAAA"), None);
        assert_eq!(decode_tag(&BASE64.encode(tag_bytes(0))), None);
    }

    #[test]
    fn put_records_bodies_are_valid_json_and_stamping_tags_every_record() {
        let workload = build("bench \"s\"", 5, 100, 3, true);
        assert_eq!(workload.op, "PutRecords");
        assert_eq!(workload.bodies.len(), 3);
        let body = &workload.bodies[1];
        assert_eq!(body.records, 5);
        assert_eq!(body.sha256, sha256_hex(&body.json));
        let stamped = body.stamped(42);
        assert_eq!(stamped.len(), body.json.len());
        let v: Value = serde_json::from_slice(&stamped).unwrap();
        assert_eq!(v["StreamName"], "bench \"s\"");
        let records = v["Records"].as_array().unwrap();
        assert_eq!(records.len(), 5);
        let mut keys = std::collections::HashSet::new();
        for record in records {
            let data = record["Data"].as_str().unwrap();
            assert_eq!(BASE64.decode(data).unwrap().len(), 100);
            assert_eq!(decode_tag(data), Some(42));
            assert!(keys.insert(record["PartitionKey"].as_str().unwrap().to_string()));
        }
        // The prebuilt body itself is untouched and untagged.
        let v: Value = serde_json::from_slice(&body.json).unwrap();
        assert_eq!(decode_tag(v["Records"][0]["Data"].as_str().unwrap()), None);
    }

    #[test]
    fn put_record_bodies_carry_one_record() {
        let workload = build("s", 0, 12, 2, true);
        assert_eq!(workload.op, "PutRecord");
        let v: Value = serde_json::from_slice(&workload.bodies[0].stamped(7)).unwrap();
        assert_eq!(v["StreamName"], "s");
        assert_eq!(decode_tag(v["Data"].as_str().unwrap()), Some(7));
        assert!(v["PartitionKey"].as_str().is_some());
    }

    #[test]
    fn untagged_bodies_are_sent_as_built() {
        let workload = build("s", 2, 8, 1, false);
        assert!(workload.bodies[0].tag_offsets.is_empty());
        assert_eq!(workload.bodies[0].stamped(9), workload.bodies[0].json);
    }
}
