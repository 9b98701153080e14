//! Every on-disk key layout of Kinesin, side by side with its decoder.
//!
//! Integers are big-endian so that RocksDB's byte order is numeric order: a group's log (which holds
//! a shard's records), its time index and its arrival clamps are each one contiguous, sorted key
//! range, which makes range scans and range deletes (truncate, purge, retention, dropping a group)
//! single operations.

use crate::StorageError;

pub const CF_RAFT_LOG: &str = "raft_log";
pub const CF_RAFT_STATE: &str = "raft_state";
pub const CF_RECORDS_BY_TIME: &str = "records_by_time";
pub const CF_ARRIVAL_CLAMPS: &str = "arrival_clamps";
pub const CF_META: &str = "meta";
pub const ALL_CFS: [&str; 5] = [
    CF_RAFT_LOG,
    CF_RAFT_STATE,
    CF_RECORDS_BY_TIME,
    CF_ARRIVAL_CLAMPS,
    CF_META,
];
/// Column families of earlier layouts, whose data directories this version refuses to open:
/// `records` held every payload (a second copy) until the Raft log became the record store.
pub const OBSOLETE_CFS: [&str; 1] = ["records"];

/// `raft_log`: group · index.
pub fn log_key(group: u64, index: u64) -> [u8; 16] {
    two_u64(group, index)
}

pub fn decode_log_key(key: &[u8]) -> Result<(u64, u64), StorageError> {
    decode_two_u64(key, "raft log key")
}

/// `raft_state`: group · tag.
pub fn state_key(group: u64, tag: u8) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&group.to_be_bytes());
    k[8] = tag;
    k
}

/// `arrival_clamps`: shard group · log index (see `records::Engine::put_arrival_clamp`).
pub fn clamp_key(group: u64, index: u64) -> [u8; 16] {
    two_u64(group, index)
}

pub fn decode_clamp_key(key: &[u8]) -> Result<(u64, u64), StorageError> {
    decode_two_u64(key, "arrival clamp key")
}

/// `records_by_time`: shard group · arrival ms · first position written at that time.
pub fn time_key(group: u64, arrival_ms: u64, position: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&group.to_be_bytes());
    k[8..16].copy_from_slice(&arrival_ms.to_be_bytes());
    k[16..].copy_from_slice(&position.to_be_bytes());
    k
}

pub fn decode_time_key(key: &[u8]) -> Result<(u64, u64, u64), StorageError> {
    if key.len() != 24 {
        return Err(StorageError::Corrupt {
            what: "time index key",
            key: key.to_vec(),
        });
    }
    let (g, rest) = key.split_at(8);
    let (t, p) = rest.split_at(8);
    Ok((be(g), be(t), be(p)))
}

/// First key of everything a group owns in a CF keyed by group first.
pub fn group_start(group: u64) -> [u8; 8] {
    group.to_be_bytes()
}

/// Exclusive end of a group's key range. `group + 1` cannot overflow in practice (ids are allocated
/// from 0 upwards), but saturate rather than wrap so a bad id can never delete group 0's data.
pub fn group_end(group: u64) -> Vec<u8> {
    match group.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xff; 9],
    }
}

fn two_u64(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

fn decode_two_u64(key: &[u8], what: &'static str) -> Result<(u64, u64), StorageError> {
    if key.len() != 16 {
        return Err(StorageError::Corrupt {
            what,
            key: key.to_vec(),
        });
    }
    let (a, b) = key.split_at(8);
    Ok((be(a), be(b)))
}

fn be(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    u64::from_be_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(decode_log_key(&log_key(7, 42)).unwrap(), (7, 42));
        assert_eq!(
            decode_clamp_key(&clamp_key(u64::MAX, 0)).unwrap(),
            (u64::MAX, 0)
        );
        assert_eq!(decode_time_key(&time_key(1, 2, 3)).unwrap(), (1, 2, 3));
    }

    #[test]
    fn byte_order_is_numeric_order() {
        assert!(log_key(1, 255) < log_key(1, 256));
        assert!(log_key(1, u64::MAX) < log_key(2, 0));
        assert!(clamp_key(3, 9).as_slice() < group_end(3).as_slice());
        assert!(group_start(4).as_slice() >= group_end(3).as_slice());
    }

    #[test]
    fn short_keys_are_corrupt_not_panics() {
        assert!(decode_log_key(&[1, 2, 3]).is_err());
        assert!(decode_time_key(&[0; 23]).is_err());
    }
}
