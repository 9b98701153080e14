//! The record store: a shard's applied records by position, plus a sparse arrival-time index.
//!
//! Written only by a shard group's state machine while applying committed entries, so every replica
//! holds the same records at the same positions. Read by `GetRecords` and by iterator resolution.

use rocksdb::{Direction, IteratorMode, ReadOptions};

use crate::keys::{self, CF_RECORDS, CF_RECORDS_BY_TIME};
use crate::{Engine, StorageError, WriteBatch};

/// One record as stored: `[arrival_ms u64][partition key len u16][partition key][data]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub position: u64,
    pub arrival_ms: u64,
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// An entry of the time index: the first position written at `arrival_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeIndexEntry {
    pub arrival_ms: u64,
    pub position: u64,
}

const HEADER: usize = 8 + 2;

/// Bytes a record takes in the store, for sizing write batches.
pub fn encoded_len(partition_key: &str, data: &[u8]) -> usize {
    HEADER + partition_key.len() + data.len()
}

fn encode(arrival_ms: u64, partition_key: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(partition_key, data));
    out.extend_from_slice(&arrival_ms.to_be_bytes());
    // Partition keys are at most 256 characters (API limit), so u16 always fits; clamp defensively.
    let pk = &partition_key.as_bytes()[..partition_key.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(pk.len() as u16).to_be_bytes());
    out.extend_from_slice(pk);
    out.extend_from_slice(data);
    out
}

fn decode(position: u64, key: &[u8], value: &[u8]) -> Result<StoredRecord, StorageError> {
    let corrupt = || StorageError::Corrupt {
        what: "record",
        key: key.to_vec(),
    };
    if value.len() < HEADER {
        return Err(corrupt());
    }
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&value[..8]);
    let pk_len = u16::from_be_bytes([value[8], value[9]]) as usize;
    let rest = &value[HEADER..];
    if rest.len() < pk_len {
        return Err(corrupt());
    }
    let (pk, data) = rest.split_at(pk_len);
    let partition_key = String::from_utf8(pk.to_vec()).map_err(|_| corrupt())?;
    Ok(StoredRecord {
        position,
        arrival_ms: u64::from_be_bytes(ms),
        partition_key,
        data: data.to_vec(),
    })
}

impl Engine {
    /// Adds a record to `batch`; the caller writes the batch together with its applied log id.
    pub fn put_record(
        &self,
        batch: &mut WriteBatch,
        group: u64,
        position: u64,
        arrival_ms: u64,
        partition_key: &str,
        data: &[u8],
    ) {
        batch.put_cf(
            self.cf(CF_RECORDS),
            keys::record_key(group, position),
            encode(arrival_ms, partition_key, data),
        );
    }

    /// Adds a time index entry; one per applied entry keeps the index sparse.
    pub fn put_time_index(&self, batch: &mut WriteBatch, group: u64, entry: TimeIndexEntry) {
        batch.put_cf(
            self.cf(CF_RECORDS_BY_TIME),
            keys::time_key(group, entry.arrival_ms, entry.position),
            [],
        );
    }

    /// Records of `group` from `from_position` on, at most `max_records` and, past the first record,
    /// at most `max_bytes` of data + partition keys (the first record is always returned, so a reader
    /// can make progress past a record larger than its budget).
    pub fn read_records(
        &self,
        group: u64,
        from_position: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let mut out = Vec::new();
        if max_records == 0 {
            return Ok(out);
        }
        let from = keys::record_key(group, from_position);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::group_end(group));
        let iter = self.db().iterator_cf_opt(
            self.cf(CF_RECORDS),
            opts,
            IteratorMode::From(&from, Direction::Forward),
        );
        let mut bytes = 0usize;
        for item in iter {
            let (key, value) = item?;
            let (_, position) = keys::decode_record_key(&key)?;
            let record = decode(position, &key, &value)?;
            let size = record.data.len() + record.partition_key.len();
            if !out.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            out.push(record);
            if out.len() >= max_records {
                break;
            }
        }
        Ok(out)
    }

    /// The last record of `group`, if it has any.
    pub fn last_record(&self, group: u64) -> Result<Option<StoredRecord>, StorageError> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(keys::group_start(group).to_vec());
        opts.set_iterate_upper_bound(keys::group_end(group));
        let mut iter = self
            .db()
            .iterator_cf_opt(self.cf(CF_RECORDS), opts, IteratorMode::End);
        match iter.next() {
            Some(item) => {
                let (key, value) = item?;
                let (_, position) = keys::decode_record_key(&key)?;
                Ok(Some(decode(position, &key, &value)?))
            }
            None => Ok(None),
        }
    }

    /// The first time-index entry of `group` at or after `arrival_ms`.
    pub fn first_at_or_after(
        &self,
        group: u64,
        arrival_ms: u64,
    ) -> Result<Option<TimeIndexEntry>, StorageError> {
        let from = keys::time_key(group, arrival_ms, 0);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::group_end(group));
        let mut iter = self.db().iterator_cf_opt(
            self.cf(CF_RECORDS_BY_TIME),
            opts,
            IteratorMode::From(&from, Direction::Forward),
        );
        match iter.next() {
            Some(item) => {
                let (key, _) = item?;
                let (_, arrival_ms, position) = keys::decode_time_key(&key)?;
                Ok(Some(TimeIndexEntry {
                    arrival_ms,
                    position,
                }))
            }
            None => Ok(None),
        }
    }

    /// Adds to `batch` the removal of every record of `group` below `position` and of every time
    /// index entry older than `arrival_ms` (retention).
    pub fn trim_records(&self, batch: &mut WriteBatch, group: u64, position: u64, arrival_ms: u64) {
        batch.delete_range_cf(
            self.cf(CF_RECORDS),
            keys::record_key(group, 0),
            keys::record_key(group, position),
        );
        batch.delete_range_cf(
            self.cf(CF_RECORDS_BY_TIME),
            keys::time_key(group, 0, 0),
            keys::time_key(group, arrival_ms, 0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineOptions;

    fn engine_with_records() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), &EngineOptions::default()).unwrap();
        let mut batch = WriteBatch::default();
        for (group, positions) in [(1u64, 0..3u64), (2, 10..20)] {
            for p in positions {
                engine.put_record(
                    &mut batch,
                    group,
                    p,
                    1000 + p,
                    &format!("pk{p}"),
                    &[p as u8; 10],
                );
                engine.put_time_index(
                    &mut batch,
                    group,
                    TimeIndexEntry {
                        arrival_ms: 1000 + p,
                        position: p,
                    },
                );
            }
        }
        engine.write(batch).unwrap();
        (dir, engine)
    }

    #[test]
    fn encoding_round_trips() {
        let value = encode(42, "key", b"payload");
        let rec = decode(9, b"k", &value).unwrap();
        assert_eq!(rec.arrival_ms, 42);
        assert_eq!(rec.partition_key, "key");
        assert_eq!(rec.data, b"payload");
        assert!(decode(9, b"k", &value[..5]).is_err());
        let mut bad_len = value.clone();
        bad_len[9] = 200;
        assert!(decode(9, b"k", &bad_len).is_err());
    }

    #[test]
    fn reads_stay_inside_the_group_and_honour_limits() {
        let (_dir, engine) = engine_with_records();
        let all = engine.read_records(2, 0, 100, usize::MAX).unwrap();
        assert_eq!(
            all.iter().map(|r| r.position).collect::<Vec<_>>(),
            (10..20).collect::<Vec<_>>()
        );
        assert_eq!(engine.read_records(2, 15, 2, usize::MAX).unwrap().len(), 2);
        // Each record is 10 bytes of data + 4 of key: a 30-byte budget fits two.
        assert_eq!(engine.read_records(2, 10, 100, 30).unwrap().len(), 2);
        // The first record is returned even when it alone exceeds the budget.
        assert_eq!(engine.read_records(2, 10, 100, 1).unwrap().len(), 1);
        assert!(engine
            .read_records(1, 3, 100, usize::MAX)
            .unwrap()
            .is_empty());
        assert_eq!(engine.last_record(1).unwrap().unwrap().position, 2);
        assert!(engine.last_record(3).unwrap().is_none());
    }

    #[test]
    fn time_index_and_trim() {
        let (_dir, engine) = engine_with_records();
        let hit = engine.first_at_or_after(2, 1013).unwrap().unwrap();
        assert_eq!(hit.position, 13);
        assert!(engine.first_at_or_after(2, 5000).unwrap().is_none());
        let mut batch = WriteBatch::default();
        engine.trim_records(&mut batch, 2, 15, 1015);
        engine.write(batch).unwrap();
        assert_eq!(
            engine.read_records(2, 0, 100, usize::MAX).unwrap()[0].position,
            15
        );
        assert_eq!(
            engine.first_at_or_after(2, 0).unwrap().unwrap().position,
            15
        );
        assert_eq!(engine.read_records(1, 0, 100, usize::MAX).unwrap().len(), 3);
    }
}
