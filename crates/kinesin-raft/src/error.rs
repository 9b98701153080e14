use crate::NodeId;

/// Why a group could not take a write. The gateway maps these to Kinesis errors once.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error("group {group} is not led by this node (leader: {leader:?})")]
    NotLeader { group: u64, leader: Option<NodeId> },
    #[error("group {0} is not hosted on this node")]
    NoSuchGroup(u64),
    #[error("group {group} stopped: {reason}")]
    Stopped { group: u64, reason: String },
    #[error("the outcome of a write to group {group} is unknown: {reason}")]
    Unknown { group: u64, reason: String },
    #[error("group {group}: node at {addr} unreachable: {reason}")]
    Unreachable {
        group: u64,
        addr: String,
        reason: String,
    },
    /// A linearizable read could not be served: no leader, or the leader could not confirm its
    /// leadership with a quorum, or this replica did not catch up in time.
    #[error("group {group}: cannot read linearizably now: {reason}")]
    NotLinearizable { group: u64, reason: String },
    /// The shard's leader refused a write over the shard's throughput limits (nothing written).
    #[error("group {group} is over its write throughput limit")]
    Throttled { group: u64 },
    #[error("storage: {0}")]
    Storage(#[from] kinesin_storage::StorageError),
    #[error("{0}")]
    Other(String),
}
