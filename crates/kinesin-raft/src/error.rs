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

impl RaftError {
    /// The same error for another request that shared the failed write: storage errors, which
    /// cannot be cloned, as their text.
    pub(crate) fn shared_copy(&self) -> RaftError {
        match self {
            RaftError::NotLeader { group, leader } => RaftError::NotLeader {
                group: *group,
                leader: *leader,
            },
            RaftError::NoSuchGroup(group) => RaftError::NoSuchGroup(*group),
            RaftError::Stopped { group, reason } => RaftError::Stopped {
                group: *group,
                reason: reason.clone(),
            },
            RaftError::Unknown { group, reason } => RaftError::Unknown {
                group: *group,
                reason: reason.clone(),
            },
            RaftError::Unreachable {
                group,
                addr,
                reason,
            } => RaftError::Unreachable {
                group: *group,
                addr: addr.clone(),
                reason: reason.clone(),
            },
            RaftError::NotLinearizable { group, reason } => RaftError::NotLinearizable {
                group: *group,
                reason: reason.clone(),
            },
            RaftError::Throttled { group } => RaftError::Throttled { group: *group },
            RaftError::Storage(e) => RaftError::Other(format!("storage: {e}")),
            RaftError::Other(reason) => RaftError::Other(reason.clone()),
        }
    }
}
