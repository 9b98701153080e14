//! The data plane: PutRecord, PutRecords, GetShardIterator, GetRecords,
//! SubscribeToShard.

use serde::{Deserialize, Serialize};

use super::{
    ChildShard, EncryptionType, PutRecordsRequestEntry, PutRecordsResultEntry, Record,
    StartingPosition,
};

/// Request of `PutRecord`. The model requires only `Data`: `PartitionKey` became
/// optional with record distribution strategies, so the gateway decides what a missing
/// key means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(with = "crate::codec::blob")]
    pub data: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explicit_hash_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number_for_ordering: Option<String>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// Response of `PutRecord`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordOutput {
    pub shard_id: String,
    pub sequence_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<EncryptionType>,
}

/// Request of `PutRecords`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsInput {
    pub records: Vec<PutRecordsRequestEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// Response of `PutRecords`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_record_count: Option<i32>,
    pub records: Vec<PutRecordsResultEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<EncryptionType>,
}

/// Request of `GetShardIterator`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    pub shard_id: String,
    pub shard_iterator_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_sequence_number: Option<String>,
    #[serde(
        with = "crate::codec::opt_timestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<f64>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// Response of `GetShardIterator`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_iterator: Option<String>,
}

/// Request of `GetRecords`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsInput {
    pub shard_iterator: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i32>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// Response of `GetRecords`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsOutput {
    pub records: Vec<Record>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_shard_iterator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub millis_behind_latest: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_shards: Option<Vec<ChildShard>>,
}

/// Request of `SubscribeToShard`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct SubscribeToShardInput {
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    pub shard_id: String,
    pub starting_position: StartingPosition,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// Response of `SubscribeToShard`: the payload of the event stream's
/// `initial-response` message (`{}`). The model's `EventStream` member is the stream of
/// messages itself, each a [`SubscribeToShardEvent`](super::SubscribeToShardEvent) (or an exception), which the gateway
/// frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SubscribeToShardOutput {}
