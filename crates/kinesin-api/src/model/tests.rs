//! Ties the typed shapes to the embedded model: for every operation, a request and a
//! response with every member set (and one with only the required members) must
//! survive decode → typed → encode unchanged.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::*;
use crate::service_model::{model, ShapeKind};
use crate::{decode_request, encode_output, Operation};

/// A valid sample value for `shape`; `full` sets optional members too.
fn sample(shape_name: &str, full: bool) -> Value {
    let model = model().unwrap();
    let shape = model.shape(shape_name).unwrap();
    match &shape.kind {
        ShapeKind::Structure { members, required } => {
            let mut map = Map::new();
            for member in members {
                if model.shape(&member.shape).unwrap().name == "SubscribeToShardEventStream" {
                    continue;
                }
                if full || required.contains(&member.name) {
                    map.insert(member.name.clone(), sample(&member.shape, full));
                }
            }
            Value::Object(map)
        }
        ShapeKind::List { member } => json!([sample(member, full)]),
        ShapeKind::Map { value, .. } => json!({ "k": sample(value, full) }),
        ShapeKind::String { enum_values, .. } => {
            if let Some(values) = enum_values {
                return json!(values.last().unwrap());
            }
            json!(match shape_name {
                "StreamName" | "ConsumerName" => "name-1",
                "StreamARN" | "ResourceARN" => "arn:aws:kinesis:us-east-1:123456789012:stream/s",
                "ConsumerARN" =>
                    "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1700000000",
                "ShardId" => "shardId-000000000001",
                "HashKey" => "340282366920938463463374607431768211455",
                "SequenceNumber" => "49590338271490256608559692538361571095921575989136588898",
                "StreamId" => "abcdefghij0123456789-abc",
                other => other,
            })
        }
        ShapeKind::Integer | ShapeKind::Long => json!(shape.min.unwrap_or(0).max(7)),
        ShapeKind::Boolean => json!(true),
        ShapeKind::Timestamp => json!(1_700_000_000.123),
        ShapeKind::Blob => json!("aGVsbG8="),
        ShapeKind::Other => Value::Null,
    }
}

fn round_trip_input(op: Operation, full: bool) {
    let body = sample(&op.input_shape(), full);
    let request = decode_request(op, body.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{op} ({full}): {e}\n{body}"));
    assert_eq!(request.operation(), op);
    let encoded = match &request {
        crate::Request::PutRecords(input) => encode_output(input),
        _ => encode_any(&request),
    };
    let back: Value = serde_json::from_slice(&encoded).unwrap();
    assert_eq!(back, body, "{op} (full: {full})");
}

/// Encodes the input inside any request variant.
fn encode_any(request: &crate::Request) -> Vec<u8> {
    macro_rules! each {
        ($($name:ident),*) => {
            match request {
                $( crate::Request::$name(input) => encode_output(input), )*
            }
        };
    }
    each!(
        AddTagsToStream,
        CreateStream,
        DecreaseStreamRetentionPeriod,
        DeleteResourcePolicy,
        DeleteStream,
        DeregisterStreamConsumer,
        DescribeAccountSettings,
        DescribeLimits,
        DescribeStream,
        DescribeStreamConsumer,
        DescribeStreamSummary,
        DisableEnhancedMonitoring,
        EnableEnhancedMonitoring,
        GetRecords,
        GetResourcePolicy,
        GetShardIterator,
        IncreaseStreamRetentionPeriod,
        ListShards,
        ListStreamConsumers,
        ListStreams,
        ListTagsForResource,
        ListTagsForStream,
        MergeShards,
        PutRecord,
        PutRecords,
        PutResourcePolicy,
        RegisterStreamConsumer,
        RemoveTagsFromStream,
        SplitShard,
        StartStreamEncryption,
        StopStreamEncryption,
        SubscribeToShard,
        TagResource,
        UntagResource,
        UpdateAccountSettings,
        UpdateMaxRecordSize,
        UpdateShardCount,
        UpdateStreamMode,
        UpdateStreamWarmThroughput
    )
}

#[test]
fn every_input_round_trips() {
    for op in Operation::ALL {
        round_trip_input(op, true);
        round_trip_input(op, false);
    }
}

fn round_trip<T: Serialize + DeserializeOwned>(shape: &str) {
    for full in [true, false] {
        let value = sample(shape, full);
        let typed: T = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{shape} (full: {full}): {e}\n{value}"));
        let back: Value = serde_json::from_slice(&encode_output(&typed)).unwrap();
        assert_eq!(back, value, "{shape} (full: {full})");
    }
}

#[test]
fn every_output_round_trips() {
    let model = model().unwrap();
    let mut checked = 0;
    macro_rules! outputs {
        ($($op:ident => $ty:ty),* $(,)?) => {
            $(
                let op = Operation::$op;
                match model.operations[op.name()].output.as_deref() {
                    Some("SubscribeToShardOutput") => {
                        round_trip::<$ty>("SubscribeToShardOutput");
                        round_trip::<SubscribeToShardEvent>("SubscribeToShardEvent");
                    }
                    Some(shape) => round_trip::<$ty>(shape),
                    None => {
                        let empty: $ty = serde_json::from_str("{}").unwrap();
                        assert_eq!(encode_output(&empty), b"{}", "{op}");
                    }
                }
                checked += 1;
            )*
        };
    }
    outputs!(
        AddTagsToStream => AddTagsToStreamOutput,
        CreateStream => CreateStreamOutput,
        DecreaseStreamRetentionPeriod => DecreaseStreamRetentionPeriodOutput,
        DeleteResourcePolicy => DeleteResourcePolicyOutput,
        DeleteStream => DeleteStreamOutput,
        DeregisterStreamConsumer => DeregisterStreamConsumerOutput,
        DescribeAccountSettings => DescribeAccountSettingsOutput,
        DescribeLimits => DescribeLimitsOutput,
        DescribeStream => DescribeStreamOutput,
        DescribeStreamConsumer => DescribeStreamConsumerOutput,
        DescribeStreamSummary => DescribeStreamSummaryOutput,
        DisableEnhancedMonitoring => DisableEnhancedMonitoringOutput,
        EnableEnhancedMonitoring => EnableEnhancedMonitoringOutput,
        GetRecords => GetRecordsOutput,
        GetResourcePolicy => GetResourcePolicyOutput,
        GetShardIterator => GetShardIteratorOutput,
        IncreaseStreamRetentionPeriod => IncreaseStreamRetentionPeriodOutput,
        ListShards => ListShardsOutput,
        ListStreamConsumers => ListStreamConsumersOutput,
        ListStreams => ListStreamsOutput,
        ListTagsForResource => ListTagsForResourceOutput,
        ListTagsForStream => ListTagsForStreamOutput,
        MergeShards => MergeShardsOutput,
        PutRecord => PutRecordOutput,
        PutRecords => PutRecordsOutput,
        PutResourcePolicy => PutResourcePolicyOutput,
        RegisterStreamConsumer => RegisterStreamConsumerOutput,
        RemoveTagsFromStream => RemoveTagsFromStreamOutput,
        SplitShard => SplitShardOutput,
        StartStreamEncryption => StartStreamEncryptionOutput,
        StopStreamEncryption => StopStreamEncryptionOutput,
        SubscribeToShard => SubscribeToShardOutput,
        TagResource => TagResourceOutput,
        UntagResource => UntagResourceOutput,
        UpdateAccountSettings => UpdateAccountSettingsOutput,
        UpdateMaxRecordSize => UpdateMaxRecordSizeOutput,
        UpdateShardCount => UpdateShardCountOutput,
        UpdateStreamMode => UpdateStreamModeOutput,
        UpdateStreamWarmThroughput => UpdateStreamWarmThroughputOutput,
    );
    assert_eq!(checked, Operation::ALL.len());
}

#[test]
fn enums_match_the_model() {
    let model = model().unwrap();
    fn wire<T: std::fmt::Display>(all: &[T]) -> Vec<String> {
        all.iter().map(ToString::to_string).collect()
    }
    let ours: Vec<(&str, Vec<String>)> = vec![
        ("ConsumerStatus", wire(ConsumerStatus::ALL)),
        ("EncryptionType", wire(EncryptionType::ALL)),
        ("MetricsName", wire(MetricsName::ALL)),
        (
            "MinimumThroughputBillingCommitmentInputStatus",
            wire(MinimumThroughputBillingCommitmentInputStatus::ALL),
        ),
        (
            "MinimumThroughputBillingCommitmentOutputStatus",
            wire(MinimumThroughputBillingCommitmentOutputStatus::ALL),
        ),
        (
            "RecordDistributionStrategy",
            wire(RecordDistributionStrategy::ALL),
        ),
        ("ScalingType", wire(ScalingType::ALL)),
        ("ShardFilterType", wire(ShardFilterType::ALL)),
        ("ShardIteratorType", wire(ShardIteratorType::ALL)),
        ("StreamMode", wire(StreamMode::ALL)),
        ("StreamStatus", wire(StreamStatus::ALL)),
    ];
    let mut model_enums: Vec<&str> = model
        .shapes
        .values()
        .filter(|s| {
            matches!(
                &s.kind,
                ShapeKind::String {
                    enum_values: Some(_),
                    ..
                }
            )
        })
        .map(|s| s.name.as_str())
        .collect();
    model_enums.sort();
    assert_eq!(
        model_enums,
        ours.iter().map(|(name, _)| *name).collect::<Vec<_>>()
    );
    for (name, values) in ours {
        let ShapeKind::String {
            enum_values: Some(expected),
            ..
        } = &model.shape(name).unwrap().kind
        else {
            panic!("{name}")
        };
        assert_eq!(&values, expected, "{name}");
    }
    for value in ShardIteratorType::ALL {
        assert_eq!(ShardIteratorType::from_wire(value.as_str()), Some(*value));
    }
    assert_eq!(ShardIteratorType::from_wire("latest"), None);
    assert_eq!(
        serde_json::to_value(EncryptionType::Kms).unwrap(),
        json!("KMS")
    );
}

#[test]
fn outputs_look_like_aws() {
    let output = GetRecordsOutput {
        records: vec![Record {
            sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
            approximate_arrival_timestamp: Some(1_700_000_000.123_9),
            data: b"hello".to_vec(),
            partition_key: Some("pk".into()),
            encryption_type: None,
        }],
        next_shard_iterator: None,
        millis_behind_latest: Some(0),
        child_shards: Some(vec![ChildShard {
            shard_id: "shardId-000000000002".into(),
            parent_shards: vec!["shardId-000000000000".into()],
            hash_key_range: HashKeyRange {
                starting_hash_key: "0".into(),
                ending_hash_key: "340282366920938463463374607431768211455".into(),
            },
        }]),
    };
    assert_eq!(
        String::from_utf8(encode_output(&output)).unwrap(),
        r#"{"Records":[{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ApproximateArrivalTimestamp":1700000000.124,"Data":"aGVsbG8=","PartitionKey":"pk"}],"MillisBehindLatest":0,"ChildShards":[{"ShardId":"shardId-000000000002","ParentShards":["shardId-000000000000"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"340282366920938463463374607431768211455"}}]}"#
    );
    let put = PutRecordsOutput {
        failed_record_count: Some(1),
        records: vec![
            PutRecordsResultEntry {
                sequence_number: Some("1".into()),
                shard_id: Some("shardId-000000000000".into()),
                ..Default::default()
            },
            PutRecordsResultEntry {
                error_code: Some("ProvisionedThroughputExceededException".into()),
                error_message: Some("Rate exceeded for shard shardId-000000000000".into()),
                ..Default::default()
            },
        ],
        encryption_type: Some(EncryptionType::None),
    };
    assert_eq!(
        serde_json::from_slice::<Value>(&encode_output(&put)).unwrap(),
        json!({
            "FailedRecordCount": 1,
            "Records": [
                {"SequenceNumber": "1", "ShardId": "shardId-000000000000"},
                {"ErrorCode": "ProvisionedThroughputExceededException",
                 "ErrorMessage": "Rate exceeded for shard shardId-000000000000"}
            ],
            "EncryptionType": "NONE"
        })
    );
    let summary = StreamDescriptionSummary {
        stream_name: "s".into(),
        stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s".into(),
        stream_id: None,
        stream_status: StreamStatus::Active,
        stream_mode_details: Some(StreamModeDetails {
            stream_mode: StreamMode::Provisioned,
        }),
        retention_period_hours: 24,
        stream_creation_timestamp: 1_700_000_000.0,
        enhanced_monitoring: vec![EnhancedMetrics {
            shard_level_metrics: Some(vec![]),
        }],
        encryption_type: Some(EncryptionType::None),
        key_id: None,
        open_shard_count: 4,
        consumer_count: Some(0),
        warm_throughput: None,
        max_record_size_in_kib: Some(1024),
        channel_count: None,
        record_distribution_strategy: None,
        queue_count: None,
    };
    assert_eq!(
        serde_json::from_slice::<Value>(&encode_output(&DescribeStreamSummaryOutput {
            stream_description_summary: summary
        }))
        .unwrap(),
        json!({"StreamDescriptionSummary": {
            "StreamName": "s",
            "StreamARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            "StreamStatus": "ACTIVE",
            "StreamModeDetails": {"StreamMode": "PROVISIONED"},
            "RetentionPeriodHours": 24,
            "StreamCreationTimestamp": 1700000000.0,
            "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
            "EncryptionType": "NONE",
            "OpenShardCount": 4,
            "ConsumerCount": 0,
            "MaxRecordSizeInKiB": 1024
        }})
    );
}
