//! Decoding request bodies into typed, validated requests.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::model;
use crate::validate::check_input;
use crate::{KinesisError, Operation};

macro_rules! requests {
    ($( $name:ident => $input:ident, )*) => {
        /// A decoded, validated request: one variant per operation, holding its input.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                $name(model::$input),
            )*
        }

        impl Request {
            /// The operation this request is for.
            pub fn operation(&self) -> Operation {
                match self {
                    $( Request::$name(_) => Operation::$name, )*
                }
            }

            fn from_value(op: Operation, value: Value) -> Result<Request, KinesisError> {
                Ok(match op {
                    $( Operation::$name => Request::$name(typed(value)?), )*
                })
            }
        }
    };
}

requests! {
    AddTagsToStream => AddTagsToStreamInput,
    CreateStream => CreateStreamInput,
    DecreaseStreamRetentionPeriod => DecreaseStreamRetentionPeriodInput,
    DeleteResourcePolicy => DeleteResourcePolicyInput,
    DeleteStream => DeleteStreamInput,
    DeregisterStreamConsumer => DeregisterStreamConsumerInput,
    DescribeAccountSettings => DescribeAccountSettingsInput,
    DescribeLimits => DescribeLimitsInput,
    DescribeStream => DescribeStreamInput,
    DescribeStreamConsumer => DescribeStreamConsumerInput,
    DescribeStreamSummary => DescribeStreamSummaryInput,
    DisableEnhancedMonitoring => DisableEnhancedMonitoringInput,
    EnableEnhancedMonitoring => EnableEnhancedMonitoringInput,
    GetRecords => GetRecordsInput,
    GetResourcePolicy => GetResourcePolicyInput,
    GetShardIterator => GetShardIteratorInput,
    IncreaseStreamRetentionPeriod => IncreaseStreamRetentionPeriodInput,
    ListShards => ListShardsInput,
    ListStreamConsumers => ListStreamConsumersInput,
    ListStreams => ListStreamsInput,
    ListTagsForResource => ListTagsForResourceInput,
    ListTagsForStream => ListTagsForStreamInput,
    MergeShards => MergeShardsInput,
    PutRecord => PutRecordInput,
    PutRecords => PutRecordsInput,
    PutResourcePolicy => PutResourcePolicyInput,
    RegisterStreamConsumer => RegisterStreamConsumerInput,
    RemoveTagsFromStream => RemoveTagsFromStreamInput,
    SplitShard => SplitShardInput,
    StartStreamEncryption => StartStreamEncryptionInput,
    StopStreamEncryption => StopStreamEncryptionInput,
    SubscribeToShard => SubscribeToShardInput,
    TagResource => TagResourceInput,
    UntagResource => UntagResourceInput,
    UpdateAccountSettings => UpdateAccountSettingsInput,
    UpdateMaxRecordSize => UpdateMaxRecordSizeInput,
    UpdateShardCount => UpdateShardCountInput,
    UpdateStreamMode => UpdateStreamModeInput,
    UpdateStreamWarmThroughput => UpdateStreamWarmThroughputInput,
}

fn typed<T: DeserializeOwned>(value: Value) -> Result<T, KinesisError> {
    serde_json::from_value(value).map_err(|e| KinesisError::serialization(e.to_string()))
}

/// Decodes and validates the JSON body of a request for `op`, exactly as AWS does.
///
/// 1. An empty (or all-whitespace) body is read as `{}`.
/// 2. The body must be JSON (else SerializationException) whose top level is an object
///    (else SerializationException).
/// 3. Members are type-checked against the operation's input shape in the embedded
///    model (a mismatch is a SerializationException with AWS's message), then checked
///    against the model's constraints (`required`, lengths, ranges, full-match patterns,
///    enums); all violations, at most ten, are reported in one ValidationException in
///    AWS's format. See [`crate::validate`] for the details.
/// 4. The checked body is converted into the typed input.
///
/// **Not checked here:** the size of record `Data` blobs and the maximum number of
/// PutRecords `Records` entries. The gateway enforces those with its configurable
/// limits (AWS's wording: [`crate::validate::data_length_violation`],
/// [`crate::validate::records_length_violation`]). Neither is the rule that a stream
/// operation names its stream with `StreamName` or `StreamARN` (the model makes both
/// optional), nor anything that needs state (existence, ranges of hash keys, retention
/// bounds, ...).
///
/// Well-formed PutRecord and PutRecords requests take a faster route to the same result
/// ([`crate::fast_path`]).
pub fn decode_request(op: Operation, body: &[u8]) -> Result<Request, KinesisError> {
    match crate::fast_path::decode_write(op, body) {
        Some(request) => Ok(request),
        None => decode_slowly(op, body),
    }
}

/// [`decode_request`] for a CBOR body: translated into the JSON request it stands for
/// ([`crate::cbor`]), then checked and typed exactly as that would be.
pub(crate) fn decode_cbor(op: Operation, body: &[u8]) -> Result<Request, KinesisError> {
    let value = crate::cbor::request_to_json(&op.input_shape(), body)?;
    let checked = check_input(op, value)?;
    Request::from_value(op, checked)
}

/// [`decode_request`] without the write path's shortcut: the same answer to every body (the
/// fuzzers check that; see fuzz/).
pub fn decode_slowly(op: Operation, body: &[u8]) -> Result<Request, KinesisError> {
    let value = parse_body(body)?;
    let checked = check_input(op, value)?;
    Request::from_value(op, checked)
}

/// Parses a request body into a JSON object (see [`decode_request`]).
///
/// A body that is not JSON, or whose top is neither an object nor a list, is a
/// SerializationException without a message: AWS answers `{"__type":"SerializationException"}`
/// (kinesalite `test/connection.js`, "should return SerializationException if non-JSON body",
/// recorded against AWS).
fn parse_body(body: &[u8]) -> Result<Value, KinesisError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| KinesisError::serialization(""))?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Array(_) => Err(KinesisError::serialization(
            "Start of list found where not expected",
        )),
        _ => Err(KinesisError::serialization("")),
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
