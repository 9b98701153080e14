//! What a group's snapshot carries, and how a shard's records travel with it.
//!
//! A shard's snapshot is its small counters plus every retained record. The records stay in the
//! record store until the snapshot is actually sent to a peer ([`SnapshotData::into_wire`]):
//! openraft asks for the current snapshot at every start-up, and reading a whole shard into memory
//! there would make restarts cost as much as the data.

use std::io;
use std::sync::Arc;

use kinesin_storage::{Engine, StoredRecord, TimeIndexEntry, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};

pub struct SnapshotData {
    /// The state machine's own state (controller state, or a shard's counters).
    pub(crate) state: Vec<u8>,
    pub(crate) records: Records,
}

pub(crate) enum Records {
    /// The controller group: no records.
    None,
    /// A local shard's records, read when sent.
    InStore { group: u64, engine: Arc<Engine> },
    /// A shard's records as received from a peer.
    Received(Vec<WireRecord>),
}

/// A stored record as it travels between nodes (in snapshots and answers to reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireRecord {
    position: u64,
    arrival_ms: u64,
    partition_key: String,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

impl From<StoredRecord> for WireRecord {
    fn from(r: StoredRecord) -> WireRecord {
        WireRecord {
            position: r.position,
            arrival_ms: r.arrival_ms,
            partition_key: r.partition_key,
            data: r.data,
        }
    }
}

impl From<WireRecord> for StoredRecord {
    fn from(r: WireRecord) -> StoredRecord {
        StoredRecord {
            position: r.position,
            arrival_ms: r.arrival_ms,
            partition_key: r.partition_key,
            data: r.data,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
    records: Vec<WireRecord>,
}

impl SnapshotData {
    /// Encodes the snapshot for a peer, reading a shard's records now.
    pub(crate) fn into_wire(self) -> io::Result<Vec<u8>> {
        let records = match self.records {
            Records::None => Vec::new(),
            Records::Received(records) => records,
            Records::InStore { group, engine } => engine
                .read_records(group, 0, usize::MAX, usize::MAX)?
                .into_iter()
                .map(WireRecord::from)
                .collect(),
        };
        encode(&Wire {
            state: self.state,
            records,
        })
    }

    pub(crate) fn from_wire(bytes: &[u8]) -> io::Result<SnapshotData> {
        let wire: Wire = decode(bytes)?;
        Ok(SnapshotData {
            state: wire.state,
            records: Records::Received(wire.records),
        })
    }
}

/// Replaces everything `group` stores in the record store with `records`, in `batch`.
pub(crate) fn replace_records(
    engine: &Engine,
    batch: &mut WriteBatch,
    group: u64,
    records: &[WireRecord],
) {
    engine.trim_records(batch, group, u64::MAX, u64::MAX);
    let mut last_arrival = None;
    for record in records {
        engine.put_record(
            batch,
            group,
            record.position,
            record.arrival_ms,
            &record.partition_key,
            &record.data,
        );
        // The time index keeps the first position of each arrival time, as apply writes it.
        if last_arrival != Some(record.arrival_ms) {
            engine.put_time_index(
                batch,
                group,
                TimeIndexEntry {
                    arrival_ms: record.arrival_ms,
                    position: record.position,
                },
            );
            last_arrival = Some(record.arrival_ms);
        }
    }
}
