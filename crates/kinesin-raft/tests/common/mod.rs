//! What the kinesin-raft integration tests share.

use std::collections::BTreeMap;
use std::time::Duration;

use kinesin_raft::{GroupHandle, GroupKind, GroupOptions, MultiRaft};

/// Opens shard group `id` with node 1 (this node) as its only voter and waits for it to lead.
pub async fn open_single_voter(raft: &MultiRaft, id: u64) -> GroupHandle {
    let group = raft
        .open_group(
            id,
            GroupOptions {
                kind: GroupKind::Shard,
                initial_members: Some(BTreeMap::from([(1, "127.0.0.1:1".to_string())])),
            },
        )
        .await
        .unwrap();
    group
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    group
}
