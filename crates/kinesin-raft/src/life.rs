//! A node's life: which copy of its data a Raft member means.
//!
//! Raft ids name nodes, so a node whose disk was wiped (or lost, or quarantined as corrupt) and
//! that joins again under its id would answer to memberships made for its old copy with an empty
//! log and no vote. A stale leader of such a membership could then count the blank replica towards
//! a majority and commit on a branch the group left long ago: acknowledged writes lost (the hole
//! tombstones close for a replica dropped and created again on the same disk; a wipe erases them).
//!
//! So every data directory has a life: 0 for a node founded with the cluster (and for data written
//! before lives existed), a fresh random number for a node that joined with an empty directory
//! (the node keeps it beside its data and gives it to [`crate::MultiRaft::in_life`]).
//! A group's membership records each member's address *with* its life (`host:port#life`, nothing
//! added for life 0, so the format on disk is unchanged), every Raft message carries the life its
//! sender's membership names, and a node refuses messages meant for another life. A member whose
//! recorded life is not its node's current one is replaced (removed, then added again as a new
//! learner that copies the log) by the group's leader.

/// A new life for a data directory that starts empty: random and never 0.
pub fn new_life() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish().max(1)
}

/// The address a membership records for a node at `addr` in `life`.
pub fn member_address(addr: &str, life: u64) -> String {
    if life == 0 {
        addr.to_string()
    } else {
        format!("{addr}#{life:x}")
    }
}

/// A membership's address split into the address to dial and the life it means.
pub fn split_member_address(member: &str) -> (&str, u64) {
    match member.rsplit_once('#') {
        Some((addr, life)) => match u64::from_str_radix(life, 16) {
            Ok(life) => (addr, life),
            Err(_) => (member, 0),
        },
        None => (member, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_address_carries_its_life_and_life_zero_adds_nothing() {
        assert_eq!(member_address("10.0.0.1:4667", 0), "10.0.0.1:4667");
        assert_eq!(split_member_address("10.0.0.1:4667"), ("10.0.0.1:4667", 0));
        let member = member_address("10.0.0.1:4667", 0xdead_beef);
        assert_eq!(member, "10.0.0.1:4667#deadbeef");
        assert_eq!(
            split_member_address(&member),
            ("10.0.0.1:4667", 0xdead_beef)
        );
        assert_eq!(split_member_address("h:1#zz"), ("h:1#zz", 0));
    }

    #[test]
    fn new_lives_are_never_zero_and_differ() {
        let (a, b) = (new_life(), new_life());
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }
}
