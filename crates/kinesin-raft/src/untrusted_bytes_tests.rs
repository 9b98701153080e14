//! What a node decodes from its disk and from its peers, fed damaged bytes: the decoders answer
//! an error or a value, never a panic, nor an abort on a length that claims gigabytes. Mutation
//! fuzzing with a fixed seed (repeatable, on stable): valid encodings of every kind, each damaged
//! many times over by bit flips, byte overwrites, truncations, insertions of large varints and
//! splices of other seeds. The API's parsers have cargo-fuzz targets (fuzz/); these decoders live
//! in a crate that builds RocksDB, which the fuzz workspace leaves out.

use bytes::Bytes;
use openraft::alias::{EntryOf, SnapshotMetaOf, StoredMembershipOf, VoteOf};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::EntryPayload;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::codec;
use crate::disk_format;
use crate::disk_format::tests::{log_id, membership};
use crate::liveness::Ping;
use crate::query::ShardQuery;
use crate::quiesce::QuietPoint;
use crate::shard::ShardCounters;
use crate::types::{Command, NewRecord};
use crate::TypeConfig;

/// Damaged inputs per seed.
const MUTATIONS: usize = 3_000;

fn put() -> Command {
    Command::Put {
        arrival_ms: 1_700_000_000_123,
        records: vec![
            NewRecord::plain("partition", Bytes::from_static(b"some data")),
            NewRecord {
                partition_key: String::new(),
                data: Bytes::from(vec![1; 64]),
                data_key: 2,
                sealed_len: 35,
            },
        ],
    }
}

fn entries() -> Vec<EntryOf<TypeConfig>> {
    [
        EntryPayload::Normal(put()),
        EntryPayload::Membership(membership()),
        EntryPayload::Blank,
        EntryPayload::Normal(Command::Trim { before_ms: 9 }),
        EntryPayload::Normal(Command::Seal),
        EntryPayload::Normal(Command::Controller(vec![0xa1, 0x61, 0x78, 0x01])),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, payload)| EntryOf::<TypeConfig> {
        log_id: log_id(3, 1, 10 + i as u64),
        payload,
    })
    .collect()
}

/// One way of damaging `seed`, chosen at random.
fn mutate(rng: &mut StdRng, seed: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let at = if bytes.is_empty() {
            0
        } else {
            rng.gen_range(0..bytes.len())
        };
        match rng.gen_range(0..6) {
            0 if !bytes.is_empty() => bytes[at] ^= 1 << rng.gen_range(0..8),
            1 if !bytes.is_empty() => bytes[at] = rng.gen(),
            2 => bytes.truncate(at),
            // A length or count that claims far more than there is.
            3 => {
                let huge: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];
                bytes.splice(at..at, huge);
            }
            4 => {
                let other = &others[rng.gen_range(0..others.len())];
                let from = rng.gen_range(0..=other.len());
                bytes.splice(at..at, other[from..].iter().copied().take(32));
            }
            _ => bytes.extend((0..rng.gen_range(1..16)).map(|_| rng.gen::<u8>())),
        }
    }
    bytes
}

/// Feeds `decode` every seed and `MUTATIONS` damaged copies of each; returns how many decoded.
fn survive(name: &str, seeds: &[Vec<u8>], decode: impl Fn(&[u8]) -> bool) -> usize {
    let mut rng = StdRng::seed_from_u64(0x006b_696e_6573_696e);
    let mut decoded = 0;
    for seed in seeds {
        assert!(decode(seed), "{name}: a valid encoding does not decode");
        for _ in 0..MUTATIONS {
            let input = mutate(&mut rng, seed, seeds);
            decoded += usize::from(decode(&input));
        }
    }
    decoded
}

#[test]
fn on_disk_values_never_panic_on_damaged_bytes() {
    let entries: Vec<Vec<u8>> = entries().iter().map(disk_format::encode_entry).collect();
    survive("log entry", &entries, |b| {
        // What decodes must encode again (apply and replication re-encode entries).
        disk_format::decode_entry(b)
            .map(|entry| disk_format::encode_entry(&entry))
            .is_ok()
    });

    let mut vote = VoteOf::<TypeConfig>::new(5, 3);
    vote.committed = true;
    let votes = vec![disk_format::encode_vote(&vote)];
    survive("vote", &votes, |b| disk_format::decode_vote(b).is_ok());

    let ids = vec![
        disk_format::encode_log_id(Some(&log_id(2, 1, 9))),
        disk_format::encode_log_id(None),
    ];
    survive("log id", &ids, |b| disk_format::decode_log_id(b).is_ok());

    let counters = vec![disk_format::encode_counters(&ShardCounters {
        last_arrival_ms: 10,
        trim_position: 1 << 20,
        next_position: 5 << 20,
        sealed_at: Some(6 << 20),
    })];
    survive("counters", &counters, |b| {
        disk_format::decode_counters(b).is_ok()
    });

    let meta = SnapshotMetaOf::<TypeConfig> {
        last_log_id: Some(log_id(2, 1, 9)),
        last_membership: StoredMembershipOf::<TypeConfig>::new(Some(log_id(1, 1, 1)), membership()),
    };
    let snapshots = vec![disk_format::encode_snapshot(&meta, b"state")];
    survive("snapshot", &snapshots, |b| {
        disk_format::decode_snapshot(b).is_ok()
    });
}

#[test]
fn cluster_messages_never_panic_on_damaged_bytes() {
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: VoteOf::<TypeConfig>::new_committed(3, 1),
        prev_log_id: Some(log_id(3, 1, 9)),
        entries: entries(),
        leader_commit: Some(log_id(3, 1, 9)),
    };
    let appends = vec![
        codec::encode(&append).expect("encode"),
        codec::encode(&AppendEntriesRequest::<TypeConfig> {
            entries: Vec::new(),
            ..append.clone()
        })
        .expect("encode"),
    ];
    survive("append entries", &appends, |b| {
        codec::decode::<AppendEntriesRequest<TypeConfig>>(b).is_ok()
    });

    let votes = vec![codec::encode(&VoteRequest::<TypeConfig>::new(
        VoteOf::<TypeConfig>::new(4, 2),
        Some(log_id(3, 1, 9)),
    ))
    .expect("encode")];
    survive("vote request", &votes, |b| {
        codec::decode::<VoteRequest<TypeConfig>>(b).is_ok()
    });

    let commands = vec![
        codec::encode(&put()).expect("encode"),
        codec::encode(&Command::Controller(vec![1, 2, 3])).expect("encode"),
    ];
    survive("proposal", &commands, |b| {
        codec::decode::<Command>(b).is_ok()
    });

    let queries = vec![
        codec::encode(&ShardQuery::Records {
            from: 1 << 20,
            max_records: 100,
            max_bytes: 1 << 20,
        })
        .expect("encode"),
        codec::encode(&ShardQuery::PositionAt { arrival_ms: 7 }).expect("encode"),
    ];
    survive("query", &queries, |b| {
        codec::decode::<ShardQuery>(b).is_ok()
    });

    let small = vec![
        codec::encode(&Ping { from: 2, epoch: 99 }).expect("encode"),
        codec::encode(&QuietPoint {
            leader: 1,
            term: 3,
            index: 12,
        })
        .expect("encode"),
    ];
    survive("ping and quiet point", &small, |b| {
        codec::decode::<Ping>(b).is_ok() | codec::decode::<QuietPoint>(b).is_ok()
    });
}
