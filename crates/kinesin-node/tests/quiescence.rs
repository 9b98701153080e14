//! Quiet shards (kinesin-raft's quiesce.rs) on an in-process cluster: an idle shard stops
//! ticking and heartbeating on every replica, takes a write at once, serves reads from every
//! node, gets a new leader when its leader's node is cut off or mute (node liveness, not
//! heartbeats, tells) but keeps a deaf one that still leads, and a follower restarted meanwhile
//! learns its leader without an election.

mod testkit;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::Client;
use kinesin_raft::{MessageKind, NodeStats};
use testkit::{create_stream, eventually, read_all, Options, TestCluster};

const SHARD: &str = "shardId-000000000000";

async fn put(client: &Client, stream: &str, data: &str) {
    client
        .put_record()
        .stream_name(stream)
        .partition_key("k")
        .data(Blob::new(data.as_bytes()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutRecord {data}: {e:?}"));
}

/// The data of every record of the one-shard `stream`, read through `client`.
async fn records(client: &Client, stream: &str) -> Vec<String> {
    read_all(client, stream)
        .await
        .remove(SHARD)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, data)| String::from_utf8_lossy(&data).into_owned())
        .collect()
}

/// Puts `data` into the one-shard `stream` made by [`quiet_stream`] and reads both of its records
/// back through the same node.
async fn put_and_read_back(client: &Client, stream: &str, data: &str) {
    put(client, stream, data).await;
    assert_eq!(records(client, stream).await, ["first", data]);
}

/// Whether every running replica of `group` is quiet.
fn quiet_everywhere(cluster: &TestCluster, group: u64) -> bool {
    cluster
        .running()
        .all(|n| n.node().raft().group(group).is_some_and(|g| g.is_quiet()))
}

/// The terms the running replicas of `group` are in.
fn terms(cluster: &TestCluster, group: u64) -> BTreeSet<u64> {
    cluster
        .running()
        .filter_map(|n| n.node().raft().group(group))
        .map(|g| g.term())
        .collect()
}

/// The sum over the running nodes of one of their `NodeStats` counters.
fn counted(cluster: &TestCluster, counter: fn(&NodeStats) -> &AtomicU64) -> u64 {
    cluster
        .running()
        .map(|n| counter(n.node().raft().node_stats()).load(Ordering::Relaxed))
        .sum()
}

/// Elections seen by the running nodes, from their term-change counters.
fn term_changes(cluster: &TestCluster) -> u64 {
    counted(cluster, |stats| &stats.term_changes)
}

/// A one-shard stream with one record, quiet on every replica; its group.
async fn quiet_stream(cluster: &TestCluster, stream: &str) -> u64 {
    let client = cluster.node(1).client();
    create_stream(&client, stream, 1).await;
    put(&client, stream, "first").await;
    let group = cluster.groups(1, stream)[SHARD];
    eventually("the idle shard to go quiet on every replica", || {
        quiet_everywhere(cluster, group)
    })
    .await;
    group
}

/// Writes the running nodes' leaders had refused for a lapsed lease.
fn lease_refusals(cluster: &TestCluster) -> u64 {
    counted(cluster, |stats| &stats.lease_refusals)
}

/// A quiet leader's lease lapsed long ago, and openraft refuses writes from a leader without
/// one: the write was redirected to the other replicas and retried with backoff until the
/// resumed heartbeats renewed it (40–80 ms instead of a round trip). The leader now renews its
/// lease before the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_quiet_shard_is_taken_by_its_leader_without_a_redirect() {
    let cluster = TestCluster::start(Options::default()).await;
    let group = quiet_stream(&cluster, "lease").await;
    let leader = cluster.wait_leader(group).await;
    let quiet_leader = cluster.node(leader).node().raft().group(group).unwrap();
    eventually("the quiet leader's lease to lapse", || {
        quiet_leader
            .since_quorum_ack()
            .is_none_or(|age| age > quiet_leader.lease())
    })
    .await;
    let refused = lease_refusals(&cluster);
    put(&cluster.node(leader).client(), "lease", "woken").await;
    assert_eq!(
        lease_refusals(&cluster),
        refused,
        "the woken leader refused the write"
    );
    assert_eq!(
        records(&cluster.node(leader).client(), "lease").await,
        ["first", "woken"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_shard_goes_quiet_takes_a_write_at_once_and_serves_reads_everywhere() {
    let cluster = TestCluster::start(Options::default()).await;
    let group = quiet_stream(&cluster, "idle").await;
    let leader = cluster.wait_leader(group).await;
    let before = terms(&cluster, group);
    assert_eq!(before.len(), 1, "replicas in different terms: {before:?}");

    // An observation window, not a wait for a condition: nothing may happen in it.
    let changes = term_changes(&cluster);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(term_changes(&cluster), changes, "an election while idle");
    assert!(
        quiet_everywhere(&cluster, group),
        "woke up with nothing to do"
    );

    for node in 1..=3 {
        put(
            &cluster.node(node).client(),
            "idle",
            &format!("woken via {node}"),
        )
        .await;
    }
    for node in 1..=3 {
        assert_eq!(
            records(&cluster.node(node).client(), "idle").await,
            ["first", "woken via 1", "woken via 2", "woken via 3"],
            "read through node {node}"
        );
    }
    eventually("the shard to go quiet again", || {
        quiet_everywhere(&cluster, group)
    })
    .await;
    assert_eq!(terms(&cluster, group), before, "waking made an election");
    assert_eq!(cluster.leader_of(group), Some(leader));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_shard_whose_leader_is_cut_off_gets_a_new_leader_and_the_old_one_learns_it() {
    let cluster = TestCluster::start(Options::default()).await;
    let group = quiet_stream(&cluster, "cut").await;
    let leader = cluster.wait_leader(group).await;
    cluster.isolate(leader);
    replaced_then_followed(&cluster, "cut", group, leader).await;
}

/// With `leader`'s traffic cut somehow: the other replicas of the quiet one-shard `stream` agree
/// on another leader and take a write; after healing, `leader` follows the new one and reads it.
async fn replaced_then_followed(cluster: &TestCluster, stream: &str, group: u64, leader: u64) {
    let others: Vec<u64> = (1..=3).filter(|&n| n != leader).collect();
    let mut successor = None;
    eventually("the others to elect another leader", || {
        let views: BTreeSet<Option<u64>> = others
            .iter()
            .filter_map(|&n| cluster.node(n).node().raft().group(group))
            .map(|g| g.leader())
            .collect();
        successor = match views.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(l)] if *l != leader => Some(*l),
            _ => None,
        };
        successor.is_some()
    })
    .await;
    put(&cluster.node(others[0]).client(), stream, "after the cut").await;
    cluster.heal();
    eventually("the old leader to follow the new one", || {
        cluster.leader_of(group) == successor
    })
    .await;
    assert_eq!(
        records(&cluster.node(leader).client(), stream).await,
        ["first", "after the cut"]
    );
}

/// A mute leader: whatever it sends is lost, but it hears its followers and answers their pings.
/// The followers of its quiet shard tick no election timer, so only node liveness can tell them:
/// they must stop counting it live (its own pings no longer arrive) and elect another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_shards_mute_leader_is_replaced() {
    let cluster = TestCluster::start(Options::default()).await;
    let group = quiet_stream(&cluster, "mute").await;
    let leader = cluster.wait_leader(group).await;
    for other in (1..=3).filter(|&n| n != leader) {
        cluster.drop_traffic(leader, other);
    }
    replaced_then_followed(&cluster, "mute", group, leader).await;
}

/// A deaf leader: what its followers send it is lost, but its own messages arrive (and their
/// answers return). It can still lead: no election, and it takes writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_shards_deaf_leader_keeps_leading_without_an_election() {
    let cluster = TestCluster::start(Options::default()).await;
    let group = quiet_stream(&cluster, "deaf").await;
    let leader = cluster.wait_leader(group).await;
    let before = terms(&cluster, group);
    for other in (1..=3).filter(|&n| n != leader) {
        cluster.drop_traffic(other, leader);
    }
    // An observation window, not a wait for a condition: nothing may happen in it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        terms(&cluster, group),
        before,
        "an election against a leader that leads"
    );
    put(&cluster.node(leader).client(), "deaf", "while deaf").await;
    assert_eq!(cluster.leader_of(group), Some(leader));
    cluster.heal();
    assert_eq!(
        records(&cluster.node(leader).client(), "deaf").await,
        ["first", "while deaf"]
    );
    assert_eq!(terms(&cluster, group), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_restarted_while_its_shard_is_quiet_learns_the_leader_without_an_election() {
    let mut cluster = TestCluster::start(Options::default()).await;
    let group = quiet_stream(&cluster, "back").await;
    let leader = cluster.wait_leader(group).await;
    let before = terms(&cluster, group);
    let follower = (1..=3).find(|&n| n != leader).unwrap_or(1);

    cluster.crash(follower).await;
    cluster.restart(follower).await;
    eventually("the restarted follower to know its leader", || {
        cluster
            .node(follower)
            .node()
            .raft()
            .group(group)
            .is_some_and(|g| g.leader() == Some(leader))
    })
    .await;
    eventually("the shard to go quiet again", || {
        quiet_everywhere(&cluster, group)
    })
    .await;
    assert_eq!(
        terms(&cluster, group),
        before,
        "the restart made an election"
    );
    put_and_read_back(
        &cluster.node(follower).client(),
        "back",
        "after the restart",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_of_a_quiet_shard_is_replaced_without_waiting_for_a_timeout_to_tick() {
    let mut cluster = TestCluster::start(Options::default()).await;
    let group = quiet_stream(&cluster, "gone").await;
    let leader = cluster.wait_leader(group).await;
    cluster.crash(leader).await;
    let successor = cluster.wait_leader(group).await;
    assert_ne!(successor, leader);
    put_and_read_back(&cluster.node(successor).client(), "gone", "after the crash").await;
}

/// A leadership transfer stops the leader's heartbeats; when no member hears of it, they must
/// still elect. Quiet, they never would: the leader wakes them first (a drain of
/// 150 quiet shards in a jepsen run left 14 of them leaderless for minutes before it did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_shard_whose_leadership_transfer_is_lost_still_gets_a_leader() {
    let cluster = TestCluster::start(Options::default()).await;
    let group = quiet_stream(&cluster, "handover").await;
    let leader = cluster.wait_leader(group).await;
    let before = terms(&cluster, group);
    let others: Vec<u64> = (1..=3).filter(|&n| n != leader).collect();
    let target = others[0];
    // openraft tells every voter of a transfer, which woke them; here none hears of it.
    for &other in &others {
        cluster.drop_kinds(leader, other, &[MessageKind::TransferLeader]);
    }
    let handle = cluster
        .node(leader)
        .node()
        .raft()
        .group(group)
        .expect("the leader hosts the group");
    handle
        .transfer_leader(target)
        .await
        .expect("the transfer starts");
    eventually("an election after the lost transfer", || {
        cluster.leader_of(group).is_some() && terms(&cluster, group) != before
    })
    .await;
    cluster.heal();
    put(
        &cluster.node(target).client(),
        "handover",
        "after the handover",
    )
    .await;
}
