//! Read-only views of streams: DescribeStream, DescribeStreamSummary, ListStreams, DescribeLimits.

use kinesin_api::model::{
    DescribeLimitsOutput, DescribeStreamInput, DescribeStreamOutput, DescribeStreamSummaryInput,
    DescribeStreamSummaryOutput, EncryptionType as WireEncryption, EnhancedMetrics, HashKeyRange,
    ListStreamsInput, ListStreamsOutput, SequenceNumberRange, Shard, StreamDescription,
    StreamDescriptionSummary, StreamMode as WireMode, StreamModeDetails,
    StreamStatus as WireStatus, StreamSummary,
};
use kinesin_api::KinesisError;
use kinesin_controller::{EncryptionType, ShardMeta, StreamMeta, StreamMode, StreamStatus};
use kinesin_types::{SequenceNumber, ShardId};

use super::{invalid_argument, ms_to_secs, page, page_size};
use crate::context::{find, RequestContext};
use crate::tokens::{self, ListStreamsToken};
use crate::Gateway;

/// DescribeStream returns at most 100 shards per call whatever Limit says, as AWS does.
const DESCRIBE_STREAM_MAX_SHARDS: usize = 100;
const LIST_STREAMS_DEFAULT_LIMIT: usize = 100;
const ON_DEMAND_STREAM_LIMIT: i32 = 50;

pub(crate) fn sequence_number(shard: &ShardMeta, position: u64, arrival_ms: u64) -> String {
    SequenceNumber {
        shard_epoch: shard.sequence_epoch,
        shard_index: shard.id.0,
        position,
        arrival_secs: arrival_ms / 1000,
    }
    .to_decimal()
}

pub(crate) fn shard_to_wire(shard: &ShardMeta) -> Shard {
    Shard {
        shard_id: shard.id.to_string(),
        parent_shard_id: shard.parent.map(|p| p.to_string()),
        adjacent_parent_shard_id: shard.adjacent_parent.map(|p| p.to_string()),
        hash_key_range: HashKeyRange {
            starting_hash_key: shard.hash_range.start.to_string(),
            ending_hash_key: shard.hash_range.end.to_string(),
        },
        sequence_number_range: SequenceNumberRange {
            starting_sequence_number: sequence_number(shard, 0, shard.created_ms),
            ending_sequence_number: shard
                .ending_position
                .map(|end| sequence_number(shard, end.saturating_sub(1), shard.created_ms)),
        },
    }
}

pub(crate) fn status_to_wire(status: StreamStatus) -> WireStatus {
    match status {
        StreamStatus::Creating => WireStatus::Creating,
        StreamStatus::Active => WireStatus::Active,
        StreamStatus::Updating => WireStatus::Updating,
        StreamStatus::Deleting => WireStatus::Deleting,
    }
}

fn mode_to_wire(mode: StreamMode) -> StreamModeDetails {
    StreamModeDetails {
        stream_mode: match mode {
            StreamMode::Provisioned => WireMode::Provisioned,
            StreamMode::OnDemand => WireMode::OnDemand,
        },
    }
}

fn encryption_to_wire(encryption: &EncryptionType) -> (WireEncryption, Option<String>) {
    match encryption {
        EncryptionType::None => (WireEncryption::None, None),
        EncryptionType::Kms { key_id } => (WireEncryption::Kms, Some(key_id.clone())),
    }
}

fn enhanced_monitoring(stream: &StreamMeta) -> Vec<EnhancedMetrics> {
    let metrics = stream
        .enhanced_metrics
        .iter()
        .filter_map(|m| kinesin_api::model::MetricsName::from_wire(m))
        .collect();
    vec![EnhancedMetrics {
        shard_level_metrics: Some(metrics),
    }]
}

pub(super) fn describe_stream(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: DescribeStreamInput,
) -> Result<DescribeStreamOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let state = gateway.controller.state();
    let stream = find(&state, &key)?;
    let limit = page_size(
        input.limit,
        DESCRIBE_STREAM_MAX_SHARDS,
        DESCRIBE_STREAM_MAX_SHARDS,
    );
    let after = match &input.exclusive_start_shard_id {
        Some(id) => Some(
            id.parse::<ShardId>()
                .map_err(|_| invalid_argument(format!("Invalid ExclusiveStartShardId {id}.")))?,
        ),
        None => None,
    };
    let shards = stream
        .shards
        .iter()
        .filter(|s| after.is_none_or(|a| s.id > a))
        .map(shard_to_wire);
    let (page, has_more_shards) = page(shards, limit);
    let (encryption_type, key_id) = encryption_to_wire(&stream.encryption);
    Ok(DescribeStreamOutput {
        stream_description: StreamDescription {
            stream_name: stream.key.name.clone(),
            stream_arn: stream.arn.clone(),
            stream_status: status_to_wire(stream.status),
            stream_mode_details: Some(mode_to_wire(stream.mode)),
            shards: page,
            has_more_shards,
            retention_period_hours: stream.retention_hours as i32,
            stream_creation_timestamp: ms_to_secs(stream.created_ms),
            enhanced_monitoring: enhanced_monitoring(stream),
            encryption_type: Some(encryption_type),
            key_id,
        },
    })
}

pub(super) fn describe_summary(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: DescribeStreamSummaryInput,
) -> Result<DescribeStreamSummaryOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let state = gateway.controller.state();
    let stream = find(&state, &key)?;
    let (encryption_type, key_id) = encryption_to_wire(&stream.encryption);
    Ok(DescribeStreamSummaryOutput {
        stream_description_summary: StreamDescriptionSummary {
            stream_name: stream.key.name.clone(),
            stream_arn: stream.arn.clone(),
            stream_id: None,
            stream_status: status_to_wire(stream.status),
            stream_mode_details: Some(mode_to_wire(stream.mode)),
            retention_period_hours: stream.retention_hours as i32,
            stream_creation_timestamp: ms_to_secs(stream.created_ms),
            enhanced_monitoring: enhanced_monitoring(stream),
            encryption_type: Some(encryption_type),
            key_id,
            open_shard_count: stream.open_shards().count() as i32,
            consumer_count: Some(stream.consumers.len() as i32),
            warm_throughput: super::account::warm_throughput(&state, stream, gateway.now_ms()),
            max_record_size_in_kib: Some(stream.max_record_size_kib as i32),
            channel_count: None,
            record_distribution_strategy: None,
            queue_count: None,
        },
    })
}

pub(super) fn list_streams(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: ListStreamsInput,
) -> Result<ListStreamsOutput, KinesisError> {
    let now = gateway.now_ms();
    let after = match (&input.next_token, &input.exclusive_start_stream_name) {
        (Some(_), Some(_)) => {
            return Err(invalid_argument(
                "NextToken and ExclusiveStartStreamName cannot be provided together.",
            ))
        }
        (Some(token), None) => {
            Some(tokens::decode::<ListStreamsToken>(token, |t| t.issued_ms, now)?.after)
        }
        (None, name) => name.clone(),
    };
    let limit = page_size(input.limit, LIST_STREAMS_DEFAULT_LIMIT, usize::MAX);
    let state = gateway.controller.state();
    let streams = state
        .streams_in(&ctx.account, &ctx.region)
        .filter(|s| after.as_deref().is_none_or(|a| s.key.name.as_str() > a));
    let (page, has_more_streams) = page(streams, limit);
    let next_token = match (has_more_streams, page.last()) {
        (true, Some(last)) => Some(tokens::encode(&ListStreamsToken {
            after: last.key.name.clone(),
            issued_ms: now,
        })),
        _ => None,
    };
    Ok(ListStreamsOutput {
        stream_names: page.iter().map(|s| s.key.name.clone()).collect(),
        has_more_streams,
        next_token,
        stream_summaries: Some(
            page.iter()
                .map(|s| StreamSummary {
                    stream_name: s.key.name.clone(),
                    stream_arn: s.arn.clone(),
                    stream_status: status_to_wire(s.status),
                    stream_mode_details: Some(mode_to_wire(s.mode)),
                    stream_creation_timestamp: Some(ms_to_secs(s.created_ms)),
                })
                .collect(),
        ),
    })
}

pub(super) fn describe_limits(
    gateway: &Gateway,
    ctx: &RequestContext,
) -> Result<DescribeLimitsOutput, KinesisError> {
    let state = gateway.controller.state();
    let streams: Vec<&StreamMeta> = state.streams_in(&ctx.account, &ctx.region).collect();
    Ok(DescribeLimitsOutput {
        shard_limit: gateway.settings.limits.shard_limit as i32,
        open_shard_count: streams.iter().map(|s| s.open_shards().count() as i32).sum(),
        on_demand_stream_count: streams
            .iter()
            .filter(|s| s.mode == StreamMode::OnDemand)
            .count() as i32,
        on_demand_stream_count_limit: ON_DEMAND_STREAM_LIMIT,
        channel_count: None,
        channel_count_limit: None,
    })
}
