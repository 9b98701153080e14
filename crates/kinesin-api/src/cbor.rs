//! The CBOR wire (`application/x-amz-cbor-1.1`), the Java SDK's default (and so the KCL's,
//! Flink's, Spark's and Logstash's).
//!
//! CBOR bodies carry the same shapes as JSON ones, with two differences the service model
//! tells apart: blobs are byte strings (not base64 text) and timestamps are epoch
//! **milliseconds**, wrapped in tag 1 by the Java SDK (`SdkCborGenerator`; RFC 8949 would
//! say seconds, which is how emulators came to read year 55000). So a CBOR request is
//! translated, member by member along the operation's input shape, into the JSON value the
//! JSON wire would have carried (bytes → base64, milliseconds → epoch seconds) and then
//! validated and typed exactly as a JSON request is; an answer goes the other way along the
//! output shape. Encoding and decoding are ciborium's; definite- and indefinite-length maps,
//! arrays and strings are all accepted.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ciborium::value::{Integer, Value as Cbor};
use serde_json::{Map, Number, Value as Json};

use crate::service_model::{model, ServiceModel, Shape, ShapeKind};
use crate::KinesisError;

/// The CBOR tag of an epoch-based date/time (RFC 8949 §3.4.2), which AWS fills with
/// milliseconds.
const EPOCH_TAG: u64 = 1;

/// Parses a CBOR request body into the JSON value of the same request, following
/// `input_shape`. An empty body is `{}`; anything but a map at the top is a
/// SerializationException.
pub(crate) fn request_to_json(input_shape: &str, body: &[u8]) -> Result<Json, KinesisError> {
    if body.is_empty() {
        return Ok(Json::Object(Map::new()));
    }
    // AWS answers a body that is not CBOR, or not a map or list at the top, with
    // `{"__type":"SerializationException"}` and no message (kinesalite `index.js`).
    let value: Cbor =
        ciborium::de::from_reader(body).map_err(|_| KinesisError::serialization(""))?;
    if value.is_array() {
        return Err(KinesisError::serialization(
            "Start of list found where not expected",
        ));
    }
    if !value.is_map() {
        return Err(KinesisError::serialization(""));
    }
    let model = model()?;
    to_json(model, model.shape(input_shape), value)
}

/// Encodes `value`, a JSON value of the shape `shape_name` (an output, an event, an
/// error body), as CBOR.
pub(crate) fn json_to_cbor(shape_name: &str, value: Json) -> Result<Vec<u8>, KinesisError> {
    let model = model()?;
    let cbor = to_cbor(model, model.shape(shape_name), value);
    write(&cbor)
}

/// CBOR bytes of a value built here (maps with text keys, numbers, strings, bytes): the
/// encoder cannot fail on them short of running out of memory.
pub(crate) fn write(value: &Cbor) -> Result<Vec<u8>, KinesisError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out)
        .map_err(|e| KinesisError::internal(format!("encoding a CBOR answer: {e}")))?;
    Ok(out)
}

fn to_json(model: &ServiceModel, shape: Option<&Shape>, value: Cbor) -> Result<Json, KinesisError> {
    let kind = shape.map(|s| &s.kind);
    Ok(match (kind, value) {
        (Some(ShapeKind::Blob), Cbor::Bytes(bytes)) => Json::String(STANDARD.encode(bytes)),
        (Some(ShapeKind::Timestamp), value) => match epoch_millis(&value) {
            Some(millis) => number(millis / 1000.0)?,
            None => to_json(model, None, value)?,
        },
        (Some(ShapeKind::Structure { members, .. }), Cbor::Map(entries)) => object(
            entries,
            |name| {
                members
                    .iter()
                    .find(|m| m.name == name)
                    .and_then(|m| model.shape(&m.shape))
            },
            model,
        )?,
        (Some(ShapeKind::Map { value: values, .. }), Cbor::Map(entries)) => {
            let value_shape = model.shape(values.as_str());
            object(entries, |_| value_shape, model)?
        }
        (Some(ShapeKind::List { member }), Cbor::Array(items)) => {
            let member_shape = model.shape(member.as_str());
            Json::Array(
                items
                    .into_iter()
                    .map(|item| to_json(model, member_shape, item))
                    .collect::<Result<_, _>>()?,
            )
        }
        // Everything else keeps its CBOR type, and the JSON validator answers a mismatch
        // with AWS's SerializationException as it would for JSON.
        (_, Cbor::Integer(n)) => integer(n),
        (_, Cbor::Float(f)) => number(f)?,
        (_, Cbor::Text(text)) => Json::String(text),
        (_, Cbor::Bool(b)) => Json::Bool(b),
        (_, Cbor::Null) => Json::Null,
        (_, Cbor::Bytes(bytes)) => Json::String(STANDARD.encode(bytes)),
        (_, Cbor::Tag(_, inner)) => to_json(model, None, *inner)?,
        (_, Cbor::Array(items)) => Json::Array(
            items
                .into_iter()
                .map(|item| to_json(model, None, item))
                .collect::<Result<_, _>>()?,
        ),
        (_, Cbor::Map(entries)) => object(entries, |_| None, model)?,
        (_, other) => {
            return Err(KinesisError::serialization(format!(
                "Unexpected CBOR value {other:?}"
            )))
        }
    })
}

/// A CBOR map as a JSON object; keys must be text.
fn object<'m>(
    entries: Vec<(Cbor, Cbor)>,
    member_shape: impl Fn(&str) -> Option<&'m Shape>,
    model: &'m ServiceModel,
) -> Result<Json, KinesisError> {
    let mut map = Map::with_capacity(entries.len());
    for (key, value) in entries {
        let Cbor::Text(key) = key else {
            return Err(KinesisError::serialization(format!(
                "CBOR map keys must be text strings, not {key:?}"
            )));
        };
        let converted = to_json(model, member_shape(&key), value)?;
        map.insert(key, converted);
    }
    Ok(Json::Object(map))
}

/// Milliseconds since the epoch of a CBOR timestamp: tag 1 around a number, or the bare
/// number (the AWS CBOR protocol counts milliseconds either way).
fn epoch_millis(value: &Cbor) -> Option<f64> {
    match value {
        Cbor::Tag(EPOCH_TAG, inner) => epoch_millis(inner),
        Cbor::Integer(n) => Some(i128::from(*n) as f64),
        Cbor::Float(f) => Some(*f),
        _ => None,
    }
}

fn integer(n: Integer) -> Json {
    let wide = i128::from(n);
    if let Ok(small) = i64::try_from(wide) {
        Json::from(small)
    } else if let Ok(unsigned) = u64::try_from(wide) {
        Json::from(unsigned)
    } else {
        // Beyond 64 bits: the validator saturates it like an out-of-range JSON number.
        Number::from_f64(wide as f64).map_or(Json::Null, Json::Number)
    }
}

fn number(f: f64) -> Result<Json, KinesisError> {
    Number::from_f64(f)
        .map(Json::Number)
        .ok_or_else(|| KinesisError::serialization(format!("{f} is not a number")))
}

fn to_cbor(model: &ServiceModel, shape: Option<&Shape>, value: Json) -> Cbor {
    let kind = shape.map(|s| &s.kind);
    match (kind, value) {
        (Some(ShapeKind::Blob), Json::String(text)) => match STANDARD.decode(&text) {
            Ok(bytes) => Cbor::Bytes(bytes),
            Err(_) => Cbor::Text(text),
        },
        (Some(ShapeKind::Timestamp), Json::Number(seconds)) => {
            let millis = (seconds.as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
            Cbor::Tag(EPOCH_TAG, Box::new(Cbor::Integer(millis.into())))
        }
        (Some(ShapeKind::Structure { members, .. }), Json::Object(map)) => Cbor::Map(
            map.into_iter()
                .map(|(name, value)| {
                    let member = members
                        .iter()
                        .find(|m| m.name == name)
                        .and_then(|m| model.shape(&m.shape));
                    (Cbor::Text(name), to_cbor(model, member, value))
                })
                .collect(),
        ),
        (Some(ShapeKind::Map { value: values, .. }), Json::Object(map)) => {
            let value_shape = model.shape(values.as_str());
            Cbor::Map(
                map.into_iter()
                    .map(|(key, value)| (Cbor::Text(key), to_cbor(model, value_shape, value)))
                    .collect(),
            )
        }
        (Some(ShapeKind::List { member }), Json::Array(items)) => {
            let member_shape = model.shape(member.as_str());
            Cbor::Array(
                items
                    .into_iter()
                    .map(|item| to_cbor(model, member_shape, item))
                    .collect(),
            )
        }
        (_, Json::Null) => Cbor::Null,
        (_, Json::Bool(b)) => Cbor::Bool(b),
        (_, Json::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Cbor::Integer(i.into())
            } else if let Some(u) = n.as_u64() {
                Cbor::Integer(u.into())
            } else {
                Cbor::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        (_, Json::String(text)) => Cbor::Text(text),
        (_, Json::Array(items)) => {
            Cbor::Array(items.into_iter().map(|i| to_cbor(model, None, i)).collect())
        }
        (_, Json::Object(map)) => Cbor::Map(
            map.into_iter()
                .map(|(k, v)| (Cbor::Text(k), to_cbor(model, None, v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encode(value: &Cbor) -> Vec<u8> {
        write(value).unwrap()
    }

    fn text(s: &str) -> Cbor {
        Cbor::Text(s.into())
    }

    fn decode(bytes: &[u8]) -> Cbor {
        ciborium::de::from_reader(bytes).unwrap()
    }

    #[test]
    fn blobs_are_byte_strings_and_timestamps_tagged_milliseconds() {
        let body = encode(&Cbor::Map(vec![
            (text("StreamName"), text("s")),
            (text("Data"), Cbor::Bytes(vec![0, 1, 0xff])),
            (text("PartitionKey"), text("k")),
        ]));
        let json = request_to_json("PutRecordInput", &body).unwrap();
        assert_eq!(
            json,
            json!({"StreamName": "s", "Data": "AAH/", "PartitionKey": "k"})
        );

        let body = encode(&Cbor::Map(vec![
            (text("StreamName"), text("s")),
            (text("ShardId"), text("shardId-000000000000")),
            (text("ShardIteratorType"), text("AT_TIMESTAMP")),
            (
                text("Timestamp"),
                Cbor::Tag(1, Box::new(Cbor::Integer(1_700_000_000_123_i64.into()))),
            ),
        ]));
        let json = request_to_json("GetShardIteratorInput", &body).unwrap();
        assert_eq!(json["Timestamp"], json!(1_700_000_000.123));
        // Untagged numbers are milliseconds too.
        let body = encode(&Cbor::Map(vec![(
            text("Timestamp"),
            Cbor::Integer(1_700_000_000_000_i64.into()),
        )]));
        let json = request_to_json("GetShardIteratorInput", &body).unwrap();
        assert_eq!(json["Timestamp"], json!(1_700_000_000.0));
    }

    #[test]
    fn indefinite_length_containers_as_the_java_sdk_sends_them() {
        // {_ "Records": [_ {_ "Data": h'6869', "PartitionKey": "p"}], "StreamName": "s"}
        let mut body = vec![0xbf];
        body.extend(encode(&text("Records")));
        body.push(0x9f);
        body.push(0xbf);
        body.extend(encode(&text("Data")));
        body.extend(encode(&Cbor::Bytes(b"hi".to_vec())));
        body.extend(encode(&text("PartitionKey")));
        // An indefinite-length text string in two chunks: "p" "q".
        body.extend([0x7f, 0x61, b'p', 0x61, b'q', 0xff]);
        body.push(0xff);
        body.push(0xff);
        body.extend(encode(&text("StreamName")));
        body.extend(encode(&text("s")));
        body.push(0xff);
        let json = request_to_json("PutRecordsInput", &body).unwrap();
        assert_eq!(
            json,
            json!({"Records": [{"Data": "aGk=", "PartitionKey": "pq"}], "StreamName": "s"})
        );
    }

    #[test]
    fn bad_bodies_are_serialization_errors() {
        for body in [
            &[0xff_u8][..],
            &[0x83, 0x01],
            &encode(&text("a")),
            &[0xa1, 0x01, 0x02],
        ] {
            let error = request_to_json("PutRecordInput", body).unwrap_err();
            assert_eq!(error.type_name(), "SerializationException", "{body:?}");
        }
        assert_eq!(request_to_json("ListStreamsInput", b"").unwrap(), json!({}));
    }

    #[test]
    fn answers_follow_the_output_shape() {
        let output = json!({
            "Records": [{
                "SequenceNumber": "1",
                "ApproximateArrivalTimestamp": 1_700_000_000.123,
                "Data": "AAH/",
                "PartitionKey": "k"
            }],
            "NextShardIterator": "it",
            "MillisBehindLatest": 0
        });
        let bytes = json_to_cbor("GetRecordsOutput", output).unwrap();
        let Cbor::Map(entries) = decode(&bytes) else {
            panic!("not a map")
        };
        let records = entries
            .iter()
            .find(|(k, _)| k == &text("Records"))
            .map(|(_, v)| v.clone())
            .unwrap();
        let Cbor::Array(records) = records else {
            panic!("not an array")
        };
        let Cbor::Map(record) = &records[0] else {
            panic!("not a map")
        };
        let field = |name: &str| {
            record
                .iter()
                .find(|(k, _)| k == &text(name))
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(field("Data"), Cbor::Bytes(vec![0, 1, 0xff]));
        assert_eq!(
            field("ApproximateArrivalTimestamp"),
            Cbor::Tag(1, Box::new(Cbor::Integer(1_700_000_000_123_i64.into())))
        );
        assert_eq!(field("PartitionKey"), text("k"));
    }
}
