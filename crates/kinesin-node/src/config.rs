//! `kinesin server` configuration: flags, `KINESIN_*` environment variables and a TOML file, in
//! that order of precedence, over built-in defaults. Every key is documented in `--help` and in
//! `deploy/kinesin.example.toml` (which a test parses), and a bad key is reported by name.

pub use kinesin_controller::OnDemandScaling;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::tls::{ClusterTlsConfig, TlsConfig};

/// How a node writes its log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Flags of `kinesin server`. Every flag can also be set as `KINESIN_<FLAG>` (e.g. KINESIN_NODE_ID)
/// or as the same key in the `--config` TOML file (with underscores: node_id = 1).
#[derive(Debug, Default, Args)]
pub struct ServerArgs {
    /// TOML file with any of the settings below (flags and environment variables override it).
    #[arg(long, env = "KINESIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// This node's id in the cluster, a positive integer unique per node. [default: 1]
    #[arg(long, env = "KINESIN_NODE_ID", value_name = "N")]
    pub node_id: Option<u64>,

    /// Directory for the node's data (RocksDB). Created if missing. [default: ./data]
    #[arg(long, env = "KINESIN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address the Kinesis API (and /healthz, /metrics, /admin) listens on in plain HTTP:
    /// HTTP/1.1, and HTTP/2 with prior knowledge (h2c). `off` switches it off, to serve over TLS
    /// only (--tls-listen). [default: 127.0.0.1:4567]
    #[arg(long, env = "KINESIN_LISTEN", value_name = "ADDR|off")]
    pub listen: Option<ListenAddr>,

    /// Address the same API listens on over TLS (https://; HTTP/2 or HTTP/1.1, chosen by ALPN),
    /// beside --listen, e.g. 0.0.0.0:4443. Needs --tls-cert and --tls-key. [default: off]
    #[arg(long, env = "KINESIN_TLS_LISTEN", value_name = "ADDR|off")]
    pub tls_listen: Option<ListenAddr>,

    /// PEM file with the TLS certificate chain, the server's certificate first. Reloaded without a
    /// restart when it changes (see --tls-reload-secs) or on SIGHUP; a file that fails to load
    /// is logged and the previous certificate stays in use.
    #[arg(long, env = "KINESIN_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the private key of --tls-cert: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    #[arg(long, env = "KINESIN_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// How often --tls-cert and --tls-key are checked for changes, in seconds; new connections
    /// get the new certificate, open ones keep theirs. 0: reload only on SIGHUP. [default: 5]
    #[arg(long, env = "KINESIN_TLS_RELOAD_SECS", value_name = "SECS")]
    pub tls_reload_secs: Option<u64>,

    /// Address for cluster-internal traffic (Raft, forwarding). [default: 127.0.0.1:4667]
    #[arg(long, env = "KINESIN_CLUSTER_LISTEN", value_name = "ADDR")]
    pub cluster_listen: Option<SocketAddr>,

    /// Mutual TLS on the cluster port: PEM certificate chain of this node, issued by
    /// --cluster-tls-ca, presented to the nodes it calls and to the nodes that call it. It must
    /// name this node's cluster host (as in --peers/--cluster-advertise: a DNS name or an IP
    /// address) as a subject alternative name; extended key usages serverAuth and clientAuth (or
    /// none). Reloaded when it changes (checked every --tls-reload-secs) or on SIGHUP; new
    /// connections use the new one, a file that fails to load is logged and the old one kept.
    /// Needs --cluster-tls-key and --cluster-tls-ca. deploy/gen-cluster-certs.sh makes them.
    /// [default: off: the cluster port speaks plain TCP to anyone who reaches it]
    #[arg(long, env = "KINESIN_CLUSTER_TLS_CERT", value_name = "FILE")]
    pub cluster_tls_cert: Option<PathBuf>,

    /// PEM private key of --cluster-tls-cert: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    #[arg(long, env = "KINESIN_CLUSTER_TLS_KEY", value_name = "FILE")]
    pub cluster_tls_key: Option<PathBuf>,

    /// PEM certificate of the cluster's CA. With it, the cluster port refuses connections
    /// without a client certificate issued by this CA (Raft messages, forwarded requests,
    /// pings), this node connects only to peers whose certificate it issued, and a node joining
    /// (--join) is let in only if it and the cluster accept each other's certificates. Read at
    /// start.
    #[arg(long, env = "KINESIN_CLUSTER_TLS_CA", value_name = "FILE")]
    pub cluster_tls_ca: Option<PathBuf>,

    /// The cluster's initial nodes, the same list on every one of them: `1@host:port,2@host:port,…`
    /// (node id @ cluster address as the other nodes reach it). Used to form the cluster on first
    /// start; afterwards a node rejoins from its data directory. [default: this node alone]
    #[arg(long, env = "KINESIN_PEERS", value_name = "LIST")]
    pub peers: Option<String>,

    /// Join a running cluster through any of its nodes: the URL of that node's Kinesis API
    /// (http://host:port). For a node that is not among the cluster's initial --peers; give it
    /// a new --node-id and no --peers. Replicas then move onto it. Needed on the first start only
    /// (afterwards the node rejoins from its data directory); repeating it is harmless.
    #[arg(long, env = "KINESIN_JOIN", value_name = "URL")]
    pub join: Option<String>,

    /// The cluster address other nodes reach this node at (host:port), when it differs from
    /// --cluster-listen (e.g. 0.0.0.0:4667 in a container named node6: node6:4667). Used by
    /// --join. [default: this node's address in --peers, else --cluster-listen]
    #[arg(long, env = "KINESIN_CLUSTER_ADVERTISE", value_name = "ADDR")]
    pub cluster_advertise: Option<String>,

    /// Replicas per shard of new streams, capped at the node count. [default: 3]
    #[arg(long, env = "KINESIN_REPLICATION_FACTOR", value_name = "N")]
    pub replication_factor: Option<u32>,

    /// The AWS account id streams belong to, 12 digits; with --credentials, only the account of
    /// requests the admin API makes without naming one. [default: 000000000000]
    #[arg(long, env = "KINESIN_ACCOUNT_ID", value_name = "ID")]
    pub account_id: Option<String>,

    /// TOML file of the principals who may sign requests; turns authentication on: every
    /// Kinesis request must carry a valid AWS Signature Version 4 of one of them (header or
    /// presigned URL) and acts in that principal's account; the admin API (and `kinesin ctl`)
    /// needs a principal with `admin = true`; /healthz and /metrics stay open. One `[[user]]`
    /// table per principal: `name`, `account` (12 digits), `access_key_id`,
    /// `secret_access_key`, `admin` (default false), `policies` (IAM identity policies as JSON
    /// strings, enforced on every Kinesis request). Re-read within a second when it changes; a
    /// file that fails to load keeps the previous one. [default: none: requests are not
    /// authenticated]
    #[arg(long, env = "KINESIN_CREDENTIALS", value_name = "FILE")]
    pub credentials: Option<PathBuf>,

    /// TOML file of master keys for encryption at rest (StartStreamEncryption's KeyId): one
    /// `[[key]]` per key with `id`, `material` (32 bytes, base64), optional `aliases`
    /// (["alias/NAME"]), `account` and `enabled`. Every node needs the same file. The default
    /// key alias/aws/kinesis is added to it on first use. Re-read when it changes: a removed
    /// or disabled key stops reads and writes of the records it protects. Keep it outside the
    /// data directory, or encryption protects nothing from whoever has the disk.
    /// [default: DATA_DIR/keyring.toml]
    #[arg(long, env = "KINESIN_KEYRING", value_name = "FILE")]
    pub keyring: Option<PathBuf>,

    /// Region for requests that carry no SigV4 credential scope. [default: us-east-1]
    #[arg(long, env = "KINESIN_DEFAULT_REGION", value_name = "REGION")]
    pub default_region: Option<String>,

    /// Largest record (data + partition key) accepted, in bytes. [default: 1048576]
    #[arg(long, env = "KINESIN_MAX_RECORD_BYTES", value_name = "BYTES")]
    pub max_record_bytes: Option<usize>,

    /// Most records in one PutRecords request. [default: 500]
    #[arg(long, env = "KINESIN_MAX_PUT_RECORDS", value_name = "N")]
    pub max_put_records: Option<usize>,

    /// Largest PutRecords request (sum of data + partition keys), in bytes. [default: 10485760]
    #[arg(long, env = "KINESIN_MAX_PUT_RECORDS_BYTES", value_name = "BYTES")]
    pub max_put_records_bytes: Option<usize>,

    /// Most records one GetRecords call returns. [default: 10000]
    #[arg(long, env = "KINESIN_MAX_GET_RECORDS", value_name = "N")]
    pub max_get_records: Option<usize>,

    /// Most bytes one GetRecords call returns. [default: 10485760]
    #[arg(long, env = "KINESIN_MAX_GET_RECORDS_BYTES", value_name = "BYTES")]
    pub max_get_records_bytes: Option<usize>,

    /// Open shards allowed per account and region (DescribeLimits' ShardLimit). [default: 500]
    #[arg(long, env = "KINESIN_SHARD_LIMIT", value_name = "N")]
    pub shard_limit: Option<u32>,

    /// Enhanced fan-out consumers that may be registered with one stream (AWS: 20); beyond it
    /// RegisterStreamConsumer answers LimitExceededException. [default: 20]
    #[arg(long, env = "KINESIN_MAX_CONSUMERS_PER_STREAM", value_name = "N")]
    pub max_consumers_per_stream: Option<u32>,

    /// Records per second each shard accepts (Kinesis: 1000); writes over it are refused with
    /// ProvisionedThroughputExceededException. 0 switches the limit off (capacity tests).
    /// [default: 1000]
    #[arg(long, env = "KINESIN_SHARD_WRITE_RECORDS_PER_SEC", value_name = "N")]
    pub shard_write_records_per_sec: Option<u64>,

    /// Bytes (data + partition key) per second each shard accepts (Kinesis: 1 MiB); 0 switches
    /// the limit off. A record larger than this still goes through, and the shard takes nothing
    /// more until the excess is paid back. [default: 1048576]
    #[arg(long, env = "KINESIN_SHARD_WRITE_BYTES_PER_SEC", value_name = "BYTES")]
    pub shard_write_bytes_per_sec: Option<u64>,

    /// GetRecords calls per second each shard answers (Kinesis: 5); calls over it are refused
    /// with ProvisionedThroughputExceededException. Counted per node: reads spread over N nodes
    /// get up to N times this. Enhanced fan-out is not counted. 0 switches the limit off.
    /// [default: 5]
    #[arg(long, env = "KINESIN_SHARD_READ_CALLS_PER_SEC", value_name = "N")]
    pub shard_read_calls_per_sec: Option<u64>,

    /// Bytes (data + partition key) per second GetRecords returns from each shard (Kinesis:
    /// 2 MiB), per node; 0 switches the limit off. One call may still return up to
    /// max_get_records_bytes, and the shard's next calls are refused until the excess is paid
    /// back (after 10 MiB, 4 s). [default: 2097152]
    #[arg(long, env = "KINESIN_SHARD_READ_BYTES_PER_SEC", value_name = "BYTES")]
    pub shard_read_bytes_per_sec: Option<u64>,

    /// Request bytes this node holds in memory at once (bodies being read, decoded and
    /// written). A request that cannot get its share within a second is refused with
    /// ProvisionedThroughputExceededException, so overload slows clients down instead of
    /// growing queues. At least the largest request (about 15 MiB). [default: 268435456]
    #[arg(long, env = "KINESIN_MAX_INFLIGHT_REQUEST_BYTES", value_name = "BYTES")]
    pub max_inflight_request_bytes: Option<usize>,

    /// Bytes per second one SubscribeToShard subscription (a consumer on a shard) receives at
    /// most, as AWS's enhanced fan-out allows; 0 switches the limit off. [default: 2097152]
    #[arg(long, env = "KINESIN_SUBSCRIPTION_BYTES_PER_SEC", value_name = "BYTES")]
    pub subscription_bytes_per_sec: Option<u64>,

    /// Snapshot the controller group every this many log entries and purge its log behind it;
    /// for shards, how often a retention cut is turned into a snapshot and a log purge (a shard's
    /// log is its records, kept until retention removes them). [default: 2000]
    #[arg(long, env = "KINESIN_RAFT_SNAPSHOT_EVERY", value_name = "ENTRIES")]
    pub raft_snapshot_every: Option<u64>,

    /// Controller log entries kept behind a snapshot, so a briefly lagging replica catches up
    /// from the log rather than by snapshot. [default: 500]
    #[arg(long, env = "KINESIN_RAFT_LOGS_KEPT", value_name = "ENTRIES")]
    pub raft_logs_kept: Option<u64>,

    /// Raft log values (a shard's `Put` entries: its records) of at least this many bytes are
    /// kept in RocksDB's blob files, so flushes write them once and compactions move only keys;
    /// 0 keeps them inside the LSM tree. [default: 4096]
    #[arg(long, env = "KINESIN_STORAGE_BLOB_MIN_BYTES", value_name = "BYTES")]
    pub storage_blob_min_bytes: Option<u64>,

    /// RocksDB tuning for experts: options applied when the database opens, `name=value` pairs
    /// separated by `;`, for the Raft log's column family (e.g. `write_buffer_size=268435456`) or,
    /// prefixed with `db.`, the database (e.g. `db.max_background_jobs=4`). One RocksDB refuses
    /// stops the start with its name. [default: none]
    #[arg(long, env = "KINESIN_STORAGE_ROCKSDB_OPTIONS", value_name = "OPTIONS")]
    pub storage_rocksdb_options: Option<String>,

    /// Read the whole database with checksums verified when the node starts (progress is logged),
    /// so a disk that damaged data while the node was down is found before the node serves or
    /// replicates anything; a corrupt data directory stops the start with exit status 65. Off
    /// shortens starts over large data directories: damage is then found only when it is read.
    /// [default: true]
    #[arg(long, env = "KINESIN_STORAGE_VERIFY_ON_START", value_name = "BOOL")]
    pub storage_verify_on_start: Option<bool>,

    /// When the data directory is found corrupt (at start, or when a read finds damage): move it
    /// aside (data-dir/corrupt-<ms>, kept for inspection) and rebuild this node from its peers
    /// under the same --node-id: it joins again with an empty directory in a new life, and the
    /// replicas it held are replaced by copies from the others. Off: the node stops with exit
    /// status 65 and an operator rebuilds it (README: "A corrupt data directory"). [default: false]
    #[arg(long, env = "KINESIN_REBUILD_CORRUPT", value_name = "BOOL")]
    pub rebuild_corrupt: Option<bool>,

    /// How log lines are written to stderr: `text` for people, `json` (one object per line) for
    /// log collectors. Either way a line logged while a request is served carries its
    /// `request_id` (the x-amzn-RequestId the client got) and operation. RUST_LOG filters them
    /// (e.g. RUST_LOG=info,kinesin_gateway=debug logs every request). [default: text]
    #[arg(long, env = "KINESIN_LOG_FORMAT", value_name = "FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Serve the web console (/console) from the files in DIR (index.html, console.js,
    /// console.css) instead of the ones built into the binary: for working on the console
    /// without rebuilding. [default: the built-in console]
    #[arg(long, env = "KINESIN_CONSOLE_DIR", value_name = "DIR")]
    pub console_dir: Option<PathBuf>,

    /// Send OpenTelemetry traces and metrics to the OTLP/gRPC receiver at URL (an OpenTelemetry
    /// Collector, Jaeger, Tempo …; e.g. http://collector:4317). Each Kinesis request is a trace:
    /// the gateway that took it, the forwarding to the shard's leader on another node (the trace
    /// context travels on the cluster transport), and the Raft commit and apply there. The
    /// metrics are /metrics' every --otlp-metrics-secs. [default: off]
    #[arg(long, env = "KINESIN_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// How often metrics are sent to --otlp-endpoint, in seconds. [default: 10]
    #[arg(long, env = "KINESIN_OTLP_METRICS_SECS", value_name = "SECS")]
    pub otlp_metrics_secs: Option<u64>,

    /// Interval of Raft heartbeats from each group's leader to its followers, in milliseconds. Each
    /// heartbeat costs every group some CPU on every replica, so fewer means less idle cost for
    /// many shards (quiet shards send none). [default: 200]
    #[arg(long, env = "KINESIN_RAFT_HEARTBEAT_MS", value_name = "MS")]
    pub raft_heartbeat_ms: Option<u64>,

    /// A follower that hears nothing from its leader for a random time between this and 1.2 times
    /// this starts an election (a safety net: a dead node's groups elect as soon as its liveness
    /// lapses). 1.2 times this is also Raft's leader lease, the floor of a busy shard's failover.
    /// At least three heartbeat intervals. [default: 700]
    #[arg(long, env = "KINESIN_RAFT_ELECTION_TIMEOUT_MS", value_name = "MS")]
    pub raft_election_timeout_ms: Option<u64>,

    /// A shard that took no write for this long, with every replica caught up, goes quiet: no
    /// ticks, no heartbeats, no CPU, until a write, a read or a lost leader wakes it. 0 keeps
    /// every shard awake. [default: 2000]
    #[arg(long, env = "KINESIN_RAFT_QUIESCE_AFTER_MS", value_name = "MS")]
    pub raft_quiesce_after_ms: Option<u64>,

    /// How long Raft heartbeats to a peer wait so that all groups' heartbeats travel in one call;
    /// 0 sends each on its own (one call per group per heartbeat interval). [default: 5]
    #[arg(long, env = "KINESIN_RAFT_HEARTBEAT_BATCH_MS", value_name = "MS")]
    pub raft_heartbeat_batch_ms: Option<u64>,

    /// Bytes per second this node sends, over all its groups, to replicas that are far behind
    /// (restarted, new after a join, a drain or a replacement): catching up then never starves
    /// live writes of the CPU and disk they need; 0 sends as fast as it can. [default: 33554432]
    #[arg(
        long,
        env = "KINESIN_RAFT_CATCH_UP_BYTES_PER_SEC",
        value_name = "BYTES"
    )]
    pub raft_catch_up_bytes_per_sec: Option<u64>,

    /// How often each shard leader removes records older than the stream's retention. [default: 60]
    #[arg(long, env = "KINESIN_RETENTION_CHECK_SECS", value_name = "SECS")]
    pub retention_check_secs: Option<u64>,

    /// ON_DEMAND streams: a shard writing more records per second than this (over the last check
    /// interval) is split. [default: 800]
    #[arg(long, env = "KINESIN_ON_DEMAND_SPLIT_RECORDS", value_name = "N")]
    pub on_demand_split_records: Option<u64>,

    /// ON_DEMAND streams: a shard writing more bytes per second than this is split.
    /// [default: 819200]
    #[arg(long, env = "KINESIN_ON_DEMAND_SPLIT_BYTES", value_name = "BYTES")]
    pub on_demand_split_bytes: Option<u64>,

    /// ON_DEMAND streams: two adjacent shards each writing fewer records per second than this
    /// (and fewer bytes than on_demand_merge_bytes) are merged, down to 4 shards. [default: 100]
    #[arg(long, env = "KINESIN_ON_DEMAND_MERGE_RECORDS", value_name = "N")]
    pub on_demand_merge_records: Option<u64>,

    /// ON_DEMAND streams: the bytes per second under which adjacent shards merge.
    /// [default: 102400]
    #[arg(long, env = "KINESIN_ON_DEMAND_MERGE_BYTES", value_name = "BYTES")]
    pub on_demand_merge_bytes: Option<u64>,

    /// How often the controller's leader measures ON_DEMAND streams' shards, in seconds; each
    /// check splits or merges at most one shard (pair) per stream. [default: 30]
    #[arg(long, env = "KINESIN_ON_DEMAND_CHECK_SECS", value_name = "SECS")]
    pub on_demand_check_secs: Option<u64>,

    /// A node that has not answered the controller's leader for this long is declared dead: its
    /// replicas move to other nodes (which copy the data first), restoring the replication
    /// factor. A node is shown as down in the admin view after a few seconds already.
    /// [default: 300]
    #[arg(long, env = "KINESIN_DEAD_NODE_SECS", value_name = "SECS")]
    pub dead_node_secs: Option<u64>,

    /// Most shards that may have a replica moving at once, cluster-wide, when a node joins, is
    /// drained or is replaced: each move copies a shard to its new node, and a thousand at once
    /// would starve the writes. The controller's leader's setting applies. 0: no bound.
    /// [default: 32]
    #[arg(long, env = "KINESIN_REPLICA_MOVES_AT_ONCE", value_name = "N")]
    pub replica_moves_at_once: Option<u32>,
}

/// The same keys, as read from the TOML file. Unknown keys are errors (a typo must not be ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_id: Option<u64>,
    data_dir: Option<PathBuf>,
    listen: Option<ListenAddr>,
    tls_listen: Option<ListenAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_reload_secs: Option<u64>,
    cluster_listen: Option<SocketAddr>,
    cluster_tls_cert: Option<PathBuf>,
    cluster_tls_key: Option<PathBuf>,
    cluster_tls_ca: Option<PathBuf>,
    peers: Option<String>,
    join: Option<String>,
    cluster_advertise: Option<String>,
    replication_factor: Option<u32>,
    account_id: Option<String>,
    credentials: Option<PathBuf>,
    keyring: Option<PathBuf>,
    default_region: Option<String>,
    max_record_bytes: Option<usize>,
    max_put_records: Option<usize>,
    max_put_records_bytes: Option<usize>,
    max_get_records: Option<usize>,
    max_get_records_bytes: Option<usize>,
    shard_limit: Option<u32>,
    max_consumers_per_stream: Option<u32>,
    shard_write_records_per_sec: Option<u64>,
    shard_write_bytes_per_sec: Option<u64>,
    shard_read_calls_per_sec: Option<u64>,
    shard_read_bytes_per_sec: Option<u64>,
    max_inflight_request_bytes: Option<usize>,
    subscription_bytes_per_sec: Option<u64>,
    retention_check_secs: Option<u64>,
    dead_node_secs: Option<u64>,
    replica_moves_at_once: Option<u32>,
    on_demand_split_records: Option<u64>,
    on_demand_split_bytes: Option<u64>,
    on_demand_merge_records: Option<u64>,
    on_demand_merge_bytes: Option<u64>,
    on_demand_check_secs: Option<u64>,
    raft_snapshot_every: Option<u64>,
    raft_logs_kept: Option<u64>,
    storage_blob_min_bytes: Option<u64>,
    storage_rocksdb_options: Option<String>,
    storage_verify_on_start: Option<bool>,
    rebuild_corrupt: Option<bool>,
    log_format: Option<LogFormat>,
    console_dir: Option<PathBuf>,
    otlp_endpoint: Option<String>,
    otlp_metrics_secs: Option<u64>,
    raft_heartbeat_ms: Option<u64>,
    raft_election_timeout_ms: Option<u64>,
    raft_heartbeat_batch_ms: Option<u64>,
    raft_quiesce_after_ms: Option<u64>,
    raft_catch_up_bytes_per_sec: Option<u64>,
}

/// The resolved configuration of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub node_id: u64,
    pub data_dir: PathBuf,
    /// The plain-HTTP API listener; `None`: off.
    pub listen: Option<SocketAddr>,
    /// The TLS API listener; `None`: off.
    pub tls: Option<TlsConfig>,
    pub cluster_listen: SocketAddr,
    /// Mutual TLS on the cluster port; `None`: plain TCP.
    pub cluster_tls: Option<ClusterTlsConfig>,
    /// Initial cluster nodes by id with the cluster address peers reach them at (this node
    /// included); just this node when `--peers` is not given.
    pub peers: BTreeMap<u64, String>,
    /// `--join`: the API URL of a member of the running cluster this node joins.
    pub join: Option<String>,
    /// `--rebuild-corrupt`: a corrupt data directory is moved aside and the node rebuilt from its
    /// peers instead of stopping.
    pub rebuild_corrupt: bool,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `--console-dir`: the console's files from disk instead of the built-in ones.
    pub console_dir: Option<PathBuf>,
    /// `--otlp-endpoint`: where traces and metrics go over OTLP; `None`: nowhere.
    pub otlp_endpoint: Option<String>,
    /// `--otlp-metrics-secs`.
    pub otlp_metrics_every: std::time::Duration,
    /// Not a setting: the life of the data directory (kinesin-raft's `life.rs`), decided before
    /// the node starts (`rebuild::settle_life`).
    pub life: u64,
    /// The cluster address other nodes reach this node at.
    pub cluster_advertise: String,
    pub replication_factor: u32,
    pub account_id: String,
    /// `--credentials`: the principals' file, checked when resolved; `None`: no authentication.
    pub credentials: Option<PathBuf>,
    /// `--keyring`: the master keys' file, checked when resolved (missing is empty).
    pub keyring: PathBuf,
    pub default_region: String,
    pub limits: kinesin_gateway::Limits,
    pub retention_check_secs: u64,
    pub dead_node_secs: u64,
    pub replica_moves_at_once: u32,
    pub on_demand: OnDemandScaling,
    pub raft: kinesin_raft::RaftTuning,
    pub storage: kinesin_storage::EngineOptions,
    /// The wall clock every part of the node reads (the system's; a test's own).
    pub clock: kinesin_types::SharedClock,
}

/// A listen address, or `off` (or an empty value): that listener is not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub Option<SocketAddr>);

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<ListenAddr, String> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("off") {
            return Ok(ListenAddr(None));
        }
        text.parse()
            .map(|addr| ListenAddr(Some(addr)))
            .map_err(|_| format!("`{text}` is neither an address like 0.0.0.0:4567 nor `off`"))
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(addr: SocketAddr) -> ListenAddr {
        ListenAddr(Some(addr))
    }
}

/// The TLS listener's settings, all or none: a certificate without an address to serve it on (or
/// the reverse) is a mistake to report, not to ignore.
fn tls_config(
    listen: Option<ListenAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    reload_secs: u64,
) -> Result<Option<TlsConfig>, ConfigError> {
    let invalid = |key, message: &str| ConfigError::Invalid {
        key,
        message: message.to_string(),
    };
    match (listen.and_then(|l| l.0), cert, key) {
        (Some(listen), Some(cert), Some(key)) => Ok(Some(TlsConfig {
            listen,
            cert,
            key,
            reload_every: (reload_secs > 0).then(|| Duration::from_secs(reload_secs)),
        })),
        (Some(_), _, _) => Err(invalid(
            "tls_listen",
            "needs both tls_cert (PEM certificate chain) and tls_key (PEM private key)",
        )),
        (None, Some(_), _) => Err(invalid(
            "tls_cert",
            "is set but tls_listen is not: set tls_listen (e.g. 0.0.0.0:4443) to serve TLS",
        )),
        (None, None, Some(_)) => Err(invalid(
            "tls_key",
            "is set but tls_listen is not: set tls_listen (e.g. 0.0.0.0:4443) to serve TLS",
        )),
        (None, None, None) => Ok(None),
    }
}

/// Cluster mTLS: all three files or none; a missing one is named.
fn cluster_tls_config(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    reload_secs: u64,
) -> Result<Option<ClusterTlsConfig>, ConfigError> {
    let missing = |key: &'static str| {
        ConfigError::Invalid {
        key,
        message: "is needed for mutual TLS between nodes: set cluster_tls_cert, cluster_tls_key and cluster_tls_ca together (or none of them)".into(),
    }
    };
    match (cert, key, ca) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), Some(ca)) => Ok(Some(ClusterTlsConfig {
            cert,
            key,
            ca,
            reload_every: (reload_secs > 0).then(|| Duration::from_secs(reload_secs)),
        })),
        (None, _, _) => Err(missing("cluster_tls_cert")),
        (_, None, _) => Err(missing("cluster_tls_key")),
        (_, _, None) => Err(missing("cluster_tls_ca")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Parses `1@host:port,2@host:port`.
fn parse_peers(list: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        key: "peers",
        message,
    };
    let mut peers = BTreeMap::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| invalid(format!("`{entry}` is not id@host:port")))?;
        let id: u64 = id
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| invalid(format!("`{id}` in `{entry}` is not a positive node id")))?;
        let port_ok = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(invalid(format!("`{addr}` in `{entry}` is not host:port")));
        }
        if peers.insert(id, addr.to_string()).is_some() {
            return Err(invalid(format!("node id {id} appears twice")));
        }
    }
    if peers.is_empty() {
        return Err(invalid("is empty".into()));
    }
    Ok(peers)
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

impl ServerArgs {
    pub fn resolve(self) -> Result<ServerConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        // A flag (or its environment variable) wins over the file, which wins over the default.
        macro_rules! layered {
            ($key:ident, $default:expr) => {
                self.$key.or(file.$key).unwrap_or_else(|| $default)
            };
        }
        let defaults = kinesin_gateway::Limits::default();
        let node_id = layered!(node_id, 1);
        let cluster_listen = layered!(cluster_listen, SocketAddr::from(([127, 0, 0, 1], 4667)));
        let join = self.join.or(file.join);
        let peers = match self.peers.or(file.peers) {
            Some(_) if join.is_some() => {
                return Err(ConfigError::Invalid {
                    key: "join",
                    message: "cannot be combined with peers: a joining node learns the cluster from the node it joins through".into(),
                })
            }
            Some(list) => parse_peers(&list)?,
            None => BTreeMap::from([(node_id, cluster_listen.to_string())]),
        };
        let cluster_advertise = self
            .cluster_advertise
            .or(file.cluster_advertise)
            .or_else(|| peers.get(&node_id).cloned())
            .unwrap_or_else(|| cluster_listen.to_string());
        let tls = tls_config(
            self.tls_listen.or(file.tls_listen),
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
            layered!(tls_reload_secs, 5),
        )?;
        let cluster_tls = cluster_tls_config(
            self.cluster_tls_cert.or(file.cluster_tls_cert),
            self.cluster_tls_key.or(file.cluster_tls_key),
            self.cluster_tls_ca.or(file.cluster_tls_ca),
            layered!(tls_reload_secs, 5),
        )?;
        let credentials = self.credentials.or(file.credentials);
        if let Some(path) = &credentials {
            kinesin_gateway::credentials::Credentials::load(path).map_err(|e| {
                ConfigError::Invalid {
                    key: "credentials",
                    message: e.to_string(),
                }
            })?;
        }
        let data_dir = layered!(data_dir, PathBuf::from("./data"));
        let keyring = self
            .keyring
            .or(file.keyring)
            .unwrap_or_else(|| data_dir.join("keyring.toml"));
        kinesin_gateway::encryption::Keyring::open(&keyring).map_err(|e| ConfigError::Invalid {
            key: "keyring",
            message: e.to_string(),
        })?;
        let otlp_endpoint = self.otlp_endpoint.or(file.otlp_endpoint);
        if let Some(url) = &otlp_endpoint {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    key: "otlp_endpoint",
                    message: format!(
                        "{url:?} is not an http:// or https:// URL (an OTLP/gRPC receiver, \
                         e.g. http://collector:4317)"
                    ),
                });
            }
        }
        let otlp_metrics_secs = layered!(otlp_metrics_secs, 10);
        if otlp_metrics_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "otlp_metrics_secs",
                message: "must be at least 1".into(),
            });
        }
        let config = ServerConfig {
            clock: kinesin_types::SharedClock::new(crate::clock::SystemClock),
            node_id,
            data_dir,
            listen: layered!(listen, SocketAddr::from(([127, 0, 0, 1], 4567)).into()).0,
            tls,
            cluster_listen,
            cluster_tls,
            peers,
            join,
            life: 0,
            rebuild_corrupt: layered!(rebuild_corrupt, false),
            log_format: layered!(log_format, LogFormat::Text),
            console_dir: self.console_dir.or(file.console_dir),
            otlp_endpoint,
            otlp_metrics_every: std::time::Duration::from_secs(otlp_metrics_secs),
            cluster_advertise,
            replication_factor: layered!(replication_factor, 3),
            account_id: layered!(account_id, "000000000000".into()),
            credentials,
            keyring,
            default_region: layered!(default_region, "us-east-1".into()),
            limits: kinesin_gateway::Limits {
                max_record_bytes: layered!(max_record_bytes, defaults.max_record_bytes),
                max_put_records: layered!(max_put_records, defaults.max_put_records),
                max_put_records_bytes: layered!(
                    max_put_records_bytes,
                    defaults.max_put_records_bytes
                ),
                max_get_records: layered!(max_get_records, defaults.max_get_records),
                max_get_records_bytes: layered!(
                    max_get_records_bytes,
                    defaults.max_get_records_bytes
                ),
                shard_limit: layered!(shard_limit, defaults.shard_limit),
                max_consumers_per_stream: layered!(
                    max_consumers_per_stream,
                    defaults.max_consumers_per_stream
                ),
                max_inflight_request_bytes: layered!(
                    max_inflight_request_bytes,
                    defaults.max_inflight_request_bytes
                ),
                subscription_bytes_per_sec: layered!(
                    subscription_bytes_per_sec,
                    defaults.subscription_bytes_per_sec
                ),
                shard_read_quota: kinesin_gateway::ReadQuota {
                    calls_per_sec: layered!(
                        shard_read_calls_per_sec,
                        defaults.shard_read_quota.calls_per_sec
                    ),
                    bytes_per_sec: layered!(
                        shard_read_bytes_per_sec,
                        defaults.shard_read_quota.bytes_per_sec
                    ),
                },
            },
            retention_check_secs: layered!(retention_check_secs, 60),
            dead_node_secs: layered!(dead_node_secs, 300),
            replica_moves_at_once: layered!(replica_moves_at_once, 32),
            on_demand: OnDemandScaling {
                split_records: layered!(on_demand_split_records, 800),
                split_bytes: layered!(on_demand_split_bytes, 800 * 1024),
                merge_records: layered!(on_demand_merge_records, 100),
                merge_bytes: layered!(on_demand_merge_bytes, 100 * 1024),
                check_secs: layered!(on_demand_check_secs, 30),
            },
            storage: {
                let defaults = kinesin_storage::EngineOptions::default();
                kinesin_storage::EngineOptions {
                    log_blob_min_bytes: layered!(
                        storage_blob_min_bytes,
                        defaults.log_blob_min_bytes
                    ),
                    rocksdb_options: layered!(
                        storage_rocksdb_options,
                        defaults.rocksdb_options.clone()
                    ),
                    verify_on_open: layered!(storage_verify_on_start, defaults.verify_on_open),
                    ..defaults
                }
            },
            raft: {
                let defaults = kinesin_raft::RaftTuning::default();
                kinesin_raft::RaftTuning {
                    snapshot_every: layered!(raft_snapshot_every, defaults.snapshot_every),
                    logs_kept_after_snapshot: layered!(
                        raft_logs_kept,
                        defaults.logs_kept_after_snapshot
                    ),
                    heartbeat_batch_ms: layered!(
                        raft_heartbeat_batch_ms,
                        defaults.heartbeat_batch_ms
                    ),
                    heartbeat_ms: layered!(raft_heartbeat_ms, defaults.heartbeat_ms),
                    quiesce_after_ms: layered!(raft_quiesce_after_ms, defaults.quiesce_after_ms),
                    catch_up_bytes_per_sec: layered!(
                        raft_catch_up_bytes_per_sec,
                        defaults.catch_up_bytes_per_sec
                    ),
                    election_min_ms: layered!(raft_election_timeout_ms, defaults.election_min_ms),
                    // openraft's leader lease is the maximum: followers refuse to vote for that
                    // long after the leader's last word, so a narrow spread keeps failover short
                    // (elections are started by liveness; the timers are a safety net).
                    election_max_ms: layered!(raft_election_timeout_ms, defaults.election_min_ms)
                        * 6
                        / 5,
                    shard_write_quota: kinesin_raft::WriteQuota {
                        records_per_sec: layered!(
                            shard_write_records_per_sec,
                            defaults.shard_write_quota.records_per_sec
                        ),
                        bytes_per_sec: layered!(
                            shard_write_bytes_per_sec,
                            defaults.shard_write_quota.bytes_per_sec
                        ),
                    },
                }
            },
        };
        config.validate()?;
        Ok(config)
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_string(),
            })
        };
        if self.node_id == 0 {
            return invalid("node_id", "must be a positive integer");
        }
        match (self.listen, &self.tls) {
            (None, None) => {
                return invalid(
                    "listen",
                    "is off and so is tls_listen: at least one of them must serve the API",
                )
            }
            (Some(plain), Some(tls)) if plain == tls.listen && plain.port() != 0 => {
                return invalid("tls_listen", "must differ from listen");
            }
            _ => {}
        }
        if !self.peers.contains_key(&self.node_id) {
            return invalid("peers", "must include this node's own id");
        }
        if self.replication_factor == 0 {
            return invalid("replication_factor", "must be at least 1");
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return invalid("account_id", "must be 12 digits, like 000000000000");
        }
        if self.default_region.is_empty()
            || !self
                .default_region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return invalid("default_region", "must look like us-east-1");
        }
        let l = &self.limits;
        if l.max_record_bytes == 0 || l.max_record_bytes > 10 << 20 {
            return invalid("max_record_bytes", "must be between 1 and 10485760");
        }
        if l.max_put_records == 0 || l.max_put_records >= 1 << 20 {
            return invalid("max_put_records", "must be between 1 and 1048575");
        }
        if l.max_put_records_bytes < l.max_record_bytes {
            return invalid("max_put_records_bytes", "must be at least max_record_bytes");
        }
        if l.max_inflight_request_bytes < l.max_body_bytes() {
            return Err(ConfigError::Invalid {
                key: "max_inflight_request_bytes",
                message: format!(
                    "must be at least the largest request, {} bytes (from max_put_records_bytes and max_put_records)",
                    l.max_body_bytes()
                ),
            });
        }
        if l.max_consumers_per_stream == 0 {
            return invalid("max_consumers_per_stream", "must be at least 1");
        }
        if l.max_get_records == 0 {
            return invalid("max_get_records", "must be positive");
        }
        if l.max_get_records_bytes == 0 {
            return invalid("max_get_records_bytes", "must be positive");
        }
        if self.raft.snapshot_every == 0 {
            return invalid("raft_snapshot_every", "must be positive");
        }
        if self.retention_check_secs == 0 {
            return invalid("retention_check_secs", "must be positive");
        }
        if self.raft.heartbeat_ms == 0 {
            return invalid("raft_heartbeat_ms", "must be positive");
        }
        if self.raft.election_min_ms < 3 * self.raft.heartbeat_ms {
            return invalid(
                "raft_election_timeout_ms",
                "must be at least three times raft_heartbeat_ms",
            );
        }
        if self.dead_node_secs == 0 {
            return invalid("dead_node_secs", "must be positive");
        }
        let d = &self.on_demand;
        if d.check_secs == 0 {
            return invalid("on_demand_check_secs", "must be positive");
        }
        if d.merge_records >= d.split_records {
            return invalid(
                "on_demand_merge_records",
                "must be below on_demand_split_records (or shards would split and merge in turn)",
            );
        }
        if d.merge_bytes >= d.split_bytes {
            return invalid(
                "on_demand_merge_bytes",
                "must be below on_demand_split_bytes (or shards would split and merge in turn)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = ServerArgs::default().resolve().unwrap();
        assert_eq!(config.node_id, 1);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(
            config.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 4567)))
        );
        assert_eq!(config.tls, None);
        assert_eq!(config.cluster_listen.to_string(), "127.0.0.1:4667");
        assert_eq!(config.account_id, "000000000000");
        assert_eq!(config.limits.max_record_bytes, 1 << 20);
        assert_eq!(config.limits.max_put_records, 500);
        assert_eq!(config.limits.max_consumers_per_stream, 20);
        assert_eq!(config.dead_node_secs, 300);
        assert_eq!(config.raft.heartbeat_ms, 200);
        assert_eq!(
            (config.raft.election_min_ms, config.raft.election_max_ms),
            (700, 840)
        );
        assert_eq!(config.otlp_endpoint, None);
        assert_eq!(
            config.otlp_metrics_every,
            std::time::Duration::from_secs(10)
        );
        assert_eq!(config.raft.heartbeat_batch_ms, 5);
        assert_eq!(
            config.limits.shard_read_quota,
            kinesin_gateway::ReadQuota {
                calls_per_sec: 5,
                bytes_per_sec: 2 << 20
            }
        );
    }

    #[test]
    fn read_limits_come_from_the_file_and_zero_switches_them_off() {
        let file = write("shard_read_calls_per_sec = 0\nshard_read_bytes_per_sec = 1024\n");
        let args = ServerArgs {
            config: Some(file.path().to_path_buf()),
            ..Default::default()
        };
        let quota = args.resolve().unwrap().limits.shard_read_quota;
        assert_eq!((quota.calls_per_sec, quota.bytes_per_sec), (0, 1024));
        assert!(!quota.is_unlimited());
    }

    #[test]
    fn an_election_timeout_below_three_heartbeats_is_refused_by_name() {
        let args = ServerArgs {
            raft_heartbeat_ms: Some(500),
            raft_election_timeout_ms: Some(1000),
            ..Default::default()
        };
        let error = args.resolve().unwrap_err().to_string();
        assert!(error.contains("raft_election_timeout_ms"), "{error}");
    }

    #[test]
    fn flags_override_the_file() {
        let file =
            write("node_id = 3\nlisten = \"127.0.0.1:9000\"\naccount_id = \"123456789012\"\n");
        let args = ServerArgs {
            config: Some(file.path().to_path_buf()),
            node_id: Some(5),
            ..Default::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.node_id, 5);
        assert_eq!(
            config.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9000)))
        );
        assert_eq!(config.account_id, "123456789012");
    }

    #[test]
    fn unknown_and_bad_keys_are_named() {
        let file = write("node_idd = 3\n");
        let args = ServerArgs {
            config: Some(file.path().to_path_buf()),
            ..Default::default()
        };
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("node_idd"), "{err}");

        let args = ServerArgs {
            account_id: Some("12".into()),
            ..Default::default()
        };
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("account_id"), "{err}");

        let file = write("otlp_endpoint = \"collector:4317\"\n");
        let args = ServerArgs {
            config: Some(file.path().to_path_buf()),
            ..Default::default()
        };
        let err = args.resolve().unwrap_err().to_string();
        assert!(
            err.contains("otlp_endpoint") && err.contains("http://"),
            "{err}"
        );
        let args = ServerArgs {
            otlp_metrics_secs: Some(0),
            ..Default::default()
        };
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("otlp_metrics_secs"), "{err}");
    }

    #[test]
    fn credentials_come_from_the_flag_or_the_file_and_are_checked() {
        assert_eq!(ServerArgs::default().resolve().unwrap().credentials, None);
        let users = write(
            "[[user]]\nname = \"a\"\naccount = \"111111111111\"\n\
             access_key_id = \"AKIDA\"\nsecret_access_key = \"s\"\n",
        );
        let users_path = users.path().to_path_buf();
        let file = write(&format!(
            "credentials = {:?}\n",
            users_path.display().to_string()
        ));
        let from_file = ServerArgs {
            config: Some(file.path().to_path_buf()),
            ..Default::default()
        };
        assert_eq!(
            from_file.resolve().unwrap().credentials,
            Some(users_path.clone())
        );

        // A bad file stops the start, naming the key, the file and the bad entry.
        let bad = write("[[user]]\nname = \"a\"\naccount = \"1\"\naccess_key_id = \"AKIDA\"\nsecret_access_key = \"s\"\n");
        let flag = ServerArgs {
            config: Some(file.path().to_path_buf()),
            credentials: Some(bad.path().to_path_buf()),
            ..Default::default()
        };
        let err = flag.resolve().unwrap_err().to_string();
        assert!(err.starts_with("invalid value for `credentials`"), "{err}");
        assert!(err.contains(&bad.path().display().to_string()), "{err}");
        assert!(err.contains("user[0].account"), "{err}");
        let missing = ServerArgs {
            credentials: Some(PathBuf::from("/nonexistent/credentials.toml")),
            ..Default::default()
        };
        let err = missing.resolve().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/credentials.toml"), "{err}");
    }

    #[test]
    fn peers_parse_and_must_include_this_node() {
        let args = ServerArgs {
            node_id: Some(2),
            peers: Some("1@10.0.0.1:4667, 2@kinesin-2:4667,3@[::1]:4667".into()),
            ..Default::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.peers.len(), 3);
        assert_eq!(config.peers[&2], "kinesin-2:4667");
        for bad in [
            "1@a:1,1@b:2",
            "x@a:1",
            "1@nohost",
            "1@a:99999",
            "",
            "0@a:1",
            "3@a:1",
        ] {
            let args = ServerArgs {
                peers: Some(bad.into()),
                ..Default::default()
            };
            let err = args.resolve().unwrap_err().to_string();
            assert!(err.contains("peers"), "{bad}: {err}");
        }
    }

    #[test]
    fn join_excludes_peers_and_advertises_the_cluster_address() {
        let args = ServerArgs {
            node_id: Some(6),
            join: Some("http://node1:4567".into()),
            peers: Some("6@node6:4667".into()),
            ..Default::default()
        };
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("join"), "{err}");
        let args = ServerArgs {
            node_id: Some(6),
            join: Some("http://node1:4567".into()),
            cluster_advertise: Some("node6:4667".into()),
            ..Default::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.cluster_advertise, "node6:4667");
        let config = ServerArgs::default().resolve().unwrap();
        assert_eq!(config.cluster_advertise, "127.0.0.1:4667");
    }

    #[test]
    fn tls_settings_come_all_together_and_a_gap_is_named() {
        let tls_listen = Some("127.0.0.1:4443".parse().unwrap());
        let err = |args: ServerArgs| args.resolve().unwrap_err().to_string();
        let error = err(ServerArgs {
            tls_listen,
            tls_key: Some("key.pem".into()),
            ..Default::default()
        });
        assert!(
            error.contains("`tls_listen`") && error.contains("tls_cert"),
            "{error}"
        );
        let error = err(ServerArgs {
            tls_cert: Some("cert.pem".into()),
            tls_key: Some("key.pem".into()),
            ..Default::default()
        });
        assert!(error.contains("`tls_cert`"), "{error}");

        let config = ServerArgs {
            tls_listen,
            tls_cert: Some("cert.pem".into()),
            tls_key: Some("key.pem".into()),
            tls_reload_secs: Some(0),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let tls = config.tls.unwrap();
        assert_eq!(tls.listen.to_string(), "127.0.0.1:4443");
        assert_eq!(
            (tls.cert.as_path(), tls.reload_every),
            (Path::new("cert.pem"), None)
        );
        assert!(
            config.listen.is_some(),
            "the plain port stays on beside TLS"
        );
    }

    #[test]
    fn cluster_tls_takes_all_three_files_layered_and_a_missing_one_is_named() {
        let err = |args: ServerArgs| args.resolve().unwrap_err().to_string();
        let error = err(ServerArgs {
            cluster_tls_cert: Some("node.pem".into()),
            cluster_tls_ca: Some("ca.pem".into()),
            ..Default::default()
        });
        assert!(error.contains("`cluster_tls_key`"), "{error}");
        let error = err(ServerArgs {
            cluster_tls_key: Some("node.key".into()),
            ..Default::default()
        });
        assert!(error.contains("`cluster_tls_cert`"), "{error}");
        let file = write("cluster_tls_cert = \"file.pem\"\ncluster_tls_key = \"file.key\"\n");
        let error = err(ServerArgs {
            config: Some(file.path().to_path_buf()),
            ..Default::default()
        });
        assert!(error.contains("`cluster_tls_ca`"), "{error}");

        // The file gives two, a flag the third and overrides one; off by default.
        assert_eq!(ServerArgs::default().resolve().unwrap().cluster_tls, None);
        let config = ServerArgs {
            config: Some(file.path().to_path_buf()),
            cluster_tls_key: Some("flag.key".into()),
            cluster_tls_ca: Some("ca.pem".into()),
            tls_reload_secs: Some(2),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            config.cluster_tls,
            Some(ClusterTlsConfig {
                cert: "file.pem".into(),
                key: "flag.key".into(),
                ca: "ca.pem".into(),
                reload_every: Some(Duration::from_secs(2)),
            })
        );
    }

    #[test]
    fn either_listener_can_be_off_but_not_both() {
        for off in ["off", "OFF", "", " off "] {
            assert_eq!(off.parse::<ListenAddr>(), Ok(ListenAddr(None)), "{off:?}");
        }
        assert!("4567".parse::<ListenAddr>().unwrap_err().contains("`off`"));

        let error = ServerArgs {
            listen: Some(ListenAddr(None)),
            ..Default::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(error.contains("`listen`"), "{error}");

        let file = write(
            "listen = \"off\"\ntls_listen = \"0.0.0.0:4443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
        );
        let config = ServerArgs {
            config: Some(file.path().to_path_buf()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.listen, None);
        assert_eq!(config.tls.unwrap().listen.to_string(), "0.0.0.0:4443");
    }

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kinesin.example.toml");
        let args = ServerArgs {
            config: Some(path),
            ..Default::default()
        };
        args.resolve().unwrap();
    }
}
