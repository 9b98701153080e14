//! The controller's state cell, its openraft applier, and the handle the rest of the node uses.

use std::sync::{Arc, OnceLock, RwLock};

use kinesin_raft::{Command as RaftCommand, ControllerApplier, GroupHandle, RaftError, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::command::{Command, Outcome};
use crate::state::ClusterState;
use crate::ControllerError;

/// The controller is Raft group 0 on every node that votes in it.
pub const CONTROLLER_GROUP: u64 = 0;

type Applied = Result<Outcome, ControllerError>;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    state: ClusterState,
}

/// Holds the applied state; readers get cheap `Arc` snapshots of it.
struct StateCell {
    state: RwLock<Arc<ClusterState>>,
    version: watch::Sender<u64>,
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
    fn apply(&self, _log_index: u64, command: &[u8]) -> Vec<u8> {
        let outcome: Applied = match bincode::deserialize::<Command>(command) {
            Ok(command) => {
                let mut guard = self.state.write().unwrap_or_else(|p| p.into_inner());
                let state = Arc::make_mut(&mut guard);
                let outcome = command.apply(state);
                if matches!(outcome, Ok(Outcome::Done)) {
                    state.version += 1;
                    self.version.send_replace(state.version);
                }
                outcome
            }
            Err(e) => Err(ControllerError::InvalidArgument(format!(
                "undecodable controller command: {e}"
            ))),
        };
        // Encoding our own enum cannot fail; an empty response decodes as an error upstream.
        bincode::serialize(&outcome).unwrap_or_default()
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        let state = (*self.read()).clone();
        bincode::serialize(&Snapshot { state }).map_err(|e| e.to_string())
    }

    fn restore(&self, snapshot: &[u8]) -> Result<(), String> {
        let snapshot: Snapshot = bincode::deserialize(snapshot).map_err(|e| e.to_string())?;
        self.replace(snapshot.state);
        Ok(())
    }
}

/// The node's view of, and way to change, the cluster metadata.
pub struct Controller {
    cell: Arc<StateCell>,
    group: OnceLock<GroupHandle>,
}

impl Default for Controller {
    fn default() -> Self {
        Controller::new()
    }
}

impl Controller {
    pub fn new() -> Controller {
        let (version, _) = watch::channel(0);
        Controller {
            cell: Arc::new(StateCell {
                state: RwLock::new(Arc::new(ClusterState::default())),
                version,
            }),
            group: OnceLock::new(),
        }
    }

    /// What the controller group's state machine calls.
    pub fn applier(&self) -> Arc<dyn ControllerApplier> {
        self.cell.clone()
    }

    /// Connects the handle of the running controller group (once).
    pub fn attach(&self, group: GroupHandle) {
        let _ = self.group.set(group);
    }

    pub fn group(&self) -> Option<&GroupHandle> {
        self.group.get()
    }

    /// The state as applied on this node.
    pub fn state(&self) -> Arc<ClusterState> {
        self.cell.read()
    }

    /// Fires whenever the applied state changes.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.cell.version.subscribe()
    }

    /// Commits `command` through the controller group and returns what applying it decided.
    pub async fn propose(&self, command: &Command) -> Result<Outcome, ControllerError> {
        let group = self
            .group
            .get()
            .ok_or_else(|| ControllerError::Unavailable("controller group not started".into()))?;
        let bytes = bincode::serialize(command)
            .map_err(|e| ControllerError::InvalidArgument(format!("unencodable command: {e}")))?;
        match group.write(RaftCommand::Controller(bytes)).await {
            Ok(Response::Controller(bytes)) => {
                bincode::deserialize::<Applied>(&bytes).map_err(|e| {
                    ControllerError::Unavailable(format!("undecodable controller response: {e}"))
                })?
            }
            Ok(other) => Err(ControllerError::Unavailable(format!(
                "unexpected response {other:?}"
            ))),
            Err(RaftError::NotLeader { leader, .. }) => Err(ControllerError::Unavailable(format!(
                "this node does not lead the controller (leader: {leader:?})"
            ))),
            Err(e) => Err(ControllerError::Unavailable(e.to_string())),
        }
    }
}
