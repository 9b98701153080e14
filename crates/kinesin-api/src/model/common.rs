//! Structures shared between operations, and the model's enumerations.

use serde::{Deserialize, Serialize};

// The model's enumerations, with their wire spellings.

wire_enum! {
    /// The `ConsumerStatus` enumeration.
    ConsumerStatus {
        Creating => "CREATING",
        Deleting => "DELETING",
        Active => "ACTIVE",
    }
}

wire_enum! {
    /// The `EncryptionType` enumeration.
    EncryptionType {
        None => "NONE",
        Kms => "KMS",
    }
}

wire_enum! {
    /// The `MetricsName` enumeration.
    MetricsName {
        IncomingBytes => "IncomingBytes",
        IncomingRecords => "IncomingRecords",
        OutgoingBytes => "OutgoingBytes",
        OutgoingRecords => "OutgoingRecords",
        WriteProvisionedThroughputExceeded => "WriteProvisionedThroughputExceeded",
        ReadProvisionedThroughputExceeded => "ReadProvisionedThroughputExceeded",
        IteratorAgeMilliseconds => "IteratorAgeMilliseconds",
        All => "ALL",
    }
}

wire_enum! {
    /// The `MinimumThroughputBillingCommitmentInputStatus` enumeration.
    MinimumThroughputBillingCommitmentInputStatus {
        Enabled => "ENABLED",
        Disabled => "DISABLED",
    }
}

wire_enum! {
    /// The `MinimumThroughputBillingCommitmentOutputStatus` enumeration.
    MinimumThroughputBillingCommitmentOutputStatus {
        Enabled => "ENABLED",
        Disabled => "DISABLED",
        EnabledUntilEarliestAllowedEnd => "ENABLED_UNTIL_EARLIEST_ALLOWED_END",
    }
}

wire_enum! {
    /// The `RecordDistributionStrategy` enumeration.
    RecordDistributionStrategy {
        Auto => "AUTO",
        UserPartitionKey => "USER_PARTITION_KEY",
    }
}

wire_enum! {
    /// The `ScalingType` enumeration.
    ScalingType {
        UniformScaling => "UNIFORM_SCALING",
    }
}

wire_enum! {
    /// The `ShardFilterType` enumeration.
    ShardFilterType {
        AfterShardId => "AFTER_SHARD_ID",
        AtTrimHorizon => "AT_TRIM_HORIZON",
        FromTrimHorizon => "FROM_TRIM_HORIZON",
        AtLatest => "AT_LATEST",
        AtTimestamp => "AT_TIMESTAMP",
        FromTimestamp => "FROM_TIMESTAMP",
    }
}

wire_enum! {
    /// The `ShardIteratorType` enumeration.
    ShardIteratorType {
        AtSequenceNumber => "AT_SEQUENCE_NUMBER",
        AfterSequenceNumber => "AFTER_SEQUENCE_NUMBER",
        TrimHorizon => "TRIM_HORIZON",
        Latest => "LATEST",
        AtTimestamp => "AT_TIMESTAMP",
    }
}

wire_enum! {
    /// The `StreamMode` enumeration.
    StreamMode {
        Provisioned => "PROVISIONED",
        OnDemand => "ON_DEMAND",
    }
}

wire_enum! {
    /// The `StreamStatus` enumeration.
    StreamStatus {
        Creating => "CREATING",
        Deleting => "DELETING",
        Active => "ACTIVE",
        Updating => "UPDATING",
    }
}

/// A shard created from a closed one (GetRecords and SubscribeToShard report them
/// at the end of a closed shard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ChildShard {
    pub shard_id: String,
    pub parent_shards: Vec<String>,
    pub hash_key_range: HashKeyRange,
}

/// An enhanced fan-out consumer, as RegisterStreamConsumer and ListStreamConsumers
/// report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Consumer {
    pub consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: String,
    pub consumer_status: ConsumerStatus,
    #[serde(with = "crate::codec::timestamp")]
    pub consumer_creation_timestamp: f64,
}

/// An enhanced fan-out consumer, as DescribeStreamConsumer reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerDescription {
    pub consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: String,
    pub consumer_status: ConsumerStatus,
    #[serde(with = "crate::codec::timestamp")]
    pub consumer_creation_timestamp: f64,
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
}

/// The shard-level metrics enabled on a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EnhancedMetrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_level_metrics: Option<Vec<MetricsName>>,
}

/// A shard's range of hash keys, both ends inclusive, as decimal strings of
/// unsigned 128-bit integers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRange {
    pub starting_hash_key: String,
    pub ending_hash_key: String,
}

/// The commitment requested in UpdateAccountSettings (`Status`: `ENABLED` or
/// `DISABLED`, checked by validation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct MinimumThroughputBillingCommitmentInput {
    pub status: String,
}

/// The account's minimum throughput billing commitment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MinimumThroughputBillingCommitmentOutput {
    pub status: MinimumThroughputBillingCommitmentOutputStatus,
    #[serde(
        with = "crate::codec::opt_timestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<f64>,
    #[serde(
        with = "crate::codec::opt_timestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ended_at: Option<f64>,
    #[serde(
        with = "crate::codec::opt_timestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub earliest_allowed_end_at: Option<f64>,
}

/// One record of a PutRecords request. The model requires only `Data`
/// (`PartitionKey` became optional with record distribution strategies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsRequestEntry {
    #[serde(with = "crate::codec::blob")]
    pub data: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explicit_hash_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
}

/// The result of one PutRecords entry: `SequenceNumber` and `ShardId` on
/// success, `ErrorCode` (`ProvisionedThroughputExceededException` or
/// `InternalFailure`) and `ErrorMessage` on failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsResultEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// A record as GetRecords and SubscribeToShard return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    pub sequence_number: String,
    #[serde(
        with = "crate::codec::opt_timestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub approximate_arrival_timestamp: Option<f64>,
    #[serde(with = "crate::codec::blob")]
    pub data: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<EncryptionType>,
}

/// A shard's sequence numbers; `EndingSequenceNumber` is set once the shard
/// is closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    pub starting_sequence_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_sequence_number: Option<String>,
}

/// A shard as DescribeStream and ListShards report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Shard {
    pub shard_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjacent_parent_shard_id: Option<String>,
    pub hash_key_range: HashKeyRange,
    pub sequence_number_range: SequenceNumberRange,
}

/// ListShards' filter (`Type` is a [`ShardFilterType`], checked by validation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ShardFilter {
    pub r#type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<String>,
    #[serde(
        with = "crate::codec::opt_timestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<f64>,
}

/// Where SubscribeToShard starts (`Type` is a [`ShardIteratorType`], checked by
/// validation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct StartingPosition {
    pub r#type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    #[serde(
        with = "crate::codec::opt_timestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<f64>,
}

/// A stream as DescribeStream reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescription {
    pub stream_name: String,
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    pub stream_status: StreamStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_mode_details: Option<StreamModeDetails>,
    pub shards: Vec<Shard>,
    pub has_more_shards: bool,
    pub retention_period_hours: i32,
    #[serde(with = "crate::codec::timestamp")]
    pub stream_creation_timestamp: f64,
    pub enhanced_monitoring: Vec<EnhancedMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<EncryptionType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// A stream as DescribeStreamSummary reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescriptionSummary {
    pub stream_name: String,
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    pub stream_status: StreamStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_mode_details: Option<StreamModeDetails>,
    pub retention_period_hours: i32,
    #[serde(with = "crate::codec::timestamp")]
    pub stream_creation_timestamp: f64,
    pub enhanced_monitoring: Vec<EnhancedMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<EncryptionType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub open_shard_count: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_throughput: Option<WarmThroughputObject>,
    #[serde(rename = "MaxRecordSizeInKiB", skip_serializing_if = "Option::is_none")]
    pub max_record_size_in_kib: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_distribution_strategy: Option<RecordDistributionStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_count: Option<i32>,
}

/// A stream's capacity mode. Used in requests (CreateStream, UpdateStreamMode)
/// and responses alike, so it holds the [`StreamMode`] enum: validation has already
/// rejected other values when a request is decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamModeDetails {
    pub stream_mode: StreamMode,
}

/// A stream as ListStreams' `StreamSummaries` report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSummary {
    pub stream_name: String,
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    pub stream_status: StreamStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_mode_details: Option<StreamModeDetails>,
    #[serde(
        with = "crate::codec::opt_timestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_creation_timestamp: Option<f64>,
}

/// The payload of one `SubscribeToShardEvent` message of the SubscribeToShard
/// event stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct SubscribeToShardEvent {
    pub records: Vec<Record>,
    /// Null exactly at the end of a closed shard, where `ChildShards` is not empty (the KCL
    /// checks that pairing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_sequence_number: Option<String>,
    pub millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_shards: Option<Vec<ChildShard>>,
}

/// A tag as ListTagsForStream and ListTagsForResource report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A stream's warm throughput, in MiB/s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct WarmThroughputObject {
    #[serde(rename = "TargetMiBps", skip_serializing_if = "Option::is_none")]
    pub target_mibps: Option<i32>,
    #[serde(rename = "CurrentMiBps", skip_serializing_if = "Option::is_none")]
    pub current_mibps: Option<i32>,
}
