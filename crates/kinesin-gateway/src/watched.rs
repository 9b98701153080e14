//! A file the node keeps in force while it runs (the credentials file, the keyring): loaded once,
//! re-read when it changes, and a bad new version keeps the previous one in force (logged).

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// What a watched file holds once loaded.
pub trait FileContents: Sized + Send + Sync + 'static {
    type Error: Display;
    /// What the file is, for logs ("credentials", "keyring").
    const WHAT: &'static str;
    fn load(path: &Path) -> Result<Self, Self::Error>;
    /// How many entries the file holds, for logs.
    fn entries(&self) -> usize;
}

/// What a file looked like when last read: its modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The contents in force, from a file that is re-read when it changes.
#[derive(Debug)]
pub struct WatchedFile<T> {
    path: PathBuf,
    current: RwLock<Arc<T>>,
    seen: Mutex<Stamp>,
    /// Bumped each time new contents come into force, so caches built from them can tell.
    version: AtomicU64,
}

impl<T: FileContents> WatchedFile<T> {
    /// Loads the file at `path`; an error is the loader's (naming the file and the bad key).
    pub fn open(path: &Path) -> Result<WatchedFile<T>, T::Error> {
        let seen = stamp(path);
        let contents = T::load(path)?;
        Ok(WatchedFile {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(contents)),
            seen: Mutex::new(seen),
            version: AtomicU64::new(0),
        })
    }

    /// The file the contents come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The contents in force now.
    pub fn current(&self) -> Arc<T> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Changes each time [`WatchedFile::current`] changes.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Re-reads the file if its modification time or length changed since it was last read.
    /// Returns whether new contents are in force; a file that fails to load is logged and the
    /// previous contents stay.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.path);
        {
            let mut seen = match self.seen.lock() {
                Ok(seen) => seen,
                Err(poisoned) => poisoned.into_inner(),
            };
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match T::load(&self.path) {
            Ok(contents) => {
                tracing::info!(file = %self.path.display(), entries = contents.entries(), "{} reloaded", T::WHAT);
                let mut current = match self.current.write() {
                    Ok(current) => current,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *current = Arc::new(contents);
                self.version.fetch_add(1, Ordering::AcqRel);
                true
            }
            Err(error) => {
                tracing::error!(%error, "the {} file changed but cannot be used; the previous one stays in force", T::WHAT);
                false
            }
        }
    }

    /// Checks the file for changes every `every` until `stopped` turns true (the node's
    /// shutdown awaits the task).
    pub fn spawn_reloader(
        self: &Arc<Self>,
        every: Duration,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let watched = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !*stopped.borrow() {
                tokio::select! {
                    _ = tick.tick() => {
                        let watched = watched.clone();
                        // A small file, but still blocking I/O.
                        let _ = tokio::task::spawn_blocking(move || watched.reload_if_changed()).await;
                    }
                    changed = stopped.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
        })
    }
}
