//! Faults on an in-process cluster (see `testkit`): crashes, partitions, restarts and the
//! replacement of a dead node, each checked against every acknowledged record, read back with
//! `aws-sdk-kinesis` through every node's gateway.

mod testkit;

use kinesin_raft::MessageKind;

use testkit::{
    create_stream, eventually, verify, wait_for_acks, History, Options, TestCluster, Writer,
};

const FIRST_SHARD: &str = "shardId-000000000000";

/// One writer per running node, tagged with the node id.
fn writers(cluster: &TestCluster, stream: &str) -> Vec<(u64, Writer)> {
    writers_tagged(cluster, stream, "")
}

/// One writer per running node, tagged with the node id and `phase` (so phases never write the
/// same data).
fn writers_tagged(cluster: &TestCluster, stream: &str, phase: &str) -> Vec<(u64, Writer)> {
    cluster
        .running()
        .map(|n| {
            let tag = format!("n{}{phase}", n.id);
            (n.id, Writer::start(n.client(), stream, &tag))
        })
        .collect()
}

fn except(writers: &[(u64, Writer)], node: u64) -> Vec<&Writer> {
    writers
        .iter()
        .filter(|(id, _)| *id != node)
        .map(|(_, w)| w)
        .collect()
}

fn all(writers: &[(u64, Writer)]) -> Vec<&Writer> {
    writers.iter().map(|(_, w)| w).collect()
}

async fn finish(writers: Vec<(u64, Writer)>) -> History {
    let mut history = History::default();
    for (_, writer) in writers {
        history.merge(writer.finish().await);
    }
    history
}

/// Waits for the replicas to converge, then checks every running node's gateway against the
/// history, and that they all return the same records.
async fn verify_everywhere(cluster: &TestCluster, stream: &str, history: &History) {
    cluster.wait_converged(stream).await;
    let mut reads = Vec::new();
    for node in cluster.running() {
        reads.push((node.id, verify(&node.client(), stream, history).await));
    }
    for (id, read) in &reads[1..] {
        assert_eq!(
            read, &reads[0].1,
            "node {id} and node {} disagree",
            reads[0].0
        );
    }
    assert!(!history.acked.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_crash_during_writes_loses_no_acknowledged_record() {
    let mut cluster = TestCluster::start(Options::default()).await;
    create_stream(&cluster.node(1).client(), "crash", 2).await;
    let group = cluster.groups(1, "crash")[FIRST_SHARD];
    let leader = cluster.wait_leader(group).await;
    let writers = writers(&cluster, "crash");
    wait_for_acks(&all(&writers), 50, "writes before the crash").await;

    cluster.crash(leader).await;
    wait_for_acks(
        &except(&writers, leader),
        50,
        "writes after the leader crashed",
    )
    .await;
    let successor = cluster.wait_leader(group).await;
    assert_ne!(successor, leader);

    cluster.restart(leader).await;
    wait_for_acks(&all(&writers), 50, "writes after the restart").await;
    let history = finish(writers).await;
    verify_everywhere(&cluster, "crash", &history).await;
}

/// Filters by message kind and direction: when every vote the node `muted` sends is dropped (its
/// appends and answers still flow), the dead leader's successor can only be the third node, and
/// nothing acknowledged is lost on the way. The writes pause over the crash so that both
/// followers hold the same log: were `muted`'s longer, no node could be elected (the heir's log
/// would not be up to date for `muted`'s vote) — the filter would be testing luck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_votes_are_lost_never_wins_the_election_after_a_leader_crash() {
    let mut cluster = TestCluster::start(Options::default()).await;
    create_stream(&cluster.node(1).client(), "votes", 1).await;
    let group = cluster.groups(1, "votes")[FIRST_SHARD];
    let leader = cluster.wait_leader(group).await;
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&n| n != leader).collect();
    let (heir, muted) = (others[0], others[1]);
    for to in [leader, heir] {
        cluster.drop_kinds(muted, to, &[MessageKind::Vote, MessageKind::PreVote]);
    }
    let before = writers_tagged(&cluster, "votes", "a");
    wait_for_acks(&all(&before), 30, "writes before the crash").await;
    let mut history = finish(before).await;
    cluster.wait_converged("votes").await;

    cluster.crash(leader).await;
    eventually("the node that can campaign to lead", || {
        cluster.leader_of(group) == Some(heir)
    })
    .await;
    let after = writers_tagged(&cluster, "votes", "b");
    wait_for_acks(&all(&after), 30, "writes after the crash").await;

    cluster.heal();
    cluster.restart(leader).await;
    wait_for_acks(&all(&after), 30, "writes after the restart").await;
    history.merge(finish(after).await);
    verify_everywhere(&cluster, "votes", &history).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_acknowledges_nothing_and_catches_up_after_healing() {
    let cluster = TestCluster::start(Options::default()).await;
    create_stream(&cluster.node(1).client(), "minority", 1).await;
    let group = cluster.groups(1, "minority")[FIRST_SHARD];
    let leader = cluster.wait_leader(group).await;
    let writers = writers(&cluster, "minority");
    wait_for_acks(&all(&writers), 30, "writes before the partition").await;

    cluster.isolate(leader);
    let majority = except(&writers, leader);
    wait_for_acks(&majority, 30, "the majority side to accept writes again").await;
    let isolated = &writers.iter().find(|(id, _)| *id == leader).unwrap().1;
    let acked_while_cut_off = isolated.acked();
    let failed = isolated.failed();
    // Wait out at least one full write attempt through the isolated node: it must fail.
    eventually("a write through the isolated node to fail", || {
        isolated.failed() > failed
    })
    .await;
    wait_for_acks(&majority, 30, "more writes on the majority side").await;
    assert_eq!(
        isolated.acked(),
        acked_while_cut_off,
        "a node without a majority acknowledged a write"
    );
    let majority_leaders: std::collections::BTreeSet<Option<u64>> = cluster
        .running()
        .filter(|n| n.id != leader)
        .map(|n| n.node().raft().group(group).and_then(|g| g.leader()))
        .collect();
    assert!(
        !majority_leaders.contains(&Some(leader)) || majority_leaders.len() > 1,
        "the majority side still follows the isolated leader"
    );

    cluster.heal();
    wait_for_acks(&[isolated], 10, "writes through the healed node").await;
    let history = finish(writers).await;
    verify_everywhere(&cluster, "minority", &history).await;
}

async fn every_writer_fails_once_more(writers: &[(u64, Writer)]) {
    let failed: Vec<usize> = all(writers).iter().map(|w| w.failed()).collect();
    eventually("every writer to see one more failure", || {
        all(writers)
            .iter()
            .zip(&failed)
            .all(|(w, f)| w.failed() > *f)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_majority_nothing_is_acknowledged() {
    let cluster = TestCluster::start(Options::default()).await;
    create_stream(&cluster.node(1).client(), "nomajority", 1).await;
    let writers = writers(&cluster, "nomajority");
    wait_for_acks(&all(&writers), 30, "writes before the partition").await;

    // Every node alone.
    for id in 1..=3 {
        cluster.isolate(id);
    }
    // A request in flight when the partition came may still have been committed; once every
    // writer has seen a failure, every later one started inside the partition.
    every_writer_fails_once_more(&writers).await;
    let acked: Vec<usize> = all(&writers).iter().map(|w| w.acked()).collect();
    every_writer_fails_once_more(&writers).await;
    let acked_after: Vec<usize> = all(&writers).iter().map(|w| w.acked()).collect();
    assert_eq!(
        acked_after, acked,
        "a write was acknowledged without a majority"
    );

    cluster.heal();
    wait_for_acks(&all(&writers), 30, "writes after healing").await;
    let history = finish(writers).await;
    verify_everywhere(&cluster, "nomajority", &history).await;
}

/// A shard's log is its record store, purged only by retention, and its snapshot sits at the
/// retention cut. A replica that was down while retention cut the log past everything it had gets
/// the snapshot at the cut and the rest by replication: no gap, and nothing the cut removed
/// elsewhere comes back from its own old log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_down_across_a_retention_cut_catches_up_without_gap_or_resurrection() {
    // Also the one test with heartbeats sent one call each rather than batched.
    let mut cluster = TestCluster::start(Options {
        snapshot_every: 20,
        logs_kept: 5,
        heartbeat_batch_ms: 0,
        ..Options::default()
    })
    .await;
    create_stream(&cluster.node(1).client(), "snap", 1).await;
    let group = cluster.groups(1, "snap")[FIRST_SHARD];
    let behind = 3;

    // Records node 3 holds in its log when it goes down; retention removes them while it is.
    let before_crash = writers_tagged(&cluster, "snap", "before");
    wait_for_acks(&all(&before_crash), 50, "writes before the crash").await;
    let expired_before_crash = finish(before_crash).await;
    let index_at_crash = cluster
        .node(behind)
        .node()
        .raft()
        .group(group)
        .expect("node 3 hosts the shard")
        .applied_index();
    cluster.crash(behind).await;

    let while_down = writers_tagged(&cluster, "snap", "down");
    wait_for_acks(&all(&while_down), 200, "writes while node 3 is down").await;
    let expired_while_down = finish(while_down).await;
    let leader = cluster.wait_leader(group).await;
    let leader_group = cluster.node(leader).node().raft().group(group).unwrap();
    let last_arrival = leader_group.shard().unwrap().last_arrival_ms();
    let trimmed = leader_group
        .write(kinesin_raft::Command::Trim {
            before_ms: last_arrival + 1,
        })
        .await
        .expect("retention's trim");
    assert!(
        matches!(trimmed, kinesin_raft::Response::Trimmed { .. }),
        "{trimmed:?}"
    );

    let after = writers_tagged(&cluster, "snap", "after");
    wait_for_acks(&all(&after), 100, "writes after the cut").await;
    eventually(
        "the leader to purge its log past node 3's last entry",
        || {
            cluster.leader_of(group).is_some_and(|leader| {
                cluster
                    .node(leader)
                    .node()
                    .raft()
                    .group(group)
                    .and_then(|g| g.purged_index())
                    .is_some_and(|purged| purged > index_at_crash)
            })
        },
    )
    .await;
    cluster.restart(behind).await;
    let mut history = finish(after).await;
    // Writes of unknown outcome from before the cut may still surface; acknowledged ones may not.
    history.unknown.extend(expired_before_crash.unknown);
    history.unknown.extend(expired_while_down.unknown);
    verify_everywhere(&cluster, "snap", &history).await;
    let replica = cluster.node(behind).node().raft().group(group).unwrap();
    let snapshot = replica.snapshot_index().expect("node 3 holds a snapshot");
    assert!(
        snapshot > index_at_crash,
        "snapshot at {snapshot}, crashed at {index_at_crash}"
    );
    assert_eq!(
        replica.shard().unwrap().trim_position(),
        leader_group.shard().unwrap().trim_position(),
        "the same retention cut on the replica as on the leader"
    );
}

/// A shard's log entries are whole PutRecords batches, megabytes each. A replica that was down
/// while many were written gets every one of them back, in order, by log replication, which
/// sends them in calls of a bounded size (`REPLICATION_BYTES_PER_CALL`) rather than openraft's
/// 300 entries per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_far_behind_on_large_entries_catches_up() {
    let mut cluster = TestCluster::start(Options {
        unlimited_writes: true,
        ..Options::default()
    })
    .await;
    create_stream(&cluster.node(1).client(), "big", 1).await;
    let group = cluster.groups(1, "big")[FIRST_SHARD];
    let behind = 3;
    cluster.crash(behind).await;

    let leader = cluster.wait_leader(group).await;
    let leader_group = cluster.node(leader).node().raft().group(group).unwrap();
    let entries = 96u8;
    for entry in 0..entries {
        let record = kinesin_raft::NewRecord::plain(format!("pk-{entry}"), vec![entry; 1 << 20]);
        let written = leader_group
            .write(kinesin_raft::Command::Put {
                arrival_ms: 1,
                records: vec![record],
            })
            .await
            .expect("a write with two of three replicas up");
        assert!(
            matches!(written, kinesin_raft::Response::Put { .. }),
            "{written:?}"
        );
    }
    let committed = leader_group.applied_index();

    cluster.restart(behind).await;
    eventually(
        "node 3 to apply every entry written while it was down",
        || {
            cluster
                .node(behind)
                .node()
                .raft()
                .group(group)
                .is_some_and(|g| g.applied_index() >= committed)
        },
    )
    .await;
    let replica = cluster.node(behind).node().raft().group(group).unwrap();
    let records = replica.shard().unwrap().read(0, 1_000, usize::MAX).unwrap();
    assert_eq!(records.len(), usize::from(entries));
    for (entry, record) in records.iter().enumerate() {
        assert_eq!(record.partition_key, format!("pk-{entry}"));
        assert!(
            record.data.len() == 1 << 20 && record.data.iter().all(|&b| usize::from(b) == entry)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_replaced_and_replication_restored() {
    let mut cluster = TestCluster::start(Options {
        nodes: 4,
        replication_factor: 3,
        dead_node_secs: 2,
        ..Options::default()
    })
    .await;
    create_stream(&cluster.node(1).client(), "replace", 4).await;
    let writers = writers(&cluster, "replace");
    wait_for_acks(&all(&writers), 50, "writes before the crash").await;

    // Three of the four nodes vote in the controller group; the fourth follows it as a learner
    // and still knows every stream.
    let controller_group = cluster.node(1).node().controller().group().unwrap();
    assert_eq!(controller_group.voters(), [1, 2, 3].into());
    eventually("node 4 to learn the stream", || {
        cluster.node(4).node().controller().state().streams.len() == 1
    })
    .await;

    let dead = 2;
    cluster.crash(dead).await;
    let controller = cluster.node(1).node().controller().clone();
    eventually("the dead node's replicas to move", || {
        let state = controller.state();
        state.nodes.get(&dead).is_some_and(|n| n.is_down())
            && state
                .streams
                .values()
                .flat_map(|s| &s.shards)
                .all(|s| !s.replicas.contains(&dead) && s.replicas.len() == 3)
    })
    .await;
    // Each shard's leader adds the new replica (after it caught up) and removes the dead one.
    let shards: Vec<(u64, Vec<u64>)> = controller
        .state()
        .streams
        .values()
        .flat_map(|s| &s.shards)
        .map(|s| (s.group, s.replicas.clone()))
        .collect();
    eventually("every group's voters to match its new replicas", || {
        shards.iter().all(|(group, replicas)| {
            let wanted: std::collections::BTreeSet<u64> = replicas.iter().copied().collect();
            cluster
                .running()
                .filter(|n| wanted.contains(&n.id))
                .all(|n| {
                    n.node()
                        .raft()
                        .group(*group)
                        .is_some_and(|g| g.voters() == wanted)
                })
        })
    })
    .await;
    wait_for_acks(&except(&writers, dead), 50, "writes after the replacement").await;

    // The dead node comes back: it gives up the replicas it no longer holds, and its gateway
    // serves every shard by asking nodes that do.
    cluster.restart(dead).await;
    eventually("the returning node to drop its old replicas", || {
        cluster.node(dead).node().raft().group_ids() == vec![0]
    })
    .await;
    let history = finish(writers).await;
    verify_everywhere(&cluster, "replace", &history).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderships_spread_over_the_nodes_and_return_after_a_restart() {
    let mut cluster = TestCluster::start(Options::default()).await;
    create_stream(&cluster.node(1).client(), "spread", 6).await;
    let groups: Vec<u64> = cluster.groups(1, "spread").into_values().collect();
    let spread = |cluster: &TestCluster| {
        let mut led = std::collections::BTreeMap::new();
        for &group in &groups {
            if let Some(leader) = cluster.leader_of(group) {
                *led.entry(leader).or_insert(0) += 1;
            }
        }
        led
    };
    let even: std::collections::BTreeMap<u64, i32> = [(1, 2), (2, 2), (3, 2)].into();
    eventually("each node to lead two of the six shards", || {
        spread(&cluster) == even
    })
    .await;

    // Node 3's shards fail over to the others, and come back once it is up again.
    cluster.crash(3).await;
    eventually("the survivors to lead every shard", || {
        spread(&cluster).values().sum::<i32>() == 6
    })
    .await;
    cluster.restart(3).await;
    eventually("node 3 to lead its two shards again", || {
        spread(&cluster) == even
    })
    .await;
}
