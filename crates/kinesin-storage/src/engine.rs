//! The node's one RocksDB: opening it, the Raft log and state primitives, and durability.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, DB,
};
use tokio::sync::oneshot;

use crate::failure::{FailureFlag, StorageFailure};
use crate::keys::{self, ALL_CFS, CF_META, CF_RAFT_LOG, CF_RAFT_STATE};
use crate::syncer::{SyncMode, SyncStats, Syncer};
use crate::StorageError;

pub use rocksdb::WriteBatch;

/// Per-group durable values other than log entries. Stored in `raft_state` under `group · tag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StateTag {
    Vote = 1,
    Committed = 2,
    LastPurged = 3,
    /// The state machine's applied log id, membership and its own small state.
    StateMachine = 4,
    /// The latest snapshot's metadata and data.
    Snapshot = 5,
    /// What a dropped replica of the group had voted and logged (the raft crate's tombstone): it
    /// outlives [`Engine::drop_group_keeping`].
    TombstoneVote = 6,
    TombstoneLastLog = 7,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Memtable budget shared by all column families, in bytes.
    pub write_buffer_bytes: usize,
    /// Raft log values at least this large live in blob files (0: none do).
    pub log_blob_min_bytes: u64,
    /// RocksDB options applied at open, as `name=value` pairs separated by `;` in RocksDB's own
    /// names: the Raft log column family's, or the database's when prefixed with `db.`.
    pub rocksdb_options: String,
    /// Read everything once with checksums verified when the database opens ([`Engine::verify`]).
    pub verify_on_open: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            write_buffer_bytes: 256 << 20,
            log_blob_min_bytes: 4096,
            rocksdb_options: String::new(),
            verify_on_open: true,
        }
    }
}

/// What [`Engine::verify`] read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    pub keys: u64,
    pub bytes: u64,
}

/// See [`Engine::storage_stats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StorageStats {
    pub sst_bytes: u64,
    pub blob_bytes: u64,
    pub memtable_bytes: u64,
    /// Bytes compaction has yet to rewrite: when it grows past RocksDB's limits, writes slow.
    pub pending_compaction_bytes: u64,
    /// RocksDB stopped writes (too many memtables or level-0 files, or pending compaction).
    pub writes_stopped: bool,
    /// The rate RocksDB slowed writes to, bytes per second; 0 while it does not.
    pub delayed_write_rate: u64,
}

pub struct Engine {
    db: Arc<DB>,
    syncer: Syncer,
    failure: FailureFlag,
}

impl Engine {
    /// Opens (or creates) the node's database under `dir`.
    pub fn open(dir: &Path, options: &EngineOptions) -> Result<Engine, StorageError> {
        Engine::open_with(dir, options, SyncMode::Thread)
    }

    /// [`Engine::open`] with the group-commit loop where `sync` says.
    pub fn open_with(
        dir: &Path,
        options: &EngineOptions,
        sync: SyncMode,
    ) -> Result<Engine, StorageError> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_db_write_buffer_size(options.write_buffer_bytes);
        // The WAL is our commit log: losing its tail on a crash is only acceptable for writes that
        // were never acknowledged, and acknowledgements wait for `flush_wal(true)`. A power loss
        // leaves at most an incomplete last record, which this mode drops; a record that fails
        // its checksum fails the open instead. (PointInTime recovery stopped at the first bad
        // record and silently dropped every fsynced record after it: entries and votes that a
        // Raft quorum counted on would be forgotten.)
        db_opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
        db_opts.set_paranoid_checks(true);
        db_opts.set_max_background_jobs(2);
        // Flushes and compactions write several times the records' bytes; through the page cache
        // that copy was most of a node's CPU under load (benches/README.md). Direct I/O skips it.
        db_opts.set_use_direct_io_for_flush_and_compaction(true);
        let db_opts = with_rocksdb_options(db_opts, &options.rocksdb_options, Level::Database)?;
        let mut cfs = Vec::with_capacity(ALL_CFS.len());
        for name in ALL_CFS {
            let mut cf_opts = Options::default();
            // The Raft log holds every shard's records until retention purges them. Payloads are
            // compressed once, where they settle (the last level), not at every flush and
            // compaction on the way: LZ4 over incompressible payloads took ~15% of a node's CPU
            // under write load.
            if name == keys::CF_RAFT_LOG {
                cf_opts.set_compression_type(rocksdb::DBCompressionType::None);
                cf_opts.set_bottommost_compression_type(rocksdb::DBCompressionType::Lz4);
                if options.log_blob_min_bytes > 0 {
                    // Integrated BlobDB: a flush writes each payload into a blob file once;
                    // compactions then rewrite keys and blob references only. The log is purged
                    // by prefix, so a blob file dies whole once the keys pointing into it are
                    // compacted away: no blob garbage collection needed.
                    cf_opts.set_enable_blob_files(true);
                    cf_opts.set_min_blob_size(options.log_blob_min_bytes);
                    cf_opts.set_blob_file_size(256 << 20);
                    cf_opts.set_enable_blob_gc(false);
                }
                cf_opts = with_rocksdb_options(cf_opts, &options.rocksdb_options, Level::RaftLog)?;
            }
            cfs.push(ColumnFamilyDescriptor::new(name, cf_opts));
        }
        // A directory of the layout before the log became the record store keeps its records in
        // a column family this version does not read: opening it would look like data loss.
        let existing = DB::list_cf(&db_opts, dir).unwrap_or_default();
        if let Some(name) = keys::OBSOLETE_CFS
            .into_iter()
            .find(|name| existing.iter().any(|e| e == name))
        {
            return Err(StorageError::OldLayout {
                path: dir.display().to_string(),
                column_family: name,
            });
        }
        let db =
            DB::open_cf_descriptors(&db_opts, dir, cfs).map_err(|source| StorageError::Open {
                path: dir.display().to_string(),
                source,
            })?;
        let db = Arc::new(db);
        let failure = FailureFlag::new();
        let syncer = Syncer::start(db.clone(), failure.clone(), sync)
            .map_err(|e| StorageError::SyncFailed(e.to_string()))?;
        let engine = Engine {
            db,
            syncer,
            failure,
        };
        if options.verify_on_open {
            engine.verify_at_open(dir)?;
        }
        Ok(engine)
    }

    pub(crate) fn cf(&self, name: &'static str) -> &ColumnFamily {
        // Every CF in ALL_CFS is created by `open`, so a missing handle is a programming error in
        // this crate, never a property of the data on disk.
        #[allow(clippy::expect_used)]
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// A read's result; damaged data also raises the failure flag, so the node stops rather than
    /// go on with a replica that cannot serve what it holds.
    pub(crate) fn read<T>(&self, result: Result<T, rocksdb::Error>) -> Result<T, StorageError> {
        result.map_err(|e| {
            let error = StorageError::from(e);
            if error.is_corruption() {
                self.failure.raise_corruption(error.to_string());
            }
            error
        })
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    /// Writes a batch without waiting for the disk. Pair with [`Engine::sync`] (or rely on a later
    /// sync covering it: all column families share one WAL, so a later fsync covers earlier writes).
    pub fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(false);
        self.db.write_opt(batch, &opts).inspect_err(|e| {
            self.failure.raise(format!("write failed: {e}"));
        })?;
        Ok(())
    }

    /// Becomes `Some(what failed)` at the engine's first failed write or fsync; from then on the
    /// node's durable state is uncertain and it must stop (see `failure.rs`).
    pub fn failed(&self) -> tokio::sync::watch::Receiver<Option<StorageFailure>> {
        self.failure.subscribe()
    }

    /// Calls `callback` once everything written so far is durable. Many callers share one fsync.
    pub fn sync_then(&self, callback: impl FnOnce(Result<(), StorageError>) + Send + 'static) {
        self.syncer.request(Box::new(callback));
    }

    /// Waits until everything written so far is durable.
    pub async fn sync(&self) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.sync_then(move |result| {
            let _ = tx.send(result);
        });
        rx.await.map_err(|_| StorageError::ShuttingDown)?
    }

    /// The file system holding the database: free and total bytes.
    pub fn disk_space(&self) -> Option<crate::DiskSpace> {
        crate::disk_space::disk_space(self.db.path())
    }

    /// What the database holds and whether RocksDB is holding writes back, summed over the
    /// column families (for `/metrics`). RocksDB's own estimates: cheap, read from memory.
    pub fn storage_stats(&self) -> StorageStats {
        let mut stats = StorageStats::default();
        for name in ALL_CFS {
            let cf = self.cf(name);
            let int = |property: &str| {
                self.db
                    .property_int_value_cf(cf, property)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            };
            stats.sst_bytes += int("rocksdb.total-sst-files-size");
            stats.blob_bytes += int("rocksdb.total-blob-file-size");
            stats.memtable_bytes += int("rocksdb.cur-size-all-mem-tables");
            stats.pending_compaction_bytes += int("rocksdb.estimate-pending-compaction-bytes");
        }
        let db_int = |property: &str| {
            self.db
                .property_int_value(property)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        stats.writes_stopped = db_int("rocksdb.is-write-stopped") != 0;
        stats.delayed_write_rate = db_int("rocksdb.actual-delayed-write-rate");
        stats
    }

    pub fn sync_stats(&self) -> &SyncStats {
        &self.syncer.stats
    }

    /// Reads every key and value of every column family with checksums verified (RocksDB checks
    /// a block's checksum only when the block is read, so a flipped bit in old data would
    /// otherwise surface only when a reader or a compaction reaches it). `progress` is called
    /// with the bytes read so far about every 64 MiB.
    pub fn verify(&self, mut progress: impl FnMut(u64)) -> Result<VerifyReport, StorageError> {
        let mut report = VerifyReport::default();
        let mut reported = 0;
        for name in ALL_CFS {
            let mut opts = ReadOptions::default();
            opts.set_verify_checksums(true);
            opts.fill_cache(false);
            let mut iter = self.db.raw_iterator_cf_opt(self.cf(name), opts);
            iter.seek_to_first();
            while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
                report.keys += 1;
                report.bytes += (key.len() + value.len()) as u64;
                if report.bytes - reported >= 64 << 20 {
                    reported = report.bytes;
                    progress(report.bytes);
                }
                iter.next();
            }
            self.read(iter.status())?;
        }
        Ok(report)
    }

    /// [`Self::verify`] with its progress and outcome logged, as the node starts.
    fn verify_at_open(&self, dir: &Path) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        tracing::info!(path = %dir.display(), "verifying the database's checksums");
        let report = self
            .verify(|bytes| {
                tracing::info!(
                    mib = bytes >> 20,
                    "verifying the database's checksums: read so far"
                );
            })
            .inspect_err(|e| {
                tracing::error!(path = %dir.display(), error = %e, "the database failed verification")
            })?;
        tracing::info!(
            keys = report.keys,
            mib = report.bytes >> 20,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "database verified"
        );
        Ok(())
    }

    // ---- Raft log -------------------------------------------------------------------------------

    pub fn put_log_entry(&self, batch: &mut WriteBatch, group: u64, index: u64, entry: &[u8]) {
        batch.put_cf(self.cf(CF_RAFT_LOG), keys::log_key(group, index), entry);
    }

    /// Calls `visit` with each entry of `group` with index in `start..end`, in order, until it
    /// answers `false`. Reads through RocksDB's iterator without copying the entries.
    pub fn scan_log<E>(
        &self,
        group: u64,
        start: u64,
        end: u64,
        mut visit: impl FnMut(u64, &[u8]) -> Result<bool, E>,
    ) -> Result<(), E>
    where
        E: From<StorageError>,
    {
        if start >= end {
            return Ok(());
        }
        let mut iter = self
            .db
            .raw_iterator_cf_opt(self.cf(CF_RAFT_LOG), log_scan_options(group, end));
        iter.seek(keys::log_key(group, start));
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            let (_, index) = keys::decode_log_key(key)?;
            if !visit(index, value)? {
                return Ok(());
            }
            iter.next();
        }
        self.read(iter.status())?;
        Ok(())
    }

    /// Entries of `group` with index in `start..end`, in order.
    pub fn log_entries(
        &self,
        group: u64,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let mut out = Vec::new();
        if start >= end {
            return Ok(out);
        }
        let from = keys::log_key(group, start);
        let iter = self.db.iterator_cf_opt(
            self.cf(CF_RAFT_LOG),
            log_scan_options(group, end),
            IteratorMode::From(&from, Direction::Forward),
        );
        for item in iter {
            let (key, value) = self.read(item)?;
            let (_, index) = keys::decode_log_key(&key)?;
            out.push((index, value.to_vec()));
        }
        Ok(out)
    }

    /// The entry with the highest index of `group`, if any.
    pub fn last_log_entry(&self, group: u64) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let end = keys::group_end(group);
        let mut iter = self.db.iterator_cf(
            self.cf(CF_RAFT_LOG),
            IteratorMode::From(&end, Direction::Reverse),
        );
        // A reverse seek lands on the last key < end (or == end, which belongs to the next group).
        for item in iter.by_ref() {
            let (key, value) = self.read(item)?;
            let (g, index) = keys::decode_log_key(&key)?;
            if g > group {
                continue;
            }
            if g < group {
                return Ok(None);
            }
            return Ok(Some((index, value.to_vec())));
        }
        Ok(None)
    }

    /// Deletes entries of `group` with index in `start..end`.
    pub fn delete_log_range(&self, group: u64, start: u64, end: u64) -> Result<(), StorageError> {
        if start >= end {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.cf(CF_RAFT_LOG),
            keys::log_key(group, start),
            keys::log_key(group, end),
        );
        self.write(batch)
    }

    // ---- Raft state -----------------------------------------------------------------------------

    pub fn state(&self, group: u64, tag: StateTag) -> Result<Option<Vec<u8>>, StorageError> {
        self.read(
            self.db
                .get_cf(self.cf(CF_RAFT_STATE), keys::state_key(group, tag as u8)),
        )
    }

    pub fn put_state(&self, batch: &mut WriteBatch, group: u64, tag: StateTag, value: &[u8]) {
        batch.put_cf(
            self.cf(CF_RAFT_STATE),
            keys::state_key(group, tag as u8),
            value,
        );
    }

    // ---- Node metadata --------------------------------------------------------------------------

    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.read(self.db.get_cf(self.cf(CF_META), key.as_bytes()))
    }

    /// Stores a node-level value durably (used for identity and secrets, which are rare writes).
    pub async fn put_meta_durably(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), key.as_bytes(), value);
        self.write(batch)?;
        self.sync().await
    }

    /// Removes everything a group owns: log (and so its records), state, time index and clamps.
    pub fn drop_group(&self, group: u64) -> Result<(), StorageError> {
        self.drop_group_keeping(group, &[])
    }

    /// Deletes everything group `group` stored here but the state values in `keep`, written in
    /// the same batch.
    pub fn drop_group_keeping(
        &self,
        group: u64,
        keep: &[(StateTag, Vec<u8>)],
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let start = keys::group_start(group);
        let end = keys::group_end(group);
        for cf in [
            keys::CF_RAFT_LOG,
            keys::CF_RAFT_STATE,
            keys::CF_RECORDS_BY_TIME,
            keys::CF_ARRIVAL_CLAMPS,
        ] {
            batch.delete_range_cf(self.cf(cf), start.as_slice(), end.as_slice());
        }
        for (tag, value) in keep {
            self.put_state(&mut batch, group, *tag, value);
        }
        self.write(batch)
    }
}

/// Where an option of [`EngineOptions::rocksdb_options`] applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Prefixed `db.`.
    Database,
    RaftLog,
}

/// `base` with the options of `options` that apply at `level`, set one at a time so a refusal
/// names the option RocksDB refused.
fn with_rocksdb_options(
    mut base: Options,
    options: &str,
    level: Level,
) -> Result<Options, StorageError> {
    for option in options.split(';').map(str::trim).filter(|o| !o.is_empty()) {
        let (name, for_level) = match option.strip_prefix("db.") {
            Some(name) => (name, Level::Database),
            None => (option, Level::RaftLog),
        };
        if for_level != level {
            continue;
        }
        let refused = |message: String| StorageError::Option {
            option: option.to_string(),
            message,
        };
        if !name.contains('=') {
            return Err(refused("expected name=value".into()));
        }
        base = base
            .get_options_from_string(name)
            .map_err(|e| refused(e.into_string()))?;
    }
    Ok(base)
}

/// Reading a group's log below `end`. Such reads (a replica catching up, a reader far behind) touch
/// each old block once: keeping those blocks out of the block cache leaves it to live data. The
/// log's tail is read from the memtable, which the cache does not hold anyway.
fn log_scan_options(group: u64, end: u64) -> ReadOptions {
    let mut opts = ReadOptions::default();
    opts.set_iterate_upper_bound(keys::log_key(group, end).to_vec());
    opts.fill_cache(false);
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), &EngineOptions::default()).unwrap();
        (dir, engine)
    }

    #[test]
    fn rocksdb_options_are_set_and_a_refused_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let options = |rocksdb_options: &str| EngineOptions {
            rocksdb_options: rocksdb_options.into(),
            ..EngineOptions::default()
        };
        let engine = Engine::open(
            dir.path(),
            &options(" write_buffer_size=134217728; db.max_background_jobs=3 ;"),
        )
        .unwrap();
        drop(engine);
        // RocksDB writes the options in force to an OPTIONS file at open.
        let latest = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter_map(|name| name.strip_prefix("OPTIONS-")?.parse::<u64>().ok())
            .max()
            .unwrap();
        let written =
            std::fs::read_to_string(dir.path().join(format!("OPTIONS-{latest:06}"))).unwrap();
        let raft_log = written.split("[CFOptions \"raft_log\"]").nth(1).unwrap();
        assert!(written.contains("max_background_jobs=3"));
        assert!(raft_log
            .split("[TableOptions")
            .next()
            .unwrap()
            .contains("write_buffer_size=134217728"));
        for (bad, named) in [
            ("write_buffer_size=1;no_such_option=2", "no_such_option=2"),
            ("db.no_such_db_option=1", "db.no_such_db_option=1"),
            ("max_write_buffer_number", "max_write_buffer_number"),
        ] {
            let error = Engine::open(dir.path(), &options(bad)).err().unwrap();
            assert!(error.to_string().contains(named), "{error}");
        }
    }

    #[tokio::test]
    async fn log_entries_are_per_group_and_ordered() {
        let (_dir, engine) = engine();
        let mut batch = WriteBatch::default();
        for group in [1u64, 2, 3] {
            for index in 1..=5u64 {
                engine.put_log_entry(
                    &mut batch,
                    group,
                    index,
                    format!("{group}/{index}").as_bytes(),
                );
            }
        }
        engine.write(batch).unwrap();
        engine.sync().await.unwrap();

        let got = engine.log_entries(2, 2, 4).unwrap();
        assert_eq!(got, vec![(2, b"2/2".to_vec()), (3, b"2/3".to_vec())]);
        assert_eq!(
            engine.last_log_entry(2).unwrap(),
            Some((5, b"2/5".to_vec()))
        );
        assert_eq!(engine.last_log_entry(9).unwrap(), None);
        assert_eq!(engine.last_log_entry(0).unwrap(), None);

        engine.delete_log_range(2, 4, u64::MAX).unwrap();
        assert_eq!(
            engine.last_log_entry(2).unwrap(),
            Some((3, b"2/3".to_vec()))
        );
        assert_eq!(
            engine.last_log_entry(3).unwrap(),
            Some((5, b"3/5".to_vec()))
        );

        engine.drop_group(1).unwrap();
        assert!(engine.log_entries(1, 0, u64::MAX).unwrap().is_empty());
        assert_eq!(engine.log_entries(3, 0, u64::MAX).unwrap().len(), 5);
    }

    #[test]
    fn scan_log_visits_a_range_in_order_and_stops_when_asked() {
        let (_dir, engine) = engine();
        let mut batch = WriteBatch::default();
        for group in [1u64, 2] {
            for index in 1..=6u64 {
                engine.put_log_entry(&mut batch, group, index, &[group as u8, index as u8]);
            }
        }
        engine.write(batch).unwrap();
        let mut seen = Vec::new();
        engine
            .scan_log(1, 2, 5, |index, value| {
                seen.push((index, value.to_vec()));
                Ok::<_, StorageError>(true)
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![(2, vec![1, 2]), (3, vec![1, 3]), (4, vec![1, 4])]
        );
        let mut first = None;
        engine
            .scan_log(2, 0, u64::MAX, |index, _| {
                first = Some(index);
                Ok::<_, StorageError>(false)
            })
            .unwrap();
        assert_eq!(first, Some(1));
        let mut none = 0;
        engine
            .scan_log(3, 0, u64::MAX, |_, _| {
                none += 1;
                Ok::<_, StorageError>(true)
            })
            .unwrap();
        assert_eq!(none, 0);
    }

    #[test]
    fn a_data_directory_of_the_layout_with_a_records_column_family_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut opts = Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            DB::open_cf(&opts, dir.path(), ["raft_log", "records"]).unwrap();
        }
        let error = Engine::open(dir.path(), &EngineOptions::default())
            .err()
            .expect("refused");
        assert!(matches!(
            error,
            StorageError::OldLayout {
                column_family: "records",
                ..
            }
        ));
        assert!(error.to_string().contains("earlier Kinesin"), "{error}");
    }

    #[tokio::test]
    async fn concurrent_syncs_share_fsyncs() {
        let (_dir, engine) = engine();
        let engine = Arc::new(engine);
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                let mut batch = WriteBatch::default();
                engine.put_log_entry(&mut batch, 1, i, b"x");
                engine.write(batch).unwrap();
                engine.sync().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let stats = engine.sync_stats();
        let syncs = stats.syncs.load(std::sync::atomic::Ordering::Relaxed);
        let waiters = stats.waiters.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(waiters, 200);
        assert!((1..=200).contains(&syncs));
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = Engine::open(dir.path(), &EngineOptions::default()).unwrap();
            let mut batch = WriteBatch::default();
            engine.put_state(&mut batch, 7, StateTag::Vote, b"vote");
            engine.write(batch).unwrap();
            engine.put_meta_durably("node_id", b"1").await.unwrap();
        }
        let engine = Engine::open(dir.path(), &EngineOptions::default()).unwrap();
        assert_eq!(
            engine.state(7, StateTag::Vote).unwrap(),
            Some(b"vote".to_vec())
        );
        assert_eq!(engine.meta("node_id").unwrap(), Some(b"1".to_vec()));
    }
}
