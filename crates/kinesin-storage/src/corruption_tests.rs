//! A disk that returns other bytes than were written: every such case must fail the open or the
//! read (never return the damaged data), and a power loss's torn last WAL record must not.

use std::fs;
use std::path::{Path, PathBuf};

use crate::keys::CF_RAFT_LOG;
use crate::{Engine, EngineOptions, StorageError, WriteBatch};

const GROUP: u64 = 7;

fn options(verify_on_open: bool) -> EngineOptions {
    EngineOptions {
        verify_on_open,
        ..EngineOptions::default()
    }
}

fn payload(index: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (index as usize * 31 + i) as u8).collect()
}

/// Writes entries `1..=count` of `len` bytes, one synced batch each.
async fn write_entries(engine: &Engine, count: u64, len: usize) {
    for index in 1..=count {
        let mut batch = WriteBatch::default();
        engine.put_log_entry(&mut batch, GROUP, index, &payload(index, len));
        engine.write(batch).unwrap();
        engine.sync().await.unwrap();
    }
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

fn largest(files: Vec<PathBuf>) -> PathBuf {
    files
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .expect("a file of that kind")
}

fn flip_byte(file: &Path, offset: u64) {
    let mut bytes = fs::read(file).unwrap();
    bytes[offset as usize] ^= 0x40;
    fs::write(file, bytes).unwrap();
}

fn open_err(dir: &Path) -> StorageError {
    match Engine::open(dir, &options(true)) {
        Ok(_) => panic!("a corrupt database opened"),
        Err(e) => e,
    }
}

/// Entries written, then flushed from the memtable into table (and blob) files.
async fn flushed_database(dir: &Path, len: usize) {
    let engine = Engine::open(dir, &options(true)).unwrap();
    write_entries(&engine, 200, len).await;
    engine.db().flush_cf(engine.cf(CF_RAFT_LOG)).unwrap();
}

/// Entries 1..=5 of 3000 bytes, each fsynced, then the database closed without a flush: they
/// live only in the WAL, whose path this returns.
async fn wal_only_database(dir: &Path) -> PathBuf {
    {
        let engine = Engine::open(dir, &options(true)).unwrap();
        write_entries(&engine, 5, 3000).await;
    }
    largest(files_ending(dir, ".log"))
}

#[tokio::test]
async fn a_flipped_bit_in_a_table_file_is_found_at_open_and_on_read() {
    let dir = tempfile::tempdir().unwrap();
    flushed_database(dir.path(), 1000).await;
    let table = largest(files_ending(dir.path(), ".sst"));
    flip_byte(&table, fs::metadata(&table).unwrap().len() / 3);

    let err = open_err(dir.path());
    assert!(err.is_corruption(), "{err}");
    // Without the check at open, the read that reaches the block fails; it never returns data,
    // and the engine raises its failure flag (the node stops).
    let engine = Engine::open(dir.path(), &options(false)).unwrap();
    assert!(engine.failed().borrow().is_none());
    let err = engine.log_entries(GROUP, 1, 201).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    let failure = engine
        .failed()
        .borrow()
        .clone()
        .expect("the failure flag is raised");
    assert!(failure.corruption, "{failure:?}");
}

#[tokio::test]
async fn a_zeroed_block_of_a_blob_file_is_found_at_open() {
    let dir = tempfile::tempdir().unwrap();
    flushed_database(dir.path(), 8192).await;
    let blob = largest(files_ending(dir.path(), ".blob"));
    let mut bytes = fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 4096].fill(0);
    fs::write(&blob, bytes).unwrap();

    let err = open_err(dir.path());
    assert!(err.is_corruption(), "{err}");
}

#[tokio::test]
async fn a_damaged_record_inside_the_wal_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_only_database(dir.path()).await;
    flip_byte(&wal, 1500); // inside the first of five fsynced records

    let err = open_err(dir.path());
    assert!(err.is_corruption(), "{err}");
}

#[tokio::test]
async fn a_torn_last_wal_record_is_dropped_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_only_database(dir.path()).await;
    let len = fs::metadata(&wal).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(len - 1000)
        .unwrap();

    let engine = Engine::open(dir.path(), &options(true)).unwrap();
    let entries = engine.log_entries(GROUP, 1, 6).unwrap();
    let indexes: Vec<u64> = entries.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, vec![1, 2, 3, 4]);
    for (index, data) in entries {
        assert_eq!(data, payload(index, 3000));
    }
}
