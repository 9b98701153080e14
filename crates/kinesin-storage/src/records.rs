//! What a shard stores beside its Raft log, whose entries are its records: a sparse arrival-time
//! index and the rare arrival-time clamps.
//!
//! Written only by a shard group's state machine while applying committed entries, so every replica
//! holds the same index at the same positions. Read by `GetRecords` and by iterator resolution.

use rocksdb::{Direction, IteratorMode, ReadOptions};

use crate::keys::{self, CF_ARRIVAL_CLAMPS, CF_RECORDS_BY_TIME};
use crate::{Engine, StorageError, WriteBatch};

/// One record as a reader sees it, decoded from the log entry that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub position: u64,
    pub arrival_ms: u64,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// The generation of the stream's data key that sealed the record (then `data` is the sealed
    /// envelope and `partition_key` is empty); 0 for a plaintext record.
    pub data_key: u32,
}

/// An entry of the time index: the first position written at `arrival_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeIndexEntry {
    pub arrival_ms: u64,
    pub position: u64,
}

impl Engine {
    /// Adds a time index entry; one per applied entry with records keeps the index sparse.
    pub fn put_time_index(&self, batch: &mut WriteBatch, group: u64, entry: TimeIndexEntry) {
        batch.put_cf(
            self.cf(CF_RECORDS_BY_TIME),
            keys::time_key(group, entry.arrival_ms, entry.position),
            [],
        );
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
        self.next_time_entry(&mut iter)
    }

    /// The last time-index entry of `group` before `arrival_ms`.
    pub fn last_before(
        &self,
        group: u64,
        arrival_ms: u64,
    ) -> Result<Option<TimeIndexEntry>, StorageError> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(keys::group_start(group).to_vec());
        opts.set_iterate_upper_bound(keys::time_key(group, arrival_ms, 0).to_vec());
        let mut iter =
            self.db()
                .iterator_cf_opt(self.cf(CF_RECORDS_BY_TIME), opts, IteratorMode::End);
        self.next_time_entry(&mut iter)
    }

    /// Records that the entry at `index` arrived at `arrival_ms` although it carries an earlier
    /// time: a new leader whose clock is behind its predecessor's proposed it, and apply kept
    /// arrival times from going backwards. Readers take the clamp over the entry's own time.
    pub fn put_arrival_clamp(
        &self,
        batch: &mut WriteBatch,
        group: u64,
        index: u64,
        arrival_ms: u64,
    ) {
        batch.put_cf(
            self.cf(CF_ARRIVAL_CLAMPS),
            keys::clamp_key(group, index),
            arrival_ms.to_be_bytes(),
        );
    }

    /// The clamps of entries of `group` with index in `start..end`, in index order: almost
    /// always none, so one seek.
    pub fn arrival_clamps(
        &self,
        group: u64,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, u64)>, StorageError> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::clamp_key(group, end).to_vec());
        let from = keys::clamp_key(group, start);
        let iter = self.db().iterator_cf_opt(
            self.cf(CF_ARRIVAL_CLAMPS),
            opts,
            IteratorMode::From(&from, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (key, value) = self.read(item)?;
            let (_, index) = keys::decode_clamp_key(&key)?;
            let ms: [u8; 8] = value
                .as_ref()
                .try_into()
                .map_err(|_| StorageError::Corrupt {
                    what: "arrival clamp",
                    key: key.to_vec(),
                })?;
            out.push((index, u64::from_be_bytes(ms)));
        }
        Ok(out)
    }

    /// Adds to `batch` the removal of every time index entry of `group` older than `arrival_ms`
    /// and of every clamp below `index` (retention; the log entries go with the log's purge).
    pub fn trim_index(&self, batch: &mut WriteBatch, group: u64, index: u64, arrival_ms: u64) {
        batch.delete_range_cf(
            self.cf(CF_RECORDS_BY_TIME),
            keys::time_key(group, 0, 0),
            keys::time_key(group, arrival_ms, 0),
        );
        batch.delete_range_cf(
            self.cf(CF_ARRIVAL_CLAMPS),
            keys::clamp_key(group, 0),
            keys::clamp_key(group, index),
        );
    }
}

impl Engine {
    fn next_time_entry(
        &self,
        iter: &mut rocksdb::DBIteratorWithThreadMode<'_, rocksdb::DB>,
    ) -> Result<Option<TimeIndexEntry>, StorageError> {
        let Some(item) = iter.next() else {
            return Ok(None);
        };
        let (key, _) = self.read(item)?;
        let (_, arrival_ms, position) = keys::decode_time_key(&key)?;
        Ok(Some(TimeIndexEntry {
            arrival_ms,
            position,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineOptions;

    fn engine_with_index() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), &EngineOptions::default()).unwrap();
        let mut batch = WriteBatch::default();
        for (group, positions) in [(1u64, 0..3u64), (2, 10..20)] {
            for p in positions {
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
        engine.put_arrival_clamp(&mut batch, 2, 12, 1011);
        engine.put_arrival_clamp(&mut batch, 2, 17, 1016);
        engine.put_arrival_clamp(&mut batch, 3, 1, 5);
        engine.write(batch).unwrap();
        (dir, engine)
    }

    #[test]
    fn time_index_lookups_stay_inside_the_group() {
        let (_dir, engine) = engine_with_index();
        assert_eq!(
            engine.first_at_or_after(2, 1013).unwrap().unwrap().position,
            13
        );
        assert_eq!(
            engine.first_at_or_after(2, 0).unwrap().unwrap().position,
            10
        );
        assert!(engine.first_at_or_after(2, 5000).unwrap().is_none());
        assert!(engine.first_at_or_after(1, 1003).unwrap().is_none());
        assert_eq!(engine.last_before(2, 1013).unwrap().unwrap().position, 12);
        assert!(engine.last_before(2, 1010).unwrap().is_none());
        assert_eq!(
            engine.last_before(1, u64::MAX).unwrap().unwrap().position,
            2
        );
    }

    #[test]
    fn clamps_are_read_by_index_range() {
        let (_dir, engine) = engine_with_index();
        assert_eq!(
            engine.arrival_clamps(2, 0, 100).unwrap(),
            vec![(12, 1011), (17, 1016)]
        );
        assert_eq!(engine.arrival_clamps(2, 13, 17).unwrap(), vec![]);
        assert_eq!(engine.arrival_clamps(2, 13, 18).unwrap(), vec![(17, 1016)]);
    }

    #[test]
    fn trimming_removes_old_index_entries_and_clamps() {
        let (_dir, engine) = engine_with_index();
        let mut batch = WriteBatch::default();
        engine.trim_index(&mut batch, 2, 15, 1015);
        engine.write(batch).unwrap();
        assert_eq!(
            engine.first_at_or_after(2, 0).unwrap().unwrap().position,
            15
        );
        assert_eq!(engine.arrival_clamps(2, 0, 100).unwrap(), vec![(17, 1016)]);
        assert_eq!(engine.first_at_or_after(1, 0).unwrap().unwrap().position, 0);
        assert_eq!(engine.arrival_clamps(3, 0, 100).unwrap(), vec![(1, 5)]);
    }
}
