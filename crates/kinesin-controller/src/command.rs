//! Changes to the cluster state, and how each is applied.
//!
//! Validation that depends on the current state happens here, in apply, not in the caller: apply
//! runs in log order on every replica, so it is the only place where "does this stream exist" has
//! one answer.

use std::collections::BTreeMap;

use kinesin_types::{HashRange, ShardId};
use serde::{Deserialize, Serialize};

use crate::account::{check_warm_throughput, AccountKey};
use crate::consumer::{self, ConsumerKey, Registration};
use crate::proposal::ProposalId;
use crate::reshard::{self, Change};
use crate::resource;
use crate::state::{
    place, place_new_shard, prefer_leader, ClusterState, DataKey, EncryptionType, NodeInfo,
    Resource, ShardMeta, StreamKey, StreamMeta, StreamMode, StreamStatus, MAX_RECORD_SIZE_KIB,
    MIN_RECORD_SIZE_KIB, SHARD_LEVEL_METRICS,
};
use crate::ControllerError;

/// AWS allows at most 5 streams in CREATING per account.
const MAX_CREATING_STREAMS: usize = 5;
/// Tags per stream or consumer.
pub(crate) const MAX_TAGS: usize = 50;

/// A stream's new data key, wrapped by the master key `key_arn` names.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDataKey {
    pub key_arn: String,
    #[serde(with = "serde_bytes")]
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for NewDataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDataKey")
            .field("key_arn", &self.key_arn)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// First command of a new cluster.
    Bootstrap {
        iterator_secret: [u8; 32],
        nodes: BTreeMap<u64, NodeInfo>,
    },
    CreateStream {
        key: StreamKey,
        arn: String,
        now_ms: u64,
        shard_count: u32,
        mode: StreamMode,
        tags: BTreeMap<String, String>,
        max_record_size_kib: u32,
        /// How many replicas each shard gets (capped at the node count); placed in apply.
        replication_factor: u32,
        /// Open shards allowed per account and region.
        shard_limit: u32,
        /// WarmThroughputMiBps of an ON_DEMAND stream.
        warm_throughput_mibps: Option<u32>,
    },
    /// Every shard group of the stream has a leader: the stream takes traffic.
    MarkActive {
        key: StreamKey,
        created_ms: u64,
    },
    DeleteStream {
        key: StreamKey,
        /// Whether the stream's consumers go with it (without, a stream with consumers stays).
        enforce_consumer_deletion: bool,
    },
    /// Every node dropped the stream's groups: forget it.
    RemoveStream {
        key: StreamKey,
        created_ms: u64,
    },
    SetRetention {
        key: StreamKey,
        hours: u32,
        increase: bool,
    },
    AddTags {
        resource: Resource,
        tags: BTreeMap<String, String>,
    },
    RemoveTags {
        resource: Resource,
        tag_keys: Vec<String>,
    },
    /// Enable (or disable) shard-level metrics; `ALL` names every metric.
    SetEnhancedMetrics {
        key: StreamKey,
        metrics: Vec<String>,
        enable: bool,
    },
    StartEncryption {
        key: StreamKey,
        key_id: String,
        /// The data key to seal new records with, wrapped by `key_id`'s master key (by the
        /// gateway that took the request: the controller never sees a key in the clear).
        /// `None` only in commands written before records were encrypted.
        #[serde(default)]
        data_key: Option<NewDataKey>,
    },
    StopEncryption {
        key: StreamKey,
        key_id: String,
    },
    SetMaxRecordSize {
        key: StreamKey,
        kib: u32,
    },
    PutPolicy {
        resource: Resource,
        policy: String,
    },
    DeletePolicy {
        resource: Resource,
    },
    /// The controller's leader saw `node` stop answering at `since_ms` (or, with `None`, answer
    /// again).
    SetNodeDown {
        node: u64,
        since_ms: Option<u64>,
    },
    /// `node` has been down for `dead_after_ms` at `now_ms`: move each of its replicas to the
    /// least-loaded node that is up and holds no replica of that shard yet. The shards' leaders
    /// then change their groups' membership to match.
    ReplaceNode {
        node: u64,
        now_ms: u64,
        dead_after_ms: u64,
    },
    /// SplitShard: starts a resharding procedure (see `reshard`). `on_demand`: asked by the
    /// cluster's own scaling of an ON_DEMAND stream (clients may reshard PROVISIONED ones only).
    SplitShard {
        key: StreamKey,
        shard: ShardId,
        new_starting_hash_key: u128,
        now_ms: u64,
        shard_limit: u32,
        replication_factor: u32,
        on_demand: bool,
    },
    MergeShards {
        key: StreamKey,
        shard: ShardId,
        adjacent: ShardId,
        now_ms: u64,
        replication_factor: u32,
        on_demand: bool,
    },
    UpdateShardCount {
        key: StreamKey,
        target: u32,
        now_ms: u64,
        shard_limit: u32,
        replication_factor: u32,
    },
    /// A parent of the stream's resharding round is sealed at `sealed_at`.
    ShardSealed {
        key: StreamKey,
        shard: ShardId,
        sealed_at: u64,
        now_ms: u64,
    },
    /// UpdateStreamMode.
    SetStreamMode {
        key: StreamKey,
        mode: StreamMode,
        now_ms: u64,
        /// WarmThroughputMiBps, valid only when the stream becomes ON_DEMAND.
        warm_throughput_mibps: Option<u32>,
    },
    /// Forgets the stream's closed shards whose every record is past retention at `now_ms`
    /// (EXPIRED: no longer listed; their groups are dropped).
    ExpireShards {
        key: StreamKey,
        now_ms: u64,
    },
    /// A node joins the running cluster (`kinesin server --join`); replicas then move onto it
    /// until the nodes hold about as many each.
    AddNode {
        node: u64,
        cluster_addr: String,
        /// The life of the joining node's data (kinesin-raft's `life.rs`); `None` from a node
        /// that restarts on data it has (and from nodes that predate lives).
        #[serde(default)]
        life: Option<u64>,
    },
    /// `kinesin ctl node drain`: the node takes no new replicas, and its replicas move off it.
    DrainNode {
        node: u64,
    },
    /// `kinesin ctl node remove`: forgets a drained node that holds nothing any more.
    RemoveNode {
        node: u64,
    },
    /// The leader of `group` made its voters `replicas`: the nodes that left may drop it.
    ReplicasSettled {
        group: u64,
        replicas: Vec<u64>,
    },
    /// How many shards may have a replica moving at once (`ClusterState::moves_at_once`).
    SetMovesAtOnce {
        moves: u32,
    },
    /// Every node speaks cluster protocol `version` (`ClusterState::cluster_version`). Proposed
    /// only then, so no node that could not decode it ever applies it.
    SetClusterVersion {
        version: u32,
    },
    /// RegisterStreamConsumer: the consumer starts CREATING.
    RegisterConsumer(Registration),
    /// The consumer registered at `created_ms` is ready: ACTIVE.
    ActivateConsumer {
        key: StreamKey,
        name: String,
        created_ms: u64,
    },
    /// DeregisterStreamConsumer: the consumer is DELETING.
    DeregisterConsumer {
        consumer: ConsumerKey,
    },
    /// The DELETING consumer registered at `created_ms` is gone.
    RemoveConsumer {
        key: StreamKey,
        name: String,
        created_ms: u64,
    },
    /// UpdateStreamWarmThroughput.
    SetWarmThroughput {
        key: StreamKey,
        mibps: u32,
        now_ms: u64,
    },
    /// UpdateAccountSettings: the minimum throughput billing commitment on or off.
    SetAccountCommitment {
        account: AccountKey,
        enable: bool,
        now_ms: u64,
    },
    /// `change`, applied at most once: a repeat of `id` answers what its first apply answered
    /// and changes nothing (`proposal.rs`).
    Once {
        id: ProposalId,
        change: Box<Command>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    /// Nothing changed (a repeated command, e.g. MarkActive of an already active stream).
    Unchanged,
    /// SetEnhancedMetrics: the stream's metrics before and after, which the caller must answer
    /// with; read from the state in the same apply, so concurrent changes cannot tear them.
    Metrics {
        current: Vec<String>,
        desired: Vec<String>,
    },
}

impl Outcome {
    /// Whether the state changed (and its version must move).
    pub fn changed(&self) -> bool {
        match self {
            Outcome::Done => true,
            Outcome::Unchanged => false,
            Outcome::Metrics { current, desired } => current != desired,
        }
    }
}

pub(crate) fn not_found(key: &StreamKey) -> ControllerError {
    ControllerError::NotFound(format!(
        "Stream {} under account {} not found.",
        key.name, key.account
    ))
}

pub(crate) fn stream_mut<'a>(
    state: &'a mut ClusterState,
    key: &StreamKey,
) -> Result<&'a mut StreamMeta, ControllerError> {
    state.streams.get_mut(key).ok_or_else(|| not_found(key))
}

/// AWS's ResourceInUseException for a change to a stream that is not ACTIVE.
pub fn require_active(stream: &StreamMeta) -> Result<(), ControllerError> {
    if stream.status == StreamStatus::Active {
        return Ok(());
    }
    Err(ControllerError::InUse(format!(
        "Stream {} under account {} not ACTIVE, instead in state {}",
        stream.key.name,
        stream.key.account,
        stream.status.as_str()
    )))
}

/// The metrics `requested` names, with `ALL` expanded, in the model's order.
fn expand_metrics(requested: &[String]) -> Result<Vec<&'static str>, ControllerError> {
    if let Some(bad) = requested
        .iter()
        .find(|m| m.as_str() != "ALL" && !SHARD_LEVEL_METRICS.contains(&m.as_str()))
    {
        return Err(ControllerError::InvalidArgument(format!(
            "Invalid shard-level metric {bad}."
        )));
    }
    let all = requested.iter().any(|m| m == "ALL");
    Ok(SHARD_LEVEL_METRICS
        .into_iter()
        .filter(|m| all || requested.iter().any(|r| r.as_str() == *m))
        .collect())
}

impl Command {
    /// Applies the command to `state`. Deterministic: depends only on the command and the state.
    pub(crate) fn apply(self, state: &mut ClusterState) -> Result<Outcome, ControllerError> {
        match self {
            Command::Bootstrap {
                iterator_secret,
                nodes,
            } => {
                if state.iterator_secret.is_some() {
                    return Ok(Outcome::Unchanged);
                }
                state.iterator_secret = Some(iterator_secret);
                state.nodes = nodes;
                state.next_group = state.next_group.max(1);
                Ok(Outcome::Done)
            }
            Command::CreateStream {
                key,
                arn,
                now_ms,
                shard_count,
                mode,
                tags,
                max_record_size_kib,
                replication_factor,
                shard_limit,
                warm_throughput_mibps,
            } => {
                if state.streams.contains_key(&key) {
                    return Err(ControllerError::InUse(format!(
                        "Stream {} under account {} already exists.",
                        key.name, key.account
                    )));
                }
                let in_account = state.streams_in(&key.account, &key.region);
                let (open, creating) = in_account.fold((0u64, 0usize), |(open, creating), s| {
                    (
                        open + s.open_shards().count() as u64,
                        creating + usize::from(s.status == StreamStatus::Creating),
                    )
                });
                if creating >= MAX_CREATING_STREAMS {
                    return Err(ControllerError::LimitExceeded(format!(
                        "This request would exceed the limit of {MAX_CREATING_STREAMS} streams in CREATING state for account {}.",
                        key.account
                    )));
                }
                if open + u64::from(shard_count) > u64::from(shard_limit) {
                    return Err(ControllerError::LimitExceeded(format!(
                        "This request would exceed the shard limit for the account {} in {}. Current shard count for the account: {open}. Limit: {shard_limit}. Number of additional shards that would have resulted from this request: {shard_count}. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
                        key.account, key.region
                    )));
                }
                if let Some(mibps) = warm_throughput_mibps {
                    check_warm_throughput(state, &key, mode, mibps, now_ms)?;
                }
                let ranges = HashRange::split_evenly(shard_count)
                    .map_err(|e| ControllerError::InvalidArgument(e.to_string()))?;
                let first_group = state.next_group.max(1);
                let mut load = state.placeable_load();
                let mut standby = state.standby_load();
                let mut leaders = state.leader_load();
                let placements: Vec<Vec<u64>> = (0..ranges.len())
                    .map(|_| {
                        let mut replicas = place_new_shard(
                            &mut load,
                            &mut standby,
                            replication_factor.max(1) as usize,
                        );
                        prefer_leader(&mut replicas, &mut leaders);
                        replicas
                    })
                    .collect();
                let shards = ranges
                    .into_iter()
                    .enumerate()
                    .map(|(i, hash_range)| ShardMeta {
                        id: ShardId(i as u32),
                        group: first_group + i as u64,
                        hash_range,
                        parent: None,
                        adjacent_parent: None,
                        sequence_epoch: now_ms / 1000,
                        created_ms: now_ms,
                        closed_ms: None,
                        ending_position: None,
                        replicas: placements[i].clone(),
                        founders: placements[i].clone(),
                        leaving: Vec::new(),
                        wanted_replicas: replication_factor.max(1),
                    })
                    .collect();
                state.next_group = first_group + u64::from(shard_count);
                state.streams.insert(
                    key.clone(),
                    StreamMeta {
                        status: StreamStatus::Creating,
                        mode,
                        shards,
                        tags,
                        max_record_size_kib,
                        next_shard_index: shard_count,
                        warm_throughput_mibps,
                        ..StreamMeta::new(key, arn, now_ms)
                    },
                );
                Ok(Outcome::Done)
            }
            Command::MarkActive { key, created_ms } => {
                let stream = stream_mut(state, &key)?;
                if stream.created_ms != created_ms || stream.status != StreamStatus::Creating {
                    return Ok(Outcome::Unchanged);
                }
                stream.status = StreamStatus::Active;
                Ok(Outcome::Done)
            }
            Command::DeleteStream {
                key,
                enforce_consumer_deletion,
            } => {
                let stream = stream_mut(state, &key)?;
                if stream.status == StreamStatus::Deleting {
                    return Ok(Outcome::Unchanged);
                }
                consumer::delete_with_stream(stream, enforce_consumer_deletion)?;
                stream.status = StreamStatus::Deleting;
                Ok(Outcome::Done)
            }
            Command::RemoveStream { key, created_ms } => match state.streams.get(&key) {
                Some(s) if s.created_ms == created_ms && s.status == StreamStatus::Deleting => {
                    state.streams.remove(&key);
                    Ok(Outcome::Done)
                }
                _ => Ok(Outcome::Unchanged),
            },
            Command::SetRetention {
                key,
                hours,
                increase,
            } => {
                let stream = stream_mut(state, &key)?;
                require_active(stream)?;
                let current = stream.retention_hours;
                if increase && hours < current {
                    return Err(ControllerError::InvalidArgument(format!(
                        "Requested retention period ({hours} hours) for stream {} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API.",
                        key.name
                    )));
                }
                if !increase && hours > current {
                    return Err(ControllerError::InvalidArgument(format!(
                        "Requested retention period ({hours} hours) for stream {} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API.",
                        key.name
                    )));
                }
                stream.retention_hours = hours;
                Ok(Outcome::Done)
            }
            Command::AddTags { resource, tags } => resource::add_tags(state, &resource, tags),
            Command::RemoveTags { resource, tag_keys } => {
                resource::remove_tags(state, &resource, &tag_keys)
            }
            Command::SetEnhancedMetrics {
                key,
                metrics,
                enable,
            } => {
                let stream = stream_mut(state, &key)?;
                require_active(stream)?;
                let requested = expand_metrics(&metrics)?;
                let current = stream.enhanced_metrics.clone();
                // Rebuilt in the model's order so the answer does not depend on request order.
                let desired: Vec<String> = SHARD_LEVEL_METRICS
                    .into_iter()
                    .filter(|m| {
                        let on = current.iter().any(|c| c.as_str() == *m);
                        let asked = requested.contains(m);
                        if enable {
                            on || asked
                        } else {
                            on && !asked
                        }
                    })
                    .map(String::from)
                    .collect();
                stream.enhanced_metrics = desired.clone();
                Ok(Outcome::Metrics { current, desired })
            }
            Command::StartEncryption {
                key,
                key_id,
                data_key,
            } => {
                let stream = stream_mut(state, &key)?;
                require_active(stream)?;
                let encryption = EncryptionType::Kms { key_id };
                if stream.encryption == encryption {
                    return Ok(Outcome::Unchanged);
                }
                stream.encryption = encryption;
                if let Some(NewDataKey { key_arn, wrapped }) = data_key {
                    let generation = stream.data_keys.last().map_or(1, |k| k.generation + 1);
                    stream.data_keys.push(DataKey {
                        generation,
                        key_arn,
                        wrapped,
                    });
                }
                Ok(Outcome::Done)
            }
            Command::StopEncryption { key, key_id } => {
                let stream = stream_mut(state, &key)?;
                require_active(stream)?;
                match &stream.encryption {
                    // Stopping what is already stopped is a no-op, as a retried Stop must be.
                    EncryptionType::None => Ok(Outcome::Unchanged),
                    EncryptionType::Kms { key_id: current } if *current != key_id => {
                        Err(ControllerError::InvalidArgument(format!(
                            "Stream {} under account {} is encrypted with a different key than {key_id}.",
                            key.name, key.account
                        )))
                    }
                    EncryptionType::Kms { .. } => {
                        stream.encryption = EncryptionType::None;
                        Ok(Outcome::Done)
                    }
                }
            }
            Command::SetMaxRecordSize { key, kib } => {
                if !(MIN_RECORD_SIZE_KIB..=MAX_RECORD_SIZE_KIB).contains(&kib) {
                    return Err(ControllerError::InvalidArgument(format!(
                        "MaxRecordSizeInKiB {kib} must be between {MIN_RECORD_SIZE_KIB} and {MAX_RECORD_SIZE_KIB}."
                    )));
                }
                let stream = stream_mut(state, &key)?;
                require_active(stream)?;
                if stream.max_record_size_kib == kib {
                    return Ok(Outcome::Unchanged);
                }
                stream.max_record_size_kib = kib;
                Ok(Outcome::Done)
            }
            Command::PutPolicy { resource, policy } => {
                resource::put_policy(state, &resource, policy)
            }
            Command::DeletePolicy { resource } => resource::delete_policy(state, &resource),
            Command::SetNodeDown { node, since_ms } => {
                let Some(info) = state.nodes.get_mut(&node) else {
                    return Ok(Outcome::Unchanged);
                };
                if info.down_since_ms.is_some() == since_ms.is_some() {
                    return Ok(Outcome::Unchanged);
                }
                info.down_since_ms = since_ms;
                if since_ms.is_none() {
                    // A node that is back takes what waited for it: moves off draining nodes,
                    // missing replicas, and the rest of a join's rebalance that found it down.
                    continue_moves(state);
                    restore_replication(state);
                }
                Ok(Outcome::Done)
            }
            Command::ReplaceNode {
                node,
                now_ms,
                dead_after_ms,
            } => Ok(replace_node(state, node, now_ms, dead_after_ms)),
            Command::SplitShard {
                key,
                shard,
                new_starting_hash_key,
                now_ms,
                shard_limit,
                replication_factor,
                on_demand,
            } => {
                let change = Change::Split {
                    shard,
                    at: new_starting_hash_key,
                };
                reshard::check_limits(state, &key, 1, shard_limit, on_demand)?;
                reshard::validate(state, &key, change)?;
                reshard::start_round(state, &key, &[change], None, replication_factor, now_ms)?;
                Ok(Outcome::Done)
            }
            Command::MergeShards {
                key,
                shard,
                adjacent,
                now_ms,
                replication_factor,
                on_demand,
            } => {
                let change = Change::Merge { shard, adjacent };
                reshard::check_limits(state, &key, -1, u32::MAX, on_demand)?;
                reshard::validate(state, &key, change)?;
                reshard::start_round(state, &key, &[change], None, replication_factor, now_ms)?;
                Ok(Outcome::Done)
            }
            Command::UpdateShardCount {
                key,
                target,
                now_ms,
                shard_limit,
                replication_factor,
            } => {
                let stream = state.stream(&key).ok_or_else(|| not_found(&key))?;
                let current = stream.open_shards().count();
                require_active(stream)?;
                reshard::check_target(current, target)?;
                reshard::check_limits(
                    state,
                    &key,
                    i64::from(target) - current as i64,
                    shard_limit,
                    false,
                )?;
                let open: Vec<&ShardMeta> = stream.open_shards().collect();
                let round = reshard::next_round(&open, target)?;
                if round.is_empty() {
                    return Ok(Outcome::Unchanged);
                }
                reshard::start_round(
                    state,
                    &key,
                    &round,
                    Some(target),
                    replication_factor,
                    now_ms,
                )?;
                Ok(Outcome::Done)
            }
            Command::ShardSealed {
                key,
                shard,
                sealed_at,
                now_ms,
            } => Ok(changed(reshard::record_seal(
                state, &key, shard, sealed_at, now_ms,
            )?)),
            Command::SetStreamMode {
                key,
                mode,
                now_ms,
                warm_throughput_mibps,
            } => set_mode(state, &key, mode, now_ms, warm_throughput_mibps),
            Command::ExpireShards { key, now_ms } => {
                let stream = stream_mut(state, &key)?;
                let expired: Vec<ShardId> = stream
                    .shards
                    .iter()
                    .filter(|s| stream.is_expired(s, now_ms))
                    .map(|s| s.id)
                    .collect();
                stream.shards.retain(|s| !expired.contains(&s.id));
                Ok(changed(!expired.is_empty()))
            }
            Command::AddNode {
                node,
                cluster_addr,
                life,
            } => {
                if let Some(known) = state.nodes.get_mut(&node) {
                    // A member that comes back with new data (wiped, or rebuilt after
                    // corruption): its replicas are replaced, as the reconciler sees the new life.
                    if let Some(life) = life.filter(|life| *life != known.life) {
                        known.life = life;
                        known.cluster_addr = cluster_addr;
                        return Ok(Outcome::Done);
                    }
                    if known.cluster_addr == cluster_addr {
                        return Ok(Outcome::Unchanged);
                    }
                    return Err(ControllerError::InUse(format!(
                        "node {node} is already a member of the cluster, at {}",
                        known.cluster_addr
                    )));
                }
                let mut info = NodeInfo::new(cluster_addr);
                info.life = life.unwrap_or(0);
                state.nodes.insert(node, info);
                continue_drains(state);
                restore_replication(state);
                rebalance(state);
                Ok(Outcome::Done)
            }
            Command::DrainNode { node } => {
                let newly = !state
                    .nodes
                    .get(&node)
                    .ok_or_else(|| unknown_node(node))?
                    .draining;
                if newly {
                    drain_can_finish(state, node)?;
                }
                let info = state
                    .nodes
                    .get_mut(&node)
                    .ok_or_else(|| unknown_node(node))?;
                info.draining = true;
                let moved = move_replicas_off(state, node);
                Ok(changed(newly || moved))
            }
            Command::ReplicasSettled { group, replicas } => {
                let settled = hosted_shards_mut(state)
                    .find(|s| s.group == group)
                    .filter(|s| !s.leaving.is_empty() && same_nodes(&s.replicas, &replicas))
                    .map(|s| s.leaving.clear());
                if settled.is_some() {
                    continue_moves(state);
                }
                Ok(changed(settled.is_some()))
            }
            Command::SetClusterVersion { version } => {
                if version <= state.cluster_version() {
                    return Ok(Outcome::Unchanged);
                }
                state.cluster_version = version;
                Ok(Outcome::Done)
            }
            Command::SetMovesAtOnce { moves } => {
                if state.moves_at_once == moves {
                    return Ok(Outcome::Unchanged);
                }
                state.moves_at_once = moves;
                continue_moves(state);
                Ok(Outcome::Done)
            }
            Command::RemoveNode { node } => {
                let info = state.nodes.get(&node).ok_or_else(|| unknown_node(node))?;
                if !info.draining {
                    return Err(ControllerError::InUse(format!(
                        "node {node} is not drained; run `kinesin ctl node drain {node}` first"
                    )));
                }
                let held = state.held_replicas(node);
                if held > 0 {
                    return Err(ControllerError::InUse(format!(
                        "node {node} still holds {held} shard replicas; wait for its drain to finish"
                    )));
                }
                if state.nodes.len() <= 1 {
                    return Err(ControllerError::InUse(format!(
                        "node {node} is the cluster's last node"
                    )));
                }
                state.nodes.remove(&node);
                Ok(Outcome::Done)
            }
            Command::RegisterConsumer(registration) => consumer::register(state, registration),
            Command::ActivateConsumer {
                key,
                name,
                created_ms,
            } => Ok(consumer::activate(state, &key, &name, created_ms)),
            Command::DeregisterConsumer { consumer } => consumer::deregister(state, &consumer),
            Command::RemoveConsumer {
                key,
                name,
                created_ms,
            } => Ok(consumer::remove(state, &key, &name, created_ms)),
            Command::SetWarmThroughput { key, mibps, now_ms } => {
                let stream = state.stream(&key).ok_or_else(|| not_found(&key))?;
                require_active(stream)?;
                check_warm_throughput(state, &key, stream.mode, mibps, now_ms)?;
                let stream = stream_mut(state, &key)?;
                if stream.warm_throughput_mibps == Some(mibps) {
                    return Ok(Outcome::Unchanged);
                }
                stream.warm_throughput_mibps = Some(mibps);
                Ok(Outcome::Done)
            }
            Command::SetAccountCommitment {
                account,
                enable,
                now_ms,
            } => {
                let settings = state.accounts.entry(account).or_default();
                Ok(changed(settings.set_commitment(enable, now_ms)))
            }
            Command::Once { id, change } => {
                if let Some(first) = state.recent_proposals.outcome(id) {
                    return first.clone();
                }
                let outcome = change.apply(state);
                state.recent_proposals.record(id, &outcome);
                outcome
            }
        }
    }

    /// Whether applying this to `state` would only answer an earlier apply again.
    pub(crate) fn repeats_in(&self, state: &ClusterState) -> bool {
        matches!(self, Command::Once { id, .. } if state.recent_proposals.outcome(*id).is_some())
    }
}

fn changed(yes: bool) -> Outcome {
    if yes {
        Outcome::Done
    } else {
        Outcome::Unchanged
    }
}

fn same_nodes(a: &[u64], b: &[u64]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

fn unknown_node(node: u64) -> ControllerError {
    ControllerError::NotFound(format!("node {node} is not a member of the cluster"))
}

/// AWS allows two switches of the capacity mode per rolling 24 hours.
const MODE_SWITCHES_PER_DAY: usize = 2;
const DAY_MS: u64 = 24 * 3_600_000;

fn set_mode(
    state: &mut ClusterState,
    key: &StreamKey,
    mode: StreamMode,
    now_ms: u64,
    warm_throughput_mibps: Option<u32>,
) -> Result<Outcome, ControllerError> {
    require_active(state.stream(key).ok_or_else(|| not_found(key))?)?;
    if warm_throughput_mibps.is_some() && mode != StreamMode::OnDemand {
        return Err(ControllerError::Validation(
            "WarmThroughputMiBps is only valid when the stream mode is being updated to ON_DEMAND."
                .into(),
        ));
    }
    if let Some(mibps) = warm_throughput_mibps {
        check_warm_throughput(state, key, mode, mibps, now_ms)?;
    }
    let stream = stream_mut(state, key)?;
    if stream.mode == mode {
        if warm_throughput_mibps.is_none() || stream.warm_throughput_mibps == warm_throughput_mibps
        {
            return Ok(Outcome::Unchanged);
        }
        stream.warm_throughput_mibps = warm_throughput_mibps;
        return Ok(Outcome::Done);
    }
    stream
        .mode_changes_ms
        .retain(|at| now_ms.saturating_sub(*at) < DAY_MS);
    if stream.mode_changes_ms.len() >= MODE_SWITCHES_PER_DAY {
        return Err(ControllerError::LimitExceeded(format!(
            "Stream {} under account {} has had its capacity mode changed {MODE_SWITCHES_PER_DAY} times in the last 24 hours.",
            key.name, key.account
        )));
    }
    stream.mode_changes_ms.push(now_ms);
    stream.mode = mode;
    // Warm throughput belongs to on-demand streams only.
    stream.warm_throughput_mibps = warm_throughput_mibps.filter(|_| mode == StreamMode::OnDemand);
    Ok(Outcome::Done)
}

/// Every shard replica of the live streams, the pending children of reshards included.
/// A drain moves each of the node's replicas to a node that is not draining and holds none of
/// that shard yet; with fewer such nodes than a shard has replicas it could never finish, and
/// the node could never be removed (the jepsen harness once drained two of four nodes at once).
fn drain_can_finish(state: &ClusterState, node: u64) -> Result<(), ControllerError> {
    let staying = state
        .nodes
        .iter()
        .filter(|(id, info)| **id != node && !info.draining)
        .count();
    let widest = state
        .hosted_shards()
        .filter(|s| s.replicas.contains(&node))
        .map(|s| s.replicas.len())
        .max()
        .unwrap_or(0);
    if staying < widest {
        return Err(ControllerError::InUse(format!(
            "draining node {node} would leave {staying} nodes to hold shards of {widest} replicas: \
             add a node first, or let a drain under way finish"
        )));
    }
    Ok(())
}

fn hosted_shards_mut(state: &mut ClusterState) -> impl Iterator<Item = &mut ShardMeta> {
    state
        .streams
        .values_mut()
        .filter(|s| s.status != StreamStatus::Deleting)
        .flat_map(|s| {
            let StreamMeta {
                shards, reshard, ..
            } = s;
            shards
                .iter_mut()
                .chain(reshard.iter_mut().flat_map(|r| r.round.children.iter_mut()))
        })
}

/// Moves each replica `node` holds to the least-loaded placeable node that holds none of that
/// shard yet. Shards without such a node keep the replica until one exists. Returns whether any
/// replica moved. The shards' leaders then change their groups' membership to match.
/// Moves on the drains under way. A drain moves each replica to a node eligible at that moment;
/// a shard whose only eligible node was down kept its replica on the draining node, and nothing
/// moved it later, so the drain never finished (a 10-minute jepsen soak: 8 replicas never left
/// a drained node). A node that comes back up or joins gives such shards their target.
/// Starts the moves the budget held back: drains, then a join's rebalance.
fn continue_moves(state: &mut ClusterState) {
    continue_drains(state);
    if state.rebalance_pending {
        rebalance(state);
    }
}

fn continue_drains(state: &mut ClusterState) -> bool {
    let draining: Vec<u64> = state
        .nodes
        .iter()
        .filter(|(_, info)| info.draining)
        .map(|(id, _)| *id)
        .collect();
    let mut moved = false;
    for node in draining {
        moved |= move_replicas_off(state, node);
    }
    moved
}

/// Moves `node`'s replicas to the least-loaded placeable nodes, as many shards as the move
/// budget allows (the rest move as earlier moves finish: `Command::ReplicasSettled`). Returns
/// whether any replica moved.
fn move_replicas_off(state: &mut ClusterState, node: u64) -> bool {
    let mut budget = state.move_budget();
    let mut load = state.placeable_load();
    load.remove(&node);
    let mut moved = false;
    for shard in hosted_shards_mut(state) {
        let Some(slot) = shard.replicas.iter().position(|&n| n == node) else {
            continue;
        };
        // A shard already moving a replica changes its membership once for both.
        let starts_moving = shard.leaving.is_empty();
        if starts_moving && budget == 0 {
            continue;
        }
        let mut candidates = load.clone();
        candidates.retain(|id, _| !shard.replicas.contains(id));
        let Some(&replacement) = place(&mut candidates, 1).first() else {
            continue;
        };
        *load.entry(replacement).or_default() += 1;
        shard.replicas[slot] = replacement;
        shard.founders.clear();
        if !shard.leaving.contains(&node) {
            shard.leaving.push(node);
        }
        if starts_moving {
            budget -= 1;
        }
        moved = true;
    }
    moved
}

/// Gives each shard created with fewer replicas than it wants (fewer nodes were not draining
/// then, or an older version placed it on up nodes only) the rest, on the least-loaded placeable
/// nodes that hold none of it. Left short,
/// such a shard stayed short for good: the jepsen soak created children of a reshard with 2
/// replicas while one node was down and another rejoining, and when one of the two later lost its
/// data (a corrupt disk rebuilt from the peers) the shard had no majority left. The new replica is
/// added by the group's leader (as a learner that copies the log first), so the founders stay.
/// Returns whether any replica was added.
fn restore_replication(state: &mut ClusterState) -> bool {
    let mut load = state.placeable_load();
    let mut added = false;
    for shard in hosted_shards_mut(state) {
        let missing = (shard.wanted_replicas as usize).saturating_sub(shard.replicas.len());
        if missing == 0 {
            continue;
        }
        let mut candidates = load.clone();
        candidates.retain(|id, _| !shard.replicas.contains(id) && !shard.leaving.contains(id));
        for node in place(&mut candidates, missing) {
            *load.entry(node).or_default() += 1;
            shard.replicas.push(node);
            added = true;
        }
    }
    added
}

/// Moves replicas from the most to the least loaded placeable node until they differ by at most
/// one (a node that joined fills up), or until the move budget is spent: then
/// `rebalance_pending` makes each finished move go on with it. Returns whether any replica moved.
///
/// A node that is down takes nothing, but the rebalance waits for it: it stays pending while a
/// down node would take replicas, and goes on when the node is up again. A node that had just
/// joined was once shown down for a moment, the rebalance found the others even and stopped,
/// and the node stayed nearly empty.
fn rebalance(state: &mut ClusterState) -> bool {
    let mut moved = false;
    let mut budget = state.move_budget();
    state.rebalance_pending = false;
    loop {
        let load = state.placeable_load();
        let (Some((&light, &low)), Some((&heavy, &high))) = (
            load.iter().min_by_key(|(id, n)| (**n, **id)),
            load.iter().max_by_key(|(id, n)| (**n, u64::MAX - **id)),
        ) else {
            return moved;
        };
        if high <= low + 1 {
            state.rebalance_pending = state.standby_load().values().any(|&n| n + 1 < high);
            return moved;
        }
        // Open shards first: they carry the writes a new node is meant to share.
        let movable = |s: &ShardMeta| s.replicas.contains(&heavy) && !s.replicas.contains(&light);
        let open = hosted_shards_mut(state).position(|s| s.is_open() && movable(s));
        let any = || hosted_shards_mut(state).position(|s| movable(s));
        let Some(index) = open.or_else(any) else {
            return moved;
        };
        if budget == 0 {
            state.rebalance_pending = true;
            return moved;
        }
        let Some(shard) = hosted_shards_mut(state).nth(index) else {
            return moved;
        };
        if shard.leaving.is_empty() {
            budget -= 1;
        }
        if let Some(slot) = shard.replicas.iter_mut().find(|n| **n == heavy) {
            *slot = light;
        }
        shard.founders.clear();
        if !shard.leaving.contains(&heavy) {
            shard.leaving.push(heavy);
        }
        moved = true;
    }
}

/// Moves the replicas of a node that has been down for `dead_after_ms` to nodes that are up.
/// Shards for which no eligible node exists keep the replica (and stay under-replicated) until one
/// does; a later command moves them.
fn replace_node(state: &mut ClusterState, node: u64, now_ms: u64, dead_after_ms: u64) -> Outcome {
    let dead = state
        .nodes
        .get(&node)
        .and_then(|info| info.down_since_ms)
        .is_some_and(|since| now_ms.saturating_sub(since) >= dead_after_ms);
    if !dead {
        return Outcome::Unchanged;
    }
    changed(move_replicas_off(state, node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn the_cluster_version_rises_once_every_node_speaks_it_and_never_falls() {
        let mut state = bootstrapped();
        assert_eq!(state.cluster_version(), 1, "a state from before versions");
        let nodes: Vec<u64> = state.nodes.keys().copied().collect();
        // One node not heard from, or heard speaking protocol 1: nothing to raise.
        let heard = |missing: u64, old: Option<u64>| {
            move |node: u64| {
                if node == missing {
                    None
                } else if Some(node) == old {
                    Some(1)
                } else {
                    Some(2)
                }
            }
        };
        assert_eq!(state.cluster_version_to_set(heard(nodes[0], None)), None);
        assert_eq!(state.cluster_version_to_set(heard(0, Some(nodes[1]))), None);
        assert_eq!(state.cluster_version_to_set(heard(0, None)), Some(2));
        let set = |version| Command::SetClusterVersion { version };
        assert_eq!(set(2).apply(&mut state), Ok(Outcome::Done));
        assert_eq!(state.cluster_version(), 2);
        assert_eq!(state.cluster_version_to_set(heard(0, None)), None);
        assert_eq!(set(1).apply(&mut state), Ok(Outcome::Unchanged));
        assert_eq!(state.cluster_version(), 2, "never lowered");
    }

    #[test]
    fn a_change_asked_twice_is_made_once_and_answered_alike() {
        let mut state = bootstrapped();
        let once = |name: &str, nonce| Command::Once {
            id: ProposalId { node: 1, nonce },
            change: Box::new(create(name, 2, 100)),
        };
        assert_eq!(once("a", 7).apply(&mut state), Ok(Outcome::Done));
        let groups = state.next_group;
        let again = once("a", 7);
        assert!(again.repeats_in(&state));
        assert_eq!(
            again.apply(&mut state),
            Ok(Outcome::Done),
            "the first answer"
        );
        assert_eq!(state.next_group, groups, "nothing created twice");
        // Another proposal of the same change is a change of its own.
        let other = once("a", 8);
        assert!(!other.repeats_in(&state));
        assert!(matches!(
            other.apply(&mut state),
            Err(ControllerError::InUse(_))
        ));
        // A refusal is remembered too: asked again, it is refused again, even once allowed.
        let refused = Command::Once {
            id: ProposalId { node: 2, nonce: 1 },
            change: Box::new(Command::DeleteStream {
                key: key("b"),
                enforce_consumer_deletion: false,
            }),
        };
        let first = refused.clone().apply(&mut state);
        assert!(matches!(first, Err(ControllerError::NotFound(_))));
        once("b", 9).apply(&mut state).unwrap();
        assert_eq!(refused.apply(&mut state), first);
        assert!(state.streams.contains_key(&key("b")));
    }

    #[test]
    fn replicas_spread_over_the_least_loaded_nodes() {
        let mut state = bootstrapped();
        create("a", 4, 100).apply(&mut state).unwrap();
        let load = state.replica_load();
        // 4 shards x 3 replicas over 4 nodes: 3 each.
        assert_eq!(load.values().copied().collect::<Vec<_>>(), vec![3, 3, 3, 3]);
        for shard in &state.streams[&key("a")].shards {
            let distinct: std::collections::BTreeSet<_> = shard.replicas.iter().collect();
            assert_eq!(distinct.len(), 3, "three distinct nodes per shard");
        }
    }

    #[test]
    fn create_allocates_groups_and_splits_the_hash_space() {
        let mut state = bootstrapped();
        create("a", 3, 100).apply(&mut state).unwrap();
        create("b", 2, 100).apply(&mut state).unwrap();
        let a = &state.streams[&key("a")];
        let b = &state.streams[&key("b")];
        assert_eq!(a.status, StreamStatus::Creating);
        let groups: Vec<u64> = a.shards.iter().chain(&b.shards).map(|s| s.group).collect();
        assert_eq!(
            groups,
            vec![1, 2, 3, 4, 5],
            "group 0 is the controller; ids are never reused"
        );
        assert_eq!(a.shards[0].hash_range.start, 0);
        assert_eq!(a.shards[2].hash_range.end, u128::MAX);
        assert_eq!(a.route(u128::MAX).map(|s| s.id), Some(ShardId(2)));
    }

    #[test]
    fn duplicate_names_and_limits_are_refused() {
        let mut state = bootstrapped();
        create("a", 3, 5).apply(&mut state).unwrap();
        assert!(matches!(
            create("a", 1, 5).apply(&mut state),
            Err(ControllerError::InUse(_))
        ));
        assert!(matches!(
            create("b", 3, 5).apply(&mut state),
            Err(ControllerError::LimitExceeded(_))
        ));
        create("b", 2, 5).apply(&mut state).unwrap();
        // Five streams in CREATING at most.
        for name in ["c", "d", "e"] {
            create(name, 1, 100).apply(&mut state).unwrap();
        }
        assert!(matches!(
            create("f", 1, 100).apply(&mut state),
            Err(ControllerError::LimitExceeded(_))
        ));
        activate(&mut state, "a");
        create("f", 1, 100).apply(&mut state).unwrap();
    }

    #[test]
    fn retention_rules() {
        let mut state = bootstrapped();
        create("a", 1, 10).apply(&mut state).unwrap();
        let set = |hours, increase| Command::SetRetention {
            key: key("a"),
            hours,
            increase,
        };
        assert!(
            matches!(
                set(48, true).apply(&mut state),
                Err(ControllerError::InUse(_))
            ),
            "not ACTIVE yet"
        );
        activate(&mut state, "a");
        set(48, true).apply(&mut state).unwrap();
        assert!(matches!(
            set(30, true).apply(&mut state),
            Err(ControllerError::InvalidArgument(_))
        ));
        assert!(matches!(
            set(72, false).apply(&mut state),
            Err(ControllerError::InvalidArgument(_))
        ));
        set(24, false).apply(&mut state).unwrap();
        assert_eq!(state.streams[&key("a")].retention_hours, 24);
        assert!(matches!(
            Command::SetRetention {
                key: key("zz"),
                hours: 48,
                increase: true
            }
            .apply(&mut state),
            Err(ControllerError::NotFound(_))
        ));
    }

    #[test]
    fn tags_overwrite_and_cap_at_fifty() {
        let mut state = bootstrapped();
        create("a", 1, 10).apply(&mut state).unwrap();
        let tags = |range: std::ops::Range<u32>, value: &str| Command::AddTags {
            resource: Resource::Stream(key("a")),
            tags: range
                .map(|i| (format!("k{i}"), value.to_string()))
                .collect(),
        };
        tags(0..40, "x").apply(&mut state).unwrap();
        tags(30..50, "y").apply(&mut state).unwrap();
        assert_eq!(state.streams[&key("a")].tags.len(), 50);
        assert_eq!(state.streams[&key("a")].tags["k30"], "y");
        assert!(matches!(
            tags(50..51, "z").apply(&mut state),
            Err(ControllerError::InvalidArgument(_))
        ));
        Command::RemoveTags {
            resource: Resource::Stream(key("a")),
            tag_keys: vec!["k0".into(), "missing".into()],
        }
        .apply(&mut state)
        .unwrap();
        assert_eq!(state.streams[&key("a")].tags.len(), 49);
    }

    #[test]
    fn delete_then_remove_only_the_same_incarnation() {
        let mut state = bootstrapped();
        create("a", 1, 10).apply(&mut state).unwrap();
        let created_ms = state.streams[&key("a")].created_ms;
        delete("a", false).apply(&mut state).unwrap();
        assert_eq!(state.streams[&key("a")].status, StreamStatus::Deleting);
        assert_eq!(
            Command::RemoveStream {
                key: key("a"),
                created_ms: created_ms + 1
            }
            .apply(&mut state),
            Ok(Outcome::Unchanged)
        );
        Command::RemoveStream {
            key: key("a"),
            created_ms,
        }
        .apply(&mut state)
        .unwrap();
        assert!(state.streams.is_empty());
        assert!(matches!(
            delete("a", false).apply(&mut state),
            Err(ControllerError::NotFound(_))
        ));
    }

    fn metrics(names: &[&str], enable: bool) -> Command {
        Command::SetEnhancedMetrics {
            key: key("a"),
            metrics: names.iter().map(|m| m.to_string()).collect(),
            enable,
        }
    }

    #[test]
    fn enhanced_metrics_report_before_and_after() {
        let mut state = bootstrapped();
        create("a", 1, 10).apply(&mut state).unwrap();
        assert!(matches!(
            metrics(&["IncomingBytes"], true).apply(&mut state),
            Err(ControllerError::InUse(_))
        ));
        activate(&mut state, "a");
        assert_eq!(
            metrics(&["OutgoingBytes", "IncomingBytes"], true).apply(&mut state),
            Ok(Outcome::Metrics {
                current: vec![],
                desired: vec!["IncomingBytes".into(), "OutgoingBytes".into()],
            })
        );
        let all = metrics(&["ALL"], true).apply(&mut state).unwrap();
        let Outcome::Metrics { current, desired } = all else {
            panic!("unexpected outcome {all:?}");
        };
        assert_eq!(current.len(), 2);
        assert_eq!(desired, SHARD_LEVEL_METRICS.map(String::from).to_vec());
        let off = metrics(&["IncomingBytes", "IteratorAgeMilliseconds"], false)
            .apply(&mut state)
            .unwrap();
        assert!(off.changed());
        assert_eq!(state.streams[&key("a")].enhanced_metrics.len(), 5);
        let none = metrics(&["ALL"], false).apply(&mut state).unwrap();
        assert!(none.changed());
        assert!(state.streams[&key("a")].enhanced_metrics.is_empty());
        assert!(
            !metrics(&["ALL"], false)
                .apply(&mut state)
                .unwrap()
                .changed(),
            "disabling what is off changes nothing"
        );
        assert!(matches!(
            metrics(&["Bogus"], true).apply(&mut state),
            Err(ControllerError::InvalidArgument(_))
        ));
    }

    #[test]
    fn encryption_start_stop_and_key_mismatch() {
        let mut state = active("a");
        let start = |key_id: &str| Command::StartEncryption {
            key: key("a"),
            key_id: key_id.into(),
            data_key: Some(NewDataKey {
                key_arn: format!("arn:{key_id}"),
                wrapped: key_id.as_bytes().to_vec(),
            }),
        };
        let stop = |key_id: &str| Command::StopEncryption {
            key: key("a"),
            key_id: key_id.into(),
        };
        assert_eq!(stop("k1").apply(&mut state), Ok(Outcome::Unchanged));
        start("k1").apply(&mut state).unwrap();
        assert_eq!(start("k1").apply(&mut state), Ok(Outcome::Unchanged));
        start("k2").apply(&mut state).unwrap();
        assert_eq!(
            state.streams[&key("a")].encryption,
            EncryptionType::Kms {
                key_id: "k2".into()
            }
        );
        assert!(matches!(
            stop("k1").apply(&mut state),
            Err(ControllerError::InvalidArgument(_))
        ));
        // One data key per key started, none for a start that changed nothing; the newest
        // seals while encrypted, every one stays for the records it sealed.
        let stream = &state.streams[&key("a")];
        let generations: Vec<(u32, &str)> = stream
            .data_keys
            .iter()
            .map(|k| (k.generation, k.key_arn.as_str()))
            .collect();
        assert_eq!(generations, [(1, "arn:k1"), (2, "arn:k2")]);
        assert_eq!(stream.sealing_key().map(|k| k.generation), Some(2));
        stop("k2").apply(&mut state).unwrap();
        let stream = &state.streams[&key("a")];
        assert_eq!(stream.encryption, EncryptionType::None);
        assert_eq!(stream.sealing_key(), None);
        assert_eq!(
            stream.data_key(1).map(|k| k.key_arn.as_str()),
            Some("arn:k1")
        );
        start("k1").apply(&mut state).unwrap();
        assert_eq!(
            state.streams[&key("a")].sealing_key().map(|k| k.generation),
            Some(3)
        );
        assert!(matches!(
            Command::StartEncryption {
                key: key("zz"),
                key_id: "k".into(),
                data_key: None,
            }
            .apply(&mut state),
            Err(ControllerError::NotFound(_))
        ));
    }

    #[test]
    fn max_record_size_bounds_and_effect() {
        let mut state = bootstrapped();
        create("a", 1, 10).apply(&mut state).unwrap();
        let set = |kib| Command::SetMaxRecordSize { key: key("a"), kib };
        assert!(matches!(
            set(2048).apply(&mut state),
            Err(ControllerError::InUse(_))
        ));
        activate(&mut state, "a");
        for kib in [1023, 10241] {
            assert!(matches!(
                set(kib).apply(&mut state),
                Err(ControllerError::InvalidArgument(_))
            ));
        }
        assert_eq!(state.streams[&key("a")].max_record_bytes(), 1 << 20);
        set(10240).apply(&mut state).unwrap();
        assert_eq!(state.streams[&key("a")].max_record_bytes(), 10 << 20);
        assert_eq!(set(10240).apply(&mut state), Ok(Outcome::Unchanged));
    }

    #[test]
    fn policies_are_stored_replaced_and_deleted() {
        let mut state = active("a");
        let put = |policy: &str| Command::PutPolicy {
            resource: Resource::Stream(key("a")),
            policy: policy.into(),
        };
        put("{\"Version\":\"2012-10-17\"}")
            .apply(&mut state)
            .unwrap();
        put("{}").apply(&mut state).unwrap();
        assert_eq!(state.streams[&key("a")].policy.as_deref(), Some("{}"));
        Command::DeletePolicy {
            resource: Resource::Stream(key("a")),
        }
        .apply(&mut state)
        .unwrap();
        assert_eq!(state.streams[&key("a")].policy, None);
        assert_eq!(
            Command::DeletePolicy {
                resource: Resource::Stream(key("a")),
            }
            .apply(&mut state),
            Ok(Outcome::Unchanged)
        );
        assert!(matches!(
            Command::PutPolicy {
                resource: Resource::Stream(key("zz")),
                policy: "{}".into()
            }
            .apply(&mut state),
            Err(ControllerError::NotFound(_))
        ));
    }

    #[test]
    fn a_dead_node_is_replaced_on_live_nodes_only_after_the_timeout() {
        let mut state = bootstrapped();
        create("a", 4, 100).apply(&mut state).unwrap();
        let on = |state: &ClusterState, node: u64| {
            state.streams[&key("a")]
                .shards
                .iter()
                .filter(|s| s.replicas.contains(&node))
                .count()
        };
        assert_eq!(on(&state, 1), 3, "4 shards x 3 replicas over 4 nodes");
        let down = |node, since_ms| Command::SetNodeDown { node, since_ms };
        let replace = |now_ms| Command::ReplaceNode {
            node: 1,
            now_ms,
            dead_after_ms: 1000,
        };
        // A node that is up is never replaced.
        assert_eq!(replace(5000).apply(&mut state), Ok(Outcome::Unchanged));
        assert_eq!(down(1, Some(1000)).apply(&mut state), Ok(Outcome::Done));
        assert_eq!(
            down(1, Some(1500)).apply(&mut state),
            Ok(Outcome::Unchanged)
        );
        // Too early.
        assert_eq!(replace(1999).apply(&mut state), Ok(Outcome::Unchanged));
        // Node 2 is down too: the replicas can go only to nodes 3 and 4, which each shard on node
        // 1 already has one of, save those placed on 2 as well.
        assert_eq!(down(2, Some(1000)).apply(&mut state), Ok(Outcome::Done));
        let before = state.clone();
        let outcome = replace(2000).apply(&mut state);
        let stream = &state.streams[&key("a")];
        for (old, new) in before.streams[&key("a")].shards.iter().zip(&stream.shards) {
            let mut distinct = new.replicas.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "no node twice: {:?}", new.replicas);
            assert!(!new.replicas.contains(&2) || old.replicas.contains(&2));
            if new.replicas != old.replicas {
                assert!(
                    new.founders.is_empty(),
                    "moved shards are not re-initialized"
                );
            }
        }
        // Every shard on node 1 also had node 2 or lacked exactly one of 3 and 4: those without 2
        // moved to the free node; the others had no eligible node.
        assert_eq!(outcome, Ok(Outcome::Done));
        // Node 2 comes back: the rest of node 1's replicas can move to it.
        assert_eq!(down(2, None).apply(&mut state), Ok(Outcome::Done));
        assert_eq!(replace(3000).apply(&mut state), Ok(Outcome::Done));
        assert_eq!(on(&state, 1), 0);
        assert_eq!(replace(4000).apply(&mut state), Ok(Outcome::Unchanged));
        // New streams avoid the down node.
        create("b", 4, 100).apply(&mut state).unwrap();
        assert!(state.streams[&key("b")]
            .shards
            .iter()
            .all(|s| !s.replicas.contains(&1) && s.replicas.len() == 3));
    }

    #[test]
    fn preferred_leaders_spread_over_the_nodes() {
        let mut state = bootstrapped();
        create("a", 8, 100).apply(&mut state).unwrap();
        let leaders = state.leader_load();
        assert_eq!(leaders.values().sum::<usize>(), 8);
        assert!(
            leaders.values().all(|&n| n == 2),
            "8 shards over 4 nodes lead 2 each: {leaders:?}"
        );
        // A second stream keeps them balanced.
        create("b", 4, 100).apply(&mut state).unwrap();
        assert!(state.leader_load().values().all(|&n| n == 3));
    }

    #[test]
    fn a_drain_goes_on_when_the_node_its_replicas_need_comes_back() {
        let mut state = bootstrapped();
        create("a", 8, 100).apply(&mut state).unwrap();
        let on_node = |state: &ClusterState, node: u64| {
            state.streams[&key("a")]
                .shards
                .iter()
                .filter(|s| s.replicas.contains(&node))
                .count()
        };
        // Node 4 is down when node 1 drains: shards on 1, 2 and 3 have nowhere to go yet.
        Command::SetNodeDown {
            node: 4,
            since_ms: Some(NOW),
        }
        .apply(&mut state)
        .unwrap();
        Command::DrainNode { node: 1 }.apply(&mut state).unwrap();
        assert!(on_node(&state, 1) > 0, "some replicas wait for node 4");
        Command::SetNodeDown {
            node: 4,
            since_ms: None,
        }
        .apply(&mut state)
        .unwrap();
        assert_eq!(
            on_node(&state, 1),
            0,
            "node 4 is back: every replica moves off node 1"
        );
    }

    fn join_fifth_node(state: &mut ClusterState) {
        Command::AddNode {
            node: 5,
            cluster_addr: "10.0.0.5:4667".into(),
            life: None,
        }
        .apply(state)
        .unwrap();
    }

    #[test]
    fn a_new_shard_takes_a_down_node_rather_than_fewer_replicas() {
        let mut state = bootstrapped();
        for node in [2, 3] {
            Command::SetNodeDown {
                node,
                since_ms: Some(NOW),
            }
            .apply(&mut state)
            .unwrap();
        }
        create("a", 2, 100).apply(&mut state).unwrap();
        for shard in &state.streams[&key("a")].shards {
            assert_eq!(shard.replicas.len(), 3, "{:?}", shard.replicas);
            assert!(
                shard.replicas.contains(&1) && shard.replicas.contains(&4),
                "both nodes that are up first: {:?}",
                shard.replicas
            );
        }
    }

    #[test]
    fn a_short_shard_gets_its_missing_replica_when_a_node_comes_back() {
        let mut state = bootstrapped();
        create("a", 1, 100).apply(&mut state).unwrap();
        Command::SetNodeDown {
            node: 4,
            since_ms: Some(NOW),
        }
        .apply(&mut state)
        .unwrap();
        // Short, as a shard placed while too few nodes could take it (or by an older version).
        let shard = &mut state.streams.get_mut(&key("a")).unwrap().shards[0];
        shard.replicas.retain(|n| *n != 4);
        shard.replicas.truncate(2);
        let kept = shard.replicas.clone();
        Command::SetNodeDown {
            node: 4,
            since_ms: None,
        }
        .apply(&mut state)
        .unwrap();
        let shard = &state.streams[&key("a")].shards[0];
        assert_eq!(shard.replicas.len(), 3, "{:?}", shard.replicas);
        assert_eq!(
            shard.replicas[..2],
            kept[..],
            "added after the others, so the preferred leader stays"
        );
        assert!(shard.leaving.is_empty());
    }

    #[test]
    fn a_shard_created_short_of_nodes_gets_its_missing_replica_from_a_joining_node() {
        let mut state = bootstrapped();
        for node in [2, 3, 4] {
            Command::DrainNode { node }.apply(&mut state).ok();
        }
        // Draining every other node is refused once shards exist; with none it is not.
        let draining = state.nodes.values().filter(|n| n.draining).count();
        assert_eq!(draining, 3);
        create("a", 1, 100).apply(&mut state).unwrap();
        assert_eq!(state.streams[&key("a")].shards[0].replicas, vec![1]);
        join_fifth_node(&mut state);
        assert_eq!(state.streams[&key("a")].shards[0].replicas, vec![1, 5]);
    }

    #[test]
    fn a_drain_that_could_never_finish_is_refused() {
        // Four nodes, three replicas per shard: one may drain, a second may not meanwhile.
        let mut state = bootstrapped();
        create("a", 4, 100).apply(&mut state).unwrap();
        Command::DrainNode { node: 1 }.apply(&mut state).unwrap();
        let second = Command::DrainNode { node: 3 }.apply(&mut state);
        assert!(
            matches!(&second, Err(ControllerError::InUse(m)) if m.contains("would leave 2 nodes to hold shards of 3 replicas")),
            "{second:?}"
        );
        assert!(!state.nodes[&3].draining);
        // Asking again for the drain under way is not refused.
        Command::DrainNode { node: 1 }.apply(&mut state).unwrap();
    }

    /// Settles every moving shard (as their leaders would), returning how many there were.
    fn settle_moving(state: &mut ClusterState) -> usize {
        let moving: Vec<(u64, Vec<u64>)> = state
            .hosted_shards()
            .filter(|s| !s.leaving.is_empty())
            .map(|s| (s.group, s.replicas.clone()))
            .collect();
        for (group, replicas) in &moving {
            Command::ReplicasSettled {
                group: *group,
                replicas: replicas.clone(),
            }
            .apply(state)
            .unwrap();
        }
        moving.len()
    }

    #[test]
    fn drains_and_joins_move_at_most_the_bound_at_a_time() {
        let mut state = bootstrapped();
        create("a", 40, 100).apply(&mut state).unwrap();
        let at_once = |moves| Command::SetMovesAtOnce { moves };
        assert_eq!(at_once(4).apply(&mut state), Ok(Outcome::Done));
        assert_eq!(at_once(4).apply(&mut state), Ok(Outcome::Unchanged));
        // 40 shards x 3 replicas over 4 nodes: node 1 holds 30, four of which start moving.
        Command::DrainNode { node: 1 }.apply(&mut state).unwrap();
        assert_eq!(state.leaving_replicas(1), 4);
        assert_eq!(state.held_replicas(1), 30);
        let mut rounds = 0;
        while state.held_replicas(1) > 0 {
            assert!(state.moving_shards() <= 4, "never more than the bound");
            assert!(
                settle_moving(&mut state) > 0,
                "each settled move starts the next"
            );
            rounds += 1;
        }
        assert_eq!(rounds, 30 / 4 + 1);
        // A join's rebalance goes on the same way, until the loads are even.
        join_fifth_node(&mut state);
        assert_eq!(state.moving_shards(), 4);
        assert!(state.rebalance_pending);
        while settle_moving(&mut state) > 0 {
            assert!(state.moving_shards() <= 4);
        }
        assert!(!state.rebalance_pending);
        let mut load = state.placeable_load();
        load.remove(&1);
        let (min, max) = (load.values().min().unwrap(), load.values().max().unwrap());
        assert!(max - min <= 1, "balanced: {load:?}");
        // Raising the bound lets held-back moves start at once; 0 lifts it.
        Command::DrainNode { node: 2 }.apply(&mut state).unwrap();
        assert_eq!(state.moving_shards(), 4);
        at_once(0).apply(&mut state).unwrap();
        assert_eq!(state.leaving_replicas(2), state.held_replicas(2));
    }

    #[test]
    fn a_rebalance_that_found_the_joined_node_down_goes_on_when_it_is_up() {
        let mut state = bootstrapped();
        create("a", 8, 100).apply(&mut state).unwrap();
        Command::SetMovesAtOnce { moves: 1 }
            .apply(&mut state)
            .unwrap();
        join_fifth_node(&mut state);
        assert_eq!(state.moving_shards(), 1);
        let down = |since_ms| Command::SetNodeDown { node: 5, since_ms };
        down(Some(1_000)).apply(&mut state).unwrap();
        // The first move settles while node 5 is shown down: no further move can go to it.
        assert_eq!(settle_moving(&mut state), 1);
        assert_eq!(state.moving_shards(), 0);
        assert!(state.rebalance_pending, "the rebalance waits for node 5");
        down(None).apply(&mut state).unwrap();
        assert_eq!(state.moving_shards(), 1, "the rebalance goes on");
        while settle_moving(&mut state) > 0 {}
        let load = state.replica_load();
        let (min, max) = (load.values().min().unwrap(), load.values().max().unwrap());
        assert!(max - min <= 1, "balanced: {load:?}");
        assert!(!state.rebalance_pending);
        // A node whose replicas were moved off while it was dead comes back empty: only a join
        // rebalances.
        let dead = |since_ms| Command::SetNodeDown { node: 2, since_ms };
        dead(Some(2_000)).apply(&mut state).unwrap();
        let replace = || Command::ReplaceNode {
            node: 2,
            now_ms: 10_000,
            dead_after_ms: 1_000,
        };
        // The liveness procedure proposes the replacement again until nothing is left to move.
        while replace().apply(&mut state) == Ok(Outcome::Done) {
            settle_moving(&mut state);
        }
        assert_eq!(state.held_replicas(2), 0);
        dead(None).apply(&mut state).unwrap();
        assert_eq!(state.held_replicas(2), 0);
        assert_eq!(state.moving_shards(), 0);
    }

    #[test]
    fn a_joining_node_takes_a_fair_share_and_a_drained_node_empties() {
        let mut state = bootstrapped();
        create("a", 8, 100).apply(&mut state).unwrap();
        // 8 shards x 3 replicas over 4 nodes: 6 each; a fifth node brings it to 24 / 5.
        join_fifth_node(&mut state);
        let load = state.replica_load();
        let (min, max) = (load.values().min().unwrap(), load.values().max().unwrap());
        assert!(max - min <= 1, "balanced: {load:?}");
        assert!(load[&5] >= 4);
        assert!(matches!(
            Command::AddNode {
                node: 5,
                cluster_addr: "elsewhere:1".into(),
                life: None,
            }
            .apply(&mut state),
            Err(ControllerError::InUse(_))
        ));
        // Node 2 drains: its replicas move, but it keeps them until each group settles.
        Command::DrainNode { node: 2 }.apply(&mut state).unwrap();
        assert_eq!(state.replica_load()[&2], 0);
        let held = state.held_replicas(2);
        assert!(held > 0);
        assert!(matches!(
            Command::RemoveNode { node: 2 }.apply(&mut state),
            Err(ControllerError::InUse(_))
        ));
        let moved: Vec<(u64, Vec<u64>)> = state.streams[&key("a")]
            .shards
            .iter()
            .filter(|s| s.leaving.contains(&2))
            .map(|s| (s.group, s.replicas.clone()))
            .collect();
        assert_eq!(moved.len(), held);
        for (group, replicas) in moved {
            assert!(!replicas.contains(&2));
            Command::ReplicasSettled { group, replicas }
                .apply(&mut state)
                .unwrap();
        }
        assert_eq!(state.held_replicas(2), 0);
        // New shards avoid the draining node.
        create("b", 4, 100).apply(&mut state).unwrap();
        assert!(state.streams[&key("b")]
            .shards
            .iter()
            .all(|s| !s.replicas.contains(&2)));
        Command::RemoveNode { node: 2 }.apply(&mut state).unwrap();
        assert!(!state.nodes.contains_key(&2));
        // Wiped and joined again, it comes back in a new life; so does a member that rejoins
        // with new data without leaving first. A restart on the data it has changes nothing.
        let rejoin = |node, life| Command::AddNode {
            node,
            cluster_addr: format!("10.0.0.{node}:4667"),
            life,
        };
        assert_eq!(rejoin(2, Some(7)).apply(&mut state).unwrap(), Outcome::Done);
        assert_eq!(state.nodes[&2].life, 7);
        assert_eq!(state.nodes[&2].member_address(), "10.0.0.2:4667#7");
        assert_eq!(
            rejoin(2, None).apply(&mut state).unwrap(),
            Outcome::Unchanged
        );
        assert_eq!(
            rejoin(2, Some(7)).apply(&mut state).unwrap(),
            Outcome::Unchanged
        );
        assert_eq!(rejoin(5, Some(9)).apply(&mut state).unwrap(), Outcome::Done);
        assert_eq!(state.nodes[&5].life, 9);
        assert_eq!(state.member_addresses(&[5])[&5], "10.0.0.5:4667#9");
    }

    #[test]
    fn a_settle_report_for_other_replicas_changes_nothing() {
        let mut state = bootstrapped();
        create("a", 1, 100).apply(&mut state).unwrap();
        Command::DrainNode { node: 1 }.apply(&mut state).unwrap();
        let shard = state.streams[&key("a")].shards[0].clone();
        assert_eq!(shard.leaving, vec![1]);
        assert_eq!(
            Command::ReplicasSettled {
                group: shard.group,
                replicas: vec![1, 2, 3],
            }
            .apply(&mut state),
            Ok(Outcome::Unchanged)
        );
        assert_eq!(state.held_replicas(1), 1);
    }
}
