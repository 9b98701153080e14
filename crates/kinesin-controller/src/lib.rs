//! The controller: the cluster's metadata (streams, shards and their groups, tags, retention,
//! enhanced fan-out consumers, account settings) as a replicated state machine in Raft group 0,
//! the API to read it and change it, and the procedures that carry it out ([`Procedures`]: the
//! reconciler, resharding rounds, liveness, on-demand scaling, retention).
//!
//! Every change is a [`Command`] validated *inside* apply against the current state, so two racing
//! requests can never both succeed where only one may (two CreateStreams of one name). The
//! procedures read the applied [`ClusterState`] and drive the shard groups to it, in idempotent
//! passes; the state machine itself never reaches out to anything.
//!
//! It must never hold records: shard data lives in shard groups.

mod account;
mod command;
mod consumer;
mod controller;
mod disk_format;
mod error;
mod procedures;
mod proposal;
mod reshard;
mod resource;
#[cfg(test)]
mod simulation;
mod state;
#[cfg(test)]
mod test_support;

pub use account::{
    AccountKey, AccountSettings, Commitment, CommitmentStatus, MAX_WARM_THROUGHPUT_MIBPS,
    MIN_COMMITMENT_MS, SHARD_WRITE_MIBPS,
};
pub use command::{require_active, Command, NewDataKey, Outcome};
pub use consumer::{
    consumer_not_active, consumer_not_found, ConsumerKey, ConsumerMeta, ConsumerStatus,
    Registration, DEFAULT_MAX_CONSUMERS_PER_STREAM, MAX_CREATING_CONSUMERS,
};
pub use controller::{Controller, CONTROLLER_GROUP};
pub use error::ControllerError;
pub use procedures::{
    controller_voter_count, OnDemandScaling, ProcedureSettings, Procedures, ReshardFaults,
};
pub use proposal::{ProposalId, RecentProposals};
pub use reshard::{ParentSeal, Reshard, Round};
pub use state::{
    ClusterState, DataKey, EncryptionType, NodeInfo, Resource, ShardMeta, StreamKey, StreamMeta,
    StreamMode, StreamStatus, MAX_RECORD_SIZE_KIB, MIN_RECORD_SIZE_KIB, SHARD_LEVEL_METRICS,
};
