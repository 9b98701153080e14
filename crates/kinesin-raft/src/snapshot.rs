//! What a group's snapshot carries.
//!
//! The controller's snapshot is its whole state. A shard's is its small metadata (counters) as of
//! the point retention cut its log at, never any record: the records are the log entries after
//! that point, and a replica that needs them (lagging, or new after a join, drain or move) gets
//! them by log replication. A snapshot above the cut would make a lagging follower purge log
//! entries, and so records, it never received (openraft purges up to an installed snapshot).

use std::io;

use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};

pub struct SnapshotData {
    /// The state machine's own state (controller state, or a shard's counters).
    pub(crate) state: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
}

impl SnapshotData {
    /// Encodes the snapshot for a peer.
    pub(crate) fn into_wire(self) -> io::Result<Vec<u8>> {
        encode(&Wire { state: self.state })
    }

    pub(crate) fn from_wire(bytes: &[u8]) -> io::Result<SnapshotData> {
        let wire: Wire = decode(bytes)?;
        Ok(SnapshotData { state: wire.state })
    }
}
