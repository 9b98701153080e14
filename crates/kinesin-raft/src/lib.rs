//! The multi-Raft runtime: every shard and the controller are Raft groups (openraft), hosted by one
//! [`MultiRaft`] per node and stored in the node's one [`kinesin_storage::Engine`].
//!
//! This crate owns the openraft type configuration, the log store and state machines on top of the
//! engine, the shard state machine (records in, positions out), and the group registry. Nothing
//! outside it names an openraft type: callers see [`GroupHandle`], [`Command`] and [`Response`].
//!
//! It must never acknowledge a write before openraft reports it committed, and it must never
//! interpret controller commands (they are opaque bytes handed to a [`ControllerApplier`]).

mod batch;
mod cluster_tls;
mod coalesce;
mod codec;
mod disk_format;
#[cfg(feature = "failpoints")]
mod early_ack;
mod error;
mod faults;
mod in_flight;
mod life;
mod liveness;
mod log_store;
mod node_stats;
mod pre_vote;
mod query;
mod quiesce;
mod quota;
mod registry;
pub mod runtime;
mod shard;
mod snapshot;
mod state_machine;
mod succession;
mod tombstone;
mod tracing_context;
mod transport;
mod types;
#[cfg(test)]
mod untrusted_bytes_tests;
mod upkeep;
mod versions;
mod wire;

pub use batch::TransportStats;
pub use cluster_tls::{RefusalLog, TrustError};
pub use error::RaftError;
pub use faults::{DropKinds, MessageKind, NetworkFaults, Outgoing, SendFilter};
pub use kinesin_storage::{StorageError, StoredRecord};
pub use life::{member_address, new_life, split_member_address};
pub use liveness::Liveness;
pub use node_stats::NodeStats;
pub use query::{AwaitedRead, ShardBounds, ShardQuery, ShardRead};
pub use quota::{TokenBuckets, WriteQuota};
pub use registry::{GroupHandle, GroupKind, GroupOptions, MultiRaft, RaftTuning, WriteStats};
pub use shard::ShardView;
pub use snapshot::SnapshotData;
pub use state_machine::ControllerApplier;
pub use transport::{pb, Inbox, Peers};
pub use types::{Command, NewRecord, NodeId, Response, TypeConfig, POSITIONS_PER_ENTRY_BITS};
pub use versions::{PeerVersion, PeerVersions, BUILD, CLUSTER_PROTOCOL, OLDEST_PEER_PROTOCOL};
pub use wire::{GrpcWire, Wire, WireError, WireFuture};

#[doc(hidden)]
pub mod testing {
    //! Exposed for the openraft storage conformance suite in `tests/`.
    pub use crate::log_store::LogStore;
    pub use crate::state_machine::GroupStateMachine;
}
