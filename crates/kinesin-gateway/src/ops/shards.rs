//! ListShards: the call KCL and Flink use to discover shards, with every ShardFilter type.

use kinesin_api::model::{ListShardsInput, ListShardsOutput, ShardFilter, ShardFilterType};
use kinesin_api::KinesisError;
use kinesin_controller::{ShardMeta, StreamKey, StreamMeta};
use kinesin_types::ShardId;

use super::describe::shard_to_wire;
use super::{invalid_argument, page, page_size, secs_to_ms};
use crate::context::{find, RequestContext};
use crate::tokens::{self, ListShardsToken, ShardFilterToken};
use crate::Gateway;

/// AWS returns at most 1000 shards per call whatever MaxResults says.
const MAX_RESULTS: usize = 1000;

/// Which shards a filter selects, resolved against one stream.
enum Selection {
    All,
    After(ShardId),
    AtTrimHorizon,
    Open,
    OpenAt(u64),
    OpenFrom(u64),
}

impl Selection {
    fn from_filter(
        filter: &ShardFilterToken,
        stream: &StreamMeta,
    ) -> Result<Selection, KinesisError> {
        let kind = ShardFilterType::from_wire(&filter.kind).ok_or_else(|| {
            invalid_argument(format!("Invalid ShardFilter type {}.", filter.kind))
        })?;
        let time = || {
            filter
                .timestamp_ms
                .map(|t| t.max(stream.created_ms))
                .ok_or_else(|| {
                    invalid_argument(format!(
                        "ShardFilter type {} requires a Timestamp.",
                        filter.kind
                    ))
                })
        };
        Ok(match kind {
            ShardFilterType::AfterShardId => {
                let id = filter.shard_id.as_deref().ok_or_else(|| {
                    invalid_argument("ShardFilter type AFTER_SHARD_ID requires a ShardId.")
                })?;
                Selection::After(id.parse().map_err(|_| {
                    invalid_argument(format!("Invalid ShardId {id} in ShardFilter."))
                })?)
            }
            ShardFilterType::AtTrimHorizon => Selection::AtTrimHorizon,
            ShardFilterType::FromTrimHorizon => Selection::All,
            ShardFilterType::AtLatest => Selection::Open,
            ShardFilterType::AtTimestamp => Selection::OpenAt(time()?),
            ShardFilterType::FromTimestamp => Selection::OpenFrom(time()?),
        })
    }

    fn selects(&self, shard: &ShardMeta, stream: &StreamMeta) -> bool {
        match self {
            Selection::All => true,
            Selection::After(id) => shard.id > *id,
            // The oldest retained generation: shards whose parents are no longer listed.
            Selection::AtTrimHorizon => shard.parent.is_none_or(|p| stream.shard(p).is_none()),
            Selection::Open => shard.is_open(),
            Selection::OpenAt(t) => shard.was_open_at(*t),
            Selection::OpenFrom(t) => shard.closed_ms.is_none_or(|closed| closed > *t),
        }
    }
}

fn filter_token(filter: &ShardFilter) -> ShardFilterToken {
    ShardFilterToken {
        kind: filter.r#type.clone(),
        shard_id: filter.shard_id.clone(),
        timestamp_ms: filter.timestamp.map(secs_to_ms),
    }
}

pub(super) fn list_shards(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: ListShardsInput,
) -> Result<ListShardsOutput, KinesisError> {
    let now = gateway.now_ms();
    let (key, after, filter, created_ms) = match &input.next_token {
        Some(token) => {
            if input.stream_name.is_some() {
                // AWS's words (kinesalite `actions/listShards.js`).
                return Err(invalid_argument(
                    "NextToken and StreamName cannot be provided together.",
                ));
            }
            if input.stream_arn.is_some()
                || input.exclusive_start_shard_id.is_some()
                || input.stream_creation_timestamp.is_some()
            {
                return Err(invalid_argument(
                    "NextToken and StreamName, StreamARN, ExclusiveStartShardId or StreamCreationTimestamp cannot be provided together.",
                ));
            }
            let token = tokens::decode::<ListShardsToken>(token, |t| t.issued_ms, now)?;
            let key = StreamKey {
                account: token.account,
                region: token.region,
                name: token.stream,
            };
            (
                key,
                Some(ShardId(token.after_shard)),
                token.filter,
                Some(token.stream_created_ms),
            )
        }
        None => {
            if input.stream_name.is_none() && input.stream_arn.is_none() {
                // AWS's words and type (kinesalite `actions/listShards.js`).
                return Err(invalid_argument(
                    "Either NextToken or StreamName should be provided.",
                ));
            }
            let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
            let after = match &input.exclusive_start_shard_id {
                Some(id) => Some(id.parse::<ShardId>().map_err(|_| {
                    invalid_argument(format!("Invalid ExclusiveStartShardId {id}."))
                })?),
                None => None,
            };
            (
                key,
                after,
                input.shard_filter.as_ref().map(filter_token),
                None,
            )
        }
    };
    let state = gateway.controller.state();
    let stream = find(&state, &key)?;
    if created_ms.is_some_and(|created| created != stream.created_ms) {
        return Err(invalid_argument(
            "NextToken belongs to a stream that no longer exists.",
        ));
    }
    let selection = match &filter {
        Some(filter) => Selection::from_filter(filter, stream)?,
        None => Selection::All,
    };
    let selected = stream
        .shards
        .iter()
        .filter(|s| after.is_none_or(|a| s.id > a))
        .filter(|s| selection.selects(s, stream));
    let (page, more) = page(
        selected,
        page_size(input.max_results, MAX_RESULTS, MAX_RESULTS),
    );
    let next_token = match (more, page.last()) {
        (true, Some(last)) => Some(tokens::encode(&ListShardsToken {
            account: key.account.clone(),
            region: key.region.clone(),
            stream: key.name.clone(),
            stream_created_ms: stream.created_ms,
            after_shard: last.id.0,
            filter,
            issued_ms: now,
        })),
        _ => None,
    };
    Ok(ListShardsOutput {
        shards: Some(page.into_iter().map(shard_to_wire).collect()),
        next_token,
    })
}
