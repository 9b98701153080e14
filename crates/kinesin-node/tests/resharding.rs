//! Resharding and ownership moves on real in-process nodes, under writers: split, merge and
//! UpdateShardCount; a crash between a parent's seal and its children's activation; the
//! controller's leader lost mid-procedure; a drain with a partition in the middle.

mod testkit;

use std::sync::atomic::Ordering;

use aws_sdk_kinesis::types::ScalingType;
use kinesin_controller::{Command, StreamKey};
use testkit::*;

const STREAM: &str = "resharded";

fn key() -> StreamKey {
    StreamKey {
        account: "000000000000".into(),
        region: "us-east-1".into(),
        name: STREAM.into(),
    }
}

fn writers(cluster: &TestCluster, nodes: &[u64]) -> Vec<(u64, Writer)> {
    nodes
        .iter()
        .map(|&id| {
            let writer = Writer::start(cluster.node(id).client(), STREAM, &format!("w{id}"));
            (id, writer)
        })
        .collect()
}

async fn finish(writers: Vec<(u64, Writer)>) -> History {
    let mut history = History::default();
    for (_, writer) in writers {
        history.merge(writer.finish().await);
    }
    history
}

async fn more_acks(writers: &[(u64, Writer)], from: &[u64], what: &str) {
    let chosen: Vec<&Writer> = writers
        .iter()
        .filter(|(id, _)| from.contains(id))
        .map(|(_, w)| w)
        .collect();
    wait_for_acks(&chosen, 30, what).await;
}

/// The open shards of the stream as node `via` sees them: sorted hash ranges, which must cover
/// 0..=2^128-1 with no gap and no overlap.
fn assert_open_shards_partition(cluster: &TestCluster, via: u64, count: usize) {
    let state = cluster.node(via).node().controller().state();
    let stream = state.stream(&key()).expect("stream");
    let mut ranges: Vec<_> = stream.open_shards().map(|s| s.hash_range).collect();
    ranges.sort();
    assert_eq!(ranges.len(), count, "open shards: {ranges:?}");
    assert_eq!(ranges.first().map(|r| r.start), Some(0));
    assert_eq!(ranges.last().map(|r| r.end), Some(u128::MAX));
    for pair in ranges.windows(2) {
        assert_eq!(pair[0].end + 1, pair[1].start, "gap or overlap: {ranges:?}");
    }
}

/// Whether any running replica of `shard`'s parent group has applied its seal.
fn sealed(cluster: &TestCluster, group: u64) -> bool {
    cluster.running().any(|n| {
        n.node()
            .raft()
            .group(group)
            .and_then(|g| g.shard().and_then(|v| v.sealed_at()))
            .is_some()
    })
}

fn hold_after_seal(cluster: &TestCluster, hold: bool) {
    for node in cluster.running() {
        node.node()
            .reshard_faults()
            .hold_after_seal
            .store(hold, Ordering::Release);
    }
}

fn controller_leader(cluster: &TestCluster) -> u64 {
    cluster
        .running()
        .find_map(|n| {
            n.node()
                .controller()
                .group()
                .and_then(|g| g.leader())
                .filter(|l| cluster.node(*l).is_running())
        })
        .expect("a controller leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_merge_and_update_shard_count_under_writers_lose_nothing() {
    let cluster = TestCluster::start(Options::default()).await;
    let client = cluster.node(1).client();
    create_stream(&client, STREAM, 2).await;
    let writers = writers(&cluster, &[1, 2, 3]);
    let everyone = [1, 2, 3];
    more_acks(&writers, &everyone, "writes before resharding").await;

    let first = cluster.node(1).node().controller().state().streams[&key()].shards[0].hash_range;
    client
        .split_shard()
        .stream_name(STREAM)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((first.start + (first.end - first.start) / 2).to_string())
        .send()
        .await
        .expect("SplitShard");
    wait_active(&client, STREAM).await;
    more_acks(&writers, &everyone, "writes after the split").await;
    assert_open_shards_partition(&cluster, 1, 3);

    client
        .merge_shards()
        .stream_name(STREAM)
        .shard_to_merge("shardId-000000000002")
        .adjacent_shard_to_merge("shardId-000000000003")
        .send()
        .await
        .expect("MergeShards");
    wait_active(&client, STREAM).await;
    more_acks(&writers, &everyone, "writes after the merge").await;
    assert_open_shards_partition(&cluster, 2, 2);

    for target in [4, 2] {
        client
            .update_shard_count()
            .stream_name(STREAM)
            .target_shard_count(target)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .expect("UpdateShardCount");
        wait_active(&client, STREAM).await;
        more_acks(&writers, &everyone, "writes after UpdateShardCount").await;
        assert_open_shards_partition(&cluster, 3, target as usize);
    }

    let failures: Vec<(u64, usize)> = writers.iter().map(|(id, w)| (*id, w.failed())).collect();
    let history = finish(writers).await;
    assert!(
        failures.iter().all(|(_, failed)| *failed == 0),
        "writers saw errors during resharding: {failures:?}"
    );
    cluster.wait_converged(STREAM).await;
    for node in 1..=3 {
        verify(&cluster.node(node).client(), STREAM, &history).await;
    }
    verify_key_order(&history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_of_the_parents_leader_between_seal_and_activation_loses_nothing() {
    let mut cluster = TestCluster::start(Options::default()).await;
    create_stream(&cluster.node(1).client(), STREAM, 1).await;
    let writers = writers(&cluster, &[1, 2, 3]);
    more_acks(&writers, &[1, 2, 3], "writes before the split").await;
    let parent = cluster.groups(1, STREAM)["shardId-000000000000"];

    hold_after_seal(&cluster, true);
    cluster
        .node(1)
        .client()
        .split_shard()
        .stream_name(STREAM)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1000")
        .send()
        .await
        .expect("SplitShard");
    eventually("the parent sealed", || sealed(&cluster, parent)).await;
    let state = cluster.node(1).node().controller().state();
    assert!(
        state.streams[&key()].shards[0].is_open(),
        "the seal must not be reported while the fault holds it"
    );
    let leader = cluster.wait_leader(parent).await;
    cluster.crash(leader).await;
    hold_after_seal(&cluster, false);

    let survivors: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let via = cluster.node(survivors[0]).client();
    wait_active(&via, STREAM).await;
    more_acks(&writers, &survivors, "writes to the children").await;
    assert_open_shards_partition(&cluster, survivors[0], 2);
    cluster.restart(leader).await;
    more_acks(&writers, &[leader], "writes through the restarted node").await;

    let history = finish(writers).await;
    cluster.wait_converged(STREAM).await;
    verify(&cluster.node(leader).client(), STREAM, &history).await;
    verify(&via, STREAM, &history).await;
    verify_key_order(&history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_controller_leader_finishes_a_procedure_exactly_once() {
    let mut cluster = TestCluster::start(Options::default()).await;
    create_stream(&cluster.node(1).client(), STREAM, 2).await;
    let writers = writers(&cluster, &[1, 2, 3]);
    more_acks(&writers, &[1, 2, 3], "writes before the update").await;
    let parents: Vec<u64> = cluster.groups(1, STREAM).into_values().collect();

    hold_after_seal(&cluster, true);
    cluster
        .node(1)
        .client()
        .update_shard_count()
        .stream_name(STREAM)
        .target_shard_count(4)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .expect("UpdateShardCount");
    eventually("both parents sealed", || {
        parents.iter().all(|&group| sealed(&cluster, group))
    })
    .await;
    let leader = controller_leader(&cluster);
    cluster.crash(leader).await;
    hold_after_seal(&cluster, false);

    let survivor = (1..=3).find(|&id| id != leader).unwrap_or(1);
    wait_active(&cluster.node(survivor).client(), STREAM).await;
    assert_open_shards_partition(&cluster, survivor, 4);
    let state = cluster.node(survivor).node().controller().state();
    let stream = &state.streams[&key()];
    assert_eq!(
        stream.shards.len(),
        6,
        "two parents and four children, none twice"
    );
    assert_eq!(stream.next_shard_index, 6);
    cluster.restart(leader).await;
    more_acks(&writers, &[1, 2, 3], "writes after the update").await;

    let history = finish(writers).await;
    cluster.wait_converged(STREAM).await;
    verify(&cluster.node(survivor).client(), STREAM, &history).await;
    verify_key_order(&history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_with_a_partition_in_the_middle_moves_every_replica() {
    let cluster = TestCluster::start(Options {
        nodes: 4,
        ..Options::default()
    })
    .await;
    create_stream(&cluster.node(1).client(), STREAM, 4).await;
    let writers = writers(&cluster, &[1, 2, 3]);
    more_acks(&writers, &[1, 2, 3], "writes before the drain").await;
    let controller = cluster.node(1).node().controller().clone();
    let held = |node| controller.state().held_replicas(node);
    assert!(held(4) > 0);

    controller
        .propose(&Command::DrainNode { node: 4 })
        .await
        .expect("DrainNode");
    // The draining node is cut off while its replicas move, then comes back.
    cluster.isolate(4);
    more_acks(
        &writers,
        &[1, 2, 3],
        "writes while the draining node is cut off",
    )
    .await;
    cluster.heal();
    eventually("node 4 to hold no replicas", || held(4) == 0).await;
    eventually("no group to count node 4", || {
        cluster.running().filter(|n| n.id != 4).all(|n| {
            n.node()
                .raft()
                .group_ids()
                .into_iter()
                .filter(|&g| g != 0)
                .filter_map(|g| n.node().raft().group(g))
                .all(|g| !g.voters().contains(&4))
        })
    })
    .await;
    eventually("node 4 to drop its shard groups", || {
        cluster.node(4).node().raft().group_ids() == vec![0]
    })
    .await;
    controller
        .propose(&Command::RemoveNode { node: 4 })
        .await
        .expect("RemoveNode");
    // The removed node sends clients elsewhere at once.
    eventually("node 4 to learn of its removal", || {
        !cluster
            .node(4)
            .node()
            .controller()
            .state()
            .nodes
            .contains_key(&4)
    })
    .await;
    let refused = cluster
        .node(4)
        .client()
        .describe_stream_summary()
        .stream_name(STREAM)
        .send()
        .await
        .expect_err("a removed node serves nothing");
    assert_eq!(
        refused.as_service_error().and_then(|e| e.meta().code()),
        Some("ServiceUnavailableException"),
        "{refused:?}"
    );
    more_acks(&writers, &[1, 2, 3], "writes after the drain").await;

    let history = finish(writers).await;
    for node in 1..=3 {
        verify(&cluster.node(node).client(), STREAM, &history).await;
    }
}
