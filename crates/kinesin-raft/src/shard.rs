//! The shard state machine's data side: applying `Put` and `Trim`, and the read view the gateway
//! uses for `GetRecords` and iterator positions.
//!
//! A shard's committed log entries are its records (one copy per replica): a record at position
//! `index << 20 | slot` is slot `slot` of the `Put` at log index `index`. Apply writes no record;
//! it keeps the counters, a sparse time index and the rare arrival clamps. Reads decode log entries
//! up to the applied index, never past it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kinesin_storage::{Engine, StorageError, StoredRecord, TimeIndexEntry, WriteBatch};
use openraft::EntryPayload;

use crate::disk_format;
use crate::types::{Command, NewRecord, Response, POSITIONS_PER_ENTRY_BITS};

/// The small state a shard group persists next to its records, in the same batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

    /// Up to `max_records` records from `from_position` on (clamped to the trim horizon), and past
    /// the first record at most `max_bytes` of data + partition keys (the first is always
    /// returned, so a reader makes progress past a record larger than its budget). Reads the log
    /// entries below the applied bound only: every one of them is committed.
    pub fn read(
        &self,
        from_position: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let mut out = Vec::new();
        let from = from_position.max(self.trim_position());
        let end_index = self.next_position() >> POSITIONS_PER_ENTRY_BITS;
        let sealed_at = self.sealed_at();
        if max_records == 0 {
            return Ok(out);
        }
        let first_index = from >> POSITIONS_PER_ENTRY_BITS;
        let mut bytes = 0usize;
        let mut last_index = first_index;
        self.engine
            .scan_log(self.group, first_index, end_index, |index, raw| {
                last_index = index;
                let Some((arrival_ms, records)) = stored_put(self.group, index, raw, sealed_at)?
                else {
                    return Ok::<_, StorageError>(true);
                };
                let first = first_position(index);
                for (slot, record) in records.into_iter().enumerate() {
                    let position = first + slot as u64;
                    if position < from {
                        continue;
                    }
                    let size = record.data.len() + record.partition_key.len();
                    if !out.is_empty() && bytes + size > max_bytes {
                        return Ok(false);
                    }
                    bytes += size;
                    out.push(StoredRecord {
                        position,
                        arrival_ms,
                        partition_key: record.partition_key,
                        data: record.data.into(),
                        data_key: record.data_key,
                    });
                    if out.len() >= max_records {
                        return Ok(false);
                    }
                }
                Ok(true)
            })?;
        if let Some(first) = out.first() {
            let start = first.position >> POSITIONS_PER_ENTRY_BITS;
            for (index, arrival_ms) in
                self.engine
                    .arrival_clamps(self.group, start, last_index + 1)?
            {
                for record in out
                    .iter_mut()
                    .filter(|r| r.position >> POSITIONS_PER_ENTRY_BITS == index)
                {
                    record.arrival_ms = arrival_ms;
                }
            }
        }
        Ok(out)
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

/// Whether apply stores a `Put` of `count` records at `log_index`: not after the shard's seal (such
/// a `Put` is answered `Sealed`), and not when its records cannot all have positions. Apply and
/// readers decide with this one rule, so a reader never shows what apply refused.
fn put_is_stored(log_index: u64, count: usize, sealed_at: Option<u64>) -> bool {
    count < 1 << POSITIONS_PER_ENTRY_BITS
        && sealed_at.is_none_or(|sealed| first_position(log_index) < sealed)
}

/// The arrival time and records of the log entry `raw` at `index` if it is a stored `Put`.
fn stored_put(
    group: u64,
    index: u64,
    raw: &[u8],
    sealed_at: Option<u64>,
) -> Result<Option<(u64, Vec<NewRecord>)>, StorageError> {
    let entry = disk_format::decode_entry(raw).map_err(|_| StorageError::Corrupt {
        what: "shard log entry",
        key: kinesin_storage::keys::log_key(group, index).to_vec(),
    })?;
    Ok(match entry.payload {
        EntryPayload::Normal(Command::Put {
            arrival_ms,
            records,
        }) if put_is_stored(index, records.len(), sealed_at) => Some((arrival_ms, records)),
        _ => None,
    })
}

/// Applies a `Put` at `log_index`: its records stay where they are, in the log entry; `batch` gets
/// the time index entry and, when a new leader's clock was behind, the arrival clamp.
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
    if !put_is_stored(log_index, records.len(), None) {
        return Response::Rejected(format!("{} records do not fit in one entry", records.len()));
    }
    let first = first_position(log_index);
    let effective_ms = arrival_ms.max(counters.last_arrival_ms);
    if !records.is_empty() {
        if effective_ms != arrival_ms {
            engine.put_arrival_clamp(batch, group, log_index, effective_ms);
        }
        engine.put_time_index(
            batch,
            group,
            TimeIndexEntry {
                arrival_ms: effective_ms,
                position: first,
            },
        );
        counters.last_arrival_ms = effective_ms;
    }
    Response::Put {
        first_position: first,
        arrival_ms: effective_ms,
    }
}

/// Seals the shard at `log_index` (idempotent: a second seal answers with the first's position).
pub(crate) fn apply_seal(counters: &mut ShardCounters, log_index: u64) -> Response {
    let sealed_at = *counters
        .sealed_at
        .get_or_insert_with(|| first_position(log_index));
    Response::Sealed { sealed_at }
}

/// Retention: records that arrived before `before_ms` go. Moves the trim position to the first
/// entry that arrived at or after it and answers the log index below it, up to which the log may
/// be purged (`None` when the trim position did not move), with the shard's arrival time there.
pub(crate) fn apply_trim(
    engine: &Engine,
    batch: &mut WriteBatch,
    group: u64,
    counters: &mut ShardCounters,
    before_ms: u64,
) -> Result<(Response, Option<TrimPoint>), StorageError> {
    let cut = match engine.first_at_or_after(group, before_ms)? {
        Some(entry) => entry.position,
        None => counters.next_position,
    };
    let mut moved = None;
    if cut > counters.trim_position {
        let arrival_ms = engine
            .last_before(group, before_ms)?
            .map_or(0, |entry| entry.arrival_ms);
        let cut_index = cut >> POSITIONS_PER_ENTRY_BITS;
        engine.trim_index(batch, group, cut_index, before_ms);
        counters.trim_position = cut;
        moved = cut_index.checked_sub(1).map(|last_index| TrimPoint {
            last_index,
            last_arrival_ms: arrival_ms,
        });
    }
    Ok((
        Response::Trimmed {
            trim_position: counters.trim_position,
        },
        moved,
    ))
}

/// Where retention cut a shard: every entry up to `last_index` holds only expired records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrimPoint {
    pub last_index: u64,
    /// The shard's last arrival time as of `last_index` (what apply's clamp continues from).
    pub last_arrival_ms: u64,
}
