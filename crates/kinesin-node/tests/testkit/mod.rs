//! The in-process cluster test kit: N real nodes (real RocksDB directories, real sockets, the real
//! gateway driven by `aws-sdk-kinesis`) in one test, with network faults between chosen nodes and
//! crash / restart of a node.
//!
//! Each node runs on its own tokio runtime, so a crash drops every task of that node at once —
//! connections, Raft groups, half-done requests — the way a killed process would, and a restart
//! opens the same data directory again. What an in-process crash cannot do is lose the page cache;
//! the process tests (`tests/python/test_durability.py`, `test_cluster*.py`) `kill -9` real
//! processes for that.
//!
//! Network faults act on a node's outgoing cluster traffic (`NetworkFaults`): a partition blocks
//! both directions between two sides. Faults are cleared when a node restarts.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;
use kinesin_node::clock::ManualClock;
use kinesin_node::{Listeners, Node, ServerArgs, ServerConfig};
use kinesin_raft::{DropKinds, MessageKind, NetworkFaults};
use kinesin_types::SharedClock;
use tokio::time::Instant;

/// How long waits for a cluster condition may take before the test fails.
pub const CONDITION_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings shared by every node of a test cluster.
#[derive(Clone)]
pub struct Options {
    pub nodes: u64,
    pub replication_factor: u32,
    pub dead_node_secs: u64,
    pub snapshot_every: u64,
    pub logs_kept: u64,
    pub heartbeat_batch_ms: u64,
    /// Shards without Kinesis's write limits (1 MiB/s), for tests that write a lot at once.
    pub unlimited_writes: bool,
    /// The wall clock every node reads (the system's when `None`).
    pub clock: Option<Arc<ManualClock>>,
    /// How often shard leaders look for records past retention.
    pub retention_check_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 3,
            replication_factor: 3,
            dead_node_secs: 300,
            snapshot_every: 2000,
            logs_kept: 500,
            heartbeat_batch_ms: 5,
            unlimited_writes: false,
            clock: None,
            retention_check_secs: 3600,
        }
    }
}

struct Running {
    runtime: tokio::runtime::Runtime,
    node: Node,
}

pub struct TestNode {
    pub id: u64,
    pub api: SocketAddr,
    pub cluster: SocketAddr,
    config: ServerConfig,
    running: Option<Running>,
}

impl TestNode {
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The running node; panics when it is down (a test bug).
    pub fn node(&self) -> &Node {
        &self
            .running
            .as_ref()
            .unwrap_or_else(|| panic!("node {} is not running", self.id))
            .node
    }

    pub fn client(&self) -> Client {
        client(self.api)
    }
}

pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    _dir: tempfile::TempDir,
}

/// A Kinesis client for one node: no retries (every outcome is what the node answered), and a
/// bound on each call so a request to a partitioned node ends.
pub fn client(api: SocketAddr) -> Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://{api}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(15))
                .connect_timeout(Duration::from_secs(2))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

fn bind_local() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener
        .set_nonblocking(true)
        .expect("make the listener non-blocking");
    listener
}

/// Starts `config` on a fresh runtime; `listeners` are bound there (the same addresses on restart).
async fn launch(
    config: ServerConfig,
    listeners: Option<(std::net::TcpListener, std::net::TcpListener)>,
) -> Running {
    let id = config.node_id;
    try_launch(config, listeners)
        .await
        .unwrap_or_else(|e| panic!("node {id} failed to start: {e}"))
}

/// [`launch`], answering a failed start with its error.
async fn try_launch(
    config: ServerConfig,
    listeners: Option<(std::net::TcpListener, std::net::TcpListener)>,
) -> Result<Running, std::io::Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name(format!("node-{}", config.node_id))
        .build()
        .expect("node runtime");
    let started = runtime.spawn(async move {
        let listeners = match listeners {
            Some((cluster, api)) => Some(Listeners {
                cluster: tokio::net::TcpListener::from_std(cluster)?,
                api: Some(tokio::net::TcpListener::from_std(api)?),
                tls: None,
            }),
            None => None,
        };
        match listeners {
            Some(listeners) => Node::start_on(config, listeners).await,
            None => Node::start(config).await,
        }
        .map_err(|e| std::io::Error::other(e.to_string()))
    });
    let started = started.await.expect("start-up task");
    match started {
        Ok(node) => Ok(Running { runtime, node }),
        Err(e) => {
            runtime.shutdown_background();
            Err(e)
        }
    }
}

/// Polls `condition` until it holds, failing the test with `what` after [`CONDITION_TIMEOUT`].
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut condition: F) {
    let deadline = Instant::now() + CONDITION_TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestCluster {
    pub async fn start(options: Options) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let sockets: Vec<_> = (0..options.nodes)
            .map(|_| (bind_local(), bind_local()))
            .collect();
        let addr = |l: &std::net::TcpListener| l.local_addr().expect("local addr");
        let peers = sockets
            .iter()
            .enumerate()
            .map(|(i, (cluster, _))| format!("{}@{}", i + 1, addr(cluster)))
            .collect::<Vec<_>>()
            .join(",");
        let mut configs = Vec::new();
        for (i, (cluster, api)) in sockets.iter().enumerate() {
            let id = i as u64 + 1;
            let mut config = ServerArgs {
                node_id: Some(id),
                data_dir: Some(dir.path().join(format!("node{id}"))),
                listen: Some(addr(api).into()),
                cluster_listen: Some(addr(cluster)),
                peers: Some(peers.clone()),
                replication_factor: Some(options.replication_factor),
                dead_node_secs: Some(options.dead_node_secs),
                raft_snapshot_every: Some(options.snapshot_every),
                raft_logs_kept: Some(options.logs_kept),
                raft_heartbeat_batch_ms: Some(options.heartbeat_batch_ms),
                shard_write_records_per_sec: options.unlimited_writes.then_some(0),
                shard_write_bytes_per_sec: options.unlimited_writes.then_some(0),
                ..Default::default()
            }
            .resolve()
            .expect("valid test configuration");
            config.retention_check_secs = options.retention_check_secs;
            if let Some(clock) = &options.clock {
                config.clock = SharedClock::from_arc(clock.clone());
            }
            configs.push(config);
        }
        // Every node waits for a controller majority while starting, so they start together.
        let launches: Vec<_> = configs
            .iter()
            .cloned()
            .zip(sockets)
            .map(|(config, sockets)| tokio::spawn(launch(config, Some(sockets))))
            .collect();
        let mut nodes = Vec::new();
        for (config, launched) in configs.into_iter().zip(launches) {
            let running = launched.await.expect("launch task");
            nodes.push(TestNode {
                id: config.node_id,
                api: config.listen.expect("test nodes listen in plain HTTP"),
                cluster: config.cluster_listen,
                config,
                running: Some(running),
            });
        }
        TestCluster { nodes, _dir: dir }
    }

    pub fn node(&self, id: u64) -> &TestNode {
        &self.nodes[(id - 1) as usize]
    }

    pub fn running(&self) -> impl Iterator<Item = &TestNode> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// Kills node `id` abruptly: every task of it stops where it is, nothing is flushed on the
    /// way out. Returns once its storage is closed, so it can be restarted.
    pub async fn crash(&mut self, id: u64) {
        let running = self.nodes[(id - 1) as usize]
            .running
            .take()
            .unwrap_or_else(|| panic!("node {id} is not running"));
        let engine: Weak<_> = Arc::downgrade(running.node.raft().engine());
        drop(running.node);
        running.runtime.shutdown_background();
        eventually(&format!("node {id} to release its storage"), || {
            engine.strong_count() == 0
        })
        .await;
    }

    /// Starts node `id` again over its data directory.
    pub async fn restart(&mut self, id: u64) {
        let slot = &mut self.nodes[(id - 1) as usize];
        assert!(slot.running.is_none(), "node {id} is already running");
        // The crashed process's last reference to its storage is gone once `crash` returns, but
        // RocksDB may still be closing on the thread that dropped it, holding the directory's
        // lock: open again until it has let go (CI saw "lock hold by current process").
        let deadline = Instant::now() + CONDITION_TIMEOUT;
        loop {
            match try_launch(slot.config.clone(), None).await {
                Ok(running) => {
                    slot.running = Some(running);
                    return;
                }
                Err(e) if e.to_string().contains("lock hold by current process") => {
                    assert!(Instant::now() < deadline, "node {id} failed to start: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("node {id} failed to start: {e}"),
            }
        }
    }

    /// Blocks cluster traffic in both directions between every node of `a` and every node of `b`.
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        for &x in a {
            for &y in b {
                self.drop_traffic(x, y);
                self.drop_traffic(y, x);
            }
        }
    }

    /// Cuts node `id` off from every other node.
    pub fn isolate(&self, id: u64) {
        let others: Vec<u64> = self
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|&n| n != id)
            .collect();
        self.partition(&[id], &others);
    }

    /// Drops what `from` sends to `to` (one direction only).
    pub fn drop_traffic(&self, from: u64, to: u64) {
        if let Some(faults) = self.faults_of(from) {
            faults.block(&self.node(to).cluster.to_string());
        }
    }

    /// Drops the messages of `kinds` that `from` sends to `to` (one direction only).
    pub fn drop_kinds(&self, from: u64, to: u64, kinds: &[MessageKind]) {
        if let Some(faults) = self.faults_of(from) {
            faults.add(DropKinds {
                to: Some(self.node(to).cluster.to_string()),
                kinds: kinds.to_vec(),
            });
        }
    }

    /// The filters on what node `id` sends, while it runs.
    fn faults_of(&self, id: u64) -> Option<&NetworkFaults> {
        let running = self.node(id).running.as_ref()?;
        Some(running.node.raft().network_faults())
    }

    /// Removes every network fault.
    pub fn heal(&self) {
        for node in self.running() {
            node.node().raft().network_faults().heal();
        }
    }

    /// Shard id → Raft group of `stream`, from node `via`'s controller state.
    pub fn groups(&self, via: u64, stream: &str) -> BTreeMap<String, u64> {
        let state = self.node(via).node().controller().state();
        let meta = state
            .streams
            .values()
            .find(|s| s.key.name == stream)
            .unwrap_or_else(|| panic!("stream {stream} not known to node {via}"));
        meta.shards
            .iter()
            .map(|s| (s.id.to_string(), s.group))
            .collect()
    }

    /// The leader of `group` as the running nodes see it, when they agree on one that is running.
    pub fn leader_of(&self, group: u64) -> Option<u64> {
        let views: BTreeSet<Option<u64>> = self
            .running()
            .filter_map(|n| n.node().raft().group(group))
            .map(|g| g.leader())
            .collect();
        match views.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(leader)] if self.node(*leader).is_running() => Some(*leader),
            _ => None,
        }
    }

    pub async fn wait_leader(&self, group: u64) -> u64 {
        let mut leader = None;
        eventually(&format!("a leader of group {group}"), || {
            leader = self.leader_of(group);
            leader.is_some()
        })
        .await;
        leader.unwrap_or_default()
    }

    /// Waits until every running replica of `stream`'s shards has applied the same records.
    pub async fn wait_converged(&self, stream: &str) {
        let groups: Vec<u64> = self
            .groups(self.running().next().unwrap().id, stream)
            .into_values()
            .collect();
        eventually("every replica to apply the same records", || {
            groups.iter().all(|&group| {
                let positions: BTreeSet<u64> = self
                    .running()
                    .filter_map(|n| n.node().raft().group(group))
                    .filter_map(|g| g.shard().map(|view| view.next_position()))
                    .collect();
                positions.len() == 1
            })
        })
        .await;
    }
}

impl Drop for TestCluster {
    /// Stops every node and waits (briefly) until their storage is closed, so no RocksDB is still
    /// open in a background thread when the test process exits.
    fn drop(&mut self) {
        let mut engines = Vec::new();
        for node in &mut self.nodes {
            if let Some(running) = node.running.take() {
                engines.push(Arc::downgrade(running.node.raft().engine()));
                drop(running.node);
                running.runtime.shutdown_background();
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while engines.iter().any(|e| e.strong_count() > 0) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // The last reference gone, RocksDB may still be closing on the runtime thread that
        // dropped it; if the test process exits meanwhile, its static mutexes are destroyed under
        // that close and the process aborts ("pthread lock: Invalid argument", CI saw it after
        // every test of a file had passed). Opening each database here succeeds only once its
        // close has let go of it, and this thread then closes it to the end.
        for node in &self.nodes {
            let db = node.config.data_dir.join("db");
            let options = kinesin_storage::EngineOptions {
                verify_on_open: false,
                ..Default::default()
            };
            while std::time::Instant::now() < deadline {
                match kinesin_storage::Engine::open(&db, &options) {
                    Ok(engine) => {
                        drop(engine);
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }
}

pub async fn create_stream(client: &Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("CreateStream");
    wait_active(client, name).await;
}

/// Waits until `name` is ACTIVE (after CreateStream, or after a reshard's UPDATING).
pub async fn wait_active(client: &Client, name: &str) {
    let deadline = Instant::now() + CONDITION_TIMEOUT;
    loop {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .expect("DescribeStreamSummary");
        let status = summary
            .stream_description_summary()
            .map(|s| s.stream_status().clone());
        if status == Some(StreamStatus::Active) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stream {name} never became ACTIVE"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What writers saw: records acknowledged (payload → shard and sequence number), and records whose
/// outcome is unknown (an error or a timeout: maybe written, at most once).
#[derive(Default, Debug)]
pub struct History {
    pub acked: HashMap<Vec<u8>, (String, String)>,
    pub unknown: BTreeSet<Vec<u8>>,
}

impl History {
    pub fn merge(&mut self, other: History) {
        self.acked.extend(other.acked);
        self.unknown.extend(other.unknown);
    }
}

/// How many partition keys writers spread their records over.
pub const KEYS: u64 = 97;

/// A writer putting unique records through one node until stopped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<std::sync::atomic::AtomicUsize>,
    failed: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<History>,
}

impl Writer {
    pub fn start(client: Client, stream: &str, tag: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stream, tag) = (stream.to_string(), tag.to_string());
        let task = tokio::spawn({
            let stop = stop.clone();
            let acked = acked.clone();
            let failed = failed.clone();
            async move {
                let mut history = History::default();
                let mut i = 0u64;
                while !stop.load(Ordering::Acquire) {
                    i += 1;
                    let data = format!("{tag}-{i}").into_bytes();
                    let result = client
                        .put_record()
                        .stream_name(&stream)
                        .partition_key(format!("key-{}", i % KEYS))
                        .data(Blob::new(data.clone()))
                        .send()
                        .await;
                    match result {
                        Ok(out) => {
                            history.acked.insert(
                                data,
                                (
                                    out.shard_id().to_string(),
                                    out.sequence_number().to_string(),
                                ),
                            );
                            acked.fetch_add(1, Ordering::Release);
                        }
                        Err(_) => {
                            history.unknown.insert(data);
                            failed.fetch_add(1, Ordering::Release);
                            // The node may be down or cut off: don't spin on it.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                history
            }
        });
        Writer {
            stop,
            acked,
            failed,
            task,
        }
    }

    /// Requests that failed or timed out so far.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Acquire)
    }

    /// Records acknowledged so far.
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::Acquire)
    }

    pub async fn finish(self) -> History {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("writer task")
    }
}

/// Waits until `writers` together have `more` acknowledgements beyond what they had on entry.
pub async fn wait_for_acks(writers: &[&Writer], more: usize, what: &str) {
    let total = || writers.iter().map(|w| w.acked()).sum::<usize>();
    let target = total() + more;
    eventually(what, || total() >= target).await;
}

/// Every record of every shard of `stream`, read through `client` from TRIM_HORIZON: shard id →
/// (sequence number, data) in order.
pub async fn read_all(client: &Client, stream: &str) -> BTreeMap<String, Vec<(String, Vec<u8>)>> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("ListShards");
    let mut all = BTreeMap::new();
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator()
            .map(str::to_string);
        let mut records = Vec::new();
        while let Some(it) = iterator {
            let out = get_records(client, &it).await;
            if out.records().is_empty() {
                break;
            }
            records.extend(
                out.records()
                    .iter()
                    .map(|r| (r.sequence_number().to_string(), r.data().as_ref().to_vec())),
            );
            iterator = out.next_shard_iterator().map(str::to_string);
        }
        all.insert(shard.shard_id().to_string(), records);
    }
    all
}

/// One GetRecords call, retried with exponential backoff while the shard's read limits (AWS's 5
/// calls a second, which nodes enforce) refuse it, as a real consumer does.
pub async fn get_records(
    client: &Client,
    iterator: &str,
) -> aws_sdk_kinesis::operation::get_records::GetRecordsOutput {
    let mut backoff = Duration::from_millis(50);
    for _ in 0..30 {
        match client.get_records().shard_iterator(iterator).send().await {
            Ok(out) => return out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()) =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => panic!("GetRecords: {e:?}"),
        }
    }
    panic!("GetRecords still throttled after 30 tries");
}

/// Checks what `client` reads against `history`: every acknowledged record exactly once, at its
/// shard and sequence number; nothing never written; unknown outcomes at most once; sequence
/// numbers strictly increasing per shard. Returns what was read, for comparison across nodes.
pub async fn verify(
    client: &Client,
    stream: &str,
    history: &History,
) -> BTreeMap<String, Vec<(String, Vec<u8>)>> {
    let read = read_all(client, stream).await;
    let mut seen: HashMap<&[u8], (&str, &str)> = HashMap::new();
    for (shard, records) in &read {
        let mut previous: Option<(usize, &str)> = None;
        for (sequence, data) in records {
            // Decimal strings without leading zeros: longer is larger, else compare the digits.
            let number = (sequence.len(), sequence.as_str());
            assert!(
                previous.is_none_or(|p| p < number),
                "sequence numbers of {shard} not increasing at {sequence}"
            );
            previous = Some(number);
            assert!(
                history.acked.contains_key(data) || history.unknown.contains(data),
                "read a record never written: {:?}",
                String::from_utf8_lossy(data)
            );
            assert!(
                seen.insert(data, (shard, sequence)).is_none(),
                "record read twice: {:?}",
                String::from_utf8_lossy(data)
            );
        }
    }
    for (data, (shard, sequence)) in &history.acked {
        let found = seen.get(data.as_slice());
        assert_eq!(
            found,
            Some(&(shard.as_str(), sequence.as_str())),
            "acknowledged record {:?} lost or moved",
            String::from_utf8_lossy(data)
        );
    }
    read
}

/// Per partition key, each writer's acknowledged records carry increasing sequence numbers, across
/// shards too (children's numbers exceed their parents'): the order a key's records were
/// acknowledged in is the order readers following the lineage see.
pub fn verify_key_order(history: &History) {
    // A decimal sequence number as (length, digits): ordered as the number.
    type Ordered = (usize, String);
    // (writer tag, key) → (request number, sequence number).
    let mut by_key: BTreeMap<(String, u64), Vec<(u64, Ordered)>> = BTreeMap::new();
    for (data, (_, sequence)) in &history.acked {
        let text = String::from_utf8_lossy(data);
        let Some((tag, i)) = text.rsplit_once('-') else {
            panic!("unexpected payload {text}");
        };
        let i: u64 = i
            .parse()
            .expect("writer payloads end in their request number");
        by_key
            .entry((tag.to_string(), i % KEYS))
            .or_default()
            .push((i, (sequence.len(), sequence.clone())));
    }
    for ((tag, key), mut records) in by_key {
        records.sort();
        for pair in records.windows(2) {
            assert!(
                pair[0].1 < pair[1].1,
                "writer {tag}, key {key}: request {} got {} after request {} got {}",
                pair[1].0,
                pair[1].1 .1,
                pair[0].0,
                pair[0].1 .1
            );
        }
    }
}
