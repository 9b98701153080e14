//! Prometheus metrics at `GET /metrics`: requests by operation and outcome with their latency,
//! records written, reads throttled, and the storage's group-commit counters. Plain text exposition format, no
//! extra dependencies.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use kinesin_controller::ClusterState;
use kinesin_raft::MultiRaft;

use crate::admission::Admission;

#[derive(Default)]
struct RequestStats {
    count: u64,
    latency_us_sum: u64,
}

#[derive(Default)]
pub(crate) struct Metrics {
    /// (operation, outcome) → stats; outcome is "ok" or the Kinesis error type.
    requests: Mutex<BTreeMap<(&'static str, &'static str), RequestStats>>,
    pub records_written: AtomicU64,
    pub bytes_written: AtomicU64,
    /// SubscribeToShard streams open now, and records pushed through them.
    subscriptions: AtomicU64,
    pub records_pushed: AtomicU64,
    /// GetRecords calls refused for their shard's read limits.
    pub reads_throttled: AtomicU64,
    /// API requests by the HTTP version they came in (1.x, or 2: h2 over TLS or h2c): which
    /// clients negotiate what, seen from the server.
    http1_requests: AtomicU64,
    http2_requests: AtomicU64,
}

impl Metrics {
    pub fn subscription_started(&self) {
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn subscription_ended(&self) {
        self.subscriptions.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn count_http_version(&self, version: axum::http::Version) {
        let counter = if version == axum::http::Version::HTTP_2 {
            &self.http2_requests
        } else {
            &self.http1_requests
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe(&self, operation: &'static str, outcome: &'static str, latency_us: u64) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let stats = requests.entry((operation, outcome)).or_default();
        stats.count += 1;
        stats.latency_us_sum += latency_us;
    }

    pub fn render(&self, raft: &MultiRaft, admission: &Admission, state: &ClusterState) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP kinesin_requests_total Kinesis API requests by operation and outcome.\n",
        );
        out.push_str("# TYPE kinesin_requests_total counter\n");
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((op, outcome), stats) in requests.iter() {
            let _ = writeln!(
                out,
                "kinesin_requests_total{{operation=\"{op}\",outcome=\"{outcome}\"}} {}",
                stats.count
            );
        }
        out.push_str("# HELP kinesin_request_seconds_sum Total time spent serving requests.\n");
        out.push_str("# TYPE kinesin_request_seconds_sum counter\n");
        for ((op, outcome), stats) in requests.iter() {
            let _ = writeln!(
                out,
                "kinesin_request_seconds_sum{{operation=\"{op}\",outcome=\"{outcome}\"}} {:.6}",
                stats.latency_us_sum as f64 / 1e6
            );
        }
        drop(requests);
        out.push_str("# HELP kinesin_http_requests_total Kinesis API requests by HTTP version.\n");
        out.push_str("# TYPE kinesin_http_requests_total counter\n");
        for (version, counter) in [("1", &self.http1_requests), ("2", &self.http2_requests)] {
            let _ = writeln!(
                out,
                "kinesin_http_requests_total{{version=\"{version}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let sync = raft.engine().sync_stats();
        let disk = raft.engine().disk_space();
        let transport = raft.transport_stats();
        let node_stats = raft.node_stats();
        let writes = raft.write_stats();
        let storage = raft.engine().storage_stats();
        let (stream_changes, replica_moves) = procedures_in_flight(state);
        let gauges = [
            (
                "kinesin_records_written_total",
                "counter",
                "Records acknowledged to clients.",
                self.records_written.load(Ordering::Relaxed),
            ),
            (
                "kinesin_record_bytes_written_total",
                "counter",
                "Bytes (data and partition keys, before encryption) of acknowledged records.",
                self.bytes_written.load(Ordering::Relaxed),
            ),
            (
                "kinesin_reads_throttled_total",
                "counter",
                "GetRecords calls refused with ProvisionedThroughputExceededException for their shard's read limits (per node).",
                self.reads_throttled.load(Ordering::Relaxed),
            ),
            (
                "kinesin_wal_syncs_total",
                "counter",
                "WAL fsyncs (group commits).",
                sync.syncs.load(Ordering::Relaxed),
            ),
            (
                "kinesin_wal_sync_waiters_total",
                "counter",
                "Writes completed by WAL fsyncs; divided by syncs, the group-commit factor.",
                sync.waiters.load(Ordering::Relaxed),
            ),
            (
                "kinesin_wal_sync_seconds_count",
                "counter",
                "WAL fsyncs timed (the count of kinesin_wal_sync_seconds_sum).",
                sync.syncs.load(Ordering::Relaxed),
            ),
            (
                "kinesin_disk_free_bytes",
                "gauge",
                "Bytes available to the node on the file system of its data directory.",
                disk.map_or(0, |d| d.free),
            ),
            (
                "kinesin_disk_total_bytes",
                "gauge",
                "Size of the file system of the data directory.",
                disk.map_or(0, |d| d.total),
            ),
            (
                "kinesin_shards_leaderless",
                "gauge",
                "Raft groups hosted here whose replica knows no leader now.",
                raft.leaderless_groups() as u64,
            ),
            (
                "kinesin_shards_under_replicated",
                "gauge",
                "Open shards with fewer replicas on live nodes than they want, in this node's copy of the cluster state.",
                under_replicated(state),
            ),
            (
                "kinesin_cluster_rpcs_sent_total",
                "counter",
                "Calls this node made to other nodes over the cluster transport (a batch counts once).",
                transport.rpcs_sent.load(Ordering::Relaxed),
            ),
            (
                "kinesin_raft_heartbeats_batched_total",
                "counter",
                "Raft heartbeats sent to other nodes inside batches.",
                transport.heartbeats_batched.load(Ordering::Relaxed),
            ),
            (
                "kinesin_inflight_request_bytes",
                "gauge",
                "Bytes of requests being served now (bounded by max_inflight_request_bytes).",
                admission.in_flight_bytes(),
            ),
            (
                "kinesin_requests_refused_overload_total",
                "counter",
                "Requests refused because the node held max_inflight_request_bytes already.",
                admission.refused.load(Ordering::Relaxed),
            ),
            (
                "kinesin_subscriptions",
                "gauge",
                "SubscribeToShard streams open on this node.",
                self.subscriptions.load(Ordering::Relaxed),
            ),
            (
                "kinesin_records_pushed_total",
                "counter",
                "Records sent to SubscribeToShard subscribers.",
                self.records_pushed.load(Ordering::Relaxed),
            ),
            (
                "kinesin_raft_groups",
                "gauge",
                "Raft groups hosted on this node.",
                raft.group_ids().len() as u64,
            ),
            (
                "kinesin_raft_groups_led",
                "gauge",
                "Raft groups this node leads (its share of the cluster's leaders).",
                raft.groups_led() as u64,
            ),
            (
                "kinesin_raft_commits_total",
                "counter",
                "Writes proposed through this node's groups and committed on a majority (the count of kinesin_raft_commit_seconds_sum).",
                writes.committed.load(Ordering::Relaxed),
            ),
            (
                "kinesin_storage_sst_bytes",
                "gauge",
                "Bytes in RocksDB's SST files (all column families).",
                storage.sst_bytes,
            ),
            (
                "kinesin_storage_blob_bytes",
                "gauge",
                "Bytes in RocksDB's blob files (large Raft log values).",
                storage.blob_bytes,
            ),
            (
                "kinesin_storage_memtable_bytes",
                "gauge",
                "Bytes in RocksDB's memtables.",
                storage.memtable_bytes,
            ),
            (
                "kinesin_storage_pending_compaction_bytes",
                "gauge",
                "Bytes RocksDB's compaction has yet to rewrite (writes slow, then stop, when it runs far behind).",
                storage.pending_compaction_bytes,
            ),
            (
                "kinesin_storage_writes_stopped",
                "gauge",
                "Whether RocksDB has stopped writes (1) for too many memtables, level-0 files or pending compaction.",
                u64::from(storage.writes_stopped),
            ),
            (
                "kinesin_storage_delayed_write_rate_bytes",
                "gauge",
                "The rate RocksDB slows writes to while it stalls them, bytes per second (0: not stalled).",
                storage.delayed_write_rate,
            ),
            (
                "kinesin_procedures_stream_changes",
                "gauge",
                "Streams being created, resharded or deleted (CREATING, UPDATING, DELETING), in this node's copy of the cluster state.",
                stream_changes,
            ),
            (
                "kinesin_procedures_replica_moves",
                "gauge",
                "Shards with a replica moving (joins, drains, replacements), in this node's copy of the cluster state.",
                replica_moves,
            ),
            (
                "kinesin_raft_groups_quiet",
                "gauge",
                "Raft groups quiet on this node: idle, caught up, not ticking or heartbeating.",
                raft.quiet_groups() as u64,
            ),
            (
                "kinesin_raft_quiesced_total",
                "counter",
                "Times a group led by this node went quiet.",
                node_stats.quiesced.load(Ordering::Relaxed),
            ),
            (
                "kinesin_raft_term_changes_total",
                "counter",
                "Votes that moved a replica here to a later term: elections this node's groups took part in, won or not (flat on a healthy idle cluster).",
                node_stats.term_changes.load(Ordering::Relaxed),
            ),
            (
                "kinesin_node_peers_lost_total",
                "counter",
                "Times a peer node went a second without answering this node's liveness pings.",
                node_stats.peers_lost.load(Ordering::Relaxed),
            ),
            (
                "kinesin_raft_writes_refused_lease_total",
                "counter",
                "Writes a leader here had refused because no quorum had acknowledged it within its lease (retried elsewhere).",
                node_stats.lease_refusals.load(Ordering::Relaxed),
            ),
            (
                "kinesin_raft_pre_votes_withheld_total",
                "counter",
                "Pre-vote requests a follower here did not send because its leader's node was live and had spoken within three seconds (late heartbeats on a loaded node).",
                node_stats.pre_votes_withheld.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP kinesin_wal_sync_seconds_sum Seconds spent in WAL fsyncs (divided by the count: the mean fsync latency).\n# TYPE kinesin_wal_sync_seconds_sum counter\nkinesin_wal_sync_seconds_sum {:.6}",
            sync.sync_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP kinesin_raft_commit_seconds_sum Seconds from proposal to committed on a majority and applied, over the writes of kinesin_raft_commits_total (divided by it: the mean commit latency).\n# TYPE kinesin_raft_commit_seconds_sum counter\nkinesin_raft_commit_seconds_sum {:.6}",
            writes.commit_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP kinesin_raft_replication_lag_entries Per peer, the most entries its replica is behind in the groups this node leads.\n# TYPE kinesin_raft_replication_lag_entries gauge"
        );
        for (peer, lag) in raft.replication_lag() {
            let _ = writeln!(
                out,
                "kinesin_raft_replication_lag_entries{{peer=\"{peer}\"}} {lag}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP kinesin_node_peer_live Whether this node hears a peer's liveness pings (1) or not (0).\n# TYPE kinesin_node_peer_live gauge"
        );
        for (peer, live) in raft.liveness().peers() {
            let _ = writeln!(
                out,
                "kinesin_node_peer_live{{peer=\"{peer}\"}} {}",
                u8::from(live)
            );
        }
        let _ = writeln!(
            out,
            "# HELP kinesin_build_info This node's build and the cluster protocol it speaks.\n# TYPE kinesin_build_info gauge\nkinesin_build_info{{version=\"{}\",protocol=\"{}\"}} 1",
            kinesin_raft::BUILD,
            kinesin_raft::CLUSTER_PROTOCOL
        );
        let _ = writeln!(
            out,
            "# HELP kinesin_cluster_version The cluster protocol every node speaks (raised once all nodes run a build that speaks a later one).\n# TYPE kinesin_cluster_version gauge\nkinesin_cluster_version {}",
            state.cluster_version()
        );
        let _ = writeln!(
            out,
            "# HELP kinesin_node_peer_protocol The cluster protocol a peer last said it speaks (1: a build from before protocol numbers).\n# TYPE kinesin_node_peer_protocol gauge"
        );
        for (peer, version) in raft.peer_versions().all() {
            let _ = writeln!(
                out,
                "kinesin_node_peer_protocol{{peer=\"{peer}\"}} {}",
                version.protocol
            );
        }
        out
    }
}

/// Streams changing (creating, resharding, deleting) and shards with a replica on the move.
fn procedures_in_flight(state: &ClusterState) -> (u64, u64) {
    let changing = state
        .streams
        .values()
        .filter(|s| s.status != kinesin_controller::StreamStatus::Active)
        .count() as u64;
    let moving = state
        .streams
        .values()
        .flat_map(|s| s.shards_and_pending())
        .filter(|shard| !shard.leaving.is_empty())
        .count() as u64;
    (changing, moving)
}

/// Open shards with fewer replicas on live (not down) nodes than they want, capped at the nodes
/// there are: a shard that loses a majority of those stops taking writes.
fn under_replicated(state: &ClusterState) -> u64 {
    let live = |node: &u64| {
        state
            .nodes
            .get(node)
            .is_some_and(|info| info.down_since_ms.is_none())
    };
    state
        .streams
        .values()
        .flat_map(|stream| stream.open_shards())
        .filter(|shard| {
            let wanted = (shard.wanted_replicas as usize).min(state.nodes.len());
            shard.replicas.iter().filter(|n| live(n)).count() < wanted
        })
        .count() as u64
}
