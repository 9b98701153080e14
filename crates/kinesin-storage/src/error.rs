use std::io;

/// Everything that can go wrong below the Raft layer. Any of these on the write path is treated as
/// fatal for the group: after a failed fsync nothing about the file's contents can be trusted.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
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

impl From<StorageError> for io::Error {
    fn from(e: StorageError) -> io::Error {
        match e {
            StorageError::Corrupt { .. } => io::Error::new(io::ErrorKind::InvalidData, e),
            other => io::Error::other(other),
        }
    }
}
