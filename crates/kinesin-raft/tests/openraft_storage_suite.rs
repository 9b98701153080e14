//! openraft's storage conformance suite against Kinesin's RocksDB log store and state machine.
//!
//! The suite checks the storage contract openraft relies on (log state, vote persistence,
//! truncation, purge, membership recovery, snapshot install and reading back). It runs against the
//! controller group's state machine, whose snapshots carry the whole state; a shard group's
//! snapshots carry only counters (its records stay in the record store), and installing one from a
//! peer needs the record transfer that arrives with multi-node clusters.

use std::sync::{Arc, Mutex};

use kinesin_raft::testing::{GroupStateMachine, LogStore};
use kinesin_raft::{ControllerApplier, TypeConfig};
use kinesin_storage::{Engine, EngineOptions};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

/// A controller applier that keeps an in-memory list of what it applied.
#[derive(Default)]
struct ListApplier(Mutex<Vec<Vec<u8>>>);

impl ControllerApplier for ListApplier {
    fn apply(&self, _log_index: u64, command: &[u8]) -> Vec<u8> {
        self.0.lock().unwrap().push(command.to_vec());
        Vec::new()
    }
    fn snapshot(&self) -> Result<Vec<u8>, String> {
        bincode::serialize(&*self.0.lock().unwrap()).map_err(|e| e.to_string())
    }
    fn restore(&self, snapshot: &[u8]) -> Result<(), String> {
        *self.0.lock().unwrap() = bincode::deserialize(snapshot).map_err(|e| e.to_string())?;
        Ok(())
    }
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, GroupStateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, GroupStateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine =
            Arc::new(Engine::open(dir.path(), &EngineOptions::default()).expect("open engine"));
        let group = 7;
        let log = LogStore::new(group, engine.clone());
        let sm =
            GroupStateMachine::open_controller(group, engine, Arc::new(ListApplier::default()))
                .expect("open state machine");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_store_passes_openraft_suite() {
    Suite::test_all(Builder)
        .await
        .expect("openraft storage suite");
}
