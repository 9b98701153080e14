//! The two wire protocols of the Kinesis API, JSON 1.1 and CBOR 1.1: a request is answered —
//! output, error or event — in the protocol it was sent in, chosen by its Content-Type.

use ciborium::value::Value as Cbor;
use serde::Serialize;

use crate::request::{decode_cbor, decode_request};
use crate::service_model::model;
use crate::{cbor, KinesisError, Operation, Request, CONTENT_TYPE_CBOR, CONTENT_TYPE_JSON};

/// How a request's body (and so its answer) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `application/x-amz-json-1.1`: boto3, the AWS CLI, the Rust, Go, JS and C++ SDKs.
    #[default]
    Json,
    /// `application/x-amz-cbor-1.1`: the Java SDKs (v1 and v2) unless CBOR is switched off.
    Cbor,
}

impl Protocol {
    /// The protocol of a request with this `Content-Type`; anything but CBOR is read as JSON,
    /// as AWS reads a missing or foreign content type.
    pub fn from_content_type(content_type: &str) -> Protocol {
        if content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with(CONTENT_TYPE_CBOR)
        {
            Protocol::Cbor
        } else {
            Protocol::Json
        }
    }

    /// The `Content-Type` of answers in this protocol.
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => CONTENT_TYPE_JSON,
            Protocol::Cbor => CONTENT_TYPE_CBOR,
        }
    }

    /// Decodes and validates a request body (see [`decode_request`] for what is checked).
    pub fn decode_request(self, op: Operation, body: &[u8]) -> Result<Request, KinesisError> {
        match self {
            Protocol::Json => decode_request(op, body),
            Protocol::Cbor => decode_cbor(op, body),
        }
    }

    /// Encodes `op`'s output shape.
    pub fn encode_output<T: Serialize>(
        self,
        op: Operation,
        output: &T,
    ) -> Result<Vec<u8>, KinesisError> {
        match self {
            Protocol::Json => Ok(crate::codec::encode_output(output)),
            Protocol::Cbor => {
                let shape = model()?.output_shape(op.name()).ok_or_else(|| {
                    KinesisError::internal(format!("no output shape for {op} in the model"))
                })?;
                self.encode_shape(shape, output)
            }
        }
    }

    /// Encodes a value of the model's shape `shape` (an event of an event stream, say).
    pub fn encode_shape<T: Serialize>(
        self,
        shape: &str,
        value: &T,
    ) -> Result<Vec<u8>, KinesisError> {
        match self {
            Protocol::Json => Ok(crate::codec::encode_output(value)),
            Protocol::Cbor => {
                let json = serde_json::to_value(value).map_err(|e| {
                    KinesisError::internal(format!("encoding a {shape} answer: {e}"))
                })?;
                cbor::json_to_cbor(shape, json)
            }
        }
    }

    /// The error body: `{"__type": ..., "message": ...}` in either protocol (AWS's CBOR errors
    /// carry the same members; the localstack snapshot `test_cbor_exceptions` recorded one).
    pub fn encode_error(self, error: &KinesisError) -> Vec<u8> {
        match self {
            Protocol::Json => error.to_json(),
            Protocol::Cbor => {
                let mut entries = vec![(
                    Cbor::Text("__type".into()),
                    Cbor::Text(error.type_name().into()),
                )];
                if !error.message.is_empty() {
                    entries.push((
                        Cbor::Text(error.message_key().into()),
                        Cbor::Text(error.message.clone()),
                    ));
                }
                // Text keys and values only: encoding cannot fail; an empty body if it did.
                cbor::write(&Cbor::Map(entries)).unwrap_or_default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn the_content_type_chooses_the_protocol() {
        assert_eq!(
            Protocol::from_content_type("application/x-amz-cbor-1.1"),
            Protocol::Cbor
        );
        assert_eq!(
            Protocol::from_content_type("Application/X-Amz-Cbor-1.1; charset=utf-8"),
            Protocol::Cbor
        );
        assert_eq!(
            Protocol::from_content_type("application/x-amz-json-1.1"),
            Protocol::Json
        );
        assert_eq!(Protocol::from_content_type(""), Protocol::Json);
    }

    #[test]
    fn errors_have_the_same_members_in_cbor() {
        let error = KinesisError::new(
            ErrorKind::ResourceNotFound,
            "Stream s under account 1 not found.",
        );
        let body: Cbor =
            ciborium::de::from_reader(&Protocol::Cbor.encode_error(&error)[..]).unwrap();
        assert_eq!(
            body,
            Cbor::Map(vec![
                (
                    Cbor::Text("__type".into()),
                    Cbor::Text("ResourceNotFoundException".into())
                ),
                (
                    Cbor::Text("message".into()),
                    Cbor::Text("Stream s under account 1 not found.".into())
                ),
            ])
        );
        let serialization = KinesisError::serialization("bad");
        let body: Cbor =
            ciborium::de::from_reader(&Protocol::Cbor.encode_error(&serialization)[..]).unwrap();
        assert!(matches!(body, Cbor::Map(ref e) if e[1].0 == Cbor::Text("Message".into())));
    }

    #[test]
    fn a_cbor_request_decodes_to_the_same_request_as_its_json_twin() {
        let cbor_body = cbor::write(&Cbor::Map(vec![
            (Cbor::Text("StreamName".into()), Cbor::Text("s".into())),
            (Cbor::Text("Data".into()), Cbor::Bytes(b"hello".to_vec())),
            (Cbor::Text("PartitionKey".into()), Cbor::Text("k".into())),
        ]))
        .unwrap();
        let json_body = br#"{"StreamName":"s","Data":"aGVsbG8=","PartitionKey":"k"}"#;
        assert_eq!(
            Protocol::Cbor
                .decode_request(Operation::PutRecord, &cbor_body)
                .unwrap(),
            Protocol::Json
                .decode_request(Operation::PutRecord, json_body)
                .unwrap()
        );
        // Validation is the same too.
        let bad = cbor::write(&Cbor::Map(vec![(
            Cbor::Text("StreamName".into()),
            Cbor::Text("a b".into()),
        )]))
        .unwrap();
        let error = Protocol::Cbor
            .decode_request(Operation::DescribeStreamSummary, &bad)
            .unwrap_err();
        assert_eq!(error.type_name(), "ValidationException");
    }
}
