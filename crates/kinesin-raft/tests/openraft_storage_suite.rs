//! openraft's storage conformance suite against Kinesin's RocksDB log store and state machine.
//!
//! The suite checks the storage contract openraft relies on (log state, vote persistence,
//! truncation, purge, membership recovery, snapshot install and reading back). It runs whole
//! against the controller group's state machine, whose snapshots are taken at the applied index,
//! and against a shard group's, whose log is its record store, with every test but three: two
//! expect a snapshot at the applied index, and a shard's sits at its retention cut instead
//! (`snapshot.rs` says why; `shard_group.rs` and `cluster_faults.rs` test it); the third purges
//! the log with no snapshot on disk and expects one to be rebuilt at the purge point, while a
//! shard's log is only ever purged up to a cut whose snapshot is already on disk.

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

/// A fresh engine in a temporary directory, and `group`'s log store on it.
fn fresh_log(group: u64) -> (tempfile::TempDir, Arc<Engine>, LogStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine =
        Arc::new(Engine::open(dir.path(), &EngineOptions::default()).expect("open engine"));
    let log = LogStore::new(group, engine.clone());
    (dir, engine, log)
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, GroupStateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, GroupStateMachine), StorageError<TypeConfig>> {
        let group = 7;
        let (dir, engine, log) = fresh_log(group);
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

struct ShardBuilder;

impl StoreBuilder<TypeConfig, LogStore, GroupStateMachine, tempfile::TempDir> for ShardBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, GroupStateMachine), StorageError<TypeConfig>> {
        let group = 9;
        let (dir, engine, log) = fresh_log(group);
        let (sm, _view) = GroupStateMachine::open_shard(group, engine).expect("open state machine");
        Ok((dir, log, sm))
    }
}

type ShardSuite = Suite<TypeConfig, LogStore, GroupStateMachine, ShardBuilder, tempfile::TempDir>;

macro_rules! each_on_a_fresh_shard_store {
    ($($test:ident),* $(,)?) => {
        $(
            let (_dir, store, sm) = ShardBuilder.build().await.expect("build store");
            ShardSuite::$test(store, sm)
                .await
                .unwrap_or_else(|e| panic!("openraft suite {}: {e}", stringify!($test)));
        )*
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_store_passes_openraft_suite_but_for_snapshots_at_the_applied_index() {
    each_on_a_fresh_shard_store!(
        last_membership_in_log_initial,
        last_membership_in_log,
        last_membership_in_log_multi_step,
        get_membership_initial,
        get_membership_from_log_and_empty_sm,
        get_membership_from_empty_log_and_sm,
        get_membership_from_log_le_sm_last_applied,
        get_membership_from_log_gt_sm_last_applied_1,
        get_membership_from_log_gt_sm_last_applied_2,
        get_initial_state_without_init,
        get_initial_state_membership_from_empty_log_and_sm,
        get_initial_state_membership_from_sm_inlog_is_smaller,
        get_initial_state_membership_from_log_insm_is_smaller,
        get_initial_state_with_state,
        get_initial_state_last_log_gt_sm,
        get_initial_state_last_log_lt_sm,
        get_initial_state_inverted_log_order,
        get_initial_state_conflict_at_same_index,
        get_initial_state_log_ids,
        save_vote,
        get_log_entries,
        limited_get_log_entries,
        leader_bounded_stream,
        entries_stream,
        try_get_log_entry,
        log_reader_reads_new_entries,
        initial_logs,
        get_log_state,
        get_log_id,
        last_id_in_log,
        last_applied_state,
        purge_logs_upto_0,
        purge_logs_upto_5,
        purge_logs_upto_20,
        delete_logs_after_11,
        delete_logs_after_5,
        delete_logs_after_0,
        delete_logs_after_none,
        append_to_log,
        snapshot_meta_optional,
        apply_single,
        apply_multiple,
    );
}
