//! The `kinesin` command.

mod ctl;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kinesin_node::telemetry::{self, Origin};
use kinesin_node::{LogFormat, Node, ServerArgs, ServerConfig};

/// Kinesin: a self-hosted, Raft-replicated server for the Amazon Kinesis Data Streams API.
///
/// Point any Kinesis client (boto3, the AWS CLI, the AWS SDKs, the KCL) at a node's --listen
/// address with --endpoint-url (or its --tls-listen address, https://). Every write is on disk
/// before it is acknowledged.
#[derive(Parser)]
#[command(name = "kinesin", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up; boxing would gain nothing
enum Commands {
    /// Run a node. With no peers it forms (or, on restart, rejoins) a single-node cluster over its
    /// data directory. Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more detail.
    Server(ServerArgs),
    /// Inspect a running cluster through any node's HTTP admin API, as tables (or --json).
    ///
    /// Shows the nodes and the controller leader, or a stream's shards with their replicas,
    /// leaders and hash key ranges, as the node at --endpoint sees them. Errors (an unreachable
    /// node, an unknown stream) are one line on stderr and a non-zero exit status.
    #[command(after_help = "Examples:\n  \
        kinesin ctl cluster\n  \
        kinesin ctl --endpoint http://10.0.0.2:4567 shards events\n  \
        KINESIN_ENDPOINT=http://10.0.0.2:4567 kinesin ctl shards events --region eu-west-1 --json")]
    Ctl(ctl::CtlArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Commands::Server(args) => {
            // The settings say how to log, so they are read before anything is logged.
            let config = args.resolve();
            let telemetry = match &config {
                Ok(config) => telemetry::init(
                    config.log_format,
                    config.otlp_endpoint.as_deref(),
                    &Origin {
                        node_id: config.node_id,
                    },
                )?,
                Err(_) => telemetry::init(LogFormat::Text, None, &Origin { node_id: 0 })?,
            };
            let served = serve(config?).await;
            telemetry.flush();
            match served {
                Err(e) if is_corruption(&e) => {
                    tracing::error!(error = %e, "{CORRUPT_ADVICE}");
                    Ok(ExitCode::from(DATA_CORRUPT_EXIT))
                }
                result => result.map(|()| ExitCode::SUCCESS),
            }
        }
        Commands::Ctl(args) => {
            telemetry::init(LogFormat::Text, None, &Origin { node_id: 0 })?;
            Ok(ctl::run(args).await)
        }
    }
}

/// How long `server --join` keeps asking to be let in.
const JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Exit status after a storage failure (EX_IOERR in sysexits.h).
const STORAGE_FAILED_EXIT: i32 = 74;

/// Exit status when the data directory is found corrupt (EX_DATAERR in sysexits.h).
const DATA_CORRUPT_EXIT: u8 = 65;

const CORRUPT_ADVICE: &str =
    "the data directory is corrupt: this node must not serve or replicate \
    it; rebuild the node from its peers (README: \"A corrupt data directory\")";

fn is_corruption(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<kinesin_node::NodeError>(),
        Some(kinesin_node::NodeError::Storage(e)) if e.is_corruption()
    )
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    #[cfg_attr(not(feature = "failpoints"), allow(unused_mut))]
    let mut config = config;
    #[cfg(feature = "failpoints")]
    if let Ok(spec) = std::env::var(kinesin_node::failpoints::VARIABLE) {
        for (name, actions) in
            kinesin_node::failpoints::configure(&spec).map_err(anyhow::Error::msg)?
        {
            tracing::error!(failpoint = %name, %actions, "TEST BUILD: failpoint switched on; this node may lose data");
        }
        if let Some(clock) =
            kinesin_node::failpoints::clock_start_at().map_err(anyhow::Error::msg)?
        {
            config.clock = kinesin_types::SharedClock::new(clock);
        }
    }
    let node = loop {
        match start(config.clone()).await {
            Err(e) if config.rebuild_corrupt && is_corruption(&e) => {
                tracing::error!(error = %e, "the data directory is corrupt; rebuilding this node from its peers");
                let aside = kinesin_node::rebuild::quarantine(&config.data_dir)?;
                tracing::warn!(moved_to = %aside.display(), "the corrupt database was moved aside");
            }
            result => break result?,
        }
    };
    eprintln!("{}", ready_message(&node));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut reload = reload_signal(node.has_certificates());
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            failure = node.storage_failed() => {
                // Fail-stop: no graceful shutdown over a disk that cannot be trusted. What was
                // acknowledged is on a majority; this node catches up when it is restarted, or
                // is rebuilt from its peers when its data is damaged.
                if failure.corruption {
                    if config.rebuild_corrupt {
                        // The next start (a supervisor restarts the node) rebuilds it.
                        match kinesin_node::rebuild::quarantine(&config.data_dir) {
                            Ok(aside) => tracing::error!(%failure, moved_to = %aside.display(), "the data directory is corrupt: moved aside; the node rebuilds from its peers when it starts again"),
                            Err(e) => tracing::error!(%failure, error = %e, "{CORRUPT_ADVICE}"),
                        }
                    } else {
                        tracing::error!(%failure, "{CORRUPT_ADVICE}");
                    }
                    std::process::exit(DATA_CORRUPT_EXIT.into());
                }
                tracing::error!(%failure, "storage failed: stopping the node now; restart it once the disk is healthy");
                std::process::exit(STORAGE_FAILED_EXIT);
            }
            Some(()) = reload.recv() => {
                tracing::info!("SIGHUP: reloading the TLS certificates");
                // A failure is logged (naming the file) and the previous certificate kept.
                let _ = node.reload_tls();
            }
        }
    }
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

/// Starts the node on `config`'s data directory, in the life `rebuild::settle_life` gives it.
/// A joining node listens and waits to be let in while its join request is answered.
async fn start(mut config: kinesin_node::ServerConfig) -> anyhow::Result<Node> {
    kinesin_node::rebuild::settle_life(&mut config)?;
    let Some(url) = config.join.clone() else {
        return Ok(Node::start(config).await?);
    };
    let life = (config.life != 0).then_some(config.life);
    let advertise = config.cluster_advertise.clone();
    let joining = ctl::join(&url, config.node_id, &advertise, life, JOIN_TIMEOUT);
    let starting = Node::start(config);
    tokio::pin!(starting);
    tokio::select! {
        joined = joining => {
            joined?;
            Ok(starting.await?)
        }
        // Started before the answer came: it was a member already (a restart).
        node = &mut starting => Ok(node?),
    }
}

fn ready_message(node: &Node) -> String {
    let mut lines = vec!["Kinesin is ready:".to_string()];
    if let Some(addr) = node.api_addr() {
        lines.push(format!("  Kinesis API at http://{addr}"));
    }
    if let Some(addr) = node.tls_addr() {
        lines.push(format!("  Kinesis API over TLS at https://{addr}"));
    }
    let (scheme, addr, ca) = match (node.api_addr(), node.tls_addr()) {
        (Some(addr), _) => ("http", addr, ""),
        (None, Some(addr)) => ("https", addr, " --ca-bundle CA.pem"),
        (None, None) => return lines.join("\n"),
    };
    lines.push(format!(
        "  try: aws kinesis list-streams --endpoint-url {scheme}://{addr} --region us-east-1{ca}"
    ));
    lines.join("\n")
}

/// SIGHUP, when there is something to reload (the TLS certificate); otherwise SIGHUP keeps its
/// default meaning (the process ends), as before TLS existed.
fn reload_signal(wanted: bool) -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    if wanted {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        // Several signals while a reload is pending need only that one.
                        let _ = tx.try_send(());
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; the TLS certificate is reloaded only when its files change");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (wanted, tx);
    rx
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the node");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
