//! The data plane: PutRecord, PutRecords, GetShardIterator, GetRecords.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use kinesin_api::model::{
    ChildShard, EncryptionType as WireEncryption, GetRecordsInput, GetRecordsOutput,
    GetShardIteratorInput, GetShardIteratorOutput, HashKeyRange, PutRecordInput, PutRecordOutput,
    PutRecordsInput, PutRecordsOutput, PutRecordsRequestEntry, PutRecordsResultEntry, Record,
    ShardIteratorType,
};
use kinesin_api::validate::{data_length_violation, records_length_violation};
use kinesin_api::{ErrorKind, KinesisError};
use kinesin_controller::{ClusterState, ShardMeta, StreamKey, StreamMeta, StreamStatus};
use kinesin_raft::{Command, NewRecord, RaftError, Response, ShardBounds, ShardRead, StoredRecord};
use kinesin_types::{
    parse_hash_key, partition_key_hash, IteratorCodec, IteratorError, IteratorPayload,
    SequenceNumber, ShardId,
};

use super::describe::sequence_number;
use super::{invalid_argument, ms_to_secs, secs_to_ms};
use crate::context::{find, not_found, RequestContext};
use crate::encryption::RecordSealer;
use crate::error::{from_kms, from_raft};
use crate::read_quota::ShardKey;
use crate::stream_metrics::{Counter, Latency, ShardCounter, StreamFigures};
use crate::Gateway;

/// How long a write may spend finding its shard's leader (elections, leader changes) before
/// failing with ServiceUnavailable.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A record checked against the limits, with what routes it: its hash key.
struct Checked {
    hash_key: u128,
    record: NewRecord,
}

/// Where a record was stored.
struct Written {
    shard_id: ShardId,
    sequence_number: String,
}

fn validation(message: String) -> KinesisError {
    KinesisError::new(
        ErrorKind::Validation,
        format!("1 validation error detected: {message}"),
    )
}

/// The stream if it takes writes and reads: ACTIVE or UPDATING (a CREATING stream is not found,
/// as on AWS).
pub(super) fn usable<'a>(
    state: &'a ClusterState,
    key: &StreamKey,
) -> Result<&'a StreamMeta, KinesisError> {
    let stream = find(state, key)?;
    match stream.status {
        StreamStatus::Active | StreamStatus::Updating => Ok(stream),
        StreamStatus::Creating | StreamStatus::Deleting => Err(not_found(key)),
    }
}

/// What a record reports as its encryption: KMS when it was sealed (stored encrypted), else the
/// member is left out, as it always was for unencrypted streams.
fn record_encryption(sealed: bool) -> Option<WireEncryption> {
    sealed.then_some(WireEncryption::Kms)
}

/// What seals the records of a write to `stream`: `None` unless the stream is encrypted.
fn sealer_for(
    gateway: &Gateway,
    stream: &StreamMeta,
) -> Result<Option<RecordSealer>, KinesisError> {
    gateway.settings.data_keys.sealer(stream).map_err(from_kms)
}

fn check(
    stream: &StreamMeta,
    sealer: Option<&RecordSealer>,
    data: Vec<u8>,
    partition_key: Option<String>,
    explicit_hash_key: Option<&str>,
    path: &str,
) -> Result<Checked, KinesisError> {
    // The stream's own maximum (set at creation from the node's `max_record_bytes`, or by
    // UpdateMaxRecordSize) decides, not the node's setting.
    let max_record_bytes = stream.max_record_bytes();
    let partition_key = partition_key.ok_or_else(|| {
        validation(format!(
            "Value null at '{path}partitionKey' failed to satisfy constraint: Member must not be null"
        ))
    })?;
    if data.len() > max_record_bytes {
        return Err(validation(data_length_violation(
            &format!("{path}data"),
            data.len(),
            max_record_bytes,
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
    let record = match sealer {
        Some(sealer) => sealer.seal(&partition_key, &data).map_err(from_kms)?,
        None => NewRecord::plain(partition_key, data),
    };
    Ok(Checked { hash_key, record })
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

/// What a shard did with an append.
enum Appended {
    /// Stored at positions `first_position ..`.
    Stored {
        first_position: u64,
        arrival_ms: u64,
    },
    /// Refused, untouched: a split or merge sealed the shard. The records come back to be written
    /// to its children.
    Sealed(Vec<NewRecord>),
}

/// Appends `records` to one shard, through its leader wherever it is.
async fn append(
    gateway: &Gateway,
    state: &ClusterState,
    key: &StreamKey,
    shard: &ShardMeta,
    records: Vec<NewRecord>,
    figures: &StreamFigures,
) -> Result<Appended, KinesisError> {
    let count = records.len() as u64;
    let bytes = records.iter().map(NewRecord::counted_len).sum::<u64>();
    let shard_figures = figures.shard(shard.id);
    let command = Command::Put {
        arrival_ms: gateway.now_ms(),
        records,
    };
    let replicas = state.addresses(&shard.replicas);
    let response = gateway
        .raft
        .propose(shard.group, &command, &replicas, WRITE_TIMEOUT)
        .await
        .map_err(|e| match e {
            RaftError::Throttled { .. } => {
                figures.add(Counter::WriteProvisionedThroughputExceeded, count);
                shard_figures.add(ShardCounter::WriteProvisionedThroughputExceeded, count);
                KinesisError::new(
                    ErrorKind::ProvisionedThroughputExceeded,
                    format!(
                        "Rate exceeded for shard {} in stream {} under account {}.",
                        shard.id, key.name, key.account
                    ),
                )
            }
            other => from_raft(other),
        })?;
    match (response, command) {
        (
            Response::Put {
                first_position,
                arrival_ms,
            },
            _,
        ) => {
            let metrics = &gateway.metrics;
            metrics.records_written.fetch_add(count, Ordering::Relaxed);
            metrics.bytes_written.fetch_add(bytes, Ordering::Relaxed);
            figures.add(Counter::IncomingRecords, count);
            figures.add(Counter::IncomingBytes, bytes);
            shard_figures.add(ShardCounter::IncomingRecords, count);
            shard_figures.add(ShardCounter::IncomingBytes, bytes);
            Ok(Appended::Stored {
                first_position,
                arrival_ms,
            })
        }
        (Response::Sealed { .. }, Command::Put { records, .. }) => Ok(Appended::Sealed(records)),
        (other, _) => Err(KinesisError::new(
            ErrorKind::InternalFailure,
            format!("shard {} refused the write: {other:?}", shard.id),
        )),
    }
}

/// Records of one request bound for one shard, with their places in the request.
#[derive(Default)]
struct Batch {
    indices: Vec<usize>,
    hash_keys: Vec<u128>,
    records: Vec<NewRecord>,
}

impl Batch {
    fn push(&mut self, index: usize, checked: Checked) {
        self.indices.push(index);
        self.hash_keys.push(checked.hash_key);
        self.records.push(checked.record);
    }
}

/// Groups `records` (place in the request, record) by the open shard of `stream` that owns their
/// hash keys. The open shards always partition the hash space, so every key has one.
fn route(
    stream: &StreamMeta,
    records: impl IntoIterator<Item = (usize, Checked)>,
) -> Result<BTreeMap<usize, Batch>, KinesisError> {
    let mut by_shard: BTreeMap<usize, Batch> = BTreeMap::new();
    for (index, checked) in records {
        let shard = stream.open_shard_index(checked.hash_key).ok_or_else(|| {
            KinesisError::new(
                ErrorKind::InternalFailure,
                format!(
                    "no open shard of stream {} covers hash key {}",
                    stream.key.name, checked.hash_key
                ),
            )
        })?;
        by_shard.entry(shard).or_default().push(index, checked);
    }
    Ok(by_shard)
}

/// Waits until none of `sealed` (shard ids of `key`) is open in the controller's state any more
/// (a split or merge activates the children in the same step that closes the parents), and
/// returns that state; `None` at the deadline.
async fn wait_for_children(
    gateway: &Gateway,
    key: &StreamKey,
    sealed: &[ShardId],
    deadline: tokio::time::Instant,
) -> Option<Arc<ClusterState>> {
    let mut changes = gateway.controller.watch();
    loop {
        let state = gateway.controller.state();
        let reopened = state.stream(key).is_some_and(|stream| {
            sealed
                .iter()
                .any(|id| stream.shard(*id).is_some_and(ShardMeta::is_open))
        });
        if !reopened {
            return Some(state);
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .map_or(true, |changed| changed.is_err())
        {
            return None;
        }
    }
}

/// Writes `records` (place in the request, record) to the shards owning their hash keys, all
/// shards in parallel, and answers per place. A shard sealed by a split or merge refuses its
/// records untouched; they wait for the children to be activated (the gap between seal and
/// activate) and are written there, so a client sees added latency instead of errors.
async fn write(
    gateway: &Gateway,
    key: &StreamKey,
    mut state: Arc<ClusterState>,
    records: Vec<(usize, Checked)>,
    figures: &StreamFigures,
) -> Result<Vec<(usize, Result<Written, KinesisError>)>, KinesisError> {
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    let mut answers = Vec::with_capacity(records.len());
    let mut pending = records;
    while !pending.is_empty() {
        let stream = usable(&state, key)?;
        let writes = route(stream, pending.drain(..))?
            .into_iter()
            .map(|(shard_index, batch)| {
                let shard = &stream.shards[shard_index];
                let state = &state;
                async move {
                    let Batch {
                        indices,
                        hash_keys,
                        records,
                    } = batch;
                    let outcome = append(gateway, state, key, shard, records, figures).await;
                    (shard, indices, hash_keys, outcome)
                }
            });
        let mut sealed = Vec::new();
        for (shard, indices, hash_keys, outcome) in join_all(writes).await {
            match outcome {
                Ok(Appended::Stored {
                    first_position,
                    arrival_ms,
                }) => answers.extend(indices.into_iter().enumerate().map(|(slot, i)| {
                    let position = first_position + slot as u64;
                    let written = Written {
                        shard_id: shard.id,
                        sequence_number: sequence_number(shard, position, arrival_ms),
                    };
                    (i, Ok(written))
                })),
                Ok(Appended::Sealed(records)) => {
                    sealed.push(shard.id);
                    pending.extend(
                        indices.into_iter().zip(
                            hash_keys
                                .into_iter()
                                .zip(records)
                                .map(|(hash_key, record)| Checked { hash_key, record }),
                        ),
                    );
                }
                Err(error) => answers.extend(indices.into_iter().map(|i| (i, Err(error.clone())))),
            }
        }
        if pending.is_empty() {
            break;
        }
        match wait_for_children(gateway, key, &sealed, deadline).await {
            Some(next) => state = next,
            None => {
                let error = KinesisError::new(
                    ErrorKind::ServiceUnavailable,
                    "The shard is being split or merged and its children did not take writes in time; nothing was written.",
                );
                answers.extend(pending.drain(..).map(|(i, _)| (i, Err(error.clone()))));
            }
        }
    }
    Ok(answers)
}

pub(super) async fn put_record(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: PutRecordInput,
) -> Result<PutRecordOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let state = gateway.controller.state();
    let stream = usable(&state, &key)?;
    let sealer = sealer_for(gateway, stream)?;
    let checked = check(
        stream,
        sealer.as_ref(),
        input.data,
        input.partition_key,
        input.explicit_hash_key.as_deref(),
        "",
    )?;
    let encryption_type = record_encryption(sealer.is_some());
    let figures = gateway.stream_metrics.of(stream);
    let size = checked.record.counted_len();
    let started = Instant::now();
    let answer = write(gateway, &key, state.clone(), vec![(0, checked)], &figures).await;
    figures.observe(Latency::PutRecord, started.elapsed());
    let written = match answer?.pop() {
        Some((_, answer)) => answer?,
        None => {
            return Err(KinesisError::new(
                ErrorKind::InternalFailure,
                "the write produced no answer",
            ))
        }
    };
    figures.add(Counter::PutRecordSuccess, 1);
    figures.add(Counter::PutRecordBytes, size);
    Ok(PutRecordOutput {
        shard_id: written.shard_id.to_string(),
        sequence_number: written.sequence_number,
        encryption_type,
    })
}

pub(super) async fn put_records(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: PutRecordsInput,
) -> Result<PutRecordsOutput, KinesisError> {
    let limits = &gateway.settings.limits;
    if input.records.len() > limits.max_put_records {
        return Err(validation(records_length_violation(
            input.records.len(),
            limits.max_put_records,
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

    // A malformed entry fails the whole request (as on AWS); checks happen before any write.
    let sealer = sealer_for(gateway, stream)?;
    let count = input.records.len();
    let mut checked = Vec::with_capacity(count);
    for (i, entry) in input.records.into_iter().enumerate() {
        let PutRecordsRequestEntry {
            data,
            explicit_hash_key,
            partition_key,
        } = entry;
        let path = format!("records.{}.member.", i + 1);
        let record = check(
            stream,
            sealer.as_ref(),
            data,
            partition_key,
            explicit_hash_key.as_deref(),
            &path,
        )?;
        checked.push((i, record));
    }
    let encryption_type = record_encryption(sealer.is_some());
    let figures = gateway.stream_metrics.of(stream);
    let sizes: Vec<u64> = checked
        .iter()
        .map(|(_, c)| c.record.counted_len())
        .collect();
    let started = Instant::now();
    let answers = write(gateway, &key, state.clone(), checked, &figures).await;
    figures.observe(Latency::PutRecords, started.elapsed());

    let mut results: Vec<PutRecordsResultEntry> = vec![PutRecordsResultEntry::default(); count];
    let mut failed: i32 = 0;
    let (mut stored, mut stored_bytes, mut throttled) = (0u64, 0u64, 0u64);
    for (i, answer) in answers? {
        let Some(result) = results.get_mut(i) else {
            continue;
        };
        match answer {
            Ok(written) => {
                stored += 1;
                stored_bytes += sizes.get(i).copied().unwrap_or(0);
                result.shard_id = Some(written.shard_id.to_string());
                result.sequence_number = Some(written.sequence_number);
            }
            Err(error) => {
                failed += 1;
                let code = match error.kind {
                    ErrorKind::ProvisionedThroughputExceeded => {
                        throttled += 1;
                        "ProvisionedThroughputExceededException"
                    }
                    _ => "InternalFailure",
                };
                result.error_code = Some(code.to_string());
                result.error_message = Some(error.message);
            }
        }
    }
    figures.add(Counter::PutRecordsTotalRecords, count as u64);
    figures.add(Counter::PutRecordsRecords, stored);
    figures.add(Counter::PutRecordsBytes, stored_bytes);
    figures.add(Counter::PutRecordsThrottledRecords, throttled);
    figures.add(Counter::PutRecordsFailedRecords, failed as u64 - throttled);
    figures.add(Counter::PutRecordsSuccess, u64::from(stored > 0));
    Ok(PutRecordsOutput {
        failed_record_count: Some(failed),
        records: results,
        encryption_type,
    })
}

pub(crate) fn iterator_codec(state: &ClusterState) -> Result<IteratorCodec, KinesisError> {
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

/// The shard a client's shard id names, read as AWS reads it (kinesalite `db/index.js`
/// `resolveShardId`, whose cases `test/getShardIterator.js` recorded against AWS): the digits
/// after the first `-` (`shardId-5`, `x-5`, `-5`), or the whole id when it has none, at most
/// 2147483647.
fn resolve_shard_id(text: &str) -> Option<ShardId> {
    let digits = text
        .split('-')
        .nth(1)
        .filter(|part| !part.is_empty())
        .unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Leading zeros are fine; a value past i32::MAX is not a shard.
    let value = digits.trim_start_matches('0');
    if value.len() > 10 {
        return None;
    }
    let index: u64 = if value.is_empty() {
        0
    } else {
        value.parse().ok()?
    };
    (index <= i32::MAX as u64).then_some(ShardId(index as u32))
}

/// A shard id as a client named it; one that cannot name a shard is not found, in AWS's words
/// (kinesalite `actions/getShardIterator.js`: `Could not find shard 2147483648 in stream s under
/// account 000000000000.`).
pub(super) fn parse_shard_id(shard_id: &str, key: &StreamKey) -> Result<ShardId, KinesisError> {
    resolve_shard_id(shard_id).ok_or_else(|| {
        KinesisError::new(
            ErrorKind::ResourceNotFound,
            format!(
                "Could not find shard {shard_id} in stream {} under account {}.",
                key.name, key.account
            ),
        )
    })
}

/// AWS's answer when a shard, or the stream it would be in, does not exist; the shard id is
/// spelled out (`shardId-5` → `shardId-000000000005`), as AWS does (kinesalite
/// `actions/getShardIterator.js`, `actions/getRecords.js`).
pub(super) fn shard_not_found(key: &StreamKey, id: ShardId) -> KinesisError {
    KinesisError::new(
        ErrorKind::ResourceNotFound,
        format!(
            "Shard {id} in stream {} under account {} does not exist",
            key.name, key.account
        ),
    )
}

/// The stream and shard a GetShardIterator or SubscribeToShard names. AWS checks the shard id
/// first, and answers a missing stream as a missing shard.
fn find_shard<'a>(
    state: &'a ClusterState,
    key: &StreamKey,
    shard_id: &str,
) -> Result<(&'a StreamMeta, &'a ShardMeta), KinesisError> {
    let id = parse_shard_id(shard_id, key)?;
    let stream = usable(state, key).map_err(|_| shard_not_found(key, id))?;
    Ok((stream, shard_of(stream, shard_id)?))
}

/// The shard of `stream` a client named.
pub(super) fn shard_of<'a>(
    stream: &'a StreamMeta,
    shard_id: &str,
) -> Result<&'a ShardMeta, KinesisError> {
    let id = parse_shard_id(shard_id, &stream.key)?;
    stream
        .shard(id)
        .ok_or_else(|| shard_not_found(&stream.key, id))
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
        // Another shard of the same index: one of a deleted stream of the same name.
        return Err(invalid_argument(format!(
            "StartingSequenceNumber {text} used in GetShardIterator on shard {} in stream {} under account {} is invalid because it did not come from this stream.",
            shard.id, stream.key.name, stream.key.account
        )));
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
    let (stream, shard) = find_shard(&state, &key, &input.shard_id)?;
    let kind = iterator_type(&input.shard_iterator_type, "ShardIteratorType")?;
    let now = gateway.now_ms();
    let position = starting_position(
        gateway,
        &state,
        stream,
        shard,
        kind,
        input.starting_sequence_number.as_deref(),
        input.timestamp,
        now,
    )
    .await?;
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

/// The iterator type named `wire` by the request member `member` (GetShardIterator's
/// ShardIteratorType, SubscribeToShard's StartingPosition.Type).
pub(super) fn iterator_type(wire: &str, member: &str) -> Result<ShardIteratorType, KinesisError> {
    ShardIteratorType::from_wire(wire)
        .ok_or_else(|| invalid_argument(format!("Invalid {member} {wire}.")))
}

/// The position an iterator of `kind` starts at in `shard` (GetShardIterator's rules and errors;
/// SubscribeToShard's StartingPosition takes the same).
#[allow(clippy::too_many_arguments)]
pub(super) async fn starting_position(
    gateway: &Gateway,
    state: &ClusterState,
    stream: &StreamMeta,
    shard: &ShardMeta,
    kind: ShardIteratorType,
    starting_sequence_number: Option<&str>,
    timestamp: Option<f64>,
    now: u64,
) -> Result<u64, KinesisError> {
    let starting = |kind: ShardIteratorType| {
        starting_sequence_number.ok_or_else(|| {
            invalid_argument(format!(
                "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {} and no StartingSequenceNumber.",
                kind.as_str()
            ))
        })
    };
    if starting_sequence_number.is_some()
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
    Ok(match kind {
        ShardIteratorType::TrimHorizon => shard_bounds(gateway, state, shard).await?.trim_position,
        ShardIteratorType::Latest => shard_bounds(gateway, state, shard).await?.next_position,
        ShardIteratorType::AtSequenceNumber => position_of(shard, stream, starting(kind)?)?,
        ShardIteratorType::AfterSequenceNumber => {
            position_of(shard, stream, starting(kind)?)?.saturating_add(1)
        }
        ShardIteratorType::AtTimestamp => {
            let timestamp = timestamp.ok_or_else(|| {
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
    })
}

/// Stored records as GetRecords and SubscribeToShard answer them: sealed ones opened with their
/// stream's data keys, or none at all if one does not open.
pub(super) fn wire_records(
    gateway: &Gateway,
    stream: &StreamMeta,
    shard: &ShardMeta,
    mut records: Vec<StoredRecord>,
) -> Result<Vec<Record>, KinesisError> {
    gateway
        .settings
        .data_keys
        .open(stream, &mut records)
        .map_err(from_kms)?;
    Ok(records
        .into_iter()
        .map(|record| Record {
            sequence_number: sequence_number(shard, record.position, record.arrival_ms),
            approximate_arrival_timestamp: Some(ms_to_secs(record.arrival_ms)),
            data: record.data,
            partition_key: Some(record.partition_key),
            encryption_type: record_encryption(record.data_key != 0),
        })
        .collect())
}

pub(super) fn child_shards(stream: &StreamMeta, parent: ShardId) -> Vec<ChildShard> {
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

/// Whose throughput a read uses. GetRecords calls share each shard's read limits (5 calls and
/// 2 MiB per second); enhanced fan-out consumers have throughput of their own on AWS, and their
/// reads must not be charged to the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throughput {
    Shared,
    #[allow(dead_code)] // SubscribeToShard's reads, once it exists
    Dedicated,
}

/// One answer's worth of a shard, read from `position` on.
pub(crate) struct Page {
    pub records: Vec<Record>,
    /// Where the next read starts; `None` at the end of a closed shard, which `child_shards`
    /// then names (never one without the other).
    pub next_position: Option<u64>,
    pub child_shards: Option<Vec<ChildShard>>,
    pub millis_behind_latest: u64,
    /// When the last record returned arrived.
    pub last_arrival_ms: Option<u64>,
}

fn throttled(stream: &StreamMeta, shard: &ShardMeta) -> KinesisError {
    KinesisError::new(
        ErrorKind::ProvisionedThroughputExceeded,
        format!(
            "Rate exceeded for shard {} in stream {} under account {}.",
            shard.id, stream.key.name, stream.key.account
        ),
    )
}

/// Reads up to `limit` records of `shard` from `position` on, from any replica.
///
/// The end of a closed shard comes with its last records: the answer that returns them (or, when
/// the reader is past them, an answer with none) has no next position and names the children,
/// as the KCL expects (a null NextShardIterator together with non-empty ChildShards). Only a
/// replica that has applied the shard's seal says a read reached it, so a lagging replica answers
/// fewer records, never a false end.
pub(crate) async fn read_page(
    gateway: &Gateway,
    state: &ClusterState,
    stream: &StreamMeta,
    shard: &ShardMeta,
    position: u64,
    limit: usize,
    throughput: Throughput,
) -> Result<Page, KinesisError> {
    let budget = ShardKey {
        stream: stream.key.clone(),
        stream_created_ms: stream.created_ms,
        shard: shard.id,
    };
    if throughput == Throughput::Shared && !gateway.read_limiter.admit(&budget, Instant::now()) {
        gateway
            .metrics
            .reads_throttled
            .fetch_add(1, Ordering::Relaxed);
        let figures = gateway.stream_metrics.of(stream);
        figures.add(Counter::ReadProvisionedThroughputExceeded, 1);
        figures
            .shard(shard.id)
            .add(ShardCounter::ReadProvisionedThroughputExceeded, 1);
        return Err(throttled(stream, shard));
    }
    // A replica that could not confirm it holds the newest records (no leader reachable) still
    // answers with the committed records it has; MillisBehindLatest is then measured against
    // the newest of those, the best this node knows.
    let ShardRead {
        records: stored,
        bounds,
        reached_seal,
        caught_up: _,
    } = gateway
        .raft
        .read_shard(
            shard.group,
            position,
            limit,
            gateway.settings.limits.max_get_records_bytes,
            &state.addresses(&shard.replicas),
        )
        .await
        .map_err(from_raft)?;
    if throughput == Throughput::Shared {
        let bytes = stored
            .iter()
            .map(|r| (r.data.len() + r.partition_key.len()) as u64)
            .sum();
        gateway.read_limiter.charge(&budget, bytes, Instant::now());
    }
    let next_position = stored
        .last()
        .map(|r| r.position + 1)
        .unwrap_or_else(|| position.max(bounds.trim_position));
    let millis_behind_latest = stored
        .last()
        .map(|r| bounds.last_arrival_ms.saturating_sub(r.arrival_ms))
        .unwrap_or(0);
    let last_arrival_ms = stored.last().map(|r| r.arrival_ms);
    let records = wire_records(gateway, stream, shard, stored)?;
    // The replica may have applied the seal before the controller closed the shard (a merge
    // closes its parents once both are sealed): the end waits until the children are known.
    let children = (reached_seal && !shard.is_open())
        .then(|| child_shards(stream, shard.id))
        .filter(|children| !children.is_empty());
    Ok(Page {
        records,
        next_position: children.is_none().then_some(next_position),
        child_shards: children,
        millis_behind_latest,
        last_arrival_ms,
    })
}

pub(super) async fn get_records(
    gateway: &Gateway,
    _ctx: &RequestContext,
    input: GetRecordsInput,
) -> Result<GetRecordsOutput, KinesisError> {
    let state = gateway.controller.state();
    let now = gateway.now_ms();
    let codec = iterator_codec(&state)?;
    let payload = codec
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
    // A stream deleted (or deleted and made again) since: AWS names the shard (kinesalite
    // `actions/getRecords.js`).
    let gone = || shard_not_found(&key, payload.shard);
    let stream = usable(&state, &key).map_err(|_| gone())?;
    if stream.created_ms != payload.stream_created_ms {
        return Err(gone());
    }
    let shard = stream.shard(payload.shard).ok_or_else(gone)?;
    let max_get_records = gateway.settings.limits.max_get_records;
    let limit = input
        .limit
        .map(|l| l.max(1) as usize)
        .unwrap_or(max_get_records)
        .min(max_get_records);
    let figures = gateway.stream_metrics.of(stream);
    let started = Instant::now();
    let page = read_page(
        gateway,
        &state,
        stream,
        shard,
        payload.position,
        limit,
        Throughput::Shared,
    )
    .await;
    figures.observe(Latency::GetRecords, started.elapsed());
    let page = page?;
    let count = page.records.len() as u64;
    let bytes = page
        .records
        .iter()
        .map(|r| (r.data.len() + r.partition_key.as_ref().map_or(0, String::len)) as u64)
        .sum();
    figures.add(Counter::GetRecordsSuccess, 1);
    figures.add(Counter::GetRecordsRecords, count);
    figures.add(Counter::GetRecordsBytes, bytes);
    let shard_figures = figures.shard(shard.id);
    shard_figures.add(ShardCounter::OutgoingRecords, count);
    shard_figures.add(ShardCounter::OutgoingBytes, bytes);
    shard_figures.set_iterator_age(page.last_arrival_ms.map_or(0, |at| now.saturating_sub(at)));
    let next_shard_iterator = page.next_position.map(|position| {
        codec.encode(&IteratorPayload {
            position,
            issued_ms: now,
            ..payload
        })
    });
    Ok(GetRecordsOutput {
        records: page.records,
        next_shard_iterator,
        millis_behind_latest: Some(page.millis_behind_latest as i64),
        child_shards: page.child_shards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids_resolve_as_aws_resolves_them() {
        // kinesalite test/getShardIterator.js, recorded against AWS.
        for (text, index) in [
            ("shardId-000000000005", 5),
            ("shardId-5", 5),
            ("5", 5),
            ("2147483647", 2_147_483_647),
            ("anything-2147483647", 2_147_483_647),
            ("a-00002147483647", 2_147_483_647),
            ("-00002147483647", 2_147_483_647),
            ("shardId-0", 0),
        ] {
            assert_eq!(resolve_shard_id(text), Some(ShardId(index)), "{text}");
        }
        for text in [
            "2147483648",
            "shardId-002147483648",
            "abc",
            "1e3",
            "shardId-",
            "",
            "a-b-5",
            "99999999999999999999",
        ] {
            assert_eq!(resolve_shard_id(text), None, "{text}");
        }
    }
}
