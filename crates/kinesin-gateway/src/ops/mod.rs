//! One function per Kinesis operation. Each reads the controller's state or proposes a change to
//! it, or routes records to shard groups, and answers with the model's output shape.

mod account;
mod consumers;
mod describe;
mod records;
mod reshard;
mod settings;
mod shards;
mod streams;
mod subscribe;
mod tags;

pub(crate) use consumers::consumer_key;
pub(crate) use records::iterator_codec;
pub(crate) use subscribe::{subscribe, Subscriptions};
pub(crate) use tags::resource;

use kinesin_api::{ErrorKind, KinesisError, Operation, Request};
use kinesin_controller::{Command, Outcome};
use serde::Serialize;

use crate::context::RequestContext;
use crate::error::from_controller;
use crate::Gateway;

pub(crate) async fn dispatch(
    gateway: &Gateway,
    ctx: &RequestContext,
    request: Request,
) -> Result<Vec<u8>, KinesisError> {
    let op = request.operation();
    if gateway.removed_from_cluster() {
        return Err(KinesisError::new(
            ErrorKind::ServiceUnavailable,
            format!(
                "Node {} was removed from the cluster; send requests to another node.",
                gateway.settings.node_id
            ),
        ));
    }
    if reads_cluster_state(op) {
        gateway
            .controller
            .catch_up()
            .await
            .map_err(from_controller)?;
    }
    match request {
        Request::CreateStream(input) => done(ctx, op, streams::create(gateway, ctx, input).await?),
        Request::DeleteStream(input) => done(ctx, op, streams::delete(gateway, ctx, input).await?),
        Request::IncreaseStreamRetentionPeriod(input) => done(
            ctx,
            op,
            streams::set_retention(
                gateway,
                ctx,
                input.stream_name,
                input.stream_arn,
                input.retention_period_hours,
                true,
            )
            .await?,
        ),
        Request::DecreaseStreamRetentionPeriod(input) => done(
            ctx,
            op,
            streams::set_retention(
                gateway,
                ctx,
                input.stream_name,
                input.stream_arn,
                input.retention_period_hours,
                false,
            )
            .await?,
        ),
        Request::DescribeStream(input) => {
            done(ctx, op, describe::describe_stream(gateway, ctx, input)?)
        }
        Request::DescribeStreamSummary(input) => {
            done(ctx, op, describe::describe_summary(gateway, ctx, input)?)
        }
        Request::ListStreams(input) => done(ctx, op, describe::list_streams(gateway, ctx, input)?),
        Request::DescribeLimits(_) => done(ctx, op, describe::describe_limits(gateway, ctx)?),
        Request::ListShards(input) => done(ctx, op, shards::list_shards(gateway, ctx, input)?),
        Request::PutRecord(input) => done(ctx, op, records::put_record(gateway, ctx, input).await?),
        Request::PutRecords(input) => {
            done(ctx, op, records::put_records(gateway, ctx, input).await?)
        }
        Request::GetShardIterator(input) => done(
            ctx,
            op,
            records::get_shard_iterator(gateway, ctx, input).await?,
        ),
        Request::GetRecords(input) => {
            done(ctx, op, records::get_records(gateway, ctx, input).await?)
        }
        Request::AddTagsToStream(input) => {
            done(ctx, op, tags::add_to_stream(gateway, ctx, input).await?)
        }
        Request::RemoveTagsFromStream(input) => done(
            ctx,
            op,
            tags::remove_from_stream(gateway, ctx, input).await?,
        ),
        Request::ListTagsForStream(input) => {
            done(ctx, op, tags::list_for_stream(gateway, ctx, input)?)
        }
        Request::TagResource(input) => {
            done(ctx, op, tags::tag_resource(gateway, ctx, input).await?)
        }
        Request::UntagResource(input) => {
            done(ctx, op, tags::untag_resource(gateway, ctx, input).await?)
        }
        Request::ListTagsForResource(input) => {
            done(ctx, op, tags::list_for_resource(gateway, ctx, input)?)
        }
        Request::EnableEnhancedMonitoring(input) => done(
            ctx,
            op,
            settings::enable_monitoring(gateway, ctx, input).await?,
        ),
        Request::DisableEnhancedMonitoring(input) => done(
            ctx,
            op,
            settings::disable_monitoring(gateway, ctx, input).await?,
        ),
        Request::StartStreamEncryption(input) => done(
            ctx,
            op,
            settings::start_encryption(gateway, ctx, input).await?,
        ),
        Request::StopStreamEncryption(input) => done(
            ctx,
            op,
            settings::stop_encryption(gateway, ctx, input).await?,
        ),
        Request::UpdateMaxRecordSize(input) => done(
            ctx,
            op,
            settings::update_max_record_size(gateway, ctx, input).await?,
        ),
        Request::PutResourcePolicy(input) => {
            done(ctx, op, settings::put_policy(gateway, ctx, input).await?)
        }
        Request::GetResourcePolicy(input) => {
            done(ctx, op, settings::get_policy(gateway, ctx, input)?)
        }
        Request::DeleteResourcePolicy(input) => {
            done(ctx, op, settings::delete_policy(gateway, ctx, input).await?)
        }
        Request::SplitShard(input) => {
            done(ctx, op, reshard::split_shard(gateway, ctx, input).await?)
        }
        Request::MergeShards(input) => {
            done(ctx, op, reshard::merge_shards(gateway, ctx, input).await?)
        }
        Request::UpdateShardCount(input) => done(
            ctx,
            op,
            reshard::update_shard_count(gateway, ctx, input).await?,
        ),
        Request::UpdateStreamMode(input) => done(
            ctx,
            op,
            reshard::update_stream_mode(gateway, ctx, input).await?,
        ),
        Request::RegisterStreamConsumer(input) => {
            done(ctx, op, consumers::register(gateway, ctx, input).await?)
        }
        Request::DescribeStreamConsumer(input) => {
            done(ctx, op, consumers::describe(gateway, ctx, input)?)
        }
        Request::ListStreamConsumers(input) => done(ctx, op, consumers::list(gateway, ctx, input)?),
        Request::DeregisterStreamConsumer(input) => {
            done(ctx, op, consumers::deregister(gateway, ctx, input).await?)
        }
        Request::UpdateStreamWarmThroughput(input) => done(
            ctx,
            op,
            account::update_warm_throughput(gateway, ctx, input).await?,
        ),
        Request::DescribeAccountSettings(_) => done(ctx, op, account::describe(gateway, ctx)?),
        Request::UpdateAccountSettings(input) => {
            done(ctx, op, account::update(gateway, ctx, input).await?)
        }
        _ => Err(KinesisError::new(
            ErrorKind::UnknownOperation,
            format!("Kinesin does not implement {} yet.", op.name()),
        )),
    }
}

/// Operations that answer from the cluster state (streams, shards, tags, policies) rather than
/// change it or move records. They first catch up with the controller, so every node answers them
/// as of now. Record reads and writes do not pay for that: a stream they cannot find yet is
/// retried by clients as Kinesis clients retry a stream still CREATING.
fn reads_cluster_state(op: Operation) -> bool {
    matches!(
        op,
        Operation::DescribeStream
            | Operation::DescribeStreamSummary
            | Operation::ListStreams
            | Operation::ListShards
            | Operation::GetShardIterator
            | Operation::ListTagsForStream
            | Operation::ListTagsForResource
            | Operation::GetResourcePolicy
            | Operation::DescribeStreamConsumer
            | Operation::ListStreamConsumers
            | Operation::DescribeAccountSettings
    )
}

/// Encodes an operation's output in the request's protocol; operations the model gives no output
/// answer with an empty body.
fn done<T: Serialize>(
    ctx: &RequestContext,
    op: Operation,
    output: T,
) -> Result<Vec<u8>, KinesisError> {
    if op.has_output() {
        ctx.protocol.encode_output(op, &output)
    } else {
        Ok(Vec::new())
    }
}

pub(crate) fn ms_to_secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Converts a client timestamp (epoch seconds) to epoch milliseconds, clamping nonsense to 0.
/// Rounded, not truncated: 1700000000.123 s is 1700000000123 ms although its `f64` product is a
/// hair below (a CBOR client's exact milliseconds come through seconds).
pub(crate) fn secs_to_ms(secs: f64) -> u64 {
    u64::try_from(kinesin_api::codec::epoch_seconds_to_millis(secs)).unwrap_or(0)
}

/// Commits a change to the cluster metadata, answering with the Kinesis error apply decided.
pub(crate) async fn change(gateway: &Gateway, command: &Command) -> Result<Outcome, KinesisError> {
    gateway
        .controller
        .propose(command)
        .await
        .map_err(from_controller)
}

/// The page size a listing request asks for: at least 1, `default` when it says nothing, and
/// never more than `cap`.
pub(crate) fn page_size(requested: Option<i32>, default: usize, cap: usize) -> usize {
    requested
        .map(|m| m.max(1) as usize)
        .unwrap_or(default)
        .min(cap)
}

/// One page of a listing: at most `size` items, and whether more follow.
pub(crate) fn page<T>(mut items: impl Iterator<Item = T>, size: usize) -> (Vec<T>, bool) {
    let page: Vec<T> = items.by_ref().take(size).collect();
    let more = items.next().is_some();
    (page, more)
}

pub(crate) fn invalid_argument(message: impl Into<String>) -> KinesisError {
    KinesisError::new(ErrorKind::InvalidArgument, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_timestamps_keep_their_milliseconds() {
        assert_eq!(secs_to_ms(1_700_000_000.123), 1_700_000_000_123);
        assert_eq!(secs_to_ms(1_700_000_000.999), 1_700_000_000_999);
        assert_eq!(secs_to_ms(0.001), 1);
        assert_eq!(secs_to_ms(-5.0), 0);
        assert_eq!(secs_to_ms(f64::NAN), 0);
    }
}
