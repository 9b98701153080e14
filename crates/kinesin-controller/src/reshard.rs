//! Resharding as a persisted procedure.
//!
//! SplitShard, MergeShards and UpdateShardCount all become rounds of splits and merges. A round's
//! children are placed (and their groups formed by the nodes) when the round starts, but they
//! take no writes yet: the stream routes to its open shards, and the children are not among them.
//! The controller leader's reconciler then seals every parent (the fence: a `Seal` entry in the
//! parent's own log) and reports each seal; the report of the last seal closes the parents and
//! opens the children in one applied command. UpdateShardCount plans the next round from the
//! shards that result, until the stream has its target count. Every step lives in the controller
//! state, so a new controller leader finishes a procedure the old one started, and each step is
//! idempotent (a repeated seal answers with the first seal's position).

use kinesin_types::{HashRange, ShardId};
use serde::{Deserialize, Serialize};

use crate::state::{
    place_new_shard, prefer_leader, ClusterState, ShardMeta, StreamKey, StreamMode, StreamStatus,
};
use crate::ControllerError;

/// A resharding under way on one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reshard {
    /// UpdateShardCount's target: rounds go on until the open shards are exactly the even
    /// division of the hash space into this many. `None` for a single split or merge.
    pub target: Option<u32>,
    /// Replicas per child shard.
    pub replication_factor: u32,
    /// When the procedure was accepted (controller leader's clock).
    pub started_ms: u64,
    pub round: Round,
}

/// One set of disjoint splits and merges, carried out together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// The shards this round closes, with the position of their seal once it is known.
    pub parents: Vec<ParentSeal>,
    /// The shards this round opens.
    pub children: Vec<ShardMeta>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentSeal {
    pub shard: ShardId,
    pub group: u64,
    pub sealed_at: Option<u64>,
}

impl Round {
    pub fn unsealed(&self) -> impl Iterator<Item = &ParentSeal> {
        self.parents.iter().filter(|p| p.sealed_at.is_none())
    }
}

/// One step of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Close `shard`; open `[start, at-1]` and `[at, end]`.
    Split { shard: ShardId, at: u128 },
    /// Close both; open their union (`shard` is the lower range).
    Merge { shard: ShardId, adjacent: ShardId },
}

/// The next round of UpdateShardCount towards `target`: first split every open shard that
/// straddles a boundary of the target division (at its first such boundary), and only when none
/// does, merge disjoint adjacent pairs that lie inside one target range. Empty once the open
/// shards are the target division.
pub(crate) fn next_round(open: &[&ShardMeta], target: u32) -> Result<Vec<Change>, ControllerError> {
    let ranges = HashRange::split_evenly(target)
        .map_err(|e| ControllerError::InvalidArgument(e.to_string()))?;
    let mut open: Vec<&ShardMeta> = open.to_vec();
    open.sort_by_key(|s| s.hash_range.start);
    let splits: Vec<Change> = open
        .iter()
        .filter_map(|s| {
            ranges
                .iter()
                .map(|r| r.start)
                .find(|&b| b > s.hash_range.start && b <= s.hash_range.end)
                .map(|at| Change::Split { shard: s.id, at })
        })
        .collect();
    if !splits.is_empty() {
        return Ok(splits);
    }
    let target_of = |key: u128| ranges.iter().position(|r| r.contains(key));
    let mut merges = Vec::new();
    let mut i = 0;
    while i + 1 < open.len() {
        let (a, b) = (open[i], open[i + 1]);
        if target_of(a.hash_range.start) == target_of(b.hash_range.end) {
            merges.push(Change::Merge {
                shard: a.id,
                adjacent: b.id,
            });
            i += 2;
        } else {
            i += 1;
        }
    }
    Ok(merges)
}

fn in_state(key: &StreamKey, status: StreamStatus) -> ControllerError {
    ControllerError::InUse(format!(
        "Stream {} under account {} not ACTIVE, instead in state {}",
        key.name,
        key.account,
        status.as_str()
    ))
}

fn open_shard<'a>(
    state: &'a ClusterState,
    key: &StreamKey,
    id: ShardId,
) -> Result<&'a ShardMeta, ControllerError> {
    let stream = state
        .stream(key)
        .ok_or_else(|| crate::command::not_found(key))?;
    let shard = stream.shard(id).ok_or_else(|| {
        ControllerError::NotFound(format!(
            "Could not find shard {id} in stream {} under account {}.",
            key.name, key.account
        ))
    })?;
    if !shard.is_open() {
        return Err(ControllerError::InUse(format!(
            "Shard {id} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
            key.name, key.account
        )));
    }
    Ok(shard)
}

/// AWS's checks of one SplitShard or MergeShards against the state.
pub(crate) fn validate(
    state: &ClusterState,
    key: &StreamKey,
    change: Change,
) -> Result<(), ControllerError> {
    match change {
        Change::Split { shard, at } => {
            let parent = open_shard(state, key, shard)?;
            let range = parent.hash_range;
            if at <= range.start.saturating_add(1) || at >= range.end {
                return Err(ControllerError::InvalidArgument(format!(
                    "NewStartingHashKey {at} used in SplitShard() on shard {shard} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                    key.name, key.account, range.start, range.end
                )));
            }
        }
        Change::Merge { shard, adjacent } => {
            let a = open_shard(state, key, shard)?;
            let b = open_shard(state, key, adjacent)?;
            if shard == adjacent || !a.hash_range.is_adjacent_to(&b.hash_range) {
                return Err(ControllerError::InvalidArgument(format!(
                    "Shards {shard} and {adjacent} in stream {} under account {} are not an adjacent pair of shards eligible for merging",
                    key.name, key.account
                )));
            }
        }
    }
    Ok(())
}

/// The stream must be ACTIVE and in the mode the request is for (clients reshard PROVISIONED
/// streams; the cluster reshards ON_DEMAND ones, `on_demand`), and the account's open shards must
/// stay within `shard_limit` after `added` more.
pub(crate) fn check_limits(
    state: &ClusterState,
    key: &StreamKey,
    added: i64,
    shard_limit: u32,
    on_demand: bool,
) -> Result<(), ControllerError> {
    let stream = state
        .stream(key)
        .ok_or_else(|| crate::command::not_found(key))?;
    if stream.status != StreamStatus::Active {
        return Err(in_state(key, stream.status));
    }
    if on_demand != (stream.mode == StreamMode::OnDemand) {
        if on_demand {
            return Err(ControllerError::InUse(format!(
                "Stream {} is no longer ON_DEMAND",
                key.name
            )));
        }
        return Err(ControllerError::InvalidArgument(format!(
            "Stream {} under account {} is in ON_DEMAND mode, where the cluster reshards it; switch it to PROVISIONED first.",
            key.name, key.account
        )));
    }
    let open: i64 = state
        .streams_in(&key.account, &key.region)
        .map(|s| s.open_shards().count() as i64)
        .sum();
    if added > 0 && open + added > i64::from(shard_limit) {
        return Err(ControllerError::LimitExceeded(format!(
            "This request would exceed the shard limit for the account {} in {}. Current shard count for the account: {open}. Limit: {shard_limit}. Number of additional shards that would have resulted from this request: {added}. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
            key.account, key.region
        )));
    }
    Ok(())
}

/// Starts a round of `changes` on the stream (UPDATING from here on): allocates the children's
/// ids and groups and places their replicas on the least-loaded nodes.
pub(crate) fn start_round(
    state: &mut ClusterState,
    key: &StreamKey,
    changes: &[Change],
    target: Option<u32>,
    replication_factor: u32,
    now_ms: u64,
) -> Result<(), ControllerError> {
    let mut load = state.placeable_load();
    let mut standby = state.standby_load();
    let mut leaders = state.leader_load();
    let mut next_group = state.next_group.max(1);
    let stream = state
        .streams
        .get_mut(key)
        .ok_or_else(|| crate::command::not_found(key))?;
    let started_ms = stream.reshard.as_ref().map_or(now_ms, |r| r.started_ms);
    let mut parents = Vec::new();
    let mut children = Vec::new();
    for change in changes {
        let (closed, ranges): (Vec<ShardMeta>, Vec<HashRange>) = match *change {
            Change::Split { shard, at } => {
                let Some(parent) = stream.shard(shard) else {
                    continue;
                };
                let r = parent.hash_range;
                (
                    vec![parent.clone()],
                    vec![
                        HashRange {
                            start: r.start,
                            end: at - 1,
                        },
                        HashRange {
                            start: at,
                            end: r.end,
                        },
                    ],
                )
            }
            Change::Merge { shard, adjacent } => {
                let (Some(a), Some(b)) = (stream.shard(shard), stream.shard(adjacent)) else {
                    continue;
                };
                let union = HashRange {
                    start: a.hash_range.start.min(b.hash_range.start),
                    end: a.hash_range.end.max(b.hash_range.end),
                };
                (vec![a.clone(), b.clone()], vec![union])
            }
        };
        // Leading field of the children's sequence numbers: after every parent's.
        let epoch = closed
            .iter()
            .map(|p| p.sequence_epoch + 1)
            .max()
            .unwrap_or(0)
            .max(now_ms / 1000);
        for hash_range in ranges {
            let mut replicas =
                place_new_shard(&mut load, &mut standby, replication_factor.max(1) as usize);
            prefer_leader(&mut replicas, &mut leaders);
            let id = ShardId(stream.next_shard_index);
            stream.next_shard_index += 1;
            children.push(ShardMeta {
                id,
                group: next_group,
                hash_range,
                parent: Some(closed[0].id),
                adjacent_parent: closed.get(1).map(|p| p.id),
                sequence_epoch: epoch,
                created_ms: now_ms,
                closed_ms: None,
                ending_position: None,
                founders: replicas.clone(),
                replicas,
                leaving: Vec::new(),
                wanted_replicas: replication_factor.max(1),
            });
            next_group += 1;
        }
        parents.extend(closed.iter().map(|p| ParentSeal {
            shard: p.id,
            group: p.group,
            sealed_at: None,
        }));
    }
    stream.status = StreamStatus::Updating;
    stream.reshard = Some(Reshard {
        target,
        replication_factor,
        started_ms,
        round: Round { parents, children },
    });
    state.next_group = next_group;
    Ok(())
}

/// Records that `shard` is sealed at `sealed_at`. When it was the round's last unsealed parent,
/// closes the parents, opens the children, and starts the next round (UpdateShardCount) or ends
/// the procedure. Returns whether anything changed.
pub(crate) fn record_seal(
    state: &mut ClusterState,
    key: &StreamKey,
    shard: ShardId,
    sealed_at: u64,
    now_ms: u64,
) -> Result<bool, ControllerError> {
    let stream = state
        .streams
        .get_mut(key)
        .ok_or_else(|| crate::command::not_found(key))?;
    let Some(reshard) = stream.reshard.as_mut() else {
        return Ok(false);
    };
    let Some(parent) = reshard
        .round
        .parents
        .iter_mut()
        .find(|p| p.shard == shard && p.sealed_at.is_none())
    else {
        return Ok(false);
    };
    parent.sealed_at = Some(sealed_at);
    if reshard.round.unsealed().next().is_some() {
        return Ok(true);
    }
    let Reshard {
        target,
        replication_factor,
        round,
        ..
    } = reshard.clone();
    for sealed in &round.parents {
        if let Some(meta) = stream.shards.iter_mut().find(|s| s.id == sealed.shard) {
            meta.ending_position = sealed.sealed_at;
            meta.closed_ms = Some(now_ms);
        }
    }
    stream.shards.extend(round.children);
    stream.shards.sort_by_key(|s| s.id);
    let next = match target {
        Some(target) => next_round(&stream.open_shards().collect::<Vec<_>>(), target)?,
        None => Vec::new(),
    };
    if next.is_empty() {
        stream.reshard = None;
        stream.status = StreamStatus::Active;
    } else {
        start_round(state, key, &next, target, replication_factor, now_ms)?;
    }
    Ok(true)
}

/// The open shard count after UpdateShardCount would finish, checked against AWS's bounds: at
/// most double and at least half of the current count, at most 10,000.
pub(crate) fn check_target(current: usize, target: u32) -> Result<(), ControllerError> {
    const MAX_SHARDS_PER_STREAM: u32 = 10_000;
    let current = current as u64;
    let t = u64::from(target);
    if t > current * 2 {
        return Err(ControllerError::InvalidArgument(format!(
            "UpdateShardCount cannot scale up over double the current open shard count. Current open shard count: {current}, target shard count: {target}."
        )));
    }
    if t * 2 < current {
        return Err(ControllerError::InvalidArgument(format!(
            "UpdateShardCount cannot scale down below half the current open shard count. Current open shard count: {current}, target shard count: {target}."
        )));
    }
    if target > MAX_SHARDS_PER_STREAM {
        return Err(ControllerError::LimitExceeded(format!(
            "UpdateShardCount cannot scale a stream over {MAX_SHARDS_PER_STREAM} shards. Target shard count: {target}."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::state::StreamStatus;
    use crate::test_support::{self, NOW};
    use crate::ControllerError;

    fn key() -> StreamKey {
        test_support::key("s")
    }

    /// A 4-node cluster with one ACTIVE stream of `shards` shards.
    fn cluster(shards: u32) -> ClusterState {
        let mut state = test_support::bootstrapped();
        test_support::create("s", shards, 100)
            .apply(&mut state)
            .unwrap();
        test_support::activate(&mut state, "s");
        state
    }

    fn split(shard: u32, at: u128) -> Command {
        Command::SplitShard {
            key: key(),
            shard: ShardId(shard),
            new_starting_hash_key: at,
            now_ms: NOW + 5_000,
            shard_limit: 100,
            replication_factor: 3,
            on_demand: false,
        }
    }

    fn merge(shard: u32, adjacent: u32) -> Command {
        Command::MergeShards {
            key: key(),
            shard: ShardId(shard),
            adjacent: ShardId(adjacent),
            now_ms: NOW + 5_000,
            replication_factor: 3,
            on_demand: false,
        }
    }

    /// Reports every unsealed parent of the current round sealed (at 100 << 20 + shard).
    fn seal_round(state: &mut ClusterState) {
        let round = state.streams[&key()].reshard.clone().unwrap().round;
        for parent in round.unsealed() {
            Command::ShardSealed {
                key: key(),
                shard: parent.shard,
                sealed_at: (100 << 20) + u64::from(parent.shard.0),
                now_ms: NOW + 6_000,
            }
            .apply(state)
            .unwrap();
        }
    }

    fn open_ranges(state: &ClusterState) -> Vec<(u128, u128)> {
        let mut ranges: Vec<_> = state.streams[&key()]
            .open_shards()
            .map(|s| (s.hash_range.start, s.hash_range.end))
            .collect();
        ranges.sort();
        ranges
    }

    #[test]
    fn a_split_activates_its_children_only_when_the_parent_is_sealed() {
        let mut state = cluster(1);
        split(0, 276).apply(&mut state).unwrap();
        let stream = &state.streams[&key()];
        assert_eq!(stream.status, StreamStatus::Updating);
        assert_eq!(
            open_ranges(&state),
            vec![(0, u128::MAX)],
            "children take no writes before the seal"
        );
        let children = &stream.reshard.as_ref().unwrap().round.children;
        assert_eq!(children.len(), 2);
        assert!(children.iter().all(|c| c.sequence_epoch > NOW / 1000));
        assert!(
            matches!(
                split(0, 500).apply(&mut state),
                Err(ControllerError::InUse(_))
            ),
            "one reshard at a time"
        );
        seal_round(&mut state);
        let stream = &state.streams[&key()];
        assert_eq!(stream.status, StreamStatus::Active);
        assert!(stream.reshard.is_none());
        assert_eq!(open_ranges(&state), vec![(0, 275), (276, u128::MAX)]);
        let parent = stream.shard(ShardId(0)).unwrap();
        assert_eq!(parent.ending_position, Some(100 << 20));
        assert_eq!(parent.closed_ms, Some(NOW + 6_000));
        for child in [ShardId(1), ShardId(2)] {
            let child = stream.shard(child).unwrap();
            assert_eq!(child.parent, Some(ShardId(0)));
            assert_eq!(child.adjacent_parent, None);
            assert_eq!(child.founders, child.replicas);
        }
        // A repeated report of the same seal changes nothing.
        assert_eq!(
            Command::ShardSealed {
                key: key(),
                shard: ShardId(0),
                sealed_at: 1,
                now_ms: NOW + 7_000,
            }
            .apply(&mut state),
            Ok(crate::Outcome::Unchanged)
        );
    }

    #[test]
    fn split_and_merge_are_validated_as_on_aws() {
        let mut state = cluster(2);
        let start_of_1 = state.streams[&key()].shards[1].hash_range.start;
        for (command, what) in [
            (split(0, 0), "key at the start"),
            (split(0, 1), "key at start + 1"),
            (split(0, start_of_1), "key in the next shard"),
        ] {
            assert!(
                matches!(
                    command.apply(&mut state),
                    Err(ControllerError::InvalidArgument(_))
                ),
                "{what}"
            );
        }
        assert!(matches!(
            split(7, 10).apply(&mut state),
            Err(ControllerError::NotFound(_))
        ));
        assert!(matches!(
            merge(0, 0).apply(&mut state),
            Err(ControllerError::InvalidArgument(_))
        ));
        let limited = Command::SplitShard {
            key: key(),
            shard: ShardId(0),
            new_starting_hash_key: 10,
            now_ms: NOW,
            shard_limit: 2,
            replication_factor: 3,
            on_demand: false,
        };
        assert!(matches!(
            limited.apply(&mut state),
            Err(ControllerError::LimitExceeded(_))
        ));
        // Merge the two, then neither can be split or merged again.
        merge(1, 0).apply(&mut state).unwrap();
        seal_round(&mut state);
        let child = state.streams[&key()].shard(ShardId(2)).unwrap();
        assert_eq!(
            (child.parent, child.adjacent_parent),
            (Some(ShardId(1)), Some(ShardId(0)))
        );
        assert_eq!(open_ranges(&state), vec![(0, u128::MAX)]);
        assert!(matches!(
            split(0, 10).apply(&mut state),
            Err(ControllerError::InUse(_))
        ));
    }

    #[test]
    fn update_shard_count_reaches_an_even_division_in_rounds() {
        for (from, to) in [(2, 4), (4, 2), (3, 5), (5, 3), (1, 2), (6, 11)] {
            let mut state = cluster(from);
            let update = Command::UpdateShardCount {
                key: key(),
                target: to,
                now_ms: NOW + 5_000,
                shard_limit: 100,
                replication_factor: 3,
            };
            update.apply(&mut state).unwrap();
            let mut rounds = 0;
            while state.streams[&key()].reshard.is_some() {
                seal_round(&mut state);
                rounds += 1;
                assert!(rounds < 20, "{from} -> {to} does not converge");
            }
            let even: Vec<_> = HashRange::split_evenly(to)
                .unwrap()
                .into_iter()
                .map(|r| (r.start, r.end))
                .collect();
            assert_eq!(open_ranges(&state), even, "{from} -> {to}");
            assert_eq!(state.streams[&key()].status, StreamStatus::Active);
            if (from, to) == (2, 4) || (from, to) == (4, 2) {
                assert_eq!(rounds, 1, "doubling and halving take one round");
            }
        }
    }

    #[test]
    fn update_shard_count_bounds() {
        let mut state = cluster(4);
        let update = |target| Command::UpdateShardCount {
            key: key(),
            target,
            now_ms: NOW,
            shard_limit: 6,
            replication_factor: 3,
        };
        for target in [1, 9] {
            assert!(matches!(
                update(target).apply(&mut state),
                Err(ControllerError::InvalidArgument(_))
            ));
        }
        assert_eq!(update(4).apply(&mut state), Ok(crate::Outcome::Unchanged));
        assert!(
            matches!(
                update(8).apply(&mut state),
                Err(ControllerError::LimitExceeded(_))
            ),
            "past the account's shard limit"
        );
    }

    #[test]
    fn children_have_greater_sequence_epochs_than_every_parent() {
        let mut state = cluster(2);
        // The same second as the creation: the epoch still moves past the parents'.
        let same_second = Command::MergeShards {
            key: key(),
            shard: ShardId(0),
            adjacent: ShardId(1),
            now_ms: NOW,
            replication_factor: 3,
            on_demand: false,
        };
        same_second.apply(&mut state).unwrap();
        seal_round(&mut state);
        let stream = &state.streams[&key()];
        let child = stream.shard(ShardId(2)).unwrap();
        assert!(stream
            .shards
            .iter()
            .filter(|s| s.id != child.id)
            .all(|p| p.sequence_epoch < child.sequence_epoch));
    }
}
