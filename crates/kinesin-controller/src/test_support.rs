//! Builders of cluster states and commands for the apply tests.

use std::collections::BTreeMap;

use crate::state::{ClusterState, NodeInfo, StreamKey, StreamMode};
use crate::Command;

/// When the test streams are created.
pub(crate) const NOW: u64 = 1_700_000_000_000;

pub(crate) fn key(name: &str) -> StreamKey {
    StreamKey {
        account: "000000000000".into(),
        region: "us-east-1".into(),
        name: name.into(),
    }
}

pub(crate) fn create(name: &str, shards: u32, limit: u32) -> Command {
    Command::CreateStream {
        key: key(name),
        arn: format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}"),
        now_ms: NOW,
        shard_count: shards,
        mode: StreamMode::Provisioned,
        tags: BTreeMap::new(),
        max_record_size_kib: 1024,
        replication_factor: 3,
        shard_limit: limit,
        warm_throughput_mibps: None,
    }
}

pub(crate) fn delete(name: &str, enforce_consumer_deletion: bool) -> Command {
    Command::DeleteStream {
        key: key(name),
        enforce_consumer_deletion,
    }
}

/// A 4-node cluster.
pub(crate) fn bootstrapped() -> ClusterState {
    let mut state = ClusterState::default();
    let nodes = (1..=4)
        .map(|id| (id, NodeInfo::new(format!("10.0.0.{id}:4667"))))
        .collect();
    Command::Bootstrap {
        iterator_secret: [7; 32],
        nodes,
    }
    .apply(&mut state)
    .unwrap();
    state
}

pub(crate) fn activate(state: &mut ClusterState, name: &str) {
    let created_ms = state.streams[&key(name)].created_ms;
    Command::MarkActive {
        key: key(name),
        created_ms,
    }
    .apply(state)
    .unwrap();
}

/// A cluster with one ACTIVE one-shard stream.
pub(crate) fn active(name: &str) -> ClusterState {
    let mut state = bootstrapped();
    create(name, 1, 10).apply(&mut state).unwrap();
    activate(&mut state, name);
    state
}
