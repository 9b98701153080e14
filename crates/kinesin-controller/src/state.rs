//! The cluster's metadata as the controller group applies it.

use std::collections::BTreeMap;

use kinesin_types::{HashRange, ShardId};
use serde::{Deserialize, Serialize};

use crate::account::{AccountKey, AccountSettings};
use crate::consumer::{ConsumerKey, ConsumerMeta};
use crate::proposal::RecentProposals;
use crate::reshard::Reshard;

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

/// AWS's bounds of a stream's maximum record size (UpdateMaxRecordSize, CreateStream).
pub const MIN_RECORD_SIZE_KIB: u32 = 1024;
pub const MAX_RECORD_SIZE_KIB: u32 = 10240;

/// The shard-level metrics enhanced monitoring can enable, in the model's order; `ALL` stands for
/// every one of them.
pub const SHARD_LEVEL_METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncryptionType {
    None,
    Kms { key_id: String },
}

/// A stream's data key as the cluster stores it: wrapped (encrypted) by a master key that only the
/// key provider holds, so the replicated state never holds a key that opens records.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataKey {
    /// What records sealed with this key carry (`NewRecord::data_key`): 1, 2, ... per stream.
    pub generation: u32,
    /// The master key that wrapped it, as its ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`).
    pub key_arn: String,
    /// The data key wrapped by the provider; opaque here.
    #[serde(with = "serde_bytes")]
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("generation", &self.generation)
            .field("key_arn", &self.key_arn)
            .field("wrapped", &format_args!("<{} bytes>", self.wrapped.len()))
            .finish()
    }
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
    /// Nodes holding a replica; the first is the preferred leader, chosen so that leaderships
    /// spread over the nodes like replicas do.
    pub replicas: Vec<u64>,
    /// The nodes that form the shard's group when it is created; they alone may initialize it.
    /// Emptied once the replicas change: later members are added by the group's leader.
    #[serde(default)]
    pub founders: Vec<u64>,
    /// Nodes whose replica moved elsewhere but which still belong to the group until its leader
    /// has changed the membership (they keep the data until then: a majority of the old
    /// configuration must hold every entry throughout).
    #[serde(default)]
    pub leaving: Vec<u64>,
    /// How many replicas the shard should have (the replication factor when it was created). It
    /// is created with fewer when fewer nodes are not draining ([`place_new_shard`]), and by
    /// versions that placed on up nodes only; it gets the rest as nodes come back or join. 0 for
    /// shards recorded before this was: taken as complete.
    #[serde(default)]
    pub wanted_replicas: u32,
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
    /// The resource policy document (JSON), stored as given; the gateway enforces it.
    #[serde(default)]
    pub policy: Option<String>,
    /// The resharding under way (the stream is UPDATING meanwhile).
    #[serde(default)]
    pub reshard: Option<Reshard>,
    /// When the stream mode last changed (UpdateStreamMode), for AWS's rate of switches.
    #[serde(default)]
    pub mode_changes_ms: Vec<u64>,
    /// Enhanced fan-out consumers by name, in every state until they are removed.
    #[serde(default)]
    pub consumers: BTreeMap<String, ConsumerMeta>,
    /// The warm throughput target of an ON_DEMAND stream, in MiB/s (UpdateStreamWarmThroughput,
    /// CreateStream, UpdateStreamMode); `None` when none was set.
    #[serde(default)]
    pub warm_throughput_mibps: Option<u32>,
    /// Every data key the stream's records were ever sealed with, oldest first: records stay
    /// readable after encryption stops or changes key. The last one seals new records while
    /// `encryption` is KMS.
    #[serde(default)]
    pub data_keys: Vec<DataKey>,
}

impl StreamMeta {
    /// An ACTIVE provisioned stream with no shards and every setting at its default (24 hours'
    /// retention, 1 MiB records, no encryption, tags, consumers or policy).
    pub fn new(key: StreamKey, arn: String, created_ms: u64) -> StreamMeta {
        StreamMeta {
            key,
            arn,
            status: StreamStatus::Active,
            created_ms,
            retention_hours: 24,
            mode: StreamMode::Provisioned,
            encryption: EncryptionType::None,
            shards: Vec::new(),
            tags: BTreeMap::new(),
            enhanced_metrics: Vec::new(),
            max_record_size_kib: 1024,
            next_shard_index: 0,
            policy: None,
            reshard: None,
            mode_changes_ms: Vec::new(),
            consumers: BTreeMap::new(),
            warm_throughput_mibps: None,
            data_keys: Vec::new(),
        }
    }

    pub fn shard(&self, id: ShardId) -> Option<&ShardMeta> {
        self.shards.iter().find(|s| s.id == id)
    }

    pub fn open_shards(&self) -> impl Iterator<Item = &ShardMeta> {
        self.shards.iter().filter(|s| s.is_open())
    }

    /// The stream's shards and the children of a reshard under way, whose groups exist on their
    /// replicas before they take writes.
    pub fn shards_and_pending(&self) -> impl Iterator<Item = &ShardMeta> {
        self.shards
            .iter()
            .chain(self.reshard.iter().flat_map(|r| r.round.children.iter()))
    }

    /// The data key new records are sealed with: the newest one, while the stream is encrypted.
    /// `None` for an unencrypted stream, and for one encrypted before records were (whose
    /// StartStreamEncryption carried no data key): its records are stored as sent.
    pub fn sealing_key(&self) -> Option<&DataKey> {
        match self.encryption {
            EncryptionType::Kms { .. } => self.data_keys.last(),
            EncryptionType::None => None,
        }
    }

    /// The data key of `generation`, which records sealed with it name.
    pub fn data_key(&self, generation: u32) -> Option<&DataKey> {
        self.data_keys.iter().find(|k| k.generation == generation)
    }

    pub fn retention_ms(&self) -> u64 {
        u64::from(self.retention_hours) * 3_600_000
    }

    /// Whether `shard` (of this stream) is EXPIRED at `now_ms`: closed longer ago than retention,
    /// so every record it held is gone.
    pub fn is_expired(&self, shard: &ShardMeta, now_ms: u64) -> bool {
        shard
            .closed_ms
            .is_some_and(|closed| closed.saturating_add(self.retention_ms()) <= now_ms)
    }

    /// Largest record (data + partition key) the stream takes. The stream's own setting decides,
    /// so UpdateMaxRecordSize can raise it past the node's default, but never past AWS's 10 MiB.
    pub fn max_record_bytes(&self) -> usize {
        (self.max_record_size_kib as usize)
            .saturating_mul(1024)
            .min(MAX_RECORD_SIZE_KIB as usize * 1024)
    }

    /// The open shard whose hash range holds `hash_key`.
    pub fn route(&self, hash_key: u128) -> Option<&ShardMeta> {
        self.open_shard_index(hash_key).map(|i| &self.shards[i])
    }

    /// The place in `shards` of the open shard that owns `hash_key` (see
    /// [`kinesin_types::open_shard_index`]).
    pub fn open_shard_index(&self, hash_key: u128) -> Option<usize> {
        kinesin_types::open_shard_index(
            self.shards.iter().map(|s| (s.is_open(), &s.hash_range)),
            hash_key,
        )
    }
}

/// A node of the cluster as the controller knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Where its cluster transport listens.
    pub cluster_addr: String,
    /// Since when (the controller leader's clock, ms) the node has not answered the controller's
    /// leader; `None` while it does.
    #[serde(default)]
    pub down_since_ms: Option<u64>,
    /// Being drained (`kinesin ctl node drain`): holds no new replicas, and its replicas move
    /// to other nodes.
    #[serde(default)]
    pub draining: bool,
    /// Which copy of its data the node holds (kinesin-raft's `life.rs`): 0 for a node founded
    /// with the cluster; new each time it joins with an empty data directory.
    #[serde(default)]
    pub life: u64,
}

impl NodeInfo {
    pub fn new(cluster_addr: impl Into<String>) -> NodeInfo {
        NodeInfo {
            cluster_addr: cluster_addr.into(),
            down_since_ms: None,
            draining: false,
            life: 0,
        }
    }

    /// The address a group's membership records for this node: its cluster address and life.
    pub fn member_address(&self) -> String {
        kinesin_raft::member_address(&self.cluster_addr, self.life)
    }

    pub fn is_down(&self) -> bool {
        self.down_since_ms.is_some()
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
    /// Every node of the cluster by id.
    #[serde(default)]
    pub nodes: BTreeMap<u64, NodeInfo>,
    /// Settings of the accounts that changed them (UpdateAccountSettings), per region.
    #[serde(default)]
    pub accounts: BTreeMap<AccountKey, AccountSettings>,
    /// Outcomes of the newest changes, so that a change asked again is not made twice.
    #[serde(default)]
    pub recent_proposals: RecentProposals,
    /// How many shards may have a replica moving at once (joins, drains, replacements); 0: no
    /// bound (and what a state from before the bound reads as). Set from the configuration of
    /// the controller's leader (`Command::SetMovesAtOnce`).
    #[serde(default)]
    pub moves_at_once: u32,
    /// A rebalance after a join stopped at the bound: each finished move starts the next.
    #[serde(default)]
    pub rebalance_pending: bool,
    /// The cluster protocol every node of the cluster speaks (kinesin-raft's `versions.rs`),
    /// raised by `Command::SetClusterVersion` once all of them have been heard speaking a later
    /// one, never lowered; 0 in a state from before versions, read as 1 ([`Self::cluster_version`]).
    #[serde(default)]
    pub cluster_version: u32,
}

/// What a resource ARN (TagResource, PutResourcePolicy …) names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resource {
    Stream(StreamKey),
    Consumer(ConsumerKey),
}

impl ClusterState {
    /// The cluster protocol every node speaks: a later one's features wait for it.
    pub fn cluster_version(&self) -> u32 {
        self.cluster_version.max(1)
    }

    /// The cluster version to raise to now, if any: the oldest protocol the cluster's nodes speak
    /// (`spoken`: what a node was heard speaking, `None` if it was not heard), when every node
    /// was heard and it is later than the current one.
    pub fn cluster_version_to_set(&self, spoken: impl Fn(u64) -> Option<u32>) -> Option<u32> {
        let oldest = self
            .nodes
            .keys()
            .map(|node| spoken(*node))
            .collect::<Option<Vec<u32>>>()?
            .into_iter()
            .min()?;
        (oldest > self.cluster_version()).then_some(oldest)
    }

    /// `(node, cluster address)` of each of `nodes` that the controller knows.
    pub fn addresses(&self, nodes: &[u64]) -> Vec<(u64, String)> {
        nodes
            .iter()
            .filter_map(|id| self.nodes.get(id).map(|n| (*id, n.cluster_addr.clone())))
            .collect()
    }

    /// What a group's membership records for `nodes`: each one's address and life.
    pub fn member_addresses(&self, nodes: &[u64]) -> BTreeMap<u64, String> {
        nodes
            .iter()
            .filter_map(|id| self.nodes.get(id).map(|n| (*id, n.member_address())))
            .collect()
    }

    /// How many shard replicas are placed on each node (every known node, zero included).
    pub fn replica_load(&self) -> BTreeMap<u64, usize> {
        let mut load: BTreeMap<u64, usize> = self.nodes.keys().map(|id| (*id, 0)).collect();
        for shard in self.hosted_shards() {
            for node in &shard.replicas {
                if let Some(n) = load.get_mut(node) {
                    *n += 1;
                }
            }
        }
        load
    }

    /// How many shard groups each node still belongs to: its placed replicas, plus those moved
    /// away whose membership change is not finished. A drained node is empty when this is 0.
    pub fn held_replicas(&self, node: u64) -> usize {
        self.hosted_shards()
            .filter(|s| s.replicas.contains(&node) || s.leaving.contains(&node))
            .count()
    }

    /// How many shards have a replica moving: moved in the state, their group's membership not
    /// changed to match yet (`ShardMeta::leaving`).
    pub fn moving_shards(&self) -> usize {
        self.hosted_shards()
            .filter(|s| !s.leaving.is_empty())
            .count()
    }

    /// How many of `node`'s replicas are moving off it now.
    pub fn leaving_replicas(&self, node: u64) -> usize {
        self.hosted_shards()
            .filter(|s| s.leaving.contains(&node))
            .count()
    }

    /// How many more shards may start moving a replica under [`Self::moves_at_once`].
    pub fn move_budget(&self) -> usize {
        match self.moves_at_once {
            0 => usize::MAX,
            at_once => (at_once as usize).saturating_sub(self.moving_shards()),
        }
    }

    /// How many open shards prefer each known node as their leader (zero included).
    pub fn leader_load(&self) -> BTreeMap<u64, usize> {
        let mut load: BTreeMap<u64, usize> = self.nodes.keys().map(|id| (*id, 0)).collect();
        let open = self
            .streams
            .values()
            .filter(|s| s.status != StreamStatus::Deleting)
            .flat_map(|s| s.open_shards());
        for shard in open {
            if let Some(n) = shard.replicas.first().and_then(|id| load.get_mut(id)) {
                *n += 1;
            }
        }
        load
    }

    /// [`Self::replica_load`] of the nodes that are up and not draining: where new replicas may
    /// go.
    pub fn placeable_load(&self) -> BTreeMap<u64, usize> {
        let mut load = self.replica_load();
        load.retain(|id, _| {
            self.nodes
                .get(id)
                .is_some_and(|n| !n.is_down() && !n.draining)
        });
        load
    }

    /// [`Self::replica_load`] of the nodes that are down but not draining: where a new shard's
    /// remaining replicas go when too few nodes are up (see [`place_new_shard`]).
    pub fn standby_load(&self) -> BTreeMap<u64, usize> {
        let mut load = self.replica_load();
        load.retain(|id, _| {
            self.nodes
                .get(id)
                .is_some_and(|n| n.is_down() && !n.draining)
        });
        load
    }

    /// Every shard of every stream not being deleted, the children of reshards under way included
    /// (their groups exist on their replicas before they take writes).
    pub fn hosted_shards(&self) -> impl Iterator<Item = &ShardMeta> {
        self.streams
            .values()
            .filter(|s| s.status != StreamStatus::Deleting)
            .flat_map(StreamMeta::shards_and_pending)
    }

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

/// Puts the replica that leads the fewest shards first (its preferred leader) and counts it in
/// `leaders`, so consecutive placements spread leaderships too.
pub fn prefer_leader(replicas: &mut [u64], leaders: &mut BTreeMap<u64, usize>) {
    let Some(best) = (0..replicas.len())
        .min_by_key(|&i| (leaders.get(&replicas[i]).copied().unwrap_or(0), replicas[i]))
    else {
        return;
    };
    replicas.swap(0, best);
    *leaders.entry(replicas[0]).or_default() += 1;
}

/// Picks a new shard's `count` replicas: among the nodes that are up (`up`, see [`place`]) and,
/// when too few are, among those that are down but not draining (`standby`) for the rest. A
/// shard placed only on the nodes up at its creation kept fewer replicas than it should until
/// nodes returned, and lost its majority if one of them lost its data meanwhile (the jepsen
/// soak: reshard children placed on two nodes while a third was killed, one of the two then
/// rebuilt from a corrupt disk). A replica on a down node joins its group when the node returns;
/// the others form it meanwhile.
pub fn place_new_shard(
    up: &mut BTreeMap<u64, usize>,
    standby: &mut BTreeMap<u64, usize>,
    count: usize,
) -> Vec<u64> {
    let mut replicas = place(up, count);
    let missing = count.saturating_sub(replicas.len());
    if missing > 0 {
        replicas.extend(place(standby, missing));
    }
    replicas
}

/// Picks `count` nodes for a new shard's replicas — those holding the fewest replicas first, ties
/// broken by node id — and counts the new replicas in `load`, so consecutive placements spread.
pub fn place(load: &mut BTreeMap<u64, usize>, count: usize) -> Vec<u64> {
    let mut by_load: Vec<(usize, u64)> = load.iter().map(|(id, n)| (*n, *id)).collect();
    by_load.sort();
    let chosen: Vec<u64> = by_load.into_iter().take(count).map(|(_, id)| id).collect();
    for id in &chosen {
        if let Some(n) = load.get_mut(id) {
            *n += 1;
        }
    }
    chosen
}
