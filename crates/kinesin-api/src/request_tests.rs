//! Decoding valid requests, and rejecting invalid ones with AWS's exact messages.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::model::*;
use crate::ErrorKind;

fn decode(op: Operation, body: Value) -> Request {
    decode_request(op, body.to_string().as_bytes()).unwrap_or_else(|e| panic!("{op}: {e}\n{body}"))
}

fn reject(op: Operation, body: &str) -> KinesisError {
    match decode_request(op, body.as_bytes()) {
        Ok(request) => panic!("{op} accepted {body}: {request:?}"),
        Err(err) => err,
    }
}

fn validation(op: Operation, body: Value) -> String {
    let err = reject(op, &body.to_string());
    assert_eq!(err.kind, ErrorKind::Validation, "{err}");
    assert_eq!(err.http_status(), 400);
    err.message
}

fn serialization(op: Operation, body: &str) -> String {
    let err = reject(op, body);
    assert_eq!(err.kind, ErrorKind::Serialization, "{err}");
    err.message
}

#[test]
fn create_stream() {
    let Request::CreateStream(input) = decode(
        Operation::CreateStream,
        json!({"StreamName": "my-stream", "ShardCount": 3}),
    ) else {
        panic!()
    };
    assert_eq!(input.stream_name, "my-stream");
    assert_eq!(input.shard_count, Some(3));
    assert_eq!(input.stream_mode_details, None);

    let Request::CreateStream(input) = decode(
        Operation::CreateStream,
        json!({
            "StreamName": "on.demand_1",
            "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
            "Tags": {"team": "data", "empty": ""},
            "MaxRecordSizeInKiB": 10240,
            "WarmThroughputMiBps": 0
        }),
    ) else {
        panic!()
    };
    assert_eq!(input.shard_count, None);
    assert_eq!(
        input.stream_mode_details,
        Some(StreamModeDetails {
            stream_mode: StreamMode::OnDemand
        })
    );
    assert_eq!(
        input.tags,
        Some(BTreeMap::from([
            ("empty".to_string(), String::new()),
            ("team".to_string(), "data".to_string())
        ]))
    );
    assert_eq!(input.max_record_size_in_kib, Some(10240));
    assert_eq!(input.warm_throughput_mibps, Some(0));
}

#[test]
fn empty_body_is_an_empty_object() {
    assert_eq!(
        decode_request(Operation::ListStreams, b"").unwrap(),
        Request::ListStreams(ListStreamsInput::default())
    );
    assert_eq!(
        decode_request(Operation::DescribeLimits, b" \n").unwrap(),
        Request::DescribeLimits(DescribeLimitsInput::default())
    );
    // ... so an operation with required members reports them.
    let err = decode_request(Operation::CreateStream, b"").unwrap_err();
    assert_eq!(
        err.message,
        "1 validation error detected: Value null at 'streamName' failed to satisfy \
         constraint: Member must not be null"
    );
}

#[test]
fn put_record() {
    let Request::PutRecord(input) = decode(
        Operation::PutRecord,
        json!({
            "StreamName": "s",
            "Data": "aGVsbG8gd29ybGQ=",
            "PartitionKey": "user-1",
            "ExplicitHashKey": "340282366920938463463374607431768211455",
            "SequenceNumberForOrdering": "49590338271490256608559692538361571095921575989136588898",
            "StreamId": "abcdefghij0123456789-abc"
        }),
    ) else {
        panic!()
    };
    assert_eq!(input.data, b"hello world");
    assert_eq!(input.partition_key.as_deref(), Some("user-1"));
    assert_eq!(
        input.explicit_hash_key.as_deref(),
        Some("340282366920938463463374607431768211455")
    );
    assert!(input.sequence_number_for_ordering.is_some());
    assert_eq!(input.stream_id.as_deref(), Some("abcdefghij0123456789-abc"));

    // Empty data is a valid record; the ARN may replace the name.
    let Request::PutRecord(input) = decode(
        Operation::PutRecord,
        json!({"StreamARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
               "Data": "", "PartitionKey": "k"}),
    ) else {
        panic!()
    };
    assert!(input.data.is_empty());
    assert_eq!(input.stream_name, None);
}

#[test]
fn put_records() {
    let Request::PutRecords(input) = decode(
        Operation::PutRecords,
        json!({
            "StreamName": "s",
            "Records": [
                {"Data": "YQ==", "PartitionKey": "a"},
                {"Data": "Yg==", "PartitionKey": "b", "ExplicitHashKey": "0"}
            ]
        }),
    ) else {
        panic!()
    };
    assert_eq!(input.records.len(), 2);
    assert_eq!(input.records[0].data, b"a");
    assert_eq!(input.records[1].data, b"b");
    assert_eq!(input.records[1].explicit_hash_key.as_deref(), Some("0"));
}

#[test]
fn get_shard_iterator_with_each_type() {
    for (kind, extra) in [
        ("TRIM_HORIZON", json!({})),
        ("LATEST", json!({})),
        ("AT_SEQUENCE_NUMBER", json!({"StartingSequenceNumber": "1"})),
        (
            "AFTER_SEQUENCE_NUMBER",
            json!({"StartingSequenceNumber": "0"}),
        ),
        ("AT_TIMESTAMP", json!({"Timestamp": 1_700_000_000.123})),
        ("AT_TIMESTAMP", json!({"Timestamp": 1_700_000_000})),
    ] {
        let mut body = json!({"StreamName": "s", "ShardId": "shardId-000000000000",
                              "ShardIteratorType": kind});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let Request::GetShardIterator(input) = decode(Operation::GetShardIterator, body) else {
            panic!()
        };
        assert_eq!(input.shard_iterator_type, kind);
        assert_eq!(
            ShardIteratorType::from_wire(&input.shard_iterator_type).map(|t| t.as_str()),
            Some(kind)
        );
        if kind == "AT_TIMESTAMP" {
            let at = input.timestamp.unwrap();
            assert!((at - 1_700_000_000.0).abs() < 1.0, "{at}");
        }
    }
}

#[test]
fn get_records() {
    let Request::GetRecords(input) = decode(
        Operation::GetRecords,
        json!({"ShardIterator": "AAAAAAAAAAE=", "Limit": 10000}),
    ) else {
        panic!()
    };
    assert_eq!(input.shard_iterator, "AAAAAAAAAAE=");
    assert_eq!(input.limit, Some(10000));
    assert_eq!(
        validation(
            Operation::GetRecords,
            json!({"ShardIterator": "", "Limit": 10001})
        ),
        "2 validation errors detected: Value '' at 'shardIterator' failed to satisfy \
         constraint: Member must have length greater than or equal to 1; Value '10001' at \
         'limit' failed to satisfy constraint: Member must have value less than or equal to \
         10000"
    );
}

#[test]
fn list_shards_with_shard_filter() {
    let Request::ListShards(input) = decode(
        Operation::ListShards,
        json!({
            "StreamName": "s",
            "MaxResults": 1000,
            "ShardFilter": {"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000003"}
        }),
    ) else {
        panic!()
    };
    let filter = input.shard_filter.unwrap();
    assert_eq!(filter.r#type, "AFTER_SHARD_ID");
    assert_eq!(filter.shard_id.as_deref(), Some("shardId-000000000003"));
    assert_eq!(input.max_results, Some(1000));

    let Request::ListShards(input) = decode(
        Operation::ListShards,
        json!({"NextToken": "token", "ShardFilter": {"Type": "AT_TIMESTAMP",
                                                      "Timestamp": 1_700_000_000.5}}),
    ) else {
        panic!()
    };
    assert_eq!(input.next_token.as_deref(), Some("token"));
    assert_eq!(input.shard_filter.unwrap().timestamp, Some(1_700_000_000.5));

    assert_eq!(
        validation(
            Operation::ListShards,
            json!({"StreamName": "s", "ShardFilter": {"Type": "SOMEWHERE"}})
        ),
        "1 validation error detected: Value 'SOMEWHERE' at 'shardFilter.type' failed to \
         satisfy constraint: Member must satisfy enum value set: [AFTER_SHARD_ID, \
         AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]"
    );
    assert_eq!(
        validation(Operation::ListShards, json!({"ShardFilter": {}})),
        "1 validation error detected: Value null at 'shardFilter.type' failed to satisfy \
         constraint: Member must not be null"
    );
}

#[test]
fn list_streams() {
    let Request::ListStreams(input) = decode(
        Operation::ListStreams,
        json!({"Limit": 10, "ExclusiveStartStreamName": "a", "NextToken": "n"}),
    ) else {
        panic!()
    };
    assert_eq!(input.limit, Some(10));
    assert_eq!(input.exclusive_start_stream_name.as_deref(), Some("a"));
    assert_eq!(
        validation(Operation::ListStreams, json!({"Limit": 0})),
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: \
         Member must have value greater than or equal to 1"
    );
}

#[test]
fn describe_stream_with_limit_and_start() {
    let Request::DescribeStream(input) = decode(
        Operation::DescribeStream,
        json!({"StreamName": "s", "Limit": 100, "ExclusiveStartShardId": "shardId-000000000001"}),
    ) else {
        panic!()
    };
    assert_eq!(input.limit, Some(100));
    assert_eq!(
        input.exclusive_start_shard_id.as_deref(),
        Some("shardId-000000000001")
    );
    assert_eq!(
        validation(
            Operation::DescribeStream,
            json!({"StreamName": "s", "Limit": 0})
        ),
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: \
         Member must have value greater than or equal to 1"
    );
    assert_eq!(
        validation(
            Operation::DescribeStream,
            json!({"StreamName": "s", "Limit": 10001})
        ),
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: \
         Member must have value less than or equal to 10000"
    );
}

#[test]
fn tag_operations() {
    let Request::AddTagsToStream(input) = decode(
        Operation::AddTagsToStream,
        json!({"StreamName": "s", "Tags": {"a": "1", "b": ""}}),
    ) else {
        panic!()
    };
    assert_eq!(input.tags.len(), 2);
    let Request::RemoveTagsFromStream(input) = decode(
        Operation::RemoveTagsFromStream,
        json!({"StreamName": "s", "TagKeys": ["a", "b"]}),
    ) else {
        panic!()
    };
    assert_eq!(input.tag_keys, vec!["a", "b"]);
    let Request::ListTagsForStream(input) = decode(
        Operation::ListTagsForStream,
        json!({"StreamName": "s", "ExclusiveStartTagKey": "a", "Limit": 50}),
    ) else {
        panic!()
    };
    assert_eq!(input.limit, Some(50));
    let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/s";
    let Request::TagResource(input) = decode(
        Operation::TagResource,
        json!({"ResourceARN": arn, "Tags": {"k": "v"}}),
    ) else {
        panic!()
    };
    assert_eq!(input.resource_arn, arn);
    let consumer = "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1700000000";
    let Request::UntagResource(input) = decode(
        Operation::UntagResource,
        json!({"ResourceARN": consumer, "TagKeys": ["k"]}),
    ) else {
        panic!()
    };
    assert_eq!(input.tag_keys, vec!["k"]);
    let Request::ListTagsForResource(input) =
        decode(Operation::ListTagsForResource, json!({"ResourceARN": arn}))
    else {
        panic!()
    };
    assert_eq!(input.resource_arn, arn);

    assert_eq!(
        validation(Operation::ListTagsForStream, json!({"Limit": 51})),
        "1 validation error detected: Value '51' at 'limit' failed to satisfy constraint: \
         Member must have value less than or equal to 50"
    );
    assert_eq!(
        validation(
            Operation::TagResource,
            json!({"ResourceARN": "arn:aws:s3:::bucket", "Tags": {"k": "v"}})
        ),
        "1 validation error detected: Value 'arn:aws:s3:::bucket' at 'resourceARN' failed \
         to satisfy constraint: Member must satisfy regular expression pattern: \
         arn:aws.*:kinesis:.*:\\d{12}:.*(stream|channel|queue)/\\S+"
    );
    let too_many: serde_json::Map<String, Value> =
        (0..201).map(|i| (format!("k{i:03}"), json!("v"))).collect();
    let message = validation(
        Operation::AddTagsToStream,
        json!({"StreamName": "s", "Tags": too_many}),
    );
    assert!(message.starts_with("1 validation error detected: Value '{k000=v, k001=v"));
    assert!(message.ends_with(
        "}' at 'tags' failed to satisfy constraint: Member must have length less than or equal to 200"
    ));
}

#[test]
fn consumer_operations() {
    let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/s";
    let Request::RegisterStreamConsumer(input) = decode(
        Operation::RegisterStreamConsumer,
        json!({"StreamARN": arn, "ConsumerName": "c1"}),
    ) else {
        panic!()
    };
    assert_eq!(input.stream_arn, arn);
    assert_eq!(input.consumer_name, "c1");
    let Request::SubscribeToShard(input) = decode(
        Operation::SubscribeToShard,
        json!({
            "ConsumerARN": format!("{arn}/consumer/c1:1700000000"),
            "ShardId": "shardId-000000000000",
            "StartingPosition": {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "1"}
        }),
    ) else {
        panic!()
    };
    assert_eq!(input.starting_position.r#type, "AT_SEQUENCE_NUMBER");
    assert_eq!(
        validation(
            Operation::RegisterStreamConsumer,
            json!({"StreamARN": "nope"})
        ),
        "2 validation errors detected: Value 'nope' at 'streamARN' failed to satisfy \
         constraint: Member must satisfy regular expression pattern: \
         arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+; Value null at 'consumerName' failed to \
         satisfy constraint: Member must not be null"
    );
}

#[test]
fn other_operations() {
    let Request::UpdateShardCount(input) = decode(
        Operation::UpdateShardCount,
        json!({"StreamName": "s", "TargetShardCount": 8, "ScalingType": "UNIFORM_SCALING"}),
    ) else {
        panic!()
    };
    assert_eq!(input.target_shard_count, 8);
    let Request::SplitShard(input) = decode(
        Operation::SplitShard,
        json!({"StreamName": "s", "ShardToSplit": "shardId-000000000000",
               "NewStartingHashKey": "170141183460469231731687303715884105728"}),
    ) else {
        panic!()
    };
    assert_eq!(input.shard_to_split, "shardId-000000000000");
    let Request::EnableEnhancedMonitoring(input) = decode(
        Operation::EnableEnhancedMonitoring,
        json!({"StreamName": "s", "ShardLevelMetrics": ["ALL"]}),
    ) else {
        panic!()
    };
    assert_eq!(input.shard_level_metrics, vec!["ALL"]);
    let Request::UpdateAccountSettings(input) = decode(
        Operation::UpdateAccountSettings,
        json!({"MinimumThroughputBillingCommitment": {"Status": "ENABLED"}}),
    ) else {
        panic!()
    };
    assert_eq!(
        input.minimum_throughput_billing_commitment.status,
        "ENABLED"
    );
    assert_eq!(
        validation(
            Operation::UpdateMaxRecordSize,
            json!({"StreamARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
                   "MaxRecordSizeInKiB": 1023})
        ),
        "1 validation error detected: Value '1023' at 'maxRecordSizeInKiB' failed to satisfy \
         constraint: Member must have value greater than or equal to 1024"
    );
    assert_eq!(
        validation(
            Operation::SplitShard,
            json!({"ShardToSplit": "shardId-0", "NewStartingHashKey": "01"})
        ),
        "1 validation error detected: Value '01' at 'newStartingHashKey' failed to satisfy \
         constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})"
    );
    // Retention bounds are not in the model: the gateway answers InvalidArgument.
    assert!(decode_request(
        Operation::IncreaseStreamRetentionPeriod,
        br#"{"StreamName":"s","RetentionPeriodHours":100000}"#
    )
    .is_ok());
}

#[test]
fn malformed_json_is_a_serialization_exception() {
    for body in [
        "{",
        "hello",
        "{\"StreamName\":}",
        "{\"a\" 1}",
        "{}}",
        "\u{FEFF}{}",
    ] {
        // AWS answers `{"__type":"SerializationException"}`, without a message.
        assert_eq!(serialization(Operation::ListStreams, body), "", "{body}");
    }
    let err = decode_request(Operation::ListStreams, &[0xff, 0xfe]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Serialization);
    assert_eq!(
        err.to_json()[..34],
        *br#"{"__type":"SerializationException""#
    );
}

#[test]
fn top_level_must_be_an_object() {
    // As AWS: no message for a scalar or null, Coral's for a list.
    for body in ["null", "\"x\"", "12", "true"] {
        assert_eq!(serialization(Operation::ListStreams, body), "", "{body}");
    }
    assert_eq!(
        serialization(Operation::ListStreams, "[]"),
        "Start of list found where not expected"
    );
    let err = decode_request(Operation::ListStreams, b"hello").unwrap_err();
    assert_eq!(
        err.to_json(),
        br#"{"__type":"SerializationException"}"#.to_vec()
    );
}

#[test]
fn wrong_types_are_serialization_exceptions() {
    assert_eq!(
        serialization(
            Operation::CreateStream,
            r#"{"StreamName":"s","ShardCount":"abc"}"#
        ),
        "class java.lang.String can not be converted to an Integer"
    );
    assert_eq!(
        serialization(Operation::CreateStream, r#"{"StreamName":5,"ShardCount":1}"#),
        "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"
    );
}

#[test]
fn missing_required_members() {
    assert_eq!(
        validation(Operation::CreateStream, json!({"ShardCount": 1})),
        "1 validation error detected: Value null at 'streamName' failed to satisfy \
         constraint: Member must not be null"
    );
    assert_eq!(
        validation(Operation::CreateStream, json!({"StreamName": null})),
        "1 validation error detected: Value null at 'streamName' failed to satisfy \
         constraint: Member must not be null"
    );
    assert_eq!(
        validation(Operation::GetShardIterator, json!({"StreamName": "s"})),
        "2 validation errors detected: Value null at 'shardId' failed to satisfy constraint: \
         Member must not be null; Value null at 'shardIteratorType' failed to satisfy \
         constraint: Member must not be null"
    );
    // Most stream operations take StreamName or StreamARN: neither is required.
    assert!(decode_request(Operation::DescribeStreamSummary, b"{}").is_ok());
    assert!(decode_request(Operation::DeleteStream, b"{}").is_ok());
}

#[test]
fn stream_name_pattern_and_length() {
    assert_eq!(
        validation(Operation::CreateStream, json!({"StreamName": "a b"})),
        "1 validation error detected: Value 'a b' at 'streamName' failed to satisfy \
         constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
    );
    assert_eq!(
        validation(
            Operation::CreateStream,
            json!({"StreamName": "", "ShardCount": 0})
        ),
        "3 validation errors detected: Value '' at 'streamName' failed to satisfy \
         constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value \
         '' at 'streamName' failed to satisfy constraint: Member must have length greater \
         than or equal to 1; Value '0' at 'shardCount' failed to satisfy constraint: Member \
         must have value greater than or equal to 1"
    );
    let long = "a".repeat(129);
    assert_eq!(
        validation(Operation::DescribeStream, json!({"StreamName": long})),
        format!(
            "1 validation error detected: Value '{long}' at 'streamName' failed to satisfy \
             constraint: Member must have length less than or equal to 128"
        )
    );
}

#[test]
fn shard_count_bounds_follow_the_model() {
    assert_eq!(
        validation(
            Operation::CreateStream,
            json!({"StreamName": "s", "ShardCount": 0})
        ),
        "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: \
         Member must have value greater than or equal to 1"
    );
    // The current model has no maximum (older ones had 100000): the shard limit is the
    // gateway's LimitExceededException.
    let Request::CreateStream(input) = decode(
        Operation::CreateStream,
        json!({"StreamName": "s", "ShardCount": 100_001}),
    ) else {
        panic!()
    };
    assert_eq!(input.shard_count, Some(100_001));
    let Request::CreateStream(input) = decode(
        Operation::CreateStream,
        json!({"StreamName": "s", "ShardCount": 1e40}),
    ) else {
        panic!()
    };
    assert_eq!(input.shard_count, Some(i32::MAX));
}

#[test]
fn invalid_enum() {
    assert_eq!(
        validation(
            Operation::GetShardIterator,
            json!({"StreamName": "s", "ShardId": "shardId-0", "ShardIteratorType": "OLDEST"})
        ),
        "1 validation error detected: Value 'OLDEST' at 'shardIteratorType' failed to \
         satisfy constraint: Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, \
         AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]"
    );
    assert_eq!(
        validation(
            Operation::CreateStream,
            json!({"StreamName": "s", "StreamModeDetails": {"StreamMode": "provisioned"}})
        ),
        "1 validation error detected: Value 'provisioned' at 'streamModeDetails.streamMode' \
         failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, \
         ON_DEMAND]"
    );
}

#[test]
fn bad_base64_data() {
    assert_eq!(
        serialization(
            Operation::PutRecord,
            r#"{"StreamName":"s","PartitionKey":"k","Data":"abc"}"#
        ),
        "'abc' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 3"
    );
    assert_eq!(
        serialization(
            Operation::PutRecords,
            r#"{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"ab$="}]}"#
        ),
        "'ab$=' can not be converted to a Blob: Invalid Base64 character: '$'"
    );
    assert_eq!(
        serialization(
            Operation::PutRecord,
            r#"{"StreamName":"s","PartitionKey":"k","Data":"+/+="}"#
        ),
        "'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"
    );
    // URL-safe base64 is not AWS's alphabet.
    assert!(serialization(
        Operation::PutRecord,
        r#"{"StreamName":"s","PartitionKey":"k","Data":"-_-_"}"#
    )
    .contains("Invalid Base64 character: '-'"));
}

#[test]
fn partition_key_length() {
    let long = "k".repeat(257);
    assert_eq!(
        validation(
            Operation::PutRecord,
            json!({"StreamName": "s", "Data": "", "PartitionKey": long})
        ),
        format!(
            "1 validation error detected: Value '{long}' at 'partitionKey' failed to satisfy \
             constraint: Member must have length less than or equal to 256"
        )
    );
    // 256 characters, counted as Java does (UTF-16 units): fine.
    let ok = "é".repeat(256);
    assert!(decode_request(
        Operation::PutRecord,
        json!({"StreamName": "s", "Data": "", "PartitionKey": ok})
            .to_string()
            .as_bytes()
    )
    .is_ok());
}

#[test]
fn multiple_errors_are_counted() {
    let long_key = "k".repeat(257);
    assert_eq!(
        validation(
            Operation::PutRecords,
            json!({
                "StreamName": "a b",
                "Records": [
                    {"Data": "", "PartitionKey": "", "ExplicitHashKey": ""},
                    {"Data": "", "PartitionKey": long_key}
                ]
            })
        ),
        format!(
            "4 validation errors detected: \
             Value '' at 'records.1.member.explicitHashKey' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,38}}); \
             Value '' at 'records.1.member.partitionKey' failed to satisfy constraint: \
             Member must have length greater than or equal to 1; \
             Value '{long_key}' at 'records.2.member.partitionKey' failed to satisfy \
             constraint: Member must have length less than or equal to 256; \
             Value 'a b' at 'streamName' failed to satisfy constraint: Member must satisfy \
             regular expression pattern: [a-zA-Z0-9_.-]+"
        )
    );
    assert_eq!(
        validation(Operation::PutRecords, json!({"Records": []})),
        "1 validation error detected: Value '[]' at 'records' failed to satisfy constraint: \
         Member must have length greater than or equal to 1"
    );
    assert_eq!(
        validation(
            Operation::PutRecords,
            json!({"Records": [{"PartitionKey": "k"}]})
        ),
        "1 validation error detected: Value null at 'records.1.member.data' failed to \
         satisfy constraint: Member must not be null"
    );
}

#[test]
fn junk_never_panics() {
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let deep_member = format!(
        "{{\"StreamName\":{}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let deep_unknown = format!("{{\"Junk\":{}1{}}}", "{\"a\":".repeat(120), "}".repeat(120));
    let bodies: Vec<String> = vec![
        "null".into(),
        "[]".into(),
        "\"x\"".into(),
        "1e999999".into(),
        "-1e999999".into(),
        "123456789012345678901234567890123456789012345678901234567890".into(),
        r#"{"ShardCount":1e308}"#.into(),
        r#"{"ShardCount":-1e308}"#.into(),
        r#"{"ShardCount":1e999}"#.into(),
        r#"{"ShardCount":123456789012345678901234567890}"#.into(),
        r#"{"ShardCount":-123456789012345678901234567890}"#.into(),
        r#"{"Limit":18446744073709551616}"#.into(),
        r#"{"Timestamp":1e308,"StreamCreationTimestamp":-1e308}"#.into(),
        r#"{"StreamName":"\ud800"}"#.into(),
        deep_array,
        deep_object,
        deep_member,
        deep_unknown,
    ];
    for op in Operation::ALL {
        for body in &bodies {
            if let Err(err) = decode_request(op, body.as_bytes()) {
                assert!(
                    matches!(err.kind, ErrorKind::Serialization | ErrorKind::Validation),
                    "{op} {err}"
                );
            }
        }
    }
    for body in ["null", "[]", "\"x\"", "1e999999"] {
        assert_eq!(
            decode_request(Operation::PutRecord, body.as_bytes())
                .unwrap_err()
                .kind,
            ErrorKind::Serialization
        );
    }
}

/// Random mutations of valid bodies for every operation: never a panic, and every
/// error is a client error.
#[test]
fn fuzzed_bodies_never_panic() {
    let seeds = [
        json!({"StreamName": "s", "ShardCount": 2, "Tags": {"a": "b"},
               "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
        json!({"StreamName": "s", "Records": [{"Data": "YQ==", "PartitionKey": "a"}]}),
        json!({"StreamName": "s", "Data": "YQ==", "PartitionKey": "a", "ExplicitHashKey": "1"}),
        json!({"ShardFilter": {"Type": "AT_TIMESTAMP", "Timestamp": 1.5}, "MaxResults": 3}),
        json!({"ConsumerARN": "x", "ShardId": "s", "StartingPosition": {"Type": "LATEST"}}),
        json!({"MinimumThroughputBillingCommitment": {"Status": "ENABLED"}, "TagKeys": ["a"]}),
    ];
    let replacements = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1e300),
        json!(""),
        json!("a b"),
        json!("YQ"),
        json!([]),
        json!([null]),
        json!({}),
        json!({"Type": null}),
        json!([{"Data": 1}]),
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    fn mutate(value: &mut Value, pick: &mut dyn FnMut() -> u64, replacements: &[Value]) {
        match value {
            Value::Object(map) if !map.is_empty() && !pick().is_multiple_of(3) => {
                let index = (pick() as usize) % map.len();
                let key = map.keys().nth(index).cloned().unwrap_or_default();
                if let Some(child) = map.get_mut(&key) {
                    mutate(child, pick, replacements);
                }
            }
            Value::Array(items) if !items.is_empty() && !pick().is_multiple_of(3) => {
                let index = (pick() as usize) % items.len();
                mutate(&mut items[index], pick, replacements);
            }
            _ => *value = replacements[(pick() as usize) % replacements.len()].clone(),
        }
    }
    for round in 0..3000 {
        let mut body = seeds[round % seeds.len()].clone();
        for _ in 0..(1 + next() % 3) {
            mutate(&mut body, &mut next, &replacements);
        }
        let text = body.to_string();
        let op = Operation::ALL[(next() as usize) % Operation::ALL.len()];
        if let Err(err) = decode_request(op, text.as_bytes()) {
            assert_eq!(err.http_status(), 400, "{op} {text}: {err}");
        }
        // Truncated bodies too.
        let cut = (next() as usize) % (text.len() + 1);
        if let Some(prefix) = text.get(..cut) {
            if let Err(err) = decode_request(op, prefix.as_bytes()) {
                assert_eq!(err.http_status(), 400, "{op} {prefix}: {err}");
            }
        }
    }
}
