//! The controller's state cell, its openraft applier, and the handle the rest of the node uses.

use std::sync::{Arc, OnceLock, RwLock};

use std::time::Duration;

use kinesin_raft::{
    Command as RaftCommand, ControllerApplier, GroupHandle, MultiRaft, RaftError, Response,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::command::{Command, Outcome};
use crate::disk_format;
use crate::proposal::ProposalId;
use crate::state::ClusterState;
use crate::ControllerError;

/// The controller is Raft group 0 on every node that votes in it.
pub const CONTROLLER_GROUP: u64 = 0;

/// How long a metadata read waits to learn the newest cluster state before answering unavailable.
/// Long enough to ride through one election: a node that restarts can campaign with a higher term
/// and unseat the controller's leader (openraft has no pre-vote here), and the next leader is
/// elected only after the followers' lease runs out, about 3 s later (CI caught reads failing at 3 s).
const CATCH_UP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// How long a change waits for the controller group (elections included) before failing.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a change whose outcome was lost is asked again before its outcome is unknown.
const RESOLVE_WITHIN: Duration = Duration::from_secs(20);
/// How long a committed change waits to be applied on this node too before answering anyway.
const LOCAL_APPLY_WAIT: Duration = Duration::from_secs(5);

/// What applying a command answers: the log index it was applied at, and the outcome.
type Applied = (u64, Result<Outcome, ControllerError>);

#[derive(Serialize, Deserialize)]
struct Snapshot {
    state: ClusterState,
    applied_index: u64,
}

/// Holds the applied state; readers get cheap `Arc` snapshots of it.
struct StateCell {
    state: RwLock<Arc<ClusterState>>,
    version: watch::Sender<u64>,
    /// Log index of the last command applied here.
    applied_index: watch::Sender<u64>,
}

impl StateCell {
    fn read(&self) -> Arc<ClusterState> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn replace(&self, state: ClusterState) {
        let version = state.version;
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
        self.version.send_replace(version);
    }
}

impl ControllerApplier for StateCell {
    fn apply(&self, log_index: u64, command: &[u8]) -> Vec<u8> {
        let outcome = match disk_format::decode::<Command>(command) {
            Ok(command) => {
                let mut guard = self.state.write().unwrap_or_else(|p| p.into_inner());
                let state = Arc::make_mut(&mut guard);
                let repeat = command.repeats_in(state);
                let outcome = command.apply(state);
                if !repeat && outcome.as_ref().is_ok_and(Outcome::changed) {
                    state.version += 1;
                    self.version.send_replace(state.version);
                }
                outcome
            }
            Err(e) => Err(ControllerError::InvalidArgument(format!(
                "undecodable controller command: {e}"
            ))),
        };
        self.applied_index.send_replace(log_index);
        let applied: Applied = (log_index, outcome);
        // Encoding our own enum cannot fail; an empty response decodes as an error upstream.
        bincode::serialize(&applied).unwrap_or_default()
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        // The index is read first: the state can only be newer than it, never older.
        let applied_index = *self.applied_index.borrow();
        let state = (*self.read()).clone();
        disk_format::encode(&Snapshot {
            state,
            applied_index,
        })
    }

    fn restore(&self, snapshot: &[u8]) -> Result<(), String> {
        let snapshot: Snapshot = disk_format::decode(snapshot)?;
        self.replace(snapshot.state);
        self.applied_index.send_replace(snapshot.applied_index);
        Ok(())
    }
}

/// The node's view of, and way to change, the cluster metadata.
pub struct Controller {
    cell: Arc<StateCell>,
    raft: OnceLock<Arc<MultiRaft>>,
}

impl Default for Controller {
    fn default() -> Self {
        Controller::new()
    }
}

impl Controller {
    pub fn new() -> Controller {
        let (version, _) = watch::channel(0);
        let (applied_index, _) = watch::channel(0);
        Controller {
            cell: Arc::new(StateCell {
                state: RwLock::new(Arc::new(ClusterState::default())),
                version,
                applied_index,
            }),
            raft: OnceLock::new(),
        }
    }

    /// What the controller group's state machine calls.
    pub fn applier(&self) -> Arc<dyn ControllerApplier> {
        self.cell.clone()
    }

    /// Connects the node's groups, which host (or reach) the controller group (once).
    pub fn attach(&self, raft: Arc<MultiRaft>) {
        let _ = self.raft.set(raft);
    }

    /// The controller group, when this node hosts a replica of it.
    pub fn group(&self) -> Option<GroupHandle> {
        self.raft.get()?.group(CONTROLLER_GROUP)
    }

    /// The state as applied on this node.
    pub fn state(&self) -> Arc<ClusterState> {
        self.cell.read()
    }

    /// Fires whenever the applied state changes.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.cell.version.subscribe()
    }

    /// Commits `command` through the controller group — forwarded to its leader when that is
    /// another node — and returns what applying it decided, once this node has applied it too
    /// (so a client that changes something through this node sees the change here next).
    /// Waits until this node's copy of the cluster state holds every change committed before the
    /// call: a linearizable-read barrier (one call to the controller's leader when it is elsewhere).
    /// Metadata reads go through it, so a node that lags (just restarted, just healed) answers as
    /// the node that made a change would, instead of "not found" for a stream that exists.
    pub async fn catch_up(&self) -> Result<(), ControllerError> {
        let raft = self
            .raft
            .get()
            .ok_or_else(|| ControllerError::Unavailable("controller group not started".into()))?;
        raft.linearize(CONTROLLER_GROUP, CATCH_UP_TIMEOUT)
            .await
            .map_err(|e| ControllerError::Unavailable(e.to_string()))
    }

    pub async fn propose(&self, command: &Command) -> Result<Outcome, ControllerError> {
        let state = self.state();
        let voters: Vec<u64> = state.nodes.keys().copied().collect();
        self.propose_through(command, &state.addresses(&voters))
            .await
    }

    /// [`Self::propose`] through `replicas` (node → cluster address): for a node whose own copy
    /// of the state is empty (rebuilt from its peers), which knows the others from its
    /// configuration only.
    ///
    /// An attempt whose outcome was lost (its connection closed, the leader changed under it) is
    /// made again with the same [`ProposalId`], which apply answers at most once, until one
    /// attempt answers or [`RESOLVE_WITHIN`] runs out; only then is the outcome unknown.
    pub async fn propose_through(
        &self,
        command: &Command,
        replicas: &[(u64, String)],
    ) -> Result<Outcome, ControllerError> {
        let raft = self
            .raft
            .get()
            .ok_or_else(|| ControllerError::Unavailable("controller group not started".into()))?;
        let once = Command::Once {
            id: ProposalId::new(raft.node_id()),
            change: Box::new(command.clone()),
        };
        let bytes = disk_format::encode(&once)
            .map_err(|e| ControllerError::InvalidArgument(format!("unencodable command: {e}")))?;
        let deadline = tokio::time::Instant::now() + RESOLVE_WITHIN;
        let mut backoff = Duration::from_millis(50);
        let mut lost: Option<String> = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let error = match self
                .propose_once(raft, &bytes, replicas, left.min(PROPOSE_TIMEOUT))
                .await
            {
                Err(ControllerError::OutcomeUnknown(reason)) => reason,
                // Not made by this attempt, but an earlier one may still commit.
                Err(ControllerError::Unavailable(reason)) if lost.is_some() => reason,
                answered => return answered,
            };
            if tokio::time::Instant::now() + backoff >= deadline {
                return Err(ControllerError::OutcomeUnknown(lost.unwrap_or(error)));
            }
            tracing::debug!(error = %error, "a controller change's outcome was lost: asking again");
            lost.get_or_insert(error);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// One attempt of [`Self::propose_through`].
    async fn propose_once(
        &self,
        raft: &MultiRaft,
        bytes: &[u8],
        replicas: &[(u64, String)],
        timeout: Duration,
    ) -> Result<Outcome, ControllerError> {
        match raft
            .propose(
                CONTROLLER_GROUP,
                &RaftCommand::Controller(bytes.to_vec()),
                replicas,
                timeout,
            )
            .await
        {
            Ok(Response::Controller(bytes)) => {
                let (index, outcome) = bincode::deserialize::<Applied>(&bytes).map_err(|e| {
                    ControllerError::Unavailable(format!("undecodable controller response: {e}"))
                })?;
                let mut applied = self.cell.applied_index.subscribe();
                let caught_up = applied.wait_for(|&applied| applied >= index);
                if tokio::time::timeout(LOCAL_APPLY_WAIT, caught_up)
                    .await
                    .is_err()
                {
                    tracing::warn!(index, "controller change not yet applied on this node");
                }
                outcome
            }
            Ok(other) => Err(ControllerError::Unavailable(format!(
                "unexpected response {other:?}"
            ))),
            Err(RaftError::NotLeader { leader, .. }) => Err(ControllerError::Unavailable(format!(
                "the controller has no reachable leader (last known: {leader:?})"
            ))),
            // Refused before any leader took it: not made.
            Err(e @ (RaftError::NoSuchGroup(_) | RaftError::Unreachable { .. })) => {
                Err(ControllerError::Unavailable(e.to_string()))
            }
            // Anything else (a timeout, a connection lost mid-call, a remote failure) may still
            // commit.
            Err(e) => Err(ControllerError::OutcomeUnknown(e.to_string())),
        }
    }
}
