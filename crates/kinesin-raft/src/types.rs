//! The openraft type configuration and what a Raft entry of Kinesin carries.

use serde::{Deserialize, Serialize};

pub type NodeId = u64;

/// Record positions are `log index << 20 | slot`: the position encodes where the record sits in the
/// shard's log, so every replica derives the same positions (and sequence numbers) without any
/// extra coordination, and positions strictly increase with the log.
pub const POSITIONS_PER_ENTRY_BITS: u32 = 20;

/// A record as the gateway hands it to a shard group.
///
/// A record of an encrypted stream arrives sealed: `data` is the gateway's envelope around the
/// partition key and data, `partition_key` is empty and `data_key` names the stream's data key
/// that sealed it. This crate never looks inside; it stores and returns the envelope as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecord {
    pub partition_key: String,
    /// Shared, so retrying a proposal (after a leader change) never copies the payload.
    pub data: bytes::Bytes,
    /// The generation of the stream's data key that sealed this record; 0 for a plaintext one.
    #[serde(default)]
    pub data_key: u32,
    /// What the record counts against a shard's limits when sealed: its partition key and data
    /// before sealing (the envelope's overhead is not the client's). 0 for a plaintext record.
    #[serde(default)]
    pub sealed_len: u32,
}

impl NewRecord {
    /// A record stored as the client sent it.
    pub fn plain(partition_key: impl Into<String>, data: impl Into<bytes::Bytes>) -> NewRecord {
        NewRecord {
            partition_key: partition_key.into(),
            data: data.into(),
            data_key: 0,
            sealed_len: 0,
        }
    }

    /// Bytes as Kinesis counts them against limits: data plus partition key, before sealing.
    pub fn counted_len(&self) -> u64 {
        if self.data_key == 0 {
            (self.data.len() + self.partition_key.len()) as u64
        } else {
            u64::from(self.sealed_len)
        }
    }
}

/// Bytes of `records` as Kinesis counts them against limits: data plus partition keys.
pub(crate) fn counted_bytes(records: &[NewRecord]) -> u64 {
    records.iter().map(NewRecord::counted_len).sum()
}

/// The payload of one Raft entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Shard group: append records, all stamped with one arrival time (chosen by the leader when it
    /// proposes, so every replica stores the same time).
    Put {
        arrival_ms: u64,
        records: Vec<NewRecord>,
    },
    /// Shard group: retention. Removes records that arrived before `before_ms`.
    Trim { before_ms: u64 },
    /// Shard group: resharding's fence. Closes the shard at this entry: every record is below
    /// it, and every later `Put` is answered `Sealed` instead of stored.
    Seal,
    /// Controller group: a controller command, opaque to this crate.
    Controller(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// What applying a [`Command`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Records of a `Put` got positions `first_position ..` in request order.
    Put {
        first_position: u64,
        arrival_ms: u64,
    },
    Trimmed {
        trim_position: u64,
    },
    /// The shard is sealed at `sealed_at` (the answer to `Seal`, and to a `Put` after it).
    Sealed {
        sealed_at: u64,
    },
    Controller(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A command the group cannot apply (for example a `Put` sent to the controller group). Applied
    /// deterministically as a no-op on every replica.
    Rejected(String),
    /// Blank and membership entries.
    None,
}

openraft::declare_raft_types!(
    /// Kinesin's openraft configuration: u64 node ids, BasicNode addresses, tokio with boxed
    /// channel slots (`runtime.rs`).
    pub TypeConfig:
        D = Command,
        R = Response,
        AsyncRuntime = crate::runtime::KinesinRuntime,
);

/// Short forms for openraft's logs: never the record payloads.
impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Put {
                arrival_ms,
                records,
            } => write!(f, "Put({} records @{arrival_ms})", records.len()),
            Command::Trim { before_ms } => write!(f, "Trim(<{before_ms})"),
            Command::Seal => write!(f, "Seal"),
            Command::Controller(bytes) => write!(f, "Controller({} bytes)", bytes.len()),
        }
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
