//! The node's clock is a seam (`ServerConfig::clock`): every part of a node reads the wall clock
//! through it. With a clock the test moves, records carry its time and retention follows it,
//! without waiting a day or faking the process's clock.

mod testkit;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use kinesin_node::clock::ManualClock;
use testkit::{create_stream, get_records, read_all, Options, TestCluster};
use tokio::time::Instant;

const HOUR_MS: u64 = 3600 * 1000;
/// 2026-01-01T00:00:00Z.
const START_MS: u64 = 1_767_225_600_000;

async fn put(client: &Client, data: &str) {
    client
        .put_record()
        .stream_name("clocked")
        .partition_key("k")
        .data(Blob::new(data.as_bytes().to_vec()))
        .send()
        .await
        .expect("PutRecord");
}

/// (data, arrival ms) of every record of the stream's only shard.
async fn arrivals(client: &Client) -> Vec<(String, i64)> {
    let iterator = client
        .get_shard_iterator()
        .stream_name("clocked")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("GetShardIterator")
        .shard_iterator()
        .map(str::to_string)
        .expect("an iterator");
    let out = get_records(client, &iterator).await;
    out.records()
        .iter()
        .map(|r| {
            let at = r.approximate_arrival_timestamp().expect("arrival time");
            (
                String::from_utf8_lossy(r.data().as_ref()).into_owned(),
                at.to_millis().expect("in range"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_the_node_clocks_time_and_retention_follows_it() {
    let clock = Arc::new(ManualClock::new(START_MS));
    let cluster = TestCluster::start(Options {
        clock: Some(clock.clone()),
        retention_check_secs: 1,
        ..Options::default()
    })
    .await;
    let client = cluster.node(1).client();
    create_stream(&client, "clocked", 1).await;
    for i in 0..3 {
        put(&client, &format!("old-{i}")).await;
    }
    let start = START_MS as i64;
    assert_eq!(
        arrivals(&client).await,
        (0..3)
            .map(|i| (format!("old-{i}"), start))
            .collect::<Vec<_>>()
    );

    // A day and an hour later the old records are past the 24-hour retention period.
    clock.advance(25 * HOUR_MS);
    put(&client, "new").await;
    let later = start + 25 * HOUR_MS as i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = arrivals(&client).await;
        if left == vec![("new".to_string(), later)] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "records past retention are still there: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every replica trimmed at the same position: each node reads the same.
    for node in cluster.running() {
        let all = read_all(&node.client(), "clocked").await;
        let data: Vec<&[u8]> = all.values().flatten().map(|(_, d)| d.as_slice()).collect();
        assert_eq!(data, vec![b"new".as_slice()], "node {}", node.id);
    }
}
