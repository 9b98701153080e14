//! A seeded simulation of the controller's state machine: random sequences of the commands the
//! cluster proposes — CreateStream, SplitShard, MergeShards, UpdateShardCount, the resharder's
//! seal reports, joins, drains, removals, dead nodes replaced, settled moves, expiries — applied
//! to the real `ClusterState`, with the invariants checked after every step:
//! - no command panics (a refused one is an answer, not a failure);
//! - the open shards of every stream partition the hash space, at every version of the state;
//! - lineage: a shard's parents are closed, and a child's range lies inside its parents' ranges;
//! - a child's sequence epoch exceeds its parents' (its records sort after theirs);
//! - replicas are distinct known nodes, never a removed one.
//!
//! This simulates the controller's decisions, not consensus (no network, no Raft): a failing
//! seed replays exactly (`SIM_SEED=N cargo test --workspace --lib simulation`). CI runs a few
//! hundred seeds; `SIM_SEEDS=N` runs more.

use std::collections::BTreeMap;

use kinesin_types::{HashRange, ShardId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::state::{ClusterState, ShardMeta, StreamKey, StreamStatus};
use crate::test_support::{activate, bootstrapped, create, key, NOW};
use crate::Command;

const STEPS: usize = 300;
const SHARD_LIMIT: u32 = 64;
const STREAMS: [&str; 2] = ["a", "b"];

struct Simulation {
    rng: StdRng,
    state: ClusterState,
    now_ms: u64,
    next_node: u64,
    /// What was applied, for the failure report.
    log: Vec<String>,
    /// Commands applied without error, by kind.
    applied: BTreeMap<String, usize>,
}

impl Simulation {
    fn new(seed: u64) -> Simulation {
        let mut state = bootstrapped();
        for name in STREAMS {
            create(name, 2, SHARD_LIMIT).apply(&mut state).unwrap();
            activate(&mut state, name);
        }
        Simulation {
            rng: StdRng::seed_from_u64(seed),
            state,
            now_ms: NOW,
            next_node: 5,
            log: Vec::new(),
            applied: BTreeMap::new(),
        }
    }

    fn stream(&mut self) -> StreamKey {
        key(STREAMS[self.rng.gen_range(0..STREAMS.len())])
    }

    fn open_shards(&self, key: &StreamKey) -> Vec<ShardMeta> {
        let mut open: Vec<ShardMeta> = self
            .state
            .streams
            .get(key)
            .map(|s| s.open_shards().cloned().collect())
            .unwrap_or_default();
        open.sort_by_key(|s| s.hash_range.start);
        open
    }

    /// A command the cluster could propose now, chosen at random.
    fn next_command(&mut self) -> Option<Command> {
        self.now_ms += self.rng.gen_range(1..5_000);
        let key = self.stream();
        let open = self.open_shards(&key);
        let now_ms = self.now_ms;
        Some(match self.rng.gen_range(0..100) {
            0..=19 => {
                let shard = &open[self.rng.gen_range(0..open.len())];
                let HashRange { start, end } = shard.hash_range;
                if start == end {
                    return None;
                }
                Command::SplitShard {
                    key,
                    shard: shard.id,
                    new_starting_hash_key: self.rng.gen_range(start + 1..=end),
                    now_ms,
                    shard_limit: SHARD_LIMIT,
                    replication_factor: 3,
                    on_demand: false,
                }
            }
            20..=34 => {
                let pairs: Vec<(ShardId, ShardId)> = open
                    .windows(2)
                    .filter(|w| w[0].hash_range.end.checked_add(1) == Some(w[1].hash_range.start))
                    .map(|w| (w[0].id, w[1].id))
                    .collect();
                if pairs.is_empty() {
                    return None;
                }
                let (shard, adjacent) = pairs[self.rng.gen_range(0..pairs.len())];
                Command::MergeShards {
                    key,
                    shard,
                    adjacent,
                    now_ms,
                    replication_factor: 3,
                    on_demand: false,
                }
            }
            35..=42 => Command::UpdateShardCount {
                key,
                target: self
                    .rng
                    .gen_range(1..=(2 * open.len() as u32).min(SHARD_LIMIT)),
                now_ms,
                shard_limit: SHARD_LIMIT,
                replication_factor: 3,
            },
            43..=69 => {
                // The resharder reports a seal of the round under way.
                let round = self
                    .state
                    .streams
                    .get(&key)?
                    .reshard
                    .as_ref()?
                    .round
                    .clone();
                let parents: Vec<_> = round.parents.iter().collect();
                let parent = parents[self.rng.gen_range(0..parents.len())];
                Command::ShardSealed {
                    key,
                    shard: parent.shard,
                    sealed_at: parent.sealed_at.unwrap_or(self.rng.gen_range(1..1_000_000)),
                    now_ms,
                }
            }
            70..=74 => {
                let node = self.next_node;
                self.next_node += 1;
                Command::AddNode {
                    node,
                    cluster_addr: format!("10.0.1.{node}:4667"),
                    life: None,
                }
            }
            75..=78 => Command::DrainNode {
                node: self.known_node()?,
            },
            79..=82 => Command::RemoveNode {
                node: self.known_node()?,
            },
            83..=86 => {
                let node = self.known_node()?;
                if self.rng.gen_bool(0.5) {
                    Command::SetNodeDown {
                        node,
                        since_ms: Some(now_ms),
                    }
                } else {
                    Command::ReplaceNode {
                        node,
                        now_ms,
                        dead_after_ms: 0,
                    }
                }
            }
            87..=96 => {
                // A shard's leader finished a membership change.
                let moving: Vec<&ShardMeta> = self
                    .state
                    .streams
                    .values()
                    .flat_map(|s| &s.shards)
                    .filter(|s| !s.leaving.is_empty())
                    .collect();
                if moving.is_empty() {
                    return None;
                }
                let shard = moving[self.rng.gen_range(0..moving.len())];
                Command::ReplicasSettled {
                    group: shard.group,
                    replicas: shard.replicas.clone(),
                }
            }
            _ => Command::ExpireShards {
                key,
                now_ms: now_ms + 8 * 24 * 3600 * 1000,
            },
        })
    }

    fn known_node(&mut self) -> Option<u64> {
        let nodes: Vec<u64> = self.state.nodes.keys().copied().collect();
        (!nodes.is_empty()).then(|| nodes[self.rng.gen_range(0..nodes.len())])
    }

    fn run(&mut self, steps: usize) -> Result<(), String> {
        for step in 0..steps {
            let Some(command) = self.next_command() else {
                continue;
            };
            let summary = format!("{command:?}");
            let outcome = command.apply(&mut self.state);
            if outcome.is_ok() {
                let kind = summary.split([' ', '{', '(']).next().unwrap_or_default();
                *self.applied.entry(kind.to_string()).or_default() += 1;
            }
            self.log.push(format!("{step}: {summary} -> {outcome:?}"));
            check(&self.state).map_err(|broken| format!("after step {step}: {broken}"))?;
        }
        Ok(())
    }
}

/// The invariants, over every stream of `state`.
fn check(state: &ClusterState) -> Result<(), String> {
    for stream in state.streams.values() {
        if stream.status == StreamStatus::Deleting {
            continue;
        }
        let name = &stream.key.name;
        let mut open: Vec<&ShardMeta> = stream.open_shards().collect();
        open.sort_by_key(|s| s.hash_range.start);
        let mut next = Some(0u128);
        for shard in &open {
            if Some(shard.hash_range.start) != next {
                return Err(format!(
                    "{name}: open shards leave a gap or overlap at {}",
                    shard.id
                ));
            }
            next = shard.hash_range.end.checked_add(1);
        }
        if next.is_some() {
            return Err(format!(
                "{name}: open shards do not reach the end of the hash space"
            ));
        }
        let by_id: BTreeMap<ShardId, &ShardMeta> =
            stream.shards.iter().map(|s| (s.id, s)).collect();
        for shard in &stream.shards {
            let parents: Vec<&ShardMeta> = [shard.parent, shard.adjacent_parent]
                .into_iter()
                .flatten()
                .filter_map(|id| by_id.get(&id).copied())
                .collect();
            for parent in &parents {
                if parent.is_open() {
                    return Err(format!(
                        "{name}: {} is open but has a child {}",
                        parent.id, shard.id
                    ));
                }
                if parent.sequence_epoch >= shard.sequence_epoch {
                    return Err(format!(
                        "{name}: child {} does not sort after {}",
                        shard.id, parent.id
                    ));
                }
            }
            if parents.len()
                == usize::from(shard.parent.is_some())
                    + usize::from(shard.adjacent_parent.is_some())
                && !parents.is_empty()
            {
                let start = parents
                    .iter()
                    .map(|p| p.hash_range.start)
                    .min()
                    .unwrap_or(0);
                let end = parents.iter().map(|p| p.hash_range.end).max().unwrap_or(0);
                if shard.hash_range.start < start || shard.hash_range.end > end {
                    return Err(format!(
                        "{name}: {} reaches outside its parents' ranges",
                        shard.id
                    ));
                }
            }
            let mut replicas = shard.replicas.clone();
            replicas.sort_unstable();
            replicas.dedup();
            if replicas.len() != shard.replicas.len() {
                return Err(format!(
                    "{name}: {} has a node twice: {:?}",
                    shard.id, shard.replicas
                ));
            }
            if let Some(unknown) = shard.replicas.iter().find(|n| !state.nodes.contains_key(n)) {
                return Err(format!(
                    "{name}: {} has a replica on node {unknown}, which is not a member",
                    shard.id
                ));
            }
        }
    }
    Ok(())
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let count = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    (0..count).collect()
}

#[test]
fn random_command_sequences_keep_the_controllers_invariants() {
    let mut applied: BTreeMap<String, usize> = BTreeMap::new();
    let seeds = seeds();
    for &seed in &seeds {
        let mut simulation = Simulation::new(seed);
        if let Err(broken) = simulation.run(STEPS) {
            let tail = simulation
                .log
                .iter()
                .rev()
                .take(15)
                .rev()
                .cloned()
                .collect::<Vec<_>>();
            panic!("seed {seed}: {broken}\nlast steps:\n{}", tail.join("\n"));
        }
        for (kind, count) in simulation.applied {
            *applied.entry(kind).or_default() += count;
        }
    }
    // The runs did what they are for: every kind of command took effect, not only refusals.
    if seeds.len() >= 100 {
        for kind in [
            "SplitShard",
            "MergeShards",
            "UpdateShardCount",
            "ShardSealed",
            "AddNode",
            "DrainNode",
            "RemoveNode",
            "ReplaceNode",
            "ReplicasSettled",
            "ExpireShards",
        ] {
            assert!(
                applied.get(kind).copied().unwrap_or(0) >= 10,
                "{kind} applied too rarely: {applied:?}"
            );
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    let run = |seed| {
        let mut simulation = Simulation::new(seed);
        simulation.run(STEPS).unwrap();
        (simulation.log, format!("{:?}", simulation.state))
    };
    assert_eq!(run(7), run(7));
}

#[test]
fn the_checker_catches_a_gap_in_the_hash_space() {
    let mut state = bootstrapped();
    create("a", 2, SHARD_LIMIT).apply(&mut state).unwrap();
    let stream = state.streams.get_mut(&key("a")).unwrap();
    stream.shards.remove(0);
    assert!(check(&state).unwrap_err().contains("gap or overlap"));
}
