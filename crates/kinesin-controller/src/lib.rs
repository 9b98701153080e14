//! The controller: the cluster's metadata (streams, shards and their groups, tags, retention) as a
//! replicated state machine in Raft group 0, and the API to read it and change it.
//!
//! Every change is a [`Command`] validated *inside* apply against the current state, so two racing
//! requests can never both succeed where only one may (two CreateStreams of one name). Nodes read
//! the applied [`ClusterState`] and converge to it (the node's reconciler); the controller never
//! reaches out to nodes itself.
//!
//! It must never hold records or talk to the network: shard data lives in shard groups.

mod command;
mod controller;
mod error;
mod reshard;
mod state;

pub use command::{Command, Outcome};
pub use controller::{Controller, CONTROLLER_GROUP};
pub use error::ControllerError;
pub use reshard::{ParentSeal, Reshard, Round};
pub use state::{
    ClusterState, EncryptionType, NodeInfo, ShardMeta, StreamKey, StreamMeta, StreamMode,
    StreamStatus, MAX_RECORD_SIZE_KIB, MIN_RECORD_SIZE_KIB, SHARD_LEVEL_METRICS,
};
