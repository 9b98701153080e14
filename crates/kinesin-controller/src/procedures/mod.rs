//! The controller's procedures: the background work that carries the replicated state out into
//! the shard groups. Every node runs them all; each acts only where it must — the reconciler on
//! every node (it opens and drops this node's groups), retention on each shard's leader, and
//! liveness, on-demand scaling and resharding rounds on the controller's leader.
//!
//! They share one runner ([`run`]): a procedure is a pass, run on a schedule until the node
//! stops; a failed pass is logged with the procedure's name and retried at the next tick, so
//! every pass must be idempotent (it is: each reads the state afresh and redoes what is missing).

mod autoscale;
mod change_retry;
mod group_starts;
mod liveness;
mod reconciler;
mod resharder;
mod retention;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kinesin_raft::MultiRaft;
use kinesin_types::SharedClock;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Controller, NodeInfo};

pub use autoscale::OnDemandScaling;
pub use resharder::ReshardFaults;

/// What a failed pass reports (logged, then retried).
pub(crate) type PassError = Box<dyn std::error::Error + Send + Sync>;

/// Background work done in passes.
pub(crate) trait Procedure: Send + 'static {
    /// Named in the logs.
    const NAME: &'static str;

    fn pass(&mut self) -> impl Future<Output = Result<(), PassError>> + Send;
}

/// When a procedure's passes run.
pub(crate) enum Schedule {
    /// A pass, then one every period.
    Every(Duration),
    /// A pass whenever the controller state changes, and at least every period.
    OnChange(watch::Receiver<u64>, Duration),
}

/// Runs `procedure` on `schedule` until `stopped` turns true.
pub(crate) async fn run<P: Procedure>(
    mut procedure: P,
    schedule: Schedule,
    mut stopped: watch::Receiver<bool>,
) {
    let (mut changes, every) = match schedule {
        Schedule::Every(every) => (None, every),
        Schedule::OnChange(changes, every) => (Some(changes), every),
    };
    loop {
        pass_and_log(&mut procedure).await;
        let changed = async {
            match changes.as_mut() {
                Some(changes) => {
                    let _ = changes.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            _ = changed => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One pass; a failure is logged (the next pass retries).
async fn pass_and_log<P: Procedure>(procedure: &mut P) {
    if let Err(e) = procedure.pass().await {
        tracing::warn!(procedure = P::NAME, error = %e, "pass failed; retrying");
    }
}

/// How many of `nodes` vote in the controller group: all of up to three, three of four, five of
/// five or more.
pub fn controller_voter_count(nodes: usize) -> usize {
    match nodes {
        0..=3 => nodes,
        4 => 3,
        _ => 5,
    }
}

/// What the procedures need to know of their node.
#[derive(Debug, Clone)]
pub struct ProcedureSettings {
    pub node_id: u64,
    /// The cluster's initial nodes (the bootstrap command records them).
    pub initial_nodes: BTreeMap<u64, NodeInfo>,
    /// Silence after which a node is shown as down.
    pub down_after: Duration,
    /// Silence after which a node's replicas are moved.
    pub dead_after: Duration,
    /// Most shards moving a replica at once (`ClusterState::moves_at_once`); applied by the
    /// controller's leader.
    pub moves_at_once: u32,
    pub on_demand: OnDemandScaling,
    pub replication_factor: u32,
    pub shard_limit: u32,
    /// How often shard leaders look for records past retention.
    pub retention_every: Duration,
    pub clock: SharedClock,
}

/// A node's procedures, before they run.
pub struct Procedures {
    raft: Arc<MultiRaft>,
    controller: Arc<Controller>,
    settings: ProcedureSettings,
    reconciler: Arc<reconciler::Reconciler>,
    reshard_faults: Arc<ReshardFaults>,
}

impl Procedures {
    pub fn new(
        raft: Arc<MultiRaft>,
        controller: Arc<Controller>,
        settings: ProcedureSettings,
    ) -> Procedures {
        let reshard_faults = Arc::new(ReshardFaults::default());
        let reconciler = Arc::new(reconciler::Reconciler::new(
            raft.clone(),
            controller.clone(),
            settings.initial_nodes.clone(),
            settings.moves_at_once,
            reshard_faults.clone(),
            settings.clock.clone(),
        ));
        Procedures {
            raft,
            controller,
            settings,
            reconciler,
            reshard_faults,
        }
    }

    /// Test faults of the resharding procedure.
    pub fn reshard_faults(&self) -> Arc<ReshardFaults> {
        self.reshard_faults.clone()
    }

    /// Reconciler passes now, until this node's groups are all open (a pass opens only so many
    /// at once) or `until`, so that a node restarting can let them elect before it serves; the
    /// procedure's own passes open the rest.
    pub async fn reconcile_now(&self, until: tokio::time::Instant) {
        while tokio::time::Instant::now() < until {
            if let Err(e) = self.reconciler.clone().pass().await {
                // The procedure's own runner retries it.
                tracing::warn!(error = %e, "reconciler pass failed at start");
                return;
            }
            if self.reconciler.opened_all() {
                return;
            }
        }
    }

    /// Starts every procedure; each stops when `stopped` turns true.
    pub fn spawn(self, stopped: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let Procedures {
            raft,
            controller,
            settings,
            reconciler,
            ..
        } = self;
        let changes = controller.watch();
        vec![
            tokio::spawn(run(
                reconciler,
                Schedule::OnChange(changes, reconciler::RETRY_EVERY),
                stopped.clone(),
            )),
            tokio::spawn(run(
                liveness::Liveness::new(&raft, &controller, &settings),
                Schedule::Every(liveness::CHECK_EVERY),
                stopped.clone(),
            )),
            tokio::spawn(run(
                autoscale::Autoscaler::new(&raft, &controller, &settings),
                Schedule::Every(Duration::from_secs(settings.on_demand.check_secs)),
                stopped.clone(),
            )),
            tokio::spawn(run(
                retention::Retention::new(&raft, &controller, &settings),
                Schedule::Every(settings.retention_every),
                stopped.clone(),
            )),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// Reports each pass's number; the first pass fails.
    struct Counting {
        passes: mpsc::UnboundedSender<u32>,
        count: u32,
    }

    impl Procedure for Counting {
        const NAME: &'static str = "counting";

        async fn pass(&mut self) -> Result<(), PassError> {
            self.count += 1;
            let _ = self.passes.send(self.count);
            if self.count == 1 {
                return Err("the first pass fails".into());
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_procedure_passes_at_once_again_on_each_change_despite_a_failure_and_stops_when_told()
    {
        let (change, changes) = watch::channel(0u64);
        let (stop, stopped) = watch::channel(false);
        let (passes, mut passed) = mpsc::unbounded_channel();
        let procedure = Counting { passes, count: 0 };
        let hour = Duration::from_secs(3600);
        let task = tokio::spawn(run(procedure, Schedule::OnChange(changes, hour), stopped));
        assert_eq!(passed.recv().await, Some(1));
        change.send(1).unwrap();
        assert_eq!(passed.recv().await, Some(2));
        change.send(2).unwrap();
        assert_eq!(passed.recv().await, Some(3));
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(passed.recv().await, None, "no pass after the stop");
    }
}
