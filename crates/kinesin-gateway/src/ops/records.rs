//! The data plane: PutRecord, PutRecords, GetShardIterator, GetRecords.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;
use kinesin_api::model::{
    ChildShard, EncryptionType as WireEncryption, GetRecordsInput, GetRecordsOutput,
    GetShardIteratorInput, GetShardIteratorOutput, HashKeyRange, PutRecordInput, PutRecordOutput,
    PutRecordsInput, PutRecordsOutput, PutRecordsRequestEntry, PutRecordsResultEntry, Record,
    ShardIteratorType,
};
use kinesin_api::{ErrorKind, KinesisError};
use kinesin_controller::{
    ClusterState, EncryptionType, ShardMeta, StreamKey, StreamMeta, StreamStatus,
};
use kinesin_raft::{Command, NewRecord, Response, ShardBounds, ShardRead};
use kinesin_types::{
    parse_hash_key, partition_key_hash, IteratorCodec, IteratorError, IteratorPayload,
    SequenceNumber, ShardId,
};

use super::describe::sequence_number;
use super::{invalid_argument, ms_to_secs, now_ms, secs_to_ms};
use crate::context::{find, not_found, RequestContext};
use crate::error::from_raft;
use crate::Gateway;

/// How long a write may spend finding its shard's leader (elections, leader changes) before
/// failing with ServiceUnavailable.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A record checked against the limits and routed to a shard.
struct Routed {
    shard: usize,
    record: NewRecord,
}

fn validation(message: String) -> KinesisError {
    KinesisError::new(
        ErrorKind::Validation,
        format!("1 validation error detected: {message}"),
    )
}

/// The stream if it takes writes and reads: ACTIVE or UPDATING (a CREATING stream is not found,
/// as on AWS).
fn usable<'a>(state: &'a ClusterState, key: &StreamKey) -> Result<&'a StreamMeta, KinesisError> {
    let stream = find(state, key)?;
    match stream.status {
        StreamStatus::Active | StreamStatus::Updating => Ok(stream),
        StreamStatus::Creating | StreamStatus::Deleting => Err(not_found(key)),
    }
}

/// What records report as their encryption. Kinesin does not encrypt at rest, so this is the
/// stream's setting at the time of the call (not at the time a record was written); unencrypted
/// streams leave the member out, as they always have.
fn record_encryption(stream: &StreamMeta) -> Option<WireEncryption> {
    match stream.encryption {
        EncryptionType::Kms { .. } => Some(WireEncryption::Kms),
        EncryptionType::None => None,
    }
}

fn route(
    stream: &StreamMeta,
    data: Vec<u8>,
    partition_key: Option<String>,
    explicit_hash_key: Option<&str>,
    path: &str,
) -> Result<Routed, KinesisError> {
    // The stream's own maximum (set at creation from the node's `max_record_bytes`, or by
    // UpdateMaxRecordSize) decides, not the node's setting.
    let max_record_bytes = stream.max_record_bytes();
    let partition_key = partition_key.ok_or_else(|| {
        validation(format!(
            "Value null at '{path}partitionKey' failed to satisfy constraint: Member must not be null"
        ))
    })?;
    if data.len() > max_record_bytes {
        return Err(validation(format!(
            "Value at '{path}data' failed to satisfy constraint: Member must have length less than or equal to {max_record_bytes}"
        )));
    }
    if data.len() + partition_key.len() > max_record_bytes {
        return Err(invalid_argument(format!(
            "The record's data and partition key together are {} bytes, over the limit of {max_record_bytes} bytes.",
            data.len() + partition_key.len(),
        )));
    }
    let hash_key = match explicit_hash_key {
        Some(text) => parse_hash_key(text).map_err(|_| {
            invalid_argument(format!(
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
            ))
        })?,
        None => partition_key_hash(&partition_key),
    };
    let shard = stream
        .shards
        .iter()
        .position(|s| s.is_open() && s.hash_range.contains(hash_key))
        .ok_or_else(|| {
            KinesisError::new(
                ErrorKind::InternalFailure,
                format!(
                    "no open shard of stream {} covers hash key {hash_key}",
                    stream.key.name
                ),
            )
        })?;
    Ok(Routed {
        shard,
        record: NewRecord {
            partition_key,
            data: data.into(),
        },
    })
}

/// The retained range of `shard`, from this node's replica or another's.
async fn shard_bounds(
    gateway: &Gateway,
    state: &ClusterState,
    shard: &ShardMeta,
) -> Result<ShardBounds, KinesisError> {
    gateway
        .raft
        .shard_bounds(shard.group, &state.addresses(&shard.replicas))
        .await
        .map_err(from_raft)
}

/// Appends `records` to one shard, through its leader wherever it is; on success, the position
/// and arrival time of the first.
async fn append(
    gateway: &Gateway,
    state: &ClusterState,
    shard: &ShardMeta,
    records: Vec<NewRecord>,
) -> Result<(u64, u64), KinesisError> {
    let count = records.len() as u64;
    let bytes = records.iter().map(|r| r.data.len() as u64).sum::<u64>();
    let command = Command::Put {
        arrival_ms: now_ms(),
        records,
    };
    let replicas = state.addresses(&shard.replicas);
    let response = gateway
        .raft
        .propose(shard.group, command, &replicas, WRITE_TIMEOUT)
        .await
        .map_err(from_raft)?;
    match response {
        Response::Put {
            first_position,
            arrival_ms,
        } => {
            let metrics = &gateway.metrics;
            metrics.records_written.fetch_add(count, Ordering::Relaxed);
            metrics.bytes_written.fetch_add(bytes, Ordering::Relaxed);
            Ok((first_position, arrival_ms))
        }
        other => Err(KinesisError::new(
            ErrorKind::InternalFailure,
            format!("shard {} refused the write: {other:?}", shard.id),
        )),
    }
}

pub(super) async fn put_record(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: PutRecordInput,
) -> Result<PutRecordOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let state = gateway.controller.state();
    let stream = usable(&state, &key)?;
    let routed = route(
        stream,
        input.data,
        input.partition_key,
        input.explicit_hash_key.as_deref(),
        "",
    )?;
    let shard = &stream.shards[routed.shard];
    let (position, arrival_ms) = append(gateway, &state, shard, vec![routed.record]).await?;
    Ok(PutRecordOutput {
        shard_id: shard.id.to_string(),
        sequence_number: sequence_number(shard, position, arrival_ms),
        encryption_type: record_encryption(stream),
    })
}

pub(super) async fn put_records(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: PutRecordsInput,
) -> Result<PutRecordsOutput, KinesisError> {
    let limits = &gateway.settings.limits;
    if input.records.len() > limits.max_put_records {
        return Err(validation(format!(
            "Value '[...]' at 'records' failed to satisfy constraint: Member must have length less than or equal to {}",
            limits.max_put_records
        )));
    }
    let total: usize = input
        .records
        .iter()
        .map(|r| r.data.len() + r.partition_key.as_ref().map_or(0, |k| k.len()))
        .sum();
    if total > limits.max_put_records_bytes {
        return Err(invalid_argument(format!(
            "Records size exceeds {} bytes limit: the request holds {total} bytes of data and partition keys.",
            limits.max_put_records_bytes
        )));
    }
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let state = gateway.controller.state();
    let stream = usable(&state, &key)?;

    // A malformed entry fails the whole request (as on AWS); routing happens before any write.
    let count = input.records.len();
    let mut by_shard: BTreeMap<usize, (Vec<usize>, Vec<NewRecord>)> = BTreeMap::new();
    for (i, entry) in input.records.into_iter().enumerate() {
        let PutRecordsRequestEntry {
            data,
            explicit_hash_key,
            partition_key,
        } = entry;
        let path = format!("records.{}.member.", i + 1);
        let routed = route(
            stream,
            data,
            partition_key,
            explicit_hash_key.as_deref(),
            &path,
        )?;
        let slot = by_shard.entry(routed.shard).or_default();
        slot.0.push(i);
        slot.1.push(routed.record);
    }

    let writes = by_shard
        .into_iter()
        .map(|(shard_index, (indices, records))| {
            let shard = &stream.shards[shard_index];
            let state = &state;
            async move { (shard, indices, append(gateway, state, shard, records).await) }
        });
    let mut results: Vec<PutRecordsResultEntry> = vec![PutRecordsResultEntry::default(); count];
    let mut failed = 0;
    for (shard, indices, outcome) in join_all(writes).await {
        match outcome {
            Ok((first, arrival_ms)) => {
                for (slot, &i) in indices.iter().enumerate() {
                    results[i].shard_id = Some(shard.id.to_string());
                    results[i].sequence_number =
                        Some(sequence_number(shard, first + slot as u64, arrival_ms));
                }
            }
            Err(error) => {
                failed += indices.len();
                let code = match error.kind {
                    ErrorKind::ProvisionedThroughputExceeded => {
                        "ProvisionedThroughputExceededException"
                    }
                    _ => "InternalFailure",
                };
                for &i in &indices {
                    results[i].error_code = Some(code.to_string());
                    results[i].error_message = Some(error.message.clone());
                }
            }
        }
    }
    Ok(PutRecordsOutput {
        failed_record_count: Some(failed as i32),
        records: results,
        encryption_type: record_encryption(stream),
    })
}

fn iterator_codec(state: &ClusterState) -> Result<IteratorCodec, KinesisError> {
    state
        .iterator_secret
        .map(IteratorCodec::new)
        .ok_or_else(|| {
            KinesisError::new(
                ErrorKind::ServiceUnavailable,
                "the cluster is not bootstrapped yet",
            )
        })
}

fn find_shard<'a>(stream: &'a StreamMeta, shard_id: &str) -> Result<&'a ShardMeta, KinesisError> {
    let missing = || {
        KinesisError::new(
            ErrorKind::ResourceNotFound,
            format!(
                "Shard {shard_id} in stream {} under account {} does not exist",
                stream.key.name, stream.key.account
            ),
        )
    };
    let id: ShardId = shard_id.parse().map_err(|_| missing())?;
    stream.shard(id).ok_or_else(missing)
}

/// The position a sequence number names within `shard`, if it belongs to that shard.
fn position_of(shard: &ShardMeta, stream: &StreamMeta, text: &str) -> Result<u64, KinesisError> {
    let invalid = || {
        invalid_argument(format!(
            "StartingSequenceNumber {text} used in GetShardIterator on shard {} in stream {} under account {} is invalid.",
            shard.id, stream.key.name, stream.key.account
        ))
    };
    let number = SequenceNumber::parse(text).map_err(|_| invalid())?;
    if number.shard_index != shard.id.0 {
        return Err(invalid_argument(format!(
            "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
            ShardId(number.shard_index),
            shard.id
        )));
    }
    if number.shard_epoch != shard.sequence_epoch {
        return Err(invalid());
    }
    Ok(number.position)
}

pub(super) async fn get_shard_iterator(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: GetShardIteratorInput,
) -> Result<GetShardIteratorOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let state = gateway.controller.state();
    let stream = usable(&state, &key)?;
    let shard = find_shard(stream, &input.shard_id)?;
    let kind = ShardIteratorType::from_wire(&input.shard_iterator_type).ok_or_else(|| {
        invalid_argument(format!(
            "Invalid ShardIteratorType {}.",
            input.shard_iterator_type
        ))
    })?;
    let now = now_ms();
    let starting = |kind: ShardIteratorType| {
        input.starting_sequence_number.as_deref().ok_or_else(|| {
            invalid_argument(format!(
                "Must specify StartingSequenceNumber for iterator of type {}.",
                kind.as_str()
            ))
        })
    };
    if input.starting_sequence_number.is_some()
        && !matches!(
            kind,
            ShardIteratorType::AtSequenceNumber | ShardIteratorType::AfterSequenceNumber
        )
    {
        return Err(invalid_argument(format!(
            "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {} and also a StartingSequenceNumber.",
            kind.as_str()
        )));
    }
    let position = match kind {
        ShardIteratorType::TrimHorizon => shard_bounds(gateway, &state, shard).await?.trim_position,
        ShardIteratorType::Latest => shard_bounds(gateway, &state, shard).await?.next_position,
        ShardIteratorType::AtSequenceNumber => position_of(shard, stream, starting(kind)?)?,
        ShardIteratorType::AfterSequenceNumber => {
            position_of(shard, stream, starting(kind)?)?.saturating_add(1)
        }
        ShardIteratorType::AtTimestamp => {
            let timestamp = input.timestamp.ok_or_else(|| {
                invalid_argument("Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.")
            })?;
            let at_ms = secs_to_ms(timestamp);
            if at_ms > now {
                return Err(invalid_argument(format!(
                    "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {at_ms}, currentTimestampInMillis: {now}"
                )));
            }
            gateway
                .raft
                .position_at(shard.group, at_ms, &state.addresses(&shard.replicas))
                .await
                .map_err(from_raft)?
        }
    };
    let iterator = iterator_codec(&state)?.encode(&IteratorPayload {
        account: key.account,
        region: key.region,
        stream_name: key.name,
        stream_created_ms: stream.created_ms,
        shard: shard.id,
        position,
        issued_ms: now,
    });
    Ok(GetShardIteratorOutput {
        shard_iterator: Some(iterator),
    })
}

fn child_shards(stream: &StreamMeta, parent: ShardId) -> Vec<ChildShard> {
    stream
        .shards
        .iter()
        .filter(|s| s.parent == Some(parent) || s.adjacent_parent == Some(parent))
        .map(|s| ChildShard {
            shard_id: s.id.to_string(),
            parent_shards: s
                .parent
                .iter()
                .chain(s.adjacent_parent.iter())
                .map(|p| p.to_string())
                .collect(),
            hash_key_range: HashKeyRange {
                starting_hash_key: s.hash_range.start.to_string(),
                ending_hash_key: s.hash_range.end.to_string(),
            },
        })
        .collect()
}

pub(super) async fn get_records(
    gateway: &Gateway,
    _ctx: &RequestContext,
    input: GetRecordsInput,
) -> Result<GetRecordsOutput, KinesisError> {
    let state = gateway.controller.state();
    let now = now_ms();
    let payload = iterator_codec(&state)?
        .decode(&input.shard_iterator, now)
        .map_err(|e| match e {
            IteratorError::Invalid => invalid_argument(e.to_string()),
            IteratorError::Expired { .. } => {
                KinesisError::new(ErrorKind::ExpiredIterator, e.to_string())
            }
        })?;
    let key = StreamKey {
        account: payload.account.clone(),
        region: payload.region.clone(),
        name: payload.stream_name.clone(),
    };
    let stream = usable(&state, &key)?;
    if stream.created_ms != payload.stream_created_ms {
        return Err(not_found(&key));
    }
    let shard = stream.shard(payload.shard).ok_or_else(|| not_found(&key))?;
    let limits = &gateway.settings.limits;
    let limit = input
        .limit
        .map(|l| l.max(1) as usize)
        .unwrap_or(limits.max_get_records)
        .min(limits.max_get_records);
    let ShardRead {
        records: stored,
        bounds,
    } = gateway
        .raft
        .read_shard(
            shard.group,
            payload.position,
            limit,
            limits.max_get_records_bytes,
            &state.addresses(&shard.replicas),
        )
        .await
        .map_err(from_raft)?;
    let next_position = stored
        .last()
        .map(|r| r.position + 1)
        .unwrap_or_else(|| payload.position.max(bounds.trim_position));
    let millis_behind_latest = stored
        .last()
        .map(|r| bounds.last_arrival_ms.saturating_sub(r.arrival_ms))
        .unwrap_or(0);
    let records = stored
        .into_iter()
        .map(|r| Record {
            sequence_number: sequence_number(shard, r.position, r.arrival_ms),
            approximate_arrival_timestamp: Some(ms_to_secs(r.arrival_ms)),
            data: r.data,
            partition_key: Some(r.partition_key),
            encryption_type: record_encryption(stream),
        })
        .collect();
    let drained = shard
        .ending_position
        .is_some_and(|end| next_position >= end);
    let (next_shard_iterator, child_shards) = if drained {
        (None, Some(child_shards(stream, shard.id)))
    } else {
        let next = iterator_codec(&state)?.encode(&IteratorPayload {
            position: next_position,
            issued_ms: now,
            ..payload
        });
        (Some(next), None)
    };
    Ok(GetRecordsOutput {
        records,
        next_shard_iterator,
        millis_behind_latest: Some(millis_behind_latest as i64),
        child_shards,
    })
}
