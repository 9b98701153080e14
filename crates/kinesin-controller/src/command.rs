//! Changes to the cluster state, and how each is applied.
//!
//! Validation that depends on the current state happens here, in apply, not in the caller: apply
//! runs in log order on every replica, so it is the only place where "does this stream exist" has
//! one answer.

use std::collections::BTreeMap;

use kinesin_types::{HashRange, ShardId};
use serde::{Deserialize, Serialize};

use crate::state::{
    ClusterState, EncryptionType, ShardMeta, StreamKey, StreamMeta, StreamMode, StreamStatus,
};
use crate::ControllerError;

/// AWS allows at most 5 streams in CREATING per account.
const MAX_CREATING_STREAMS: usize = 5;
const MAX_TAGS_PER_STREAM: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// First command of a new cluster.
    Bootstrap {
        iterator_secret: [u8; 32],
    },
    CreateStream {
        key: StreamKey,
        arn: String,
        now_ms: u64,
        shard_count: u32,
        mode: StreamMode,
        tags: BTreeMap<String, String>,
        max_record_size_kib: u32,
        /// Nodes to place each shard's replicas on, chosen by the proposer.
        replicas: Vec<u64>,
        /// Open shards allowed per account and region.
        shard_limit: u32,
    },
    /// Every shard group of the stream has a leader: the stream takes traffic.
    MarkActive {
        key: StreamKey,
        created_ms: u64,
    },
    DeleteStream {
        key: StreamKey,
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
        key: StreamKey,
        tags: BTreeMap<String, String>,
    },
    RemoveTags {
        key: StreamKey,
        tag_keys: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    /// Nothing changed (a repeated command, e.g. MarkActive of an already active stream).
    Unchanged,
}

pub(crate) fn not_found(key: &StreamKey) -> ControllerError {
    ControllerError::NotFound(format!(
        "Stream {} under account {} not found.",
        key.name, key.account
    ))
}

fn stream_mut<'a>(
    state: &'a mut ClusterState,
    key: &StreamKey,
) -> Result<&'a mut StreamMeta, ControllerError> {
    state.streams.get_mut(key).ok_or_else(|| not_found(key))
}

fn require_active(stream: &StreamMeta) -> Result<(), ControllerError> {
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

impl Command {
    /// Applies the command to `state`. Deterministic: depends only on the command and the state.
    pub(crate) fn apply(self, state: &mut ClusterState) -> Result<Outcome, ControllerError> {
        match self {
            Command::Bootstrap { iterator_secret } => {
                if state.iterator_secret.is_some() {
                    return Ok(Outcome::Unchanged);
                }
                state.iterator_secret = Some(iterator_secret);
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
                replicas,
                shard_limit,
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
                        "This request would exceed the shard limit for the account {} in {}. Current shard count for the account: {open}. Limit: {shard_limit}. Number of additional shards that would have resulted from this request: {shard_count}. Refer to the AWS Service Limits page (https://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
                        key.account, key.region
                    )));
                }
                let ranges = HashRange::split_evenly(shard_count)
                    .map_err(|e| ControllerError::InvalidArgument(e.to_string()))?;
                let first_group = state.next_group.max(1);
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
                        replicas: replicas.clone(),
                    })
                    .collect();
                state.next_group = first_group + u64::from(shard_count);
                state.streams.insert(
                    key.clone(),
                    StreamMeta {
                        key,
                        arn,
                        status: StreamStatus::Creating,
                        created_ms: now_ms,
                        retention_hours: 24,
                        mode,
                        encryption: EncryptionType::None,
                        shards,
                        tags,
                        enhanced_metrics: Vec::new(),
                        max_record_size_kib,
                        next_shard_index: shard_count,
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
            Command::DeleteStream { key } => {
                let stream = stream_mut(state, &key)?;
                if stream.status == StreamStatus::Deleting {
                    return Ok(Outcome::Unchanged);
                }
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
            Command::AddTags { key, tags } => {
                let stream = stream_mut(state, &key)?;
                let mut merged = stream.tags.clone();
                merged.extend(tags);
                if merged.len() > MAX_TAGS_PER_STREAM {
                    return Err(ControllerError::InvalidArgument(format!(
                        "Failed to add tags to stream {} under account {} because a given stream cannot have more than {MAX_TAGS_PER_STREAM} tags associated with it.",
                        key.name, key.account
                    )));
                }
                stream.tags = merged;
                Ok(Outcome::Done)
            }
            Command::RemoveTags { key, tag_keys } => {
                let stream = stream_mut(state, &key)?;
                for k in &tag_keys {
                    stream.tags.remove(k);
                }
                Ok(Outcome::Done)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> StreamKey {
        StreamKey {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            name: name.into(),
        }
    }

    fn create(name: &str, shards: u32, limit: u32) -> Command {
        Command::CreateStream {
            key: key(name),
            arn: format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}"),
            now_ms: 1_700_000_000_000,
            shard_count: shards,
            mode: StreamMode::Provisioned,
            tags: BTreeMap::new(),
            max_record_size_kib: 1024,
            replicas: vec![1],
            shard_limit: limit,
        }
    }

    fn bootstrapped() -> ClusterState {
        let mut state = ClusterState::default();
        Command::Bootstrap {
            iterator_secret: [7; 32],
        }
        .apply(&mut state)
        .unwrap();
        state
    }

    fn activate(state: &mut ClusterState, name: &str) {
        let created_ms = state.streams[&key(name)].created_ms;
        Command::MarkActive {
            key: key(name),
            created_ms,
        }
        .apply(state)
        .unwrap();
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
            key: key("a"),
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
            key: key("a"),
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
        Command::DeleteStream { key: key("a") }
            .apply(&mut state)
            .unwrap();
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
            Command::DeleteStream { key: key("a") }.apply(&mut state),
            Err(ControllerError::NotFound(_))
        ));
    }
}
