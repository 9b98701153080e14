use std::io;

/// Everything that can go wrong below the Raft layer. Any of these on the write path is treated as
/// fatal for the group: after a failed fsync nothing about the file's contents can be trusted.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Rocks(rocksdb::Error),
    /// A checksum or structure did not match: the disk returned bytes other than those written.
    /// Nothing read from such a database may be served or replicated; the node is rebuilt.
    #[error("the data directory is corrupt: {0}")]
    Corruption(String),
    #[error("corrupt {what} at key {key:02x?}")]
    Corrupt { what: &'static str, key: Vec<u8> },
    #[error("fsync failed: {0}")]
    SyncFailed(String),
    #[error("storage is shutting down")]
    ShuttingDown,
    #[error(
        "{path} was written by an earlier Kinesin whose layout this version cannot read (it has \
         the `{column_family}` column family); read its data out with that version, or start \
         from an empty data directory"
    )]
    OldLayout {
        path: String,
        column_family: &'static str,
    },
    #[error("RocksDB refused the option `{option}` (storage_rocksdb_options): {message}")]
    Option { option: String, message: String },
    #[error("open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rocksdb::Error,
    },
}

impl From<rocksdb::Error> for StorageError {
    fn from(e: rocksdb::Error) -> StorageError {
        match e.kind() {
            rocksdb::ErrorKind::Corruption => StorageError::Corruption(e.into_string()),
            _ => StorageError::Rocks(e),
        }
    }
}

impl StorageError {
    /// True when the data on disk is not what was written (as opposed to a disk that failed to
    /// write, which a restart on a healthy disk recovers from).
    pub fn is_corruption(&self) -> bool {
        match self {
            StorageError::Corruption(_) | StorageError::Corrupt { .. } => true,
            StorageError::Open { source, .. } => source.kind() == rocksdb::ErrorKind::Corruption,
            _ => false,
        }
    }
}

impl From<StorageError> for io::Error {
    fn from(e: StorageError) -> io::Error {
        match e {
            StorageError::Corrupt { .. } | StorageError::Corruption(_) => {
                io::Error::new(io::ErrorKind::InvalidData, e)
            }
            other => io::Error::other(other),
        }
    }
}
