//! A shard group on a real engine: writes get increasing positions, reads see exactly what was
//! acknowledged, retention trims, and all of it survives a restart over the same directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kinesin_raft::{
    Command, GroupHandle, GroupKind, GroupOptions, MultiRaft, NewRecord, RaftTuning, Response,
};
use kinesin_storage::{Engine, EngineOptions};

const GROUP: u64 = 1;

async fn open(dir: &Path) -> (Arc<MultiRaft>, GroupHandle) {
    let engine = Arc::new(Engine::open(dir, &EngineOptions::default()).unwrap());
    let raft = Arc::new(MultiRaft::new(1, engine, &RaftTuning::default()).unwrap());
    let group = raft
        .open_group(
            GROUP,
            GroupOptions {
                kind: GroupKind::Shard,
                initial_members: Some(BTreeMap::from([(1, "127.0.0.1:1".to_string())])),
            },
        )
        .await
        .unwrap();
    group
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    (raft, group)
}

async fn put(group: &GroupHandle, arrival_ms: u64, data: &[&str]) -> u64 {
    let records = data
        .iter()
        .map(|d| NewRecord {
            partition_key: "pk".into(),
            data: d.as_bytes().to_vec().into(),
        })
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
            records: vec![NewRecord {
                partition_key: "pk".into(),
                data: b"late".to_vec().into(),
            }],
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
