//! A shard group on a real engine: writes get increasing positions, reads see exactly what was
//! acknowledged, retention trims, and all of it survives a restart over the same directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kinesin_raft::{Command, GroupHandle, MultiRaft, NewRecord, RaftTuning, Response};
use kinesin_storage::{Engine, EngineOptions};

mod common;
use common::open_single_voter;

const GROUP: u64 = 1;

async fn open(dir: &Path) -> (Arc<MultiRaft>, GroupHandle) {
    let (raft, group, _) = open_tuned(dir, &RaftTuning::default()).await;
    (raft, group)
}

async fn open_tuned(dir: &Path, tuning: &RaftTuning) -> (Arc<MultiRaft>, GroupHandle, Arc<Engine>) {
    let engine = Arc::new(Engine::open(dir, &EngineOptions::default()).unwrap());
    let raft = Arc::new(MultiRaft::new(1, engine.clone(), tuning).unwrap());
    let group = open_single_voter(&raft, GROUP).await;
    (raft, group, engine)
}

async fn put(group: &GroupHandle, arrival_ms: u64, data: &[&str]) -> u64 {
    let records = data
        .iter()
        .map(|d| NewRecord::plain("pk", d.as_bytes().to_vec()))
        .collect();
    match group
        .write(Command::Put {
            arrival_ms,
            records,
        })
        .await
        .unwrap()
    {
        Response::Put { first_position, .. } => first_position,
        other => panic!("unexpected {other:?}"),
    }
}

fn read_all(group: &GroupHandle) -> Vec<(u64, String)> {
    group
        .shard()
        .unwrap()
        .read(0, 10_000, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| (r.position, String::from_utf8(r.data).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reads_trims_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (raft, group) = open(dir.path()).await;

    let a = put(&group, 1_000, &["a0", "a1"]).await;
    let b = put(&group, 2_000, &["b0"]).await;
    let c = put(&group, 3_000, &["c0", "c1", "c2"]).await;
    assert!(a < b && b < c);
    let all = read_all(&group);
    assert_eq!(
        all,
        vec![
            (a, "a0".into()),
            (a + 1, "a1".into()),
            (b, "b0".into()),
            (c, "c0".into()),
            (c + 1, "c1".into()),
            (c + 2, "c2".into())
        ]
    );
    let view = group.shard().unwrap().clone();
    assert!(view.next_position() > c + 2);
    assert_eq!(view.position_at_time(1_500).unwrap(), b);
    assert_eq!(view.last_arrival_ms(), 3_000);

    // Arrival times never go backwards, even if a proposer's clock does.
    let d = put(&group, 500, &["d0"]).await;
    let records = view.read(d, 1, usize::MAX).unwrap();
    assert_eq!(records[0].arrival_ms, 3_000);

    // Retention: everything that arrived before 2.5 s goes.
    match group
        .write(Command::Trim { before_ms: 2_500 })
        .await
        .unwrap()
    {
        Response::Trimmed { trim_position } => assert_eq!(trim_position, c),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(view.trim_position(), c);
    assert_eq!(read_all(&group).first().map(|r| r.0), Some(c));

    // A restart over the same directory finds the same records, horizon and positions.
    raft.shutdown().await;
    drop((group, view));
    drop(raft);
    let (_raft, group) = open(dir.path()).await;
    let after = read_all(&group);
    assert_eq!(
        after.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["c0", "c1", "c2", "d0"]
    );
    assert_eq!(group.shard().unwrap().trim_position(), c);
    let e = put(&group, 4_000, &["e0"]).await;
    assert!(e > d, "positions keep increasing across restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_commands_are_refused_by_shard_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (_raft, group) = open(dir.path()).await;
    let response = group
        .write(Command::Controller(vec![1, 2, 3]))
        .await
        .unwrap();
    assert!(matches!(response, Response::Rejected(_)), "{response:?}");
}

async fn seal(group: &GroupHandle) -> u64 {
    match group.write(Command::Seal).await.unwrap() {
        Response::Sealed { sealed_at } => sealed_at,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_shard_stores_nothing_more_and_stays_sealed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (raft, group) = open(dir.path()).await;
    put(&group, 1_000, &["a0", "a1"]).await;
    let b = put(&group, 2_000, &["b0"]).await;
    assert_eq!(group.shard().unwrap().sealed_at(), None);

    let sealed_at = seal(&group).await;
    assert!(sealed_at > b, "every record is below the seal");
    assert_eq!(group.shard().unwrap().sealed_at(), Some(sealed_at));
    // The fence: a write after the seal is answered, not stored.
    let late = group
        .write(Command::Put {
            arrival_ms: 3_000,
            records: vec![NewRecord::plain("pk", b"late".to_vec())],
        })
        .await
        .unwrap();
    assert_eq!(late, Response::Sealed { sealed_at });
    assert_eq!(
        seal(&group).await,
        sealed_at,
        "sealing again changes nothing"
    );
    let stored = ["a0", "a1", "b0"];
    let data =
        |group: &GroupHandle| -> Vec<String> { read_all(group).into_iter().map(|r| r.1).collect() };
    assert_eq!(data(&group), stored);

    raft.shutdown().await;
    drop(group);
    drop(raft);
    let (_raft, group) = open(dir.path()).await;
    assert_eq!(group.shard().unwrap().sealed_at(), Some(sealed_at));
    assert_eq!(data(&group), stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_reaches_the_seal_only_on_a_sealed_shard_and_only_with_its_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let (raft, group) = open(dir.path()).await;
    let a = put(&group, 1_000, &["a0", "a1"]).await;
    let b = put(&group, 2_000, &["b0"]).await;
    let read = |from: u64, max: usize| {
        let raft = raft.clone();
        async move {
            raft.read_shard(GROUP, from, max, usize::MAX, &[])
                .await
                .unwrap()
        }
    };
    let open = read(0, 10).await;
    assert_eq!(open.records.len(), 3);
    assert!(!open.reached_seal, "an open shard has no end");
    assert!(
        !read(b + 1, 10).await.reached_seal,
        "caught up is not the end"
    );

    seal(&group).await;
    let first_two = read(0, 2).await;
    assert_eq!(first_two.records.len(), 2);
    assert!(!first_two.reached_seal, "b0 is still to come");
    let all = read(a, 3).await;
    assert_eq!(all.records.len(), 3);
    assert!(
        all.reached_seal,
        "the answer with the last record is the end"
    );
    let last_alone = read(b, 10).await;
    assert_eq!(last_alone.records.len(), 1);
    assert!(last_alone.reached_seal);
    let past = read(b + 1, 10).await;
    assert!(past.records.is_empty() && past.reached_seal);
    // Past the seal itself (a LATEST iterator on a sealed shard starts there).
    let latest = group.shard().unwrap().next_position();
    assert!(read(latest, 10).await.reached_seal);
}

/// The log is the record store: reads decode log entries, including from the middle of one, and
/// retention purges the log itself behind a snapshot placed exactly at the cut, never above it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_the_log_behind_a_snapshot_at_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let tuning = RaftTuning {
        snapshot_every: 4,
        ..RaftTuning::default()
    };
    let (raft, group, engine) = open_tuned(dir.path(), &tuning).await;
    let view = group.shard().unwrap().clone();
    let mut firsts = Vec::new();
    for t in 0..10u64 {
        let data: Vec<String> = (0..3).map(|i| format!("{t}.{i}")).collect();
        let data: Vec<&str> = data.iter().map(String::as_str).collect();
        firsts.push(put(&group, 1_000 * (t + 1), &data).await);
    }
    // From the middle of an entry, and across entries.
    let middle = view.read(firsts[2] + 1, 4, usize::MAX).unwrap();
    assert_eq!(
        middle
            .iter()
            .map(|r| String::from_utf8(r.data.clone()).unwrap())
            .collect::<Vec<_>>(),
        ["2.1", "2.2", "3.0", "3.1"]
    );
    assert_eq!(view.position_at_time(3_500).unwrap(), firsts[3]);

    match group
        .write(Command::Trim { before_ms: 6_000 })
        .await
        .unwrap()
    {
        Response::Trimmed { trim_position } => assert_eq!(trim_position, firsts[5]),
        other => panic!("unexpected {other:?}"),
    }
    let cut_index = firsts[5] >> 20;
    // Enough entries after the trim for openraft's policy to take the snapshot at the cut.
    for t in 10..16u64 {
        put(&group, 1_000 * (t + 1), &[&format!("{t}")]).await;
    }
    let purged = async {
        loop {
            if engine.log_entries(GROUP, 0, cut_index).unwrap().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), purged)
        .await
        .expect("the log below the cut is purged");
    assert_eq!(
        group.snapshot_index(),
        Some(cut_index - 1),
        "the snapshot sits at the cut"
    );
    assert!(!engine
        .log_entries(GROUP, cut_index, cut_index + 1)
        .unwrap()
        .is_empty());
    let kept = read_all(&group);
    assert_eq!(kept.first().map(|r| r.0), Some(firsts[5]));
    assert_eq!(kept.len(), 5 * 3 + 6);

    // A restart finds the same records from the cut on.
    raft.shutdown().await;
    drop((group, view, engine));
    drop(raft);
    let (_raft, group) = open(dir.path()).await;
    assert_eq!(read_all(&group), kept);
}

/// Snapshots are built (every 2 entries here) while trims move the cut and writes go on: every
/// snapshot seen is below the trim position, never at the applied index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_never_above_the_cut_while_trims_race_it() {
    let dir = tempfile::tempdir().unwrap();
    let tuning = RaftTuning {
        snapshot_every: 2,
        ..RaftTuning::default()
    };
    let (_raft, group, _engine) = open_tuned(dir.path(), &tuning).await;
    let view = group.shard().unwrap().clone();
    let writer = {
        let group = group.clone();
        tokio::spawn(async move {
            for t in 1..=300u64 {
                put(&group, t * 10, &["x", "y"]).await;
                if t % 7 == 0 {
                    group
                        .write(Command::Trim {
                            before_ms: t * 10 - 20,
                        })
                        .await
                        .unwrap();
                }
            }
        })
    };
    let mut snapshots_seen = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        if let Some(snapshot) = group.snapshot_index() {
            // Read after the snapshot: the trim position only grows.
            let cut_index = view.trim_position() >> 20;
            assert!(
                snapshot < cut_index,
                "snapshot at {snapshot}, cut at {cut_index}"
            );
            snapshots_seen.insert(snapshot);
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert!(
        snapshots_seen.len() > 5,
        "snapshots moved with the cut: {snapshots_seen:?}"
    );
}

/// Writes that arrive while others are being committed share one entry, and each still gets its
/// own contiguous positions in it, in its own order.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_writes_share_entries_and_keep_their_own_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (_raft, group) = open(dir.path()).await;
    let before = group.applied_index();
    let writes: Vec<_> = (0..50)
        .map(|i| {
            let group = group.clone();
            tokio::spawn(async move {
                let data: Vec<String> = (0..3).map(|j| format!("w{i}-r{j}")).collect();
                let data: Vec<&str> = data.iter().map(String::as_str).collect();
                (i, put(&group, 1_000 + i, &data).await)
            })
        })
        .collect();
    let mut firsts = Vec::new();
    for write in writes {
        firsts.push(write.await.unwrap());
    }
    let entries = group.applied_index() - before;
    assert!(entries < 10, "50 concurrent writes took {entries} entries");
    let stored: BTreeMap<u64, String> = read_all(&group).into_iter().collect();
    assert_eq!(stored.len(), 150);
    for (i, first) in firsts {
        for j in 0..3 {
            assert_eq!(stored[&(first + j)], format!("w{i}-r{j}"));
        }
    }
}
