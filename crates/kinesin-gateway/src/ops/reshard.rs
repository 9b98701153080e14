//! Resharding and capacity mode: SplitShard, MergeShards, UpdateShardCount, UpdateStreamMode.
//!
//! Each only starts a procedure in the controller (the stream turns UPDATING); the controller's
//! leader carries it out while clients keep writing (see `kinesin_controller::Reshard`).

use kinesin_api::model::{
    MergeShardsInput, MergeShardsOutput, SplitShardInput, SplitShardOutput, StreamMode as WireMode,
    UpdateShardCountInput, UpdateShardCountOutput, UpdateStreamModeInput, UpdateStreamModeOutput,
};
use kinesin_api::KinesisError;
use kinesin_controller::{Command, StreamKey, StreamMode};
use kinesin_types::{parse_hash_key, ShardId};

use super::records::parse_shard_id;
use super::{change, invalid_argument};
use crate::context::{find, RequestContext};
use crate::Gateway;

const UNIFORM_SCALING: &str = "UNIFORM_SCALING";

/// A shard id as the client named it; one that cannot exist is reported as not found.
fn shard_id(text: &str, key: &StreamKey) -> Result<ShardId, KinesisError> {
    parse_shard_id(text, key)
}

/// SplitShard with a NewStartingHashKey the model lets through but past 2^128-1 (a 39-digit
/// number): AWS answers it as any key outside the shard (kinesalite `actions/splitShard.js`),
/// quoting the key as given.
fn hash_key_out_of_range(
    gateway: &Gateway,
    key: &StreamKey,
    shard: ShardId,
    text: &str,
) -> KinesisError {
    let state = gateway.controller.state();
    let stream = match find(&state, key) {
        Ok(stream) => stream,
        Err(e) => return e,
    };
    match stream.shard(shard) {
        Some(meta) => invalid_argument(format!(
            "NewStartingHashKey {text} used in SplitShard() on shard {shard} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
            key.name, key.account, meta.hash_range.start, meta.hash_range.end
        )),
        None => KinesisError::new(
            kinesin_api::ErrorKind::ResourceNotFound,
            format!(
                "Could not find shard {shard} in stream {} under account {}.",
                key.name, key.account
            ),
        ),
    }
}

pub(super) async fn split_shard(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: SplitShardInput,
) -> Result<SplitShardOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let shard = shard_id(&input.shard_to_split, &key)?;
    let at = match parse_hash_key(&input.new_starting_hash_key) {
        Ok(at) => at,
        Err(_) => {
            return Err(hash_key_out_of_range(
                gateway,
                &key,
                shard,
                &input.new_starting_hash_key,
            ))
        }
    };
    let command = Command::SplitShard {
        key,
        shard,
        new_starting_hash_key: at,
        now_ms: gateway.now_ms(),
        shard_limit: gateway.settings.limits.shard_limit,
        replication_factor: gateway.settings.replication_factor,
        on_demand: false,
    };
    change(gateway, &command).await?;
    tracing::info!(shard = %input.shard_to_split, at, "split requested");
    Ok(SplitShardOutput {})
}

pub(super) async fn merge_shards(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: MergeShardsInput,
) -> Result<MergeShardsOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let shard = shard_id(&input.shard_to_merge, &key)?;
    let adjacent = shard_id(&input.adjacent_shard_to_merge, &key)?;
    let command = Command::MergeShards {
        key,
        shard,
        adjacent,
        now_ms: gateway.now_ms(),
        replication_factor: gateway.settings.replication_factor,
        on_demand: false,
    };
    change(gateway, &command).await?;
    tracing::info!(shard = %input.shard_to_merge, adjacent = %input.adjacent_shard_to_merge, "merge requested");
    Ok(MergeShardsOutput {})
}

pub(super) async fn update_shard_count(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: UpdateShardCountInput,
) -> Result<UpdateShardCountOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    if input.scaling_type != UNIFORM_SCALING {
        return Err(invalid_argument(format!(
            "ScalingType {} is not supported; use {UNIFORM_SCALING}.",
            input.scaling_type
        )));
    }
    let target = u32::try_from(input.target_shard_count)
        .ok()
        .filter(|&t| t >= 1)
        .ok_or_else(|| invalid_argument("TargetShardCount must be at least 1."))?;
    // The answer reports the count before the change, as of now on any node.
    gateway
        .controller
        .catch_up()
        .await
        .map_err(crate::error::from_controller)?;
    let (current, arn) = {
        let state = gateway.controller.state();
        let stream = find(&state, &key)?;
        (stream.open_shards().count(), stream.arn.clone())
    };
    let command = Command::UpdateShardCount {
        key: key.clone(),
        target,
        now_ms: gateway.now_ms(),
        shard_limit: gateway.settings.limits.shard_limit,
        replication_factor: gateway.settings.replication_factor,
    };
    change(gateway, &command).await?;
    tracing::info!(stream = %key.name, current, target, "shard count update requested");
    Ok(UpdateShardCountOutput {
        stream_name: Some(key.name),
        current_shard_count: Some(current as i32),
        target_shard_count: Some(target as i32),
        stream_arn: Some(arn),
    })
}

pub(super) async fn update_stream_mode(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: UpdateStreamModeInput,
) -> Result<UpdateStreamModeOutput, KinesisError> {
    let key = ctx.stream_key(None, Some(&input.stream_arn))?;
    let mode = match input.stream_mode_details.stream_mode {
        WireMode::OnDemand => StreamMode::OnDemand,
        WireMode::Provisioned => StreamMode::Provisioned,
    };
    change(
        gateway,
        &Command::SetStreamMode {
            key,
            mode,
            now_ms: gateway.now_ms(),
            warm_throughput_mibps: input.warm_throughput_mibps.map(super::account::mibps),
        },
    )
    .await?;
    Ok(UpdateStreamModeOutput {})
}
