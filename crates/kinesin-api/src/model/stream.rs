//! Stream administration: create, delete, describe, list, reshard, retention,
//! encryption, monitoring, mode, record size, warm throughput, limits.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{
    MetricsName, Shard, ShardFilter, StreamDescription, StreamDescriptionSummary,
    StreamModeDetails, StreamSummary, WarmThroughputObject,
};

/// Request of `CreateStream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CreateStreamInput {
    pub stream_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_mode_details: Option<StreamModeDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "WarmThroughputMiBps",
        skip_serializing_if = "Option::is_none"
    )]
    pub warm_throughput_mibps: Option<i32>,
    #[serde(rename = "MaxRecordSizeInKiB", skip_serializing_if = "Option::is_none")]
    pub max_record_size_in_kib: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_distribution_strategy: Option<String>,
}

/// Response of `CreateStream`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CreateStreamOutput {}

/// Request of `DeleteStream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteStreamInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforce_consumer_deletion: Option<bool>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `DeleteStream`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DeleteStreamOutput {}

/// Request of `DescribeStream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_start_shard_id: Option<String>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `DescribeStream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamOutput {
    pub stream_description: StreamDescription,
}

/// Request of `DescribeStreamSummary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamSummaryInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `DescribeStreamSummary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamSummaryOutput {
    pub stream_description_summary: StreamDescriptionSummary,
}

/// Request of `ListStreams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_start_stream_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Response of `ListStreams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsOutput {
    pub stream_names: Vec<String>,
    pub has_more_streams: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_summaries: Option<Vec<StreamSummary>>,
}

/// Request of `ListShards`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListShardsInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_start_shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i32>,
    #[serde(
        with = "crate::codec::opt_timestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_creation_timestamp: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_filter: Option<ShardFilter>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `ListShards`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListShardsOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<Vec<Shard>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Request of `IncreaseStreamRetentionPeriod`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct IncreaseStreamRetentionPeriodInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    pub retention_period_hours: i32,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `IncreaseStreamRetentionPeriod`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IncreaseStreamRetentionPeriodOutput {}

/// Request of `DecreaseStreamRetentionPeriod`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DecreaseStreamRetentionPeriodInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    pub retention_period_hours: i32,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `DecreaseStreamRetentionPeriod`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DecreaseStreamRetentionPeriodOutput {}

/// Request of `SplitShard`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct SplitShardInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    pub shard_to_split: String,
    pub new_starting_hash_key: String,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `SplitShard`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SplitShardOutput {}

/// Request of `MergeShards`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct MergeShardsInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    pub shard_to_merge: String,
    pub adjacent_shard_to_merge: String,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `MergeShards`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MergeShardsOutput {}

/// Request of `UpdateShardCount`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    pub target_shard_count: i32,
    pub scaling_type: String,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `UpdateShardCount`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_shard_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_shard_count: Option<i32>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
}

/// Request of `UpdateStreamMode`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamModeInput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    pub stream_mode_details: StreamModeDetails,
    #[serde(
        rename = "WarmThroughputMiBps",
        skip_serializing_if = "Option::is_none"
    )]
    pub warm_throughput_mibps: Option<i32>,
}

/// Response of `UpdateStreamMode`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct UpdateStreamModeOutput {}

/// Request of `StartStreamEncryption`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct StartStreamEncryptionInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    pub encryption_type: String,
    pub key_id: String,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `StartStreamEncryption`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StartStreamEncryptionOutput {}

/// Request of `StopStreamEncryption`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct StopStreamEncryptionInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    pub encryption_type: String,
    pub key_id: String,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `StopStreamEncryption`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StopStreamEncryptionOutput {}

/// Request of `EnableEnhancedMonitoring`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EnableEnhancedMonitoringInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    pub shard_level_metrics: Vec<String>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `EnableEnhancedMonitoring` and `DisableEnhancedMonitoring` (the
/// model's `EnhancedMonitoringOutput`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EnhancedMonitoringOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_shard_level_metrics: Option<Vec<MetricsName>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_shard_level_metrics: Option<Vec<MetricsName>>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
}

/// Response of `EnableEnhancedMonitoring` (the model's `EnhancedMonitoringOutput`).
pub type EnableEnhancedMonitoringOutput = EnhancedMonitoringOutput;

/// Request of `DisableEnhancedMonitoring`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DisableEnhancedMonitoringInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    pub shard_level_metrics: Vec<String>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `DisableEnhancedMonitoring` (the model's `EnhancedMonitoringOutput`).
pub type DisableEnhancedMonitoringOutput = EnhancedMonitoringOutput;

/// Request of `UpdateMaxRecordSize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateMaxRecordSizeInput {
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    pub max_record_size_in_kib: i32,
}

/// Response of `UpdateMaxRecordSize`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct UpdateMaxRecordSizeOutput {}

/// Request of `UpdateStreamWarmThroughput`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamWarmThroughputInput {
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    #[serde(rename = "WarmThroughputMiBps")]
    pub warm_throughput_mibps: i32,
}

/// Response of `UpdateStreamWarmThroughput`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamWarmThroughputOutput {
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_throughput: Option<WarmThroughputObject>,
}

/// Request of `DescribeLimits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeLimitsInput {}

/// Response of `DescribeLimits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeLimitsOutput {
    pub shard_limit: i32,
    pub open_shard_count: i32,
    pub on_demand_stream_count: i32,
    pub on_demand_stream_count_limit: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_count_limit: Option<i32>,
}
