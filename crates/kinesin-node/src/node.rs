//! Start-up and shutdown of one node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kinesin_controller::{
    controller_voter_count, Controller, NodeInfo, ProcedureSettings, Procedures, ReshardFaults,
    CONTROLLER_GROUP,
};
use kinesin_gateway::{Gateway, GatewaySettings};
use kinesin_raft::{GroupKind, GroupOptions, GrpcWire, MultiRaft};
use kinesin_storage::Engine;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ServerConfig;
use crate::tls::{ClusterTls, TlsError, TlsServer};

/// How often the credentials and keyring files are checked for changes.
const WATCHED_FILES_POLL: Duration = Duration::from_secs(1);

const NODE_ID_KEY: &str = "node_id";
/// Set once a node joined a running cluster (`--join`).
const JOINED_KEY: &str = "joined";
/// How long a stopping node waits for the groups it leads to be handed over (a transfer takes a
/// round trip or two; a group whose followers are all down is not waited for beyond this).
const HANDOVER_WITHIN: Duration = Duration::from_secs(5);
/// How often start-up reports that it is still waiting for a controller majority.
const LEADER_WAIT_REPORT: Duration = Duration::from_secs(5);
/// How long start-up waits for this node's shard groups to elect before serving anyway.
const GROUPS_WAIT: Duration = Duration::from_secs(10);
/// How long start-up opens this node's shard groups (so many at a time, as each batch elects)
/// before serving anyway; the reconciler opens the rest.
const GROUPS_OPEN_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("data directory {dir}: {message}")]
    DataDir { dir: String, message: String },
    #[error("storage: {0}")]
    Storage(#[from] kinesin_storage::StorageError),
    #[error("raft: {0}")]
    Raft(#[from] kinesin_raft::RaftError),
    #[error("controller: {0}")]
    Controller(#[from] kinesin_controller::ControllerError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("{0}")]
    Credentials(#[from] kinesin_gateway::CredentialsError),
    #[error("{0}")]
    Keyring(#[from] kinesin_gateway::encryption::KeyringError),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Sockets a node serves on, bound by the caller (a test that must know its ports up front).
/// The configuration decides which API listeners are on; one left `None` here that is on binds
/// its configured address, one given for a listener that is off is closed.
pub struct Listeners {
    pub cluster: TcpListener,
    pub api: Option<TcpListener>,
    pub tls: Option<TcpListener>,
}

/// A running node. Dropping it does not stop it; call [`Node::shutdown`].
pub struct Node {
    raft: Arc<MultiRaft>,
    controller: Arc<Controller>,
    reshard_faults: Arc<ReshardFaults>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    api_addr: Option<std::net::SocketAddr>,
    tls_addr: Option<std::net::SocketAddr>,
    tls: Option<Arc<TlsServer>>,
    cluster_tls: Option<Arc<ClusterTls>>,
    storage_failure: watch::Receiver<Option<kinesin_storage::StorageFailure>>,
}

/// Serves the cluster transport on `incoming` connections (plain TCP, or mTLS) until `shutdown`.
async fn serve_cluster<IO>(
    server: tonic::transport::server::Router,
    incoming: impl futures::Stream<Item = std::io::Result<IO>>,
    shutdown: impl std::future::Future<Output = ()>,
) where
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
{
    if let Err(e) = server
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
    {
        tracing::error!(error = %e, "cluster transport server failed");
    }
}

fn listen_error(addr: std::net::SocketAddr) -> impl Fn(std::io::Error) -> NodeError {
    move |source| NodeError::Listen {
        addr: addr.to_string(),
        source,
    }
}

impl Node {
    /// Opens the data directory, starts (or rejoins) the cluster and serves the Kinesis API.
    pub async fn start(config: ServerConfig) -> Result<Node, NodeError> {
        Node::start_with(config, None).await
    }

    /// [`Node::start`] on listeners the caller bound.
    pub async fn start_on(config: ServerConfig, listeners: Listeners) -> Result<Node, NodeError> {
        Node::start_with(config, Some(listeners)).await
    }

    async fn start_with(
        config: ServerConfig,
        listeners: Option<Listeners>,
    ) -> Result<Node, NodeError> {
        let (cluster_listener, api_listener, tls_listener) = match listeners {
            Some(l) => (Some(l.cluster), l.api, l.tls),
            None => (None, None, None),
        };
        // Before anything else: a bad certificate must stop the start-up at once, naming the file.
        let tls = config
            .tls
            .as_ref()
            .map(TlsServer::load)
            .transpose()?
            .map(Arc::new);
        let cluster_tls = config
            .cluster_tls
            .as_ref()
            .map(ClusterTls::load)
            .transpose()?
            .map(Arc::new);
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|e| NodeError::DataDir {
            dir: data_dir.display().to_string(),
            message: e.to_string(),
        })?;
        let engine = Arc::new(Engine::open(&data_dir.join("db"), &config.storage)?);
        check_identity(&engine, &config).await?;
        let storage_failure = engine.failed();

        let wire = match &cluster_tls {
            Some(tls) => GrpcWire::with_tls(tls.client_config()),
            None => GrpcWire::default(),
        };
        let raft = Arc::new(
            MultiRaft::over(config.node_id, engine.clone(), &config.raft, Arc::new(wire))?
                .in_life(config.life),
        );
        raft.start_upkeep();
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();

        // Peers must reach this node before it can win (or even learn of) a controller election.
        let cluster_listener = bound_or_bind(cluster_listener, config.cluster_listen).await?;
        let service = raft.transport_service();
        let mut cluster_stopped = stopped.clone();
        let shutdown = async move {
            let _ = cluster_stopped.wait_for(|stop| *stop).await;
        };
        let server = tonic::transport::Server::builder().add_service(service);
        match &cluster_tls {
            None => {
                let incoming = tonic::transport::server::TcpIncoming::from(cluster_listener)
                    .with_nodelay(Some(true));
                tasks.push(tokio::spawn(serve_cluster(server, incoming, shutdown)));
            }
            Some(tls) => {
                let addr = config.cluster_listen;
                let incoming = tls.incoming(cluster_listener).map_err(listen_error(addr))?;
                tasks.push(tokio::spawn(serve_cluster(server, incoming, shutdown)));
                let (tls, stopped) = (tls.clone(), stopped.clone());
                tasks.push(tokio::spawn(async move { tls.watch(stopped).await }));
                tracing::info!(node = config.node_id, %addr, "cluster transport in mutual TLS: only nodes with certificates of the cluster's CA are let in");
            }
        }

        let controller = Arc::new(Controller::new());
        controller.attach(raft.clone());
        // The first few initial nodes vote in the controller group; the others follow it as
        // learners (added by its leader), so every node has the cluster state locally.
        // A node that joined a running cluster never forms a controller group of its own: it
        // waits to be added to the existing one (also on restarts without --join).
        // So does a node in a later life of its data (rebuilt from its peers): it announces its
        // new life to the controller over the cluster transport when no --join names a node to
        // ask through.
        let joined =
            config.join.is_some() || config.life != 0 || engine.meta(JOINED_KEY)?.is_some();
        if config.join.is_some() || config.life != 0 {
            engine.put_meta_durably(JOINED_KEY, b"1").await?;
        }
        if config.life != 0 && config.join.is_none() {
            tasks.push(tokio::spawn(crate::rebuild::announce(
                controller.clone(),
                config.node_id,
                config.cluster_advertise.clone(),
                config.life,
                config.peers.clone(),
            )));
        }
        let voters = controller_voters(&config.peers);
        let group = raft
            .open_group(
                CONTROLLER_GROUP,
                GroupOptions {
                    kind: GroupKind::Controller(controller.applier()),
                    initial_members: (!joined && voters.contains_key(&config.node_id))
                        .then_some(voters),
                },
            )
            .await?;
        while group.wait_for_leader(LEADER_WAIT_REPORT).await.is_err() {
            tracing::info!(
                peers = config.peers.len(),
                "waiting for a majority of the controller's nodes to elect a leader"
            );
        }
        // Learn what changed while this node was away before choosing the groups to host: with a
        // stale state it reopens the groups of streams deleted meanwhile and waits for them to elect.
        // A node that joined has no state of its own to start from: it waits until it has the
        // cluster's, else it would answer "not found" for every stream.
        while let Err(e) = controller.catch_up().await {
            if !joined {
                tracing::warn!(error = %e, "could not catch up with the controller's leader; starting from the local state");
                break;
            }
            tracing::info!(error = %e, "waiting for the cluster state from the controller's leader");
        }
        tracing::info!(node = config.node_id, data_dir = %data_dir.display(), "controller ready");

        let nodes: BTreeMap<u64, NodeInfo> = config
            .peers
            .iter()
            .map(|(id, addr)| (*id, NodeInfo::new(addr.clone())))
            .collect();
        let procedures = Procedures::new(
            raft.clone(),
            controller.clone(),
            ProcedureSettings {
                node_id: config.node_id,
                initial_nodes: nodes,
                down_after: Duration::from_millis(config.raft.election_max_ms * 3),
                dead_after: Duration::from_secs(config.dead_node_secs),
                moves_at_once: config.replica_moves_at_once,
                on_demand: config.on_demand.clone(),
                replication_factor: config.replication_factor,
                shard_limit: config.limits.shard_limit,
                retention_every: Duration::from_secs(config.retention_check_secs),
                clock: config.clock.clone(),
            },
        );
        let reshard_faults = procedures.reshard_faults();
        // Open this node's shard groups and let them elect before serving, so the first requests
        // after a restart find every shard ready.
        procedures
            .reconcile_now(tokio::time::Instant::now() + GROUPS_OPEN_WAIT)
            .await;
        let deadline = tokio::time::Instant::now() + GROUPS_WAIT;
        for id in raft.group_ids() {
            let Some(group) = raft.group(id) else {
                continue;
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if group.wait_for_leader(left).await.is_err() {
                tracing::warn!(group = id, "group has no leader yet; serving anyway");
            }
        }
        tracing::info!(groups = raft.group_ids().len(), "groups ready");
        tasks.extend(procedures.spawn(&stopped));

        let credentials = match &config.credentials {
            Some(path) => {
                let store = Arc::new(kinesin_gateway::CredentialStore::open(path)?);
                tracing::info!(file = %path.display(), users = store.current().len(), "requests must be signed (SigV4) by a principal of the credentials file");
                tasks.push(store.spawn_reloader(WATCHED_FILES_POLL, stopped.clone()));
                Some(store)
            }
            None => {
                tracing::warn!("no --credentials: requests are NOT authenticated; anyone who reaches the API may read, write and delete every stream and use the admin API");
                None
            }
        };
        let keyring = Arc::new(kinesin_gateway::encryption::Keyring::open(&config.keyring)?);
        if keyring.path().starts_with(&config.data_dir) {
            tracing::debug!(keyring = %keyring.path().display(), "the keyring for encryption at rest is inside the data directory: whoever has the directory can decrypt; set --keyring to a file kept elsewhere");
        }
        tasks.push(keyring.spawn_reloader(WATCHED_FILES_POLL, stopped.clone()));
        let data_keys = Arc::new(kinesin_gateway::encryption::DataKeys::new(keyring));
        let gateway = Gateway::new(
            GatewaySettings {
                node_id: config.node_id,
                account_id: config.account_id.clone(),
                default_region: config.default_region.clone(),
                limits: config.limits.clone(),
                replication_factor: config.replication_factor,
                credentials,
                data_keys,
                console_dir: config.console_dir.clone(),
            },
            controller.clone(),
            raft.clone(),
            config.clock.clone(),
        );
        if let Some(endpoint) = &config.otlp_endpoint {
            tasks.push(crate::telemetry::otlp_metrics::spawn(
                gateway.clone(),
                endpoint.clone(),
                config.otlp_metrics_every,
                crate::telemetry::Origin {
                    node_id: config.node_id,
                },
                stopped.clone(),
            ));
        }
        // Bound only now (unless given), so a client that can connect finds the node serving.
        let router = gateway.router();
        let api_addr = match config.listen {
            Some(addr) => {
                let listener = bound_or_bind(api_listener, addr).await?;
                let local = listener.local_addr().map_err(listen_error(addr))?;
                // Nagle would hold a response's last segment until the client acknowledged the
                // one before (up to its delayed-ACK timer, 40 ms on Linux).
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                tasks.push(tokio::spawn(serve_api(
                    listener,
                    router.clone(),
                    stopped.clone(),
                )));
                tracing::info!(node = config.node_id, endpoint = %format!("http://{local}"), "serving the Kinesis API");
                Some(local)
            }
            None => None,
        };
        let tls_addr = match (&config.tls, &tls) {
            (Some(settings), Some(tls)) => {
                let addr = settings.listen;
                let listener = bound_or_bind(tls_listener, addr).await?;
                let local = listener.local_addr().map_err(listen_error(addr))?;
                let listener = tls.listener(listener).map_err(listen_error(addr))?;
                let router = gateway.tls_router();
                tasks.push(tokio::spawn(serve_api(listener, router, stopped.clone())));
                let (tls, stopped) = (tls.clone(), stopped.clone());
                tasks.push(tokio::spawn(async move { tls.watch(stopped).await }));
                tracing::info!(node = config.node_id, endpoint = %format!("https://{local}"), "serving the Kinesis API over TLS");
                Some(local)
            }
            _ => None,
        };
        Ok(Node {
            raft,
            controller,
            reshard_faults,
            stop,
            tasks,
            api_addr,
            tls_addr,
            tls,
            cluster_tls,
            storage_failure,
        })
    }

    /// Resolves, with what failed, when the storage engine fails a write or an fsync, or reads
    /// damaged data. The node's durable state is then uncertain; the binary stops the process at
    /// once (fail-stop), rather than serving from a state it cannot make durable or trust.
    pub async fn storage_failed(&self) -> kinesin_storage::StorageFailure {
        let mut failure = self.storage_failure.clone();
        let failed = failure.wait_for(Option::is_some).await.map(|f| f.clone());
        match failed {
            Ok(Some(what)) => what,
            // The engine is gone (shut down): it can no longer fail.
            _ => std::future::pending().await,
        }
    }

    /// Where the Kinesis API listens in plain HTTP (useful with port 0); `None` when it is off.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.api_addr
    }

    /// Where the Kinesis API listens over TLS; `None` when it is off.
    pub fn tls_addr(&self) -> Option<std::net::SocketAddr> {
        self.tls_addr
    }

    /// Loads the TLS certificate and key files again (SIGHUP), for new connections. A failure is
    /// logged and the previous certificate kept. Nothing to do without TLS.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        let api = self.tls.as_ref().map(|tls| tls.cert().reload());
        let cluster = self.cluster_tls.as_ref().map(|tls| tls.cert().reload());
        api.unwrap_or(Ok(())).and(cluster.unwrap_or(Ok(())))
    }

    /// Whether SIGHUP has a certificate to reload (the API's or the cluster's).
    pub fn has_certificates(&self) -> bool {
        self.tls.is_some() || self.cluster_tls.is_some()
    }

    /// This node's groups (tests inspect them and inject network faults through them).
    pub fn raft(&self) -> &Arc<MultiRaft> {
        &self.raft
    }

    pub fn controller(&self) -> &Arc<Controller> {
        &self.controller
    }

    /// Fault injection into resharding (tests).
    pub fn reshard_faults(&self) -> &ReshardFaults {
        &self.reshard_faults
    }

    /// Hands the groups this node leads to other nodes, stops serving, lets in-flight requests
    /// finish, then stops every group.
    pub async fn shutdown(self) {
        let started = std::time::Instant::now();
        let (led, handed) = self.raft.hand_over_leadership(HANDOVER_WITHIN).await;
        if led > 0 {
            tracing::info!(
                led,
                handed,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "leadership handed over before stopping"
            );
        }
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.raft.shutdown().await;
        if let Err(e) = self.raft.engine().sync().await {
            tracing::error!(error = %e, "final fsync failed");
        }
    }
}

/// The listener the caller bound, else a new one on `addr`.
async fn bound_or_bind(
    bound: Option<TcpListener>,
    addr: std::net::SocketAddr,
) -> Result<TcpListener, NodeError> {
    match bound {
        Some(listener) => Ok(listener),
        None => TcpListener::bind(addr).await.map_err(listen_error(addr)),
    }
}

/// Serves the API on `listener`, plain or TLS alike (HTTP/1.1 and HTTP/2 on either), until
/// `stopped`; then stops accepting and lets in-flight requests finish.
async fn serve_api<L>(listener: L, router: axum::Router, mut stopped: watch::Receiver<bool>)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let shutdown = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "Kinesis API server failed");
    }
}

/// Voters of the controller group among the initial nodes: all of up to three, three of four, five
/// of five or more (lowest ids first). More voters would add latency to every metadata change and
/// tolerate no more failures than the shards' own groups do.
pub(crate) fn controller_voters(peers: &BTreeMap<u64, String>) -> BTreeMap<u64, String> {
    peers
        .iter()
        .take(controller_voter_count(peers.len()))
        .map(|(id, addr)| (*id, addr.clone()))
        .collect()
}

/// A data directory belongs to one node id forever: starting node 2 on node 1's data would make
/// it vote with someone else's log.
async fn check_identity(engine: &Engine, config: &ServerConfig) -> Result<(), NodeError> {
    let mismatch = |message: String| NodeError::DataDir {
        dir: config.data_dir.display().to_string(),
        message,
    };
    match engine.meta(NODE_ID_KEY)? {
        Some(bytes) => {
            let stored = String::from_utf8_lossy(&bytes)
                .parse::<u64>()
                .map_err(|_| {
                    mismatch("holds an unreadable node id; refusing to start".to_string())
                })?;
            if stored != config.node_id {
                return Err(mismatch(format!(
                    "belongs to node {stored}, not node {}; use --node-id {stored} or another --data-dir",
                    config.node_id
                )));
            }
        }
        None => {
            engine
                .put_meta_durably(NODE_ID_KEY, config.node_id.to_string().as_bytes())
                .await?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_group_has_three_or_five_voters() {
        let peers = |n: u64| -> BTreeMap<u64, String> {
            (1..=n).map(|id| (id, format!("h{id}:4667"))).collect()
        };
        let voters = |n| controller_voters(&peers(n)).into_keys().collect::<Vec<_>>();
        assert_eq!(voters(1), vec![1]);
        assert_eq!(voters(3), vec![1, 2, 3]);
        assert_eq!(voters(4), vec![1, 2, 3]);
        assert_eq!(voters(5), vec![1, 2, 3, 4, 5]);
        assert_eq!(voters(9), vec![1, 2, 3, 4, 5]);
    }
}
