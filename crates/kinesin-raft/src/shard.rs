//! The shard state machine's data side: applying `Put` and `Trim`, and the read view the gateway
//! uses for `GetRecords` and iterator positions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kinesin_storage::{Engine, StorageError, StoredRecord, TimeIndexEntry, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::types::{NewRecord, Response, POSITIONS_PER_ENTRY_BITS};

/// The small state a shard group persists next to its records, in the same batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShardCounters {
    /// Arrival times never go backwards inside a shard, even if a new leader's clock is behind.
    pub last_arrival_ms: u64,
    /// Records below this position were removed by retention.
    pub trim_position: u64,
    /// Position the next entry's records would start at: `(last applied index + 1) << 20`.
    pub next_position: u64,
    /// Set by `Seal` (resharding's fence): the position of the seal entry. Every record of the
    /// shard is below it and no `Put` is applied after it.
    pub sealed_at: Option<u64>,
}

/// [`ShardCounters`] as written before shards could be sealed: still read from older data
/// directories and snapshots.
#[derive(Deserialize)]
pub(crate) struct ShardCountersBeforeSeal {
    last_arrival_ms: u64,
    trim_position: u64,
    next_position: u64,
}

impl From<ShardCountersBeforeSeal> for ShardCounters {
    fn from(old: ShardCountersBeforeSeal) -> Self {
        ShardCounters {
            last_arrival_ms: old.last_arrival_ms,
            trim_position: old.trim_position,
            next_position: old.next_position,
            sealed_at: None,
        }
    }
}

/// `ShardView::sealed_at` while the shard is open.
const OPEN: u64 = u64::MAX;

/// What readers of a shard see: committed (applied) records only.
pub struct ShardView {
    group: u64,
    engine: Arc<Engine>,
    last_arrival_ms: AtomicU64,
    trim_position: AtomicU64,
    next_position: AtomicU64,
    sealed_at: AtomicU64,
    /// Records and bytes applied since this replica opened the group: what on-demand scaling
    /// measures write throughput by (rates are differences, so the start does not matter).
    written_records: AtomicU64,
    written_bytes: AtomicU64,
}

impl ShardView {
    pub(crate) fn new(group: u64, engine: Arc<Engine>, counters: &ShardCounters) -> ShardView {
        ShardView {
            group,
            engine,
            last_arrival_ms: AtomicU64::new(counters.last_arrival_ms),
            trim_position: AtomicU64::new(counters.trim_position),
            next_position: AtomicU64::new(counters.next_position),
            sealed_at: AtomicU64::new(counters.sealed_at.unwrap_or(OPEN)),
            written_records: AtomicU64::new(0),
            written_bytes: AtomicU64::new(0),
        }
    }

    pub(crate) fn publish(&self, counters: &ShardCounters) {
        self.last_arrival_ms
            .store(counters.last_arrival_ms, Ordering::Release);
        self.trim_position
            .store(counters.trim_position, Ordering::Release);
        self.next_position
            .store(counters.next_position, Ordering::Release);
        self.sealed_at
            .store(counters.sealed_at.unwrap_or(OPEN), Ordering::Release);
    }

    pub(crate) fn count_written(&self, records: &[NewRecord]) {
        self.written_records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        self.written_bytes
            .fetch_add(crate::types::counted_bytes(records), Ordering::Relaxed);
    }

    /// Records and bytes applied here since the replica opened (see [`ShardBounds`]).
    pub fn written(&self) -> (u64, u64) {
        (
            self.written_records.load(Ordering::Relaxed),
            self.written_bytes.load(Ordering::Relaxed),
        )
    }

    /// `Some(position of the seal)` once the shard is sealed: it holds no record at or after it.
    pub fn sealed_at(&self) -> Option<u64> {
        Some(self.sealed_at.load(Ordering::Acquire)).filter(|&at| at != OPEN)
    }

    pub fn group(&self) -> u64 {
        self.group
    }

    /// The position a `LATEST` iterator starts at: after every record applied so far.
    pub fn next_position(&self) -> u64 {
        self.next_position.load(Ordering::Acquire)
    }

    /// The oldest position still retained (`TRIM_HORIZON`).
    pub fn trim_position(&self) -> u64 {
        self.trim_position.load(Ordering::Acquire)
    }

    pub fn last_arrival_ms(&self) -> u64 {
        self.last_arrival_ms.load(Ordering::Acquire)
    }

    /// Up to `max_records` records from `from_position` on (clamped to the trim horizon).
    pub fn read(
        &self,
        from_position: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let from = from_position.max(self.trim_position());
        self.engine
            .read_records(self.group, from, max_records, max_bytes)
    }

    /// The position of the first record that arrived at or after `arrival_ms`, or the next position
    /// if none did yet (`AT_TIMESTAMP`).
    pub fn position_at_time(&self, arrival_ms: u64) -> Result<u64, StorageError> {
        let found = self.engine.first_at_or_after(self.group, arrival_ms)?;
        Ok(match found {
            Some(entry) => entry.position.max(self.trim_position()),
            None => self.next_position(),
        })
    }
}

pub(crate) fn first_position(log_index: u64) -> u64 {
    log_index << POSITIONS_PER_ENTRY_BITS
}

/// Adds the records of a `Put` at `log_index` to `batch`.
pub(crate) fn apply_put(
    engine: &Engine,
    batch: &mut WriteBatch,
    group: u64,
    counters: &mut ShardCounters,
    log_index: u64,
    arrival_ms: u64,
    records: &[NewRecord],
) -> Response {
    if let Some(sealed_at) = counters.sealed_at {
        // Deterministic on every replica: the fence holds however late a write arrives.
        return Response::Sealed { sealed_at };
    }
    if records.len() >= 1 << POSITIONS_PER_ENTRY_BITS {
        return Response::Rejected(format!("{} records do not fit in one entry", records.len()));
    }
    let arrival_ms = arrival_ms.max(counters.last_arrival_ms);
    let first = first_position(log_index);
    for (slot, record) in records.iter().enumerate() {
        engine.put_record(
            batch,
            group,
            first + slot as u64,
            arrival_ms,
            &record.partition_key,
            &record.data,
        );
    }
    if !records.is_empty() {
        engine.put_time_index(
            batch,
            group,
            TimeIndexEntry {
                arrival_ms,
                position: first,
            },
        );
    }
    counters.last_arrival_ms = arrival_ms;
    Response::Put {
        first_position: first,
        arrival_ms,
    }
}

/// Seals the shard at `log_index` (idempotent: a second seal answers with the first's position).
pub(crate) fn apply_seal(counters: &mut ShardCounters, log_index: u64) -> Response {
    let sealed_at = *counters
        .sealed_at
        .get_or_insert_with(|| first_position(log_index));
    Response::Sealed { sealed_at }
}

/// Adds the removal of records that arrived before `before_ms` to `batch`.
pub(crate) fn apply_trim(
    engine: &Engine,
    batch: &mut WriteBatch,
    group: u64,
    counters: &mut ShardCounters,
    before_ms: u64,
) -> Result<Response, StorageError> {
    let cut = match engine.first_at_or_after(group, before_ms)? {
        Some(entry) => entry.position,
        None => counters.next_position,
    };
    if cut > counters.trim_position {
        engine.trim_records(batch, group, cut, before_ms);
        counters.trim_position = cut;
    }
    Ok(Response::Trimmed {
        trim_position: counters.trim_position,
    })
}
