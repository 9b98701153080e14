use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::shard_id::ShardId;

/// What a shard iterator carries. Opaque to clients, authenticated so a forged or edited
/// one is rejected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IteratorPayload {
    pub account: String,
    pub region: String,
    pub stream_name: String,
    /// Distinguishes a re-created stream of the same name.
    pub stream_created_ms: u64,
    pub shard: ShardId,
    /// Next position to read.
    pub position: u64,
    /// When the iterator was issued.
    pub issued_ms: u64,
}

/// How long an iterator stays usable after it was issued (AWS: 5 minutes).
pub const ITERATOR_TTL_MS: u64 = 300_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IteratorError {
    /// Bad base64, bad length, bad MAC or bad payload: deliberately indistinguishable.
    #[error("Invalid ShardIterator.")]
    Invalid,
    /// AWS's words, with its times as Java's `Date.toString()` writes them in UTC (kinesalite
    /// `actions/getRecords.js`, recorded against AWS): `Iterator expired. The iterator was
    /// created at time Thu Jan 22 01:22:02 UTC 2015 while right now it is ...`.
    #[error("Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of 300000 milliseconds.", java_date(.issued_ms), java_date(.now_ms))]
    Expired { issued_ms: u64, now_ms: u64 },
}

fn java_date(ms: &u64) -> String {
    java_utc_date(*ms)
}

/// `ms` since the epoch as Java's `Date.toString()` writes it in UTC:
/// `Thu Jan 22 01:22:02 UTC 2015`.
pub fn java_utc_date(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms / 1000;
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {day:02} {:02}:{:02}:{:02} UTC {year}",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60,
    )
}

/// Bumped if the binary layout changes, so old iterators fail cleanly as `Invalid`.
const FORMAT_VERSION: u8 = 1;
/// HMAC-SHA256 truncated to 128 bits: ample against forgery for a 5-minute token, and it
/// keeps iterators short.
const TAG_LEN: usize = 16;
/// The API's ShardIterator member is at most 512 characters; never decode more.
const MAX_ITERATOR_LEN: usize = 512;

/// Encodes and authenticates shard iterators with a cluster-wide secret.
#[derive(Clone)]
pub struct IteratorCodec {
    /// HMAC state already keyed, cloned per operation so the key schedule runs once.
    mac: Hmac<Sha256>,
}

impl fmt::Debug for IteratorCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.write_str("IteratorCodec { .. }")
    }
}

impl IteratorCodec {
    pub fn new(key: [u8; 32]) -> Self {
        // HMAC zero-pads keys shorter than the hash block to the block size, so keying with
        // the padded 64-byte block is identical to keying with the 32 bytes, and avoids the
        // (impossible, but fallible-typed) `new_from_slice`.
        let mut block = hmac::digest::Key::<Hmac<Sha256>>::default();
        block[..key.len()].copy_from_slice(&key);
        IteratorCodec {
            mac: <Hmac<Sha256> as Mac>::new(&block),
        }
    }

    /// Compact binary payload + truncated HMAC-SHA256, standard base64 (AWS iterators look
    /// like base64). At most 300 characters for AWS-sized names.
    pub fn encode(&self, payload: &IteratorPayload) -> String {
        let mut bytes = encode_payload(payload);
        let mut mac = self.mac.clone();
        mac.update(&bytes);
        let tag = mac.finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        STANDARD.encode(bytes)
    }

    /// Verifies and decodes `iterator`; `now_ms` is the caller's clock (this crate reads none).
    /// An iterator issued "in the future" (clock skew between nodes) is accepted.
    pub fn decode(&self, iterator: &str, now_ms: u64) -> Result<IteratorPayload, IteratorError> {
        if iterator.len() > MAX_ITERATOR_LEN {
            return Err(IteratorError::Invalid);
        }
        let bytes = STANDARD
            .decode(iterator)
            .map_err(|_| IteratorError::Invalid)?;
        let body_len = bytes
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(IteratorError::Invalid)?;
        let (body, tag) = bytes.split_at(body_len);
        let mut mac = self.mac.clone();
        mac.update(body);
        // Constant-time comparison, so the tag cannot be guessed byte by byte.
        mac.verify_truncated_left(tag)
            .map_err(|_| IteratorError::Invalid)?;
        let payload = decode_payload(body).ok_or(IteratorError::Invalid)?;
        if now_ms.saturating_sub(payload.issued_ms) > ITERATOR_TTL_MS {
            return Err(IteratorError::Expired {
                issued_ms: payload.issued_ms,
                now_ms,
            });
        }
        Ok(payload)
    }
}

/// Layout: version byte, then account, region and stream name each as a LEB128 length +
/// UTF-8 bytes, then stream_created_ms (u64), shard (u32), position (u64), issued_ms (u64),
/// all big-endian. Hand-rolled so the format is fixed by this file, not a library version.
fn encode_payload(p: &IteratorPayload) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        1 + 3 * 2 + p.account.len() + p.region.len() + p.stream_name.len() + 28 + TAG_LEN,
    );
    out.push(FORMAT_VERSION);
    for s in [&p.account, &p.region, &p.stream_name] {
        put_varint(&mut out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&p.stream_created_ms.to_be_bytes());
    out.extend_from_slice(&p.shard.0.to_be_bytes());
    out.extend_from_slice(&p.position.to_be_bytes());
    out.extend_from_slice(&p.issued_ms.to_be_bytes());
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Only ever sees MAC-verified bytes, but stays strict anyway: a key shared with a buggy or
/// older writer must still not make us misread an iterator.
fn decode_payload(bytes: &[u8]) -> Option<IteratorPayload> {
    let mut r = Reader { rest: bytes };
    if r.take(1)? != [FORMAT_VERSION] {
        return None;
    }
    let account = r.string()?;
    let region = r.string()?;
    let stream_name = r.string()?;
    let stream_created_ms = u64::from_be_bytes(r.array()?);
    let shard = ShardId(u32::from_be_bytes(r.array()?));
    let position = u64::from_be_bytes(r.array()?);
    let issued_ms = u64::from_be_bytes(r.array()?);
    if !r.rest.is_empty() {
        return None;
    }
    Some(IteratorPayload {
        account,
        region,
        stream_name,
        stream_created_ms,
        shard,
        position,
        issued_ms,
    })
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        // 10 groups of 7 bits cover a u64; reject anything longer or overflowing, and
        // non-minimal encodings so each payload has exactly one byte form.
        for i in 0..10 {
            let b = self.take(1)?[0];
            let group = u64::from(b & 0x7f);
            let shift = 7 * i;
            if shift == 63 && group > 1 {
                return None;
            }
            v |= group << shift;
            if b & 0x80 == 0 {
                if i > 0 && group == 0 {
                    return None;
                }
                return Some(v);
            }
        }
        None
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.varint()?).ok()?;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const NOW: u64 = 1_700_000_000_000;

    fn payload() -> IteratorPayload {
        IteratorPayload {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            stream_name: "orders".into(),
            stream_created_ms: 1_690_000_000_123,
            shard: ShardId(3),
            position: 42,
            issued_ms: NOW,
        }
    }

    fn worst_case() -> IteratorPayload {
        IteratorPayload {
            account: "999999999999".into(),
            region: "r".repeat(32),
            stream_name: "s".repeat(128),
            stream_created_ms: u64::MAX,
            shard: ShardId(u32::MAX),
            position: u64::MAX,
            issued_ms: u64::MAX,
        }
    }

    #[test]
    fn round_trips() {
        let codec = IteratorCodec::new(KEY);
        for p in [
            payload(),
            worst_case(),
            IteratorPayload {
                account: String::new(),
                region: String::new(),
                stream_name: String::new(),
                stream_created_ms: 0,
                shard: ShardId(0),
                position: 0,
                issued_ms: 0,
            },
        ] {
            let it = codec.encode(&p);
            assert_eq!(codec.decode(&it, p.issued_ms), Ok(p));
        }
    }

    #[test]
    fn padded_key_equals_raw_key() {
        let mut raw = <Hmac<Sha256> as Mac>::new_from_slice(&KEY).unwrap();
        let mut ours = IteratorCodec::new(KEY).mac;
        raw.update(b"x");
        ours.update(b"x");
        assert_eq!(raw.finalize().into_bytes(), ours.finalize().into_bytes());
    }

    #[test]
    fn is_deterministic_standard_base64() {
        let codec = IteratorCodec::new(KEY);
        let a = codec.encode(&payload());
        assert_eq!(a, codec.encode(&payload()));
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')));
    }

    #[test]
    fn worst_case_fits_the_api_limit() {
        let it = IteratorCodec::new(KEY).encode(&worst_case());
        assert!(it.len() <= 512, "{} chars", it.len());
        assert!(it.len() <= 300, "{} chars", it.len());
    }

    #[test]
    fn any_single_char_edit_is_rejected() {
        let codec = IteratorCodec::new(KEY);
        let it = codec.encode(&payload());
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
        for i in 0..it.len() {
            for &c in alphabet {
                if it.as_bytes()[i] == c {
                    continue;
                }
                let mut edited = it.clone().into_bytes();
                edited[i] = c;
                let edited = String::from_utf8(edited).unwrap();
                assert_eq!(
                    codec.decode(&edited, NOW),
                    Err(IteratorError::Invalid),
                    "position {i} -> {}",
                    c as char
                );
            }
        }
    }

    #[test]
    fn any_single_byte_flip_is_rejected() {
        let codec = IteratorCodec::new(KEY);
        let raw = STANDARD.decode(codec.encode(&payload())).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut edited = raw.clone();
                edited[i] ^= 1 << bit;
                assert_eq!(
                    codec.decode(&STANDARD.encode(&edited), NOW),
                    Err(IteratorError::Invalid),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn truncation_and_extension_are_rejected() {
        let codec = IteratorCodec::new(KEY);
        let raw = STANDARD.decode(codec.encode(&payload())).unwrap();
        for n in 0..raw.len() {
            assert_eq!(
                codec.decode(&STANDARD.encode(&raw[..n]), NOW),
                Err(IteratorError::Invalid)
            );
        }
        let mut longer = raw.clone();
        longer.push(0);
        assert_eq!(
            codec.decode(&STANDARD.encode(&longer), NOW),
            Err(IteratorError::Invalid)
        );
    }

    #[test]
    fn garbage_is_rejected() {
        let codec = IteratorCodec::new(KEY);
        let huge = "A".repeat(10_000);
        for bad in ["", "not base64!", "AAAA", "====", huge.as_str()] {
            assert_eq!(codec.decode(bad, NOW), Err(IteratorError::Invalid), "{bad}");
        }
    }

    #[test]
    fn another_key_rejects() {
        let it = IteratorCodec::new(KEY).encode(&payload());
        let mut other = KEY;
        other[31] ^= 1;
        assert_eq!(
            IteratorCodec::new(other).decode(&it, NOW),
            Err(IteratorError::Invalid)
        );
    }

    #[test]
    fn expiry_boundary() {
        let codec = IteratorCodec::new(KEY);
        let it = codec.encode(&payload());
        assert!(codec.decode(&it, NOW + 299_000).is_ok());
        assert!(codec.decode(&it, NOW + ITERATOR_TTL_MS).is_ok());
        let late = NOW + ITERATOR_TTL_MS + 1;
        let err = codec.decode(&it, late).unwrap_err();
        assert_eq!(
            err,
            IteratorError::Expired {
                issued_ms: NOW,
                now_ms: late
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of 300000 milliseconds.",
                java_utc_date(NOW),
                java_utc_date(late)
            )
        );
    }

    #[test]
    fn times_read_like_javas_date() {
        // kinesalite's example (actions/getRecords.js): Thu Jan 22 01:22:02 UTC 2015.
        assert_eq!(
            java_utc_date(1_421_889_722_000),
            "Thu Jan 22 01:22:02 UTC 2015"
        );
        assert_eq!(java_utc_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            java_utc_date(951_782_400_999),
            "Tue Feb 29 00:00:00 UTC 2000"
        );
        assert_eq!(
            java_utc_date(1_798_761_599_000),
            "Thu Dec 31 23:59:59 UTC 2026"
        );
    }

    #[test]
    fn issued_in_the_future_is_accepted() {
        let codec = IteratorCodec::new(KEY);
        let it = codec.encode(&payload());
        assert!(codec.decode(&it, NOW - 3_600_000).is_ok());
        assert!(codec.decode(&it, 0).is_ok());
    }

    #[test]
    fn authentic_but_malformed_payloads_are_rejected() {
        let codec = IteratorCodec::new(KEY);
        let sign = |body: &[u8]| {
            let mut mac = codec.mac.clone();
            mac.update(body);
            let mut out = body.to_vec();
            out.extend_from_slice(&mac.finalize().into_bytes()[..TAG_LEN]);
            STANDARD.encode(out)
        };
        let good = encode_payload(&payload());
        assert!(codec.decode(&sign(&good), NOW).is_ok());

        let mut wrong_version = good.clone();
        wrong_version[0] = 2;
        let mut trailing = good.clone();
        trailing.push(0);
        let mut bad_utf8 = good.clone();
        bad_utf8[2] = 0xff; // first byte of the account
        let mut huge_len = good.clone();
        huge_len.splice(1..2, [0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut non_minimal = good.clone();
        non_minimal.splice(1..2, [0x8c, 0x00]); // 12 written in two bytes
        for body in [
            &good[..good.len() - 1],
            &wrong_version[..],
            &trailing[..],
            &bad_utf8[..],
            &huge_len[..],
            &non_minimal[..],
            &[][..],
        ] {
            assert_eq!(codec.decode(&sign(body), NOW), Err(IteratorError::Invalid));
        }
    }

    #[test]
    fn varint_round_trips_and_rejects_overlong() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut r = Reader { rest: &buf };
            assert_eq!(r.varint(), Some(v));
            assert!(r.rest.is_empty());
        }
        // 2^64 would need an 11th group / a larger 10th group.
        let mut r = Reader {
            rest: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        };
        assert_eq!(r.varint(), None);
        let mut r = Reader { rest: &[0x80; 11] };
        assert_eq!(r.varint(), None);
    }
}
