//! A node's disk in the simulation: what survives a crash.
//!
//! RocksDB appends its WAL with plain writes and makes it durable with the engine's group-commit
//! fsync. The disk notes each WAL file's length after every such fsync; a power cut keeps each
//! WAL file up to its last fsynced length and everything else as it is (RocksDB fsyncs its
//! MANIFEST, tables and directory itself, and a short run writes no tables). A process crash alone
//! (`kill -9`) keeps the page cache: every file as it is.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kinesin_storage::{AfterSync, Engine, EngineOptions, SyncMode};

/// What a crash keeps of the unsynced writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// The process is killed; the machine stays up.
    Process,
    /// The power goes: writes never fsynced are lost.
    Power,
}

pub struct Disk {
    root: PathBuf,
    /// Each crash leaves its image in a directory of its own.
    generation: u32,
    /// Fsynced length of each WAL file of the current generation.
    durable: Arc<Mutex<BTreeMap<String, u64>>>,
}

fn is_wal(name: &str) -> bool {
    name.ends_with(".log")
}

fn wal_lengths(dir: &Path) -> BTreeMap<String, u64> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let length = entry.metadata().ok()?.len();
            is_wal(&name).then_some((name, length))
        })
        .collect()
}

impl Disk {
    pub fn new(root: PathBuf) -> Disk {
        Disk {
            root,
            generation: 0,
            durable: Arc::default(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.join(format!("gen-{}", self.generation))
    }

    /// Opens the engine on the current image; from here on the disk follows its fsyncs.
    pub fn open(&mut self) -> Result<Arc<Engine>, kinesin_storage::StorageError> {
        let dir = self.dir();
        let options = EngineOptions {
            // No memtable flush in a run: the image model above holds.
            write_buffer_bytes: 64 << 20,
            // The scratch directory may be a tmpfs, which has no direct I/O.
            rocksdb_options: "db.use_direct_io_for_flush_and_compaction=false".into(),
            ..EngineOptions::default()
        };
        let durable = Arc::new(Mutex::new(BTreeMap::new()));
        self.durable = durable.clone();
        let watched = dir.clone();
        let after_sync: AfterSync = Arc::new(move || {
            let lengths = wal_lengths(&watched);
            durable
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(lengths);
        });
        let engine = Engine::open_with(
            &dir,
            &options,
            SyncMode::Task {
                after_sync: Some(after_sync.clone()),
            },
        )?;
        // What recovery left and the fresh WAL are on disk as they stand.
        after_sync();
        Ok(Arc::new(engine))
    }

    /// Loses everything, as a replaced or wiped disk does: the next image starts empty.
    pub fn wipe(&mut self) -> io::Result<()> {
        self.generation += 1;
        fs::create_dir_all(self.dir())
    }

    /// Freezes what a crash of the running engine leaves, as the next generation's image.
    pub fn crash(&mut self, crash: Crash) -> io::Result<()> {
        let from = self.dir();
        let durable = self
            .durable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.generation += 1;
        let to = self.dir();
        fs::create_dir_all(&to)?;
        for entry in fs::read_dir(&from)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !entry.file_type()?.is_file() || name == "LOCK" {
                continue;
            }
            let target = to.join(&name);
            fs::copy(entry.path(), &target)?;
            if crash == Crash::Power && is_wal(&name) {
                let kept = durable.get(&name).copied().unwrap_or(0);
                let file = fs::OpenOptions::new().write(true).open(&target)?;
                if file.metadata()?.len() > kept {
                    file.set_len(kept)?;
                }
            }
        }
        Ok(())
    }
}
