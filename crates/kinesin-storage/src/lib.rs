//! Kinesin's disk: one RocksDB per node, shared by every Raft group the node hosts.
//!
//! This crate owns every on-disk key layout ([`keys`]), the column families, the group-commit
//! syncer that lets many groups share one WAL fsync ([`Engine::sync`]), the log primitives (a
//! shard's log is its record store: `GetRecords` reads scan it) and a shard's time index.
//!
//! It must never know about Raft or Kinesis semantics: it stores bytes under keys and tells the
//! caller, exactly once, when what it wrote is durable.

#[cfg(all(feature = "failpoints", not(debug_assertions)))]
compile_error!("failpoints must never be built into a release binary");

#[cfg(test)]
mod corruption_tests;
mod disk_space;
pub mod engine;
pub mod error;
mod failure;
pub mod keys;
pub mod records;
mod syncer;

pub use disk_space::DiskSpace;
pub use engine::{Engine, EngineOptions, StateTag, StorageStats, VerifyReport, WriteBatch};
pub use error::StorageError;
pub use failure::StorageFailure;
pub use records::{StoredRecord, TimeIndexEntry};
pub use syncer::{AfterSync, SyncMode};
