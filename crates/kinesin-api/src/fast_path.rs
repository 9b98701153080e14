//! The write path's decoder: PutRecord and PutRecords bodies straight into their typed inputs.
//!
//! The general decoder (see [`crate::decode_request`]) builds a JSON tree, copies every record's
//! base64 text into it, walks it against the model and converts it again: three passes and two
//! copies of every payload, for every record. A well-formed write needs none of that, so this
//! decoder parses the body once into the typed input (base64 decoded straight from the body)
//! and checks the few string members against the same model constraints.
//!
//! It only ever accepts: anything it is not sure of (a type mismatch, a missing or `null`
//! member, a constraint not met, a duplicate member) returns `None`, and the general decoder
//! then produces AWS's exact error. So a request it decodes is one the general decoder would
//! have decoded identically (tests compare the two).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::model::{PutRecordInput, PutRecordsInput};
use crate::request::Request;
use crate::service_model::{model, Shape, ShapeKind};
use crate::validate::java_length;
use crate::Operation;

/// `Some(request)` when `body` is a well-formed, valid PutRecord or PutRecords request.
pub(crate) fn decode_write(op: Operation, body: &[u8]) -> Option<Request> {
    if !matches!(op, Operation::PutRecord | Operation::PutRecords) {
        return None;
    }
    // The typed decode skips the members it does not name without reading them as the general
    // decoder does; a body it would refuse for them must be refused here too (found by fuzzing).
    serde_json::from_slice::<Readable>(body).ok()?;
    let model = model().ok()?;
    let string = |shape: &str| model.shape(shape);
    match op {
        Operation::PutRecord => {
            let input: PutRecordInput = serde_json::from_slice(body).ok()?;
            let valid = optional_ok(string("StreamName")?, input.stream_name.as_deref())
                && optional_ok(string("StreamARN")?, input.stream_arn.as_deref())
                && optional_ok(string("StreamId")?, input.stream_id.as_deref())
                && string_ok(string("PartitionKey")?, input.partition_key.as_deref()?)
                && optional_ok(string("HashKey")?, input.explicit_hash_key.as_deref())
                && optional_ok(
                    string("SequenceNumber")?,
                    input.sequence_number_for_ordering.as_deref(),
                );
            valid.then_some(Request::PutRecord(input))
        }
        Operation::PutRecords => {
            let input: PutRecordsInput = serde_json::from_slice(body).ok()?;
            let (partition_key, hash_key) = (string("PartitionKey")?, string("HashKey")?);
            let valid = !input.records.is_empty()
                && optional_ok(string("StreamName")?, input.stream_name.as_deref())
                && optional_ok(string("StreamARN")?, input.stream_arn.as_deref())
                && optional_ok(string("StreamId")?, input.stream_id.as_deref())
                && input.records.iter().all(|entry| {
                    entry
                        .partition_key
                        .as_deref()
                        .is_some_and(|key| string_ok(partition_key, key))
                        && optional_ok(hash_key, entry.explicit_hash_key.as_deref())
                });
            valid.then_some(Request::PutRecords(input))
        }
        _ => None,
    }
}

/// A JSON value read in full and dropped: what the general decoder's parse into a
/// `serde_json::Value` refuses (invalid UTF-8 or a lone surrogate escape in a string, a number out
/// of `f64`'s range, nesting deeper than serde_json's limit), this refuses too. Skipping a
/// member (`IgnoredAny`) checks none of these.
struct Readable;

impl<'de> Deserialize<'de> for Readable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Readable)
    }
}

impl<'de> Visitor<'de> for Readable {
    type Value = Readable;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_str<E>(self, _: &str) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_unit<E>(self) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Readable, A::Error> {
        while seq.next_element::<Readable>()?.is_some() {}
        Ok(Readable)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Readable, A::Error> {
        while map.next_entry::<Readable, Readable>()?.is_some() {}
        Ok(Readable)
    }
}

fn optional_ok(shape: &Shape, text: Option<&str>) -> bool {
    text.is_none_or(|text| string_ok(shape, text))
}

/// Whether `text` meets every constraint of the string shape (enum, pattern, length).
fn string_ok(shape: &Shape, text: &str) -> bool {
    let ShapeKind::String {
        pattern,
        enum_values,
    } = &shape.kind
    else {
        return false;
    };
    let length = java_length(text);
    enum_values.is_none()
        && shape.min.is_none_or(|min| length >= min)
        && shape.max.is_none_or(|max| length <= max)
        && pattern.as_ref().is_none_or(|p| p.matches(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::decode_slowly;

    fn both(op: Operation, body: &str) -> (Option<Request>, Result<Request, String>) {
        (
            decode_write(op, body.as_bytes()),
            decode_slowly(op, body.as_bytes()).map_err(|e| e.message),
        )
    }

    #[test]
    fn valid_writes_decode_as_the_general_decoder_does() {
        let bodies = [
            (
                Operation::PutRecord,
                r#"{"StreamName":"s","Data":"aGVsbG8=","PartitionKey":"k"}"#,
            ),
            (
                Operation::PutRecord,
                r#"{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","Data":"","PartitionKey":"k","ExplicitHashKey":"123","SequenceNumberForOrdering":"1"}"#,
            ),
            (
                Operation::PutRecord,
                r#"{"StreamName":"s","Data":"aGk=","PartitionKey":"k\u00e9\/","Unknown":[1]}"#,
            ),
            (
                Operation::PutRecords,
                r#"{"StreamName":"s.1_-","Records":[{"Data":"AA==","PartitionKey":"a"},{"Data":"AAE=","PartitionKey":"b","ExplicitHashKey":"0"}]}"#,
            ),
            (
                Operation::PutRecords,
                r#"{"StreamName":"s","Records":[{"Data":"AA==","PartitionKey":"a","ExplicitHashKey":null}],"DryRun":false}"#,
            ),
        ];
        for (op, body) in bodies {
            let (fast, slow) = both(op, body);
            assert_eq!(fast.as_ref(), slow.as_ref().ok(), "{body}");
            assert!(
                fast.is_some(),
                "the fast path declined a valid body: {body}"
            );
        }
    }

    #[test]
    fn anything_doubtful_is_left_to_the_general_decoder() {
        let bodies = [
            (
                Operation::PutRecord,
                r#"{"StreamName":"s","Data":"aGVsbG8","PartitionKey":"k"}"#,
            ),
            (
                Operation::PutRecord,
                r#"{"StreamName":"s","Data":"aGVsbG8=","PartitionKey":""}"#,
            ),
            (
                Operation::PutRecord,
                r#"{"StreamName":"s","Data":"aGVsbG8="}"#,
            ),
            (
                Operation::PutRecord,
                r#"{"StreamName":"a b","Data":"aGVsbG8=","PartitionKey":"k"}"#,
            ),
            (
                Operation::PutRecord,
                r#"{"StreamName":"s","Data":"aGVsbG8=","PartitionKey":"k","ExplicitHashKey":"-1"}"#,
            ),
            (
                Operation::PutRecord,
                r#"{"StreamName":"s","StreamName":"t","Data":"","PartitionKey":"k"}"#,
            ),
            (
                Operation::PutRecord,
                r#"{"StreamName":"s","Data":"","PartitionKey":"k","DryRun":"true"}"#,
            ),
            (Operation::PutRecords, r#"{"StreamName":"s","Records":[]}"#),
            (
                Operation::PutRecords,
                r#"{"StreamName":"s","Records":[{"Data":"AA==","PartitionKey":"a"},{"Data":"AA=="}]}"#,
            ),
            (
                Operation::PutRecords,
                r#"{"StreamName":"s","Records":{"Data":"AA=="}}"#,
            ),
            (
                Operation::PutRecords,
                r#"{"StreamName":"s","Records":[{"Data":"AA==","PartitionKey":"a","ExplicitHashKey":"x"}]}"#,
            ),
            (Operation::PutRecords, r#"["StreamName"]"#),
            (Operation::PutRecords, ""),
        ];
        for (op, body) in bodies {
            let (fast, slow) = both(op, body);
            assert!(fast.is_none(), "the fast path took a doubtful body: {body}");
            // Where the general decoder accepts it after all (a string boolean, say), the
            // request is still served, only more slowly.
            if let Ok(request) = slow {
                assert_eq!(request.operation(), op);
            }
        }
    }

    /// Found by fuzzing (fuzz/corpus/json_request/crash-*): members the typed decode skips must
    /// still be JSON the general decoder reads, or both must refuse the body alike.
    #[test]
    fn unknown_members_are_read_as_the_general_decoder_reads_them() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let bad_values: [&[u8]; 5] = [
            b"\"\xc0\xc0\"",
            br#""\ud800""#,
            br#"1e400"#,
            br#"{"a":-1e999}"#,
            deep.as_bytes(),
        ];
        for value in bad_values {
            for (op, prefix, suffix) in [
                (
                    Operation::PutRecord,
                    &br#"{"StreamName":"s","Data":"aGk=","PartitionKey":"k","Other":"#[..],
                    &b"}"[..],
                ),
                (
                    Operation::PutRecords,
                    br#"{"StreamName":"s","Records":[{"Data":"AA==","PartitionKey":"a","Other":"#,
                    b"}]}",
                ),
            ] {
                let body = [prefix, value, suffix].concat();
                let shown = String::from_utf8_lossy(&body);
                let slow = decode_slowly(op, &body);
                assert_eq!(
                    slow.as_ref().map_err(|e| e.type_name()).err(),
                    Some("SerializationException"),
                    "{shown}"
                );
                assert_eq!(decode_write(op, &body), None, "{shown}");
                assert_eq!(crate::decode_request(op, &body), slow, "{shown}");
            }
        }
        // A well-formed unknown member still takes the fast path.
        let body = br#"{"StreamName":"s","Data":"aGk=","PartitionKey":"k","Other":{"a":[1.5,"\u00e9",null,true]}}"#;
        assert!(decode_write(Operation::PutRecord, body).is_some());
    }

    #[test]
    fn other_operations_take_the_general_path() {
        let body = br#"{"StreamName":"s"}"#;
        assert!(decode_write(Operation::DescribeStream, body).is_none());
    }
}
