//! The cluster's metadata as the controller group applies it.

use std::collections::BTreeMap;

use kinesin_types::{HashRange, ShardId};
use serde::{Deserialize, Serialize};

/// Streams live in (account, region), as on AWS.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamKey {
    pub account: String,
    pub region: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamStatus {
    Creating,
    Active,
    Updating,
    Deleting,
}

impl StreamStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
            StreamStatus::Deleting => "DELETING",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamMode {
    Provisioned,
    OnDemand,
}

impl StreamMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncryptionType {
    None,
    Kms { key_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub id: ShardId,
    /// The Raft group holding this shard's records.
    pub group: u64,
    pub hash_range: HashRange,
    pub parent: Option<ShardId>,
    pub adjacent_parent: Option<ShardId>,
    /// Leading field of every sequence number of this shard (creation time in seconds, strictly
    /// greater than its parents'), so children's numbers exceed their parents'.
    pub sequence_epoch: u64,
    pub created_ms: u64,
    /// When a split or merge closed the shard.
    pub closed_ms: Option<u64>,
    /// Set when the shard was sealed by a split or merge: the position of its last record + 1.
    pub ending_position: Option<u64>,
    /// Nodes holding a replica.
    pub replicas: Vec<u64>,
}

impl ShardMeta {
    pub fn is_open(&self) -> bool {
        self.ending_position.is_none()
    }

    /// Whether the shard took writes at `time_ms`.
    pub fn was_open_at(&self, time_ms: u64) -> bool {
        self.created_ms <= time_ms && self.closed_ms.is_none_or(|closed| closed > time_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    pub key: StreamKey,
    pub arn: String,
    pub status: StreamStatus,
    pub created_ms: u64,
    pub retention_hours: u32,
    pub mode: StreamMode,
    pub encryption: EncryptionType,
    pub shards: Vec<ShardMeta>,
    pub tags: BTreeMap<String, String>,
    pub enhanced_metrics: Vec<String>,
    pub max_record_size_kib: u32,
    pub next_shard_index: u32,
}

impl StreamMeta {
    pub fn shard(&self, id: ShardId) -> Option<&ShardMeta> {
        self.shards.iter().find(|s| s.id == id)
    }

    pub fn open_shards(&self) -> impl Iterator<Item = &ShardMeta> {
        self.shards.iter().filter(|s| s.is_open())
    }

    /// The open shard whose hash range holds `hash_key`.
    pub fn route(&self, hash_key: u128) -> Option<&ShardMeta> {
        self.open_shards().find(|s| s.hash_range.contains(hash_key))
    }
}

/// Everything the controller group holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Bumped by every applied change; nodes watch it.
    pub version: u64,
    /// Secret every node signs shard iterators with, chosen once at bootstrap.
    pub iterator_secret: Option<[u8; 32]>,
    /// Next Raft group id to hand out (0 is the controller group).
    pub next_group: u64,
    pub streams: BTreeMap<StreamKey, StreamMeta>,
}

impl ClusterState {
    pub fn stream(&self, key: &StreamKey) -> Option<&StreamMeta> {
        self.streams.get(key)
    }

    /// Streams of one account and region, in name order.
    pub fn streams_in<'a>(
        &'a self,
        account: &'a str,
        region: &'a str,
    ) -> impl Iterator<Item = &'a StreamMeta> + 'a {
        self.streams
            .values()
            .filter(move |s| s.key.account == account && s.key.region == region)
    }
}
