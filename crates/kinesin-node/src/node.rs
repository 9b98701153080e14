//! Start-up and shutdown of one node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kinesin_controller::{Command, Controller, CONTROLLER_GROUP};
use kinesin_gateway::{Gateway, GatewaySettings};
use kinesin_raft::{GroupKind, GroupOptions, MultiRaft, RaftTuning};
use kinesin_storage::{Engine, EngineOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ServerConfig;
use crate::{reconciler, retention};

const NODE_ID_KEY: &str = "node_id";
const LEADER_WAIT: Duration = Duration::from_secs(30);

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
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running node. Dropping it does not stop it; call [`Node::shutdown`].
pub struct Node {
    raft: Arc<MultiRaft>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    api_addr: std::net::SocketAddr,
}

impl Node {
    /// Opens the data directory, starts (or rejoins) the cluster and serves the Kinesis API.
    pub async fn start(config: ServerConfig) -> Result<Node, NodeError> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|e| NodeError::DataDir {
            dir: data_dir.display().to_string(),
            message: e.to_string(),
        })?;
        let engine = Arc::new(Engine::open(
            &data_dir.join("db"),
            &EngineOptions::default(),
        )?);
        check_identity(&engine, &config).await?;

        let raft = Arc::new(MultiRaft::new(
            config.node_id,
            engine.clone(),
            &RaftTuning::default(),
        )?);
        let controller = Arc::new(Controller::new());
        let members = BTreeMap::from([(config.node_id, config.cluster_listen.to_string())]);
        let group = raft
            .open_group(
                CONTROLLER_GROUP,
                GroupOptions {
                    kind: GroupKind::Controller(controller.applier()),
                    initial_members: Some(members),
                },
            )
            .await?;
        group.wait_for_leader(LEADER_WAIT).await?;
        controller.attach(group.clone());
        if controller.state().iterator_secret.is_none() && group.is_leader() {
            controller
                .propose(&Command::Bootstrap {
                    iterator_secret: rand::random(),
                })
                .await?;
        }
        tracing::info!(node = config.node_id, data_dir = %data_dir.display(), "controller ready");

        // Open this node's shard groups and let them elect before serving, so the first requests
        // after a restart find every shard ready.
        let cluster_addr = config.cluster_listen.to_string();
        if let Err(e) =
            reconciler::reconcile(&raft, &controller, &cluster_addr, &controller.state()).await
        {
            tracing::warn!(error = %e, "first reconcile pass failed; the reconciler keeps trying");
        }
        for id in raft.group_ids() {
            if let Some(group) = raft.group(id) {
                group.wait_for_leader(LEADER_WAIT).await?;
            }
        }
        tracing::info!(groups = raft.group_ids().len(), "groups ready");

        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(reconciler::run(
            raft.clone(),
            controller.clone(),
            cluster_addr,
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(retention::run(
            raft.clone(),
            controller.clone(),
            Duration::from_secs(config.retention_check_secs),
            stopped.clone(),
        )));

        let gateway = Gateway::new(
            GatewaySettings {
                node_id: config.node_id,
                account_id: config.account_id.clone(),
                default_region: config.default_region.clone(),
                limits: config.limits.clone(),
            },
            controller.clone(),
            raft.clone(),
        );
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| NodeError::Listen {
                    addr: config.listen.to_string(),
                    source,
                })?;
        let api_addr = listener.local_addr().map_err(|source| NodeError::Listen {
            addr: config.listen.to_string(),
            source,
        })?;
        let mut api_stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = api_stopped.wait_for(|stop| *stop).await;
            };
            if let Err(e) = axum::serve(listener, gateway.router())
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "Kinesis API server failed");
            }
        }));
        tracing::info!(node = config.node_id, endpoint = %format!("http://{api_addr}"), "serving the Kinesis API");
        Ok(Node {
            raft,
            stop,
            tasks,
            api_addr,
        })
    }

    /// Where the Kinesis API listens (useful with port 0).
    pub fn api_addr(&self) -> std::net::SocketAddr {
        self.api_addr
    }

    /// Stops serving, lets in-flight requests finish, then stops every group.
    pub async fn shutdown(self) {
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
