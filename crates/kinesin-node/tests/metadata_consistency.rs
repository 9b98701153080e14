//! Stream metadata seen through any node is as of now, not as of the last time that node heard from
//! the controller (both found by the jepsen/ harness: a lagging node answered "not found" for a
//! stream created through another, and a restarted node reopened the groups of a deleted stream);
//! a change whose answer was lost on its way back is made once and answered.

mod testkit;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use kinesin_raft::{MessageKind, Outgoing};
use testkit::{create_stream, eventually, wait_active, Options, TestCluster};

/// A node other than the controller's leader (so cutting it off leaves the controller working).
fn a_controller_follower(cluster: &TestCluster) -> u64 {
    let leader = cluster
        .node(1)
        .node()
        .controller()
        .group()
        .and_then(|g| g.leader());
    cluster
        .running()
        .map(|n| n.id)
        .find(|&id| Some(id) != leader)
        .expect("a node that does not lead the controller")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_node_never_answers_not_found_for_a_stream_created_elsewhere() {
    let cluster = TestCluster::start(Options::default()).await;
    create_stream(&cluster.node(1).client(), "warmup", 1).await;
    let lagging = a_controller_follower(&cluster);
    let creator = cluster
        .running()
        .map(|n| n.id)
        .find(|&id| id != lagging)
        .unwrap();

    cluster.isolate(lagging);
    create_stream(&cluster.node(creator).client(), "fresh", 1).await;
    // The cut-off node cannot know whether its copy of the cluster state is current, so it must
    // not claim the stream does not exist.
    let answer = cluster
        .node(lagging)
        .client()
        .describe_stream_summary()
        .stream_name("fresh")
        .send()
        .await;
    let error = answer.expect_err("a node cut off from the controller answered as if current");
    assert_eq!(
        error.code(),
        Some("ServiceUnavailableException"),
        "{error:?}"
    );

    cluster.heal();
    // At once after healing: the node catches up before it answers.
    let summary = cluster
        .node(lagging)
        .client()
        .describe_stream_summary()
        .stream_name("fresh")
        .send()
        .await
        .expect("DescribeStreamSummary through the healed node");
    assert_eq!(
        summary
            .stream_description_summary()
            .map(|s| s.stream_name()),
        Some("fresh")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_after_a_stream_was_deleted_does_not_reopen_its_groups() {
    let mut cluster = TestCluster::start(Options::default()).await;
    create_stream(&cluster.node(1).client(), "doomed", 1).await;
    let group = cluster.groups(1, "doomed")["shardId-000000000000"];
    let away = a_controller_follower(&cluster);
    let other = cluster
        .running()
        .map(|n| n.id)
        .find(|&id| id != away)
        .unwrap();
    assert!(cluster.node(away).node().raft().group(group).is_some());

    cluster.crash(away).await;
    cluster
        .node(other)
        .client()
        .delete_stream()
        .stream_name("doomed")
        .send()
        .await
        .expect("DeleteStream");
    eventually("the stream to be removed from the cluster state", || {
        cluster
            .node(other)
            .node()
            .controller()
            .state()
            .streams
            .values()
            .all(|s| s.key.name != "doomed")
    })
    .await;

    cluster.restart(away).await;
    assert!(
        cluster.node(away).node().raft().group(group).is_none(),
        "the restarted node reopened group {group} of a stream deleted while it was down"
    );
}

/// A CreateStream forwarded to the controller's leader whose answer was lost twice (the
/// connection closed after the leader took it) is asked again, made once and answered: not
/// InternalFailure ("the outcome is unknown"), and not ResourceInUse from its own second attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_change_whose_answer_was_lost_is_asked_again_and_made_once() {
    let cluster = TestCluster::start(Options::default()).await;
    create_stream(&cluster.node(1).client(), "warmup", 1).await;
    let follower = a_controller_follower(&cluster);
    let node = cluster.node(follower).node();
    let groups_before = node.controller().state().next_group;
    let lost = Arc::new(AtomicUsize::new(0));
    let counted = lost.clone();
    node.raft()
        .network_faults()
        .lose_answers(move |message: &Outgoing<'_>| {
            message.group == 0
                && message.kind == MessageKind::Propose
                && counted.fetch_add(1, Ordering::SeqCst) < 2
        });

    let client = cluster.node(follower).client();
    client
        .create_stream()
        .stream_name("once")
        .shard_count(2)
        .send()
        .await
        .expect("CreateStream answered although its first two answers were lost");
    assert!(
        lost.load(Ordering::SeqCst) >= 3,
        "two answers lost, the third heard"
    );
    cluster.heal();
    wait_active(&client, "once").await;
    let state = node.controller().state();
    assert_eq!(
        state.next_group,
        groups_before + 2,
        "the stream's two groups allocated once"
    );
    let streams = client
        .list_streams()
        .send()
        .await
        .expect("ListStreams")
        .stream_names()
        .to_vec();
    assert_eq!(streams, ["once", "warmup"]);
}
