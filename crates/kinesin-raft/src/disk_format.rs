//! The on-disk format of what the Raft layer persists: log entries (a shard's records), votes, log
//! ids, a group's applied state and its snapshot. Protocol Buffers through prost, so fields can be
//! added without breaking a data directory written before them, and every top-level value carries
//! `format` so a later layout is told apart (and refused or converted), never misread.
//!
//! These messages are the schema: the tags below must never be reused for another meaning. They
//! are ours, not openraft's serde shapes, so an openraft upgrade cannot change what is on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use bytes::Bytes;
use openraft::alias::{EntryOf, LogIdOf, SnapshotMetaOf, StoredMembershipOf, VoteOf};
use openraft::impls::leader_id_adv::LeaderId;
use openraft::{BasicNode, EntryPayload, Membership};
use prost::Message;

use crate::shard::ShardCounters;
use crate::state_machine::{Applied, Cut};
use crate::types::{Command, NewRecord};
use crate::TypeConfig;

/// The format this version writes, but for `Put` entries holding sealed records.
pub(crate) const FORMAT: u32 = 1;

/// The format of a `Put` entry with at least one sealed (encrypted) record. A version that reads
/// only format 1 would take the envelope for the record's data and hand ciphertext to a reader;
/// with this format it refuses the entry instead. The newest format this version reads.
pub(crate) const SEALED_PUT_FORMAT: u32 = 2;

#[derive(Clone, PartialEq, Message)]
pub(crate) struct LogIdPb {
    #[prost(uint64, tag = "1")]
    term: u64,
    #[prost(uint64, tag = "2")]
    node: u64,
    #[prost(uint64, tag = "3")]
    index: u64,
}

#[derive(Clone, PartialEq, Message)]
struct VoterSet {
    #[prost(uint64, repeated, tag = "1")]
    voters: Vec<u64>,
}

#[derive(Clone, PartialEq, Message)]
struct MembershipPb {
    /// The joint configuration: one voter set, or two during a change.
    #[prost(message, repeated, tag = "1")]
    configs: Vec<VoterSet>,
    /// Every member and learner with its cluster address.
    #[prost(btree_map = "uint64, string", tag = "2")]
    nodes: BTreeMap<u64, String>,
}

#[derive(Clone, PartialEq, Message)]
struct StoredMembershipPb {
    #[prost(message, optional, tag = "1")]
    log_id: Option<LogIdPb>,
    #[prost(message, optional, tag = "2")]
    membership: Option<MembershipPb>,
}

#[derive(Clone, PartialEq, Message)]
struct RecordPb {
    #[prost(string, tag = "1")]
    partition_key: String,
    #[prost(bytes = "bytes", tag = "2")]
    data: Bytes,
    /// `NewRecord::data_key` (format 2).
    #[prost(uint32, tag = "3")]
    data_key: u32,
    /// `NewRecord::sealed_len` (format 2).
    #[prost(uint32, tag = "4")]
    sealed_len: u32,
}

#[derive(Clone, PartialEq, Message)]
struct PutPb {
    #[prost(uint64, tag = "1")]
    arrival_ms: u64,
    #[prost(message, repeated, tag = "2")]
    records: Vec<RecordPb>,
}

#[derive(Clone, PartialEq, Message)]
struct Empty {}

#[derive(Clone, PartialEq, prost::Oneof)]
enum PayloadPb {
    #[prost(message, tag = "3")]
    Blank(Empty),
    #[prost(message, tag = "4")]
    Membership(MembershipPb),
    #[prost(message, tag = "5")]
    Put(PutPb),
    /// Retention's bound: records that arrived before it go.
    #[prost(uint64, tag = "6")]
    TrimBeforeMs(u64),
    #[prost(message, tag = "7")]
    Seal(Empty),
    /// A controller command, opaque here.
    #[prost(bytes = "vec", tag = "8")]
    Controller(Vec<u8>),
}

#[derive(Clone, PartialEq, Message)]
struct LogEntryPb {
    #[prost(uint32, tag = "1")]
    format: u32,
    #[prost(message, optional, tag = "2")]
    log_id: Option<LogIdPb>,
    #[prost(oneof = "PayloadPb", tags = "3, 4, 5, 6, 7, 8")]
    payload: Option<PayloadPb>,
}

#[derive(Clone, PartialEq, Message)]
struct VotePb {
    #[prost(uint32, tag = "1")]
    format: u32,
    #[prost(uint64, tag = "2")]
    term: u64,
    #[prost(uint64, tag = "3")]
    node: u64,
    #[prost(bool, tag = "4")]
    committed: bool,
}

/// A persisted log id that may be absent (committed, last purged).
#[derive(Clone, PartialEq, Message)]
struct LogIdRecordPb {
    #[prost(uint32, tag = "1")]
    format: u32,
    #[prost(message, optional, tag = "2")]
    log_id: Option<LogIdPb>,
}

#[derive(Clone, PartialEq, Message)]
struct ShardCountersPb {
    #[prost(uint32, tag = "1")]
    format: u32,
    #[prost(uint64, tag = "2")]
    last_arrival_ms: u64,
    #[prost(uint64, tag = "3")]
    trim_position: u64,
    #[prost(uint64, tag = "4")]
    next_position: u64,
    #[prost(uint64, optional, tag = "5")]
    sealed_at: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
struct CutPb {
    #[prost(message, optional, tag = "1")]
    log_id: Option<LogIdPb>,
    #[prost(message, optional, tag = "2")]
    membership: Option<StoredMembershipPb>,
    #[prost(message, optional, tag = "3")]
    counters: Option<ShardCountersPb>,
}

#[derive(Clone, PartialEq, Message)]
struct AppliedPb {
    #[prost(uint32, tag = "1")]
    format: u32,
    #[prost(message, optional, tag = "2")]
    log_id: Option<LogIdPb>,
    #[prost(message, optional, tag = "3")]
    membership: Option<StoredMembershipPb>,
    #[prost(message, optional, tag = "4")]
    counters: Option<ShardCountersPb>,
    #[prost(message, optional, tag = "5")]
    cut: Option<CutPb>,
    #[prost(message, repeated, tag = "6")]
    memberships: Vec<StoredMembershipPb>,
}

#[derive(Clone, PartialEq, Message)]
struct SnapshotPb {
    #[prost(uint32, tag = "1")]
    format: u32,
    #[prost(message, optional, tag = "2")]
    last_log_id: Option<LogIdPb>,
    #[prost(message, optional, tag = "3")]
    last_membership: Option<StoredMembershipPb>,
    #[prost(bytes = "vec", tag = "4")]
    data: Vec<u8>,
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {detail}"))
}

/// Refuses a value written by a later Kinesin in a format this one does not know.
fn check_format(what: &str, format: u32) -> io::Result<()> {
    if format == 0 || format > SEALED_PUT_FORMAT {
        return Err(corrupt(
            what,
            format!("format {format}; this version reads formats 1 to {SEALED_PUT_FORMAT}"),
        ));
    }
    Ok(())
}

fn decode_pb<M: Message + Default>(what: &str, bytes: &[u8]) -> io::Result<M> {
    M::decode(bytes).map_err(|e| corrupt(what, e))
}

fn log_id_to_pb(id: &LogIdOf<TypeConfig>) -> LogIdPb {
    LogIdPb {
        term: id.leader_id.term,
        node: id.leader_id.node_id,
        index: id.index,
    }
}

fn log_id_from_pb(pb: &LogIdPb) -> LogIdOf<TypeConfig> {
    LogIdOf::<TypeConfig>::new(
        LeaderId {
            term: pb.term,
            node_id: pb.node,
        },
        pb.index,
    )
}

fn membership_to_pb(m: &Membership<u64, BasicNode>) -> MembershipPb {
    MembershipPb {
        configs: m
            .get_joint_config()
            .iter()
            .map(|set| VoterSet {
                voters: set.iter().copied().collect(),
            })
            .collect(),
        nodes: m.nodes().map(|(id, n)| (*id, n.addr.clone())).collect(),
    }
}

fn membership_from_pb(pb: &MembershipPb) -> io::Result<Membership<u64, BasicNode>> {
    let configs: Vec<BTreeSet<u64>> = pb
        .configs
        .iter()
        .map(|set| set.voters.iter().copied().collect())
        .collect();
    let nodes: BTreeMap<u64, BasicNode> = pb
        .nodes
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr.clone())))
        .collect();
    Membership::new(configs, nodes).map_err(|e| corrupt("membership", e))
}

fn stored_membership_to_pb(m: &StoredMembershipOf<TypeConfig>) -> StoredMembershipPb {
    StoredMembershipPb {
        log_id: m.log_id().as_ref().map(log_id_to_pb),
        membership: Some(membership_to_pb(m.membership())),
    }
}

fn stored_membership_from_pb(
    pb: &StoredMembershipPb,
) -> io::Result<StoredMembershipOf<TypeConfig>> {
    let membership = match &pb.membership {
        Some(m) => membership_from_pb(m)?,
        None => Membership::default(),
    };
    Ok(StoredMembershipOf::<TypeConfig>::new(
        pb.log_id.as_ref().map(log_id_from_pb),
        membership,
    ))
}

/// A membership that may be absent (never written so by this version): the empty one then.
fn optional_membership_from_pb(
    pb: Option<&StoredMembershipPb>,
) -> io::Result<StoredMembershipOf<TypeConfig>> {
    pb.map_or_else(
        || Ok(StoredMembershipOf::<TypeConfig>::default()),
        stored_membership_from_pb,
    )
}

fn counters_to_pb(c: &ShardCounters) -> ShardCountersPb {
    ShardCountersPb {
        format: FORMAT,
        last_arrival_ms: c.last_arrival_ms,
        trim_position: c.trim_position,
        next_position: c.next_position,
        sealed_at: c.sealed_at,
    }
}

fn counters_from_pb(pb: &ShardCountersPb) -> ShardCounters {
    ShardCounters {
        last_arrival_ms: pb.last_arrival_ms,
        trim_position: pb.trim_position,
        next_position: pb.next_position,
        sealed_at: pb.sealed_at,
    }
}

// ---- Log entries -----------------------------------------------------------------------------

pub(crate) fn encode_entry(entry: &EntryOf<TypeConfig>) -> Vec<u8> {
    let payload = match &entry.payload {
        EntryPayload::Blank => PayloadPb::Blank(Empty {}),
        EntryPayload::Membership(m) => PayloadPb::Membership(membership_to_pb(m)),
        EntryPayload::Normal(Command::Put {
            arrival_ms,
            records,
        }) => return encode_put_entry(&log_id_to_pb(&entry.log_id), *arrival_ms, records),
        EntryPayload::Normal(Command::Trim { before_ms }) => PayloadPb::TrimBeforeMs(*before_ms),
        EntryPayload::Normal(Command::Seal) => PayloadPb::Seal(Empty {}),
        EntryPayload::Normal(Command::Controller(bytes)) => PayloadPb::Controller(bytes.clone()),
    };
    LogEntryPb {
        format: FORMAT,
        log_id: Some(log_id_to_pb(&entry.log_id)),
        payload: Some(payload),
    }
    .encode_to_vec()
}

/// A `Put` entry's bytes, exactly those of a `LogEntryPb` holding a `PutPb` (the tests hold it to
/// that), written from the records by reference: the append path, which every record takes,
/// copies no partition key and builds no message per record.
fn encode_put_entry(log_id: &LogIdPb, arrival_ms: u64, records: &[NewRecord]) -> Vec<u8> {
    use prost::encoding::{
        bytes, encode_key, encode_varint, encoded_len_varint, key_len, message, string, uint32,
        uint64, WireType,
    };
    // proto3 leaves fields at their default value out; so does this, to give the same bytes.
    let record_len = |r: &NewRecord| {
        let key = if r.partition_key.is_empty() {
            0
        } else {
            string::encoded_len(1, &r.partition_key)
        };
        let data = if r.data.is_empty() {
            0
        } else {
            bytes::encoded_len(2, &r.data)
        };
        let data_key = if r.data_key == 0 {
            0
        } else {
            uint32::encoded_len(3, &r.data_key)
        };
        let sealed_len = if r.sealed_len == 0 {
            0
        } else {
            uint32::encoded_len(4, &r.sealed_len)
        };
        key + data + data_key + sealed_len
    };
    let format = if records.iter().any(|r| r.data_key != 0) {
        SEALED_PUT_FORMAT
    } else {
        FORMAT
    };
    let arrival_len = if arrival_ms == 0 {
        0
    } else {
        uint64::encoded_len(1, &arrival_ms)
    };
    let put_len = arrival_len
        + records
            .iter()
            .map(|r| {
                let len = record_len(r);
                key_len(2) + encoded_len_varint(len as u64) + len
            })
            .sum::<usize>();
    let mut buf = Vec::with_capacity(
        uint32::encoded_len(1, &format)
            + message::encoded_len(2, log_id)
            + key_len(5)
            + encoded_len_varint(put_len as u64)
            + put_len,
    );
    uint32::encode(1, &format, &mut buf);
    message::encode(2, log_id, &mut buf);
    encode_key(5, WireType::LengthDelimited, &mut buf);
    encode_varint(put_len as u64, &mut buf);
    if arrival_ms != 0 {
        uint64::encode(1, &arrival_ms, &mut buf);
    }
    for r in records {
        encode_key(2, WireType::LengthDelimited, &mut buf);
        encode_varint(record_len(r) as u64, &mut buf);
        if !r.partition_key.is_empty() {
            string::encode(1, &r.partition_key, &mut buf);
        }
        if !r.data.is_empty() {
            bytes::encode(2, &r.data, &mut buf);
        }
        if r.data_key != 0 {
            uint32::encode(3, &r.data_key, &mut buf);
        }
        if r.sealed_len != 0 {
            uint32::encode(4, &r.sealed_len, &mut buf);
        }
    }
    buf
}

pub(crate) fn decode_entry(bytes: &[u8]) -> io::Result<EntryOf<TypeConfig>> {
    let pb: LogEntryPb = decode_pb("log entry", bytes)?;
    check_format("log entry", pb.format)?;
    let log_id = pb
        .log_id
        .as_ref()
        .map(log_id_from_pb)
        .ok_or_else(|| corrupt("log entry", "no log id"))?;
    let payload = match pb.payload {
        Some(PayloadPb::Blank(_)) => EntryPayload::Blank,
        Some(PayloadPb::Membership(m)) => EntryPayload::Membership(membership_from_pb(&m)?),
        Some(PayloadPb::Put(put)) => EntryPayload::Normal(Command::Put {
            arrival_ms: put.arrival_ms,
            records: put
                .records
                .into_iter()
                .map(|r| NewRecord {
                    partition_key: r.partition_key,
                    data: r.data,
                    data_key: r.data_key,
                    sealed_len: r.sealed_len,
                })
                .collect(),
        }),
        Some(PayloadPb::TrimBeforeMs(before_ms)) => {
            EntryPayload::Normal(Command::Trim { before_ms })
        }
        Some(PayloadPb::Seal(_)) => EntryPayload::Normal(Command::Seal),
        Some(PayloadPb::Controller(bytes)) => EntryPayload::Normal(Command::Controller(bytes)),
        None => return Err(corrupt("log entry", "no payload")),
    };
    Ok(EntryOf::<TypeConfig> { log_id, payload })
}

// ---- Votes and log ids -----------------------------------------------------------------------

pub(crate) fn encode_vote(vote: &VoteOf<TypeConfig>) -> Vec<u8> {
    VotePb {
        format: FORMAT,
        term: vote.leader_id.term,
        node: vote.leader_id.node_id,
        committed: vote.committed,
    }
    .encode_to_vec()
}

pub(crate) fn decode_vote(bytes: &[u8]) -> io::Result<VoteOf<TypeConfig>> {
    let pb: VotePb = decode_pb("vote", bytes)?;
    check_format("vote", pb.format)?;
    let mut vote = VoteOf::<TypeConfig>::new(pb.term, pb.node);
    vote.committed = pb.committed;
    Ok(vote)
}

pub(crate) fn encode_log_id(id: Option<&LogIdOf<TypeConfig>>) -> Vec<u8> {
    LogIdRecordPb {
        format: FORMAT,
        log_id: id.map(log_id_to_pb),
    }
    .encode_to_vec()
}

pub(crate) fn decode_log_id(bytes: &[u8]) -> io::Result<Option<LogIdOf<TypeConfig>>> {
    let pb: LogIdRecordPb = decode_pb("log id", bytes)?;
    check_format("log id", pb.format)?;
    Ok(pb.log_id.as_ref().map(log_id_from_pb))
}

// ---- Shard counters, applied state, snapshots --------------------------------------------------

pub(crate) fn encode_counters(counters: &ShardCounters) -> Vec<u8> {
    counters_to_pb(counters).encode_to_vec()
}

pub(crate) fn decode_counters(bytes: &[u8]) -> io::Result<ShardCounters> {
    let pb: ShardCountersPb = decode_pb("shard counters", bytes)?;
    check_format("shard counters", pb.format)?;
    Ok(counters_from_pb(&pb))
}

pub(crate) fn encode_applied(applied: &Applied) -> Vec<u8> {
    AppliedPb {
        format: FORMAT,
        log_id: applied.log_id.as_ref().map(log_id_to_pb),
        membership: Some(stored_membership_to_pb(&applied.membership)),
        counters: Some(counters_to_pb(&applied.counters)),
        cut: applied.cut.as_ref().map(|cut| CutPb {
            log_id: Some(log_id_to_pb(&cut.log_id)),
            membership: Some(stored_membership_to_pb(&cut.membership)),
            counters: Some(counters_to_pb(&cut.counters)),
        }),
        memberships: applied
            .memberships
            .iter()
            .map(stored_membership_to_pb)
            .collect(),
    }
    .encode_to_vec()
}

pub(crate) fn decode_applied(bytes: &[u8]) -> io::Result<Applied> {
    let pb: AppliedPb = decode_pb("applied state", bytes)?;
    check_format("applied state", pb.format)?;
    let cut = match &pb.cut {
        Some(cut) => Some(Cut {
            log_id: cut
                .log_id
                .as_ref()
                .map(log_id_from_pb)
                .ok_or_else(|| corrupt("applied state", "a cut without its log id"))?,
            membership: optional_membership_from_pb(cut.membership.as_ref())?,
            counters: cut
                .counters
                .as_ref()
                .map(counters_from_pb)
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(Applied {
        log_id: pb.log_id.as_ref().map(log_id_from_pb),
        membership: optional_membership_from_pb(pb.membership.as_ref())?,
        counters: pb
            .counters
            .as_ref()
            .map(counters_from_pb)
            .unwrap_or_default(),
        cut,
        memberships: pb
            .memberships
            .iter()
            .map(stored_membership_from_pb)
            .collect::<io::Result<_>>()?,
    })
}

pub(crate) fn encode_snapshot(meta: &SnapshotMetaOf<TypeConfig>, data: &[u8]) -> Vec<u8> {
    SnapshotPb {
        format: FORMAT,
        last_log_id: meta.last_log_id.as_ref().map(log_id_to_pb),
        last_membership: Some(stored_membership_to_pb(&meta.last_membership)),
        data: data.to_vec(),
    }
    .encode_to_vec()
}

pub(crate) fn decode_snapshot(bytes: &[u8]) -> io::Result<(SnapshotMetaOf<TypeConfig>, Vec<u8>)> {
    let pb: SnapshotPb = decode_pb("snapshot", bytes)?;
    check_format("snapshot", pb.format)?;
    let last_membership = optional_membership_from_pb(pb.last_membership.as_ref())?;
    Ok((
        SnapshotMetaOf::<TypeConfig> {
            last_log_id: pb.last_log_id.as_ref().map(log_id_from_pb),
            last_membership,
        },
        pb.data,
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn membership() -> Membership<u64, BasicNode> {
        Membership::new(
            vec![BTreeSet::from([1, 2, 3])],
            BTreeMap::from([
                (1, BasicNode::new("a:1")),
                (2, BasicNode::new("b:2")),
                (3, BasicNode::new("c:3")),
                (4, BasicNode::new("d:4")),
            ]),
        )
        .unwrap()
    }

    pub(crate) fn log_id(term: u64, node: u64, index: u64) -> LogIdOf<TypeConfig> {
        LogIdOf::<TypeConfig>::new(
            LeaderId {
                term,
                node_id: node,
            },
            index,
        )
    }

    #[test]
    fn every_entry_kind_round_trips() {
        let payloads = [
            EntryPayload::Blank,
            EntryPayload::Membership(membership()),
            EntryPayload::Normal(Command::Put {
                arrival_ms: 1_700_000_000_123,
                records: vec![
                    NewRecord::plain("pk", Bytes::from_static(&[0, 1, 255])),
                    NewRecord::plain(String::new(), Bytes::new()),
                ],
            }),
            EntryPayload::Normal(Command::Trim { before_ms: 42 }),
            EntryPayload::Normal(Command::Seal),
            EntryPayload::Normal(Command::Controller(vec![9, 8, 7])),
        ];
        for payload in payloads {
            let entry = EntryOf::<TypeConfig> {
                log_id: log_id(3, 2, 77),
                payload,
            };
            let bytes = encode_entry(&entry);
            assert_eq!(decode_entry(&bytes).unwrap(), entry);
        }
    }

    /// The hand-written `Put` encoding gives exactly the derived message's bytes, defaults
    /// (arrival 0, empty keys and data, no records) included.
    #[test]
    fn put_entries_are_encoded_as_the_derived_message_would() {
        let cases = [
            (0, vec![]),
            (7, vec![("", &b""[..], 0)]),
            (
                1_700_000_000_123,
                vec![
                    ("pk", &b"\x00data"[..], 0),
                    ("", &b"x"[..], 0),
                    ("k", &b""[..], 0),
                ],
            ),
            // Sealed records (an encrypted stream's) beside a plaintext one.
            (9, vec![("", &b"envelope"[..], 3), ("k", &b"d"[..], 0)]),
        ];
        for (arrival_ms, records) in cases {
            let records: Vec<NewRecord> = records
                .into_iter()
                .map(|(key, data, data_key)| NewRecord {
                    partition_key: key.into(),
                    data: Bytes::copy_from_slice(data),
                    data_key,
                    sealed_len: if data_key == 0 { 0 } else { 5 },
                })
                .collect();
            let format = if records.iter().any(|r| r.data_key != 0) {
                SEALED_PUT_FORMAT
            } else {
                FORMAT
            };
            let id = log_id(4, 2, 99);
            let derived = LogEntryPb {
                format,
                log_id: Some(log_id_to_pb(&id)),
                payload: Some(PayloadPb::Put(PutPb {
                    arrival_ms,
                    records: records
                        .iter()
                        .map(|r| RecordPb {
                            partition_key: r.partition_key.clone(),
                            data: r.data.clone(),
                            data_key: r.data_key,
                            sealed_len: r.sealed_len,
                        })
                        .collect(),
                })),
            }
            .encode_to_vec();
            let entry = EntryOf::<TypeConfig> {
                log_id: id,
                payload: EntryPayload::Normal(Command::Put {
                    arrival_ms,
                    records,
                }),
            };
            let encoded = encode_entry(&entry);
            assert_eq!(encoded, derived);
            assert_eq!(decode_entry(&encoded).unwrap(), entry);
        }
    }

    #[test]
    fn state_round_trips() {
        let mut vote = VoteOf::<TypeConfig>::new(5, 3);
        vote.committed = true;
        assert_eq!(decode_vote(&encode_vote(&vote)).unwrap(), vote);
        assert_eq!(decode_log_id(&encode_log_id(None)).unwrap(), None);
        let id = log_id(2, 1, 9);
        assert_eq!(decode_log_id(&encode_log_id(Some(&id))).unwrap(), Some(id));
        let stored = StoredMembershipOf::<TypeConfig>::new(Some(log_id(1, 1, 1)), membership());
        let counters = ShardCounters {
            last_arrival_ms: 10,
            trim_position: 2 << 20,
            next_position: 9 << 20,
            sealed_at: Some(8 << 20),
        };
        let applied = Applied {
            log_id: Some(log_id(2, 1, 8)),
            membership: stored.clone(),
            counters: counters.clone(),
            cut: Some(Cut {
                log_id: log_id(1, 1, 1),
                membership: stored.clone(),
                counters: ShardCounters::default(),
            }),
            memberships: vec![stored.clone()],
        };
        let back = decode_applied(&encode_applied(&applied)).unwrap();
        assert_eq!(back.log_id, applied.log_id);
        assert_eq!(back.membership, stored);
        assert_eq!(back.counters, counters);
        assert_eq!(back.cut, applied.cut);
        assert_eq!(back.memberships, applied.memberships);
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: Some(id),
            last_membership: stored,
        };
        assert_eq!(
            decode_snapshot(&encode_snapshot(&meta, b"state")).unwrap(),
            (meta, b"state".to_vec())
        );
        assert_eq!(
            decode_counters(&encode_counters(&counters)).unwrap(),
            counters
        );
    }

    #[test]
    fn a_later_format_and_garbage_are_refused_not_misread() {
        let later = LogEntryPb {
            format: SEALED_PUT_FORMAT + 1,
            log_id: Some(log_id_to_pb(&log_id(1, 1, 1))),
            payload: Some(PayloadPb::Blank(Empty {})),
        }
        .encode_to_vec();
        let error = decode_entry(&later).unwrap_err();
        assert!(error.to_string().contains("format 3"), "{error}");
        assert!(decode_entry(&[0xff, 0xff, 0xff]).is_err());
        assert!(
            decode_vote(&[]).is_err(),
            "format 0: not written by any version"
        );
    }

    /// The bytes of this version's format for one entry, frozen: a change to a tag or a type
    /// breaks every data directory already written, and this test.
    #[test]
    fn the_format_of_a_put_entry_is_frozen() {
        let entry = EntryOf::<TypeConfig> {
            log_id: log_id(1, 2, 3),
            payload: EntryPayload::Normal(Command::Put {
                arrival_ms: 5,
                records: vec![NewRecord::plain("k", Bytes::from_static(b"v"))],
            }),
        };
        assert_eq!(
            encode_entry(&entry),
            [
                0x08, 0x01, // format 1
                0x12, 0x06, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, // log id {1, 2, 3}
                0x2a, 0x0a, 0x08, 0x05, // put: arrival 5
                0x12, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v', // record {k, v}
            ]
        );
        let sealed = EntryOf::<TypeConfig> {
            log_id: log_id(1, 2, 3),
            payload: EntryPayload::Normal(Command::Put {
                arrival_ms: 5,
                records: vec![NewRecord {
                    partition_key: String::new(),
                    data: Bytes::from_static(b"e"),
                    data_key: 1,
                    sealed_len: 2,
                }],
            }),
        };
        assert_eq!(
            encode_entry(&sealed),
            [
                0x08, 0x02, // format 2: holds a sealed record
                0x12, 0x06, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, // log id {1, 2, 3}
                0x2a, 0x0b, 0x08, 0x05, // put: arrival 5
                0x12, 0x07, 0x12, 0x01, b'e', 0x18, 0x01, 0x20,
                0x02, // record {"", e, key 1, 2 bytes}
            ]
        );
    }
}
