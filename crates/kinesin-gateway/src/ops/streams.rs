//! Stream lifecycle: create, delete, retention.

use kinesin_api::model::{
    CreateStreamInput, CreateStreamOutput, DeleteStreamInput, DeleteStreamOutput,
    StreamMode as WireMode,
};
use kinesin_api::{ErrorKind, KinesisError};
use kinesin_controller::{Command, StreamKey, StreamMode};
use kinesin_types::stream_arn;

use super::{change, invalid_argument};
use crate::context::RequestContext;
use crate::Gateway;

/// AWS creates 4 shards when neither a count nor on-demand mode is given, and on-demand streams
/// start with 4 shards too.
const DEFAULT_SHARD_COUNT: u32 = 4;
const MIN_RETENTION_HOURS: i32 = 24;
const MAX_RETENTION_HOURS: i32 = 8760;

pub(super) async fn create(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: CreateStreamInput,
) -> Result<CreateStreamOutput, KinesisError> {
    let mode = match input.stream_mode_details.as_ref().map(|d| d.stream_mode) {
        Some(WireMode::OnDemand) => StreamMode::OnDemand,
        _ => StreamMode::Provisioned,
    };
    let shard_count = match (mode, input.shard_count) {
        (StreamMode::OnDemand, Some(_)) => {
            return Err(invalid_argument(
                "ShardCount must not be specified for a stream in ON_DEMAND mode.",
            ))
        }
        (_, Some(n)) if n < 1 => return Err(invalid_argument("ShardCount must be at least 1.")),
        (_, Some(n)) => n as u32,
        (_, None) => DEFAULT_SHARD_COUNT,
    };
    if let Some(tags) = &input.tags {
        super::tags::validate_tags(tags)?;
    }
    let max_record_size_kib = match input.max_record_size_in_kib {
        Some(kib) => kib as u32,
        None => (gateway.settings.limits.max_record_bytes / 1024).max(1) as u32,
    };
    let key = StreamKey {
        account: ctx.account.clone(),
        region: ctx.region.clone(),
        name: input.stream_name.clone(),
    };
    let command = Command::CreateStream {
        arn: stream_arn(&key.region, &key.account, &key.name),
        key,
        now_ms: gateway.now_ms(),
        shard_count,
        mode,
        tags: input.tags.unwrap_or_default(),
        max_record_size_kib,
        replication_factor: gateway.settings.replication_factor,
        shard_limit: gateway.settings.limits.shard_limit,
        warm_throughput_mibps: input.warm_throughput_mibps.map(super::account::mibps),
    };
    change(gateway, &command).await?;
    tracing::info!(stream = %input.stream_name, shards = shard_count, "stream created");
    Ok(CreateStreamOutput {})
}

pub(super) async fn delete(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: DeleteStreamInput,
) -> Result<DeleteStreamOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    change(
        gateway,
        &Command::DeleteStream {
            key,
            enforce_consumer_deletion: input.enforce_consumer_deletion.unwrap_or(false),
        },
    )
    .await?;
    Ok(DeleteStreamOutput {})
}

pub(super) async fn set_retention(
    gateway: &Gateway,
    ctx: &RequestContext,
    name: Option<String>,
    arn: Option<String>,
    hours: i32,
    increase: bool,
) -> Result<(), KinesisError> {
    let key = ctx.stream_key(name.as_deref(), arn.as_deref())?;
    // AWS's words (recorded by kinesalite for the minimum; the maximum's mirror it).
    if hours < MIN_RETENTION_HOURS {
        return Err(KinesisError::new(
            ErrorKind::InvalidArgument,
            format!("Minimum allowed retention period is {MIN_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too short."),
        ));
    }
    if hours > MAX_RETENTION_HOURS {
        return Err(KinesisError::new(
            ErrorKind::InvalidArgument,
            format!("Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too long."),
        ));
    }
    change(
        gateway,
        &Command::SetRetention {
            key,
            hours: hours as u32,
            increase,
        },
    )
    .await?;
    Ok(())
}
