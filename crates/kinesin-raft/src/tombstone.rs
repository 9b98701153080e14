//! What a dropped replica leaves behind, so that a replica of the same group created again on
//! this node never helps a leader of an older membership.
//!
//! Raft ids here name nodes, not replicas: a replica moved away from a node and later back comes
//! back under the same id. Blank, it would accept whatever leader reached it first and vote for
//! any candidate — among them a leader of the membership from before it left (a node that was down
//! through the whole change still leads that one), whose majority it then completes: two
//! memberships commit different entries, and acknowledged writes are lost (found by
//! tests/simulation). So dropping a replica keeps its vote and its last log id; a replica created
//! again starts from that vote (older leaders are refused by openraft itself) and refuses its vote
//! to candidates whose log ends before the last log id it had (Raft's election restriction, as if
//! it still held its old log). That is what the old replica would have done: it is as safe as
//! never having dropped it.

use std::io;

use kinesin_storage::{Engine, StateTag};
use openraft::alias::{LogIdOf, VoteOf};
use openraft::raft::{VoteRequest, VoteResponse};
use openraft::storage::RaftLogStorage;

use crate::disk_format;
use crate::log_store::LogStore;
use crate::types::TypeConfig;

pub(crate) struct Tombstone {
    vote: VoteOf<TypeConfig>,
    last_log_id: Option<LogIdOf<TypeConfig>>,
}

impl Tombstone {
    /// The tombstone group `group` left here before, if it did.
    pub(crate) fn read(engine: &Engine, group: u64) -> io::Result<Option<Tombstone>> {
        let Some(vote) = engine.state(group, StateTag::TombstoneVote)? else {
            return Ok(None);
        };
        let last_log_id = match engine.state(group, StateTag::TombstoneLastLog)? {
            Some(bytes) => disk_format::decode_log_id(&bytes)?,
            None => None,
        };
        Ok(Some(Tombstone {
            vote: disk_format::decode_vote(&vote)?,
            last_log_id,
        }))
    }

    /// What the replica of `group` stored here knew (and any tombstone an earlier replica left):
    /// the higher vote and the later last log id.
    pub(crate) async fn of_replica(
        engine: &std::sync::Arc<Engine>,
        group: u64,
    ) -> io::Result<Tombstone> {
        let mut log = LogStore::new(group, engine.clone());
        let last_log_id = log.get_log_state().await?.last_log_id;
        let vote = match engine.state(group, StateTag::Vote)? {
            Some(bytes) => disk_format::decode_vote(&bytes)?,
            None => VoteOf::<TypeConfig>::new(0, 0),
        };
        let mut tombstone = Tombstone { vote, last_log_id };
        if let Some(earlier) = Tombstone::read(engine, group)? {
            if earlier.vote > tombstone.vote {
                tombstone.vote = earlier.vote;
            }
            if earlier.last_log_id > tombstone.last_log_id {
                tombstone.last_log_id = earlier.last_log_id;
            }
        }
        Ok(tombstone)
    }

    /// The state values that keep it.
    pub(crate) fn state(&self) -> Vec<(StateTag, Vec<u8>)> {
        vec![
            (
                StateTag::TombstoneVote,
                disk_format::encode_vote(&self.vote),
            ),
            (
                StateTag::TombstoneLastLog,
                disk_format::encode_log_id(self.last_log_id.as_ref()),
            ),
        ]
    }

    /// Gives a replica created blank the tombstone's vote (as a vote, not as a leadership: a
    /// replica without a log must not start as leader).
    pub(crate) fn revive_vote(&self, engine: &Engine, group: u64) -> io::Result<()> {
        if engine.state(group, StateTag::Vote)?.is_some() {
            return Ok(());
        }
        let vote = VoteOf::<TypeConfig>::new(self.vote.leader_id.term, self.vote.leader_id.node_id);
        let mut batch = kinesin_storage::WriteBatch::default();
        engine.put_state(
            &mut batch,
            group,
            StateTag::Vote,
            &disk_format::encode_vote(&vote),
        );
        Ok(engine.write(batch)?)
    }

    /// The answer to a vote request the old replica would have refused: the candidate's log ends
    /// before the last log id the old replica had.
    pub(crate) fn refuse(
        last_log_id: &LogIdOf<TypeConfig>,
        request: &VoteRequest<TypeConfig>,
        current_vote: &VoteOf<TypeConfig>,
    ) -> Option<VoteResponse<TypeConfig>> {
        (request.last_log_id.as_ref() < Some(last_log_id))
            .then(|| VoteResponse::new(current_vote, Some(*last_log_id), false))
    }

    pub(crate) fn last_log_id(&self) -> Option<&LogIdOf<TypeConfig>> {
        self.last_log_id.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use kinesin_storage::EngineOptions;

    use super::*;
    use crate::{Command, GroupKind, GroupOptions, MultiRaft, NewRecord, RaftTuning};

    #[tokio::test]
    async fn a_replica_created_again_keeps_what_the_dropped_one_voted_and_logged() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path(), &EngineOptions::default()).unwrap());
        let raft = MultiRaft::new(1, engine.clone(), &RaftTuning::default()).unwrap();
        let members = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
        let options = |initial_members| GroupOptions {
            kind: GroupKind::Shard,
            initial_members,
        };
        let group = raft.open_group(7, options(Some(members))).await.unwrap();
        group
            .wait_for_leader(Duration::from_secs(10))
            .await
            .unwrap();
        let put = Command::Put {
            arrival_ms: 1,
            records: vec![NewRecord::plain("k", b"record".to_vec())],
        };
        group.write(put).await.unwrap();
        let term = group.term();
        assert!(term >= 1);

        raft.drop_group(7).await.unwrap();
        let kept = Tombstone::read(&engine, 7).unwrap().expect("a tombstone");
        let last = kept
            .last_log_id()
            .cloned()
            .expect("the dropped replica's last log id");
        assert!(last.index >= 2, "{last:?}");

        let again = raft.open_group(7, options(None)).await.unwrap();
        again
            .raft()
            .wait(Some(Duration::from_secs(10)))
            .metrics(
                |m| m.current_term == term,
                "the vote of the dropped replica",
            )
            .await
            .unwrap();
        assert!(!again.is_leader(), "a blank replica never starts as leader");
        let vote = VoteOf::<TypeConfig>::new(term + 5, 2);
        let shorter = VoteRequest::new(vote, None);
        let refusal = again
            .refuse_vote(&shorter)
            .expect("a shorter log is refused");
        assert!(!refusal.vote_granted);
        assert_eq!(refusal.last_log_id, Some(last));
        let as_long = VoteRequest::new(vote, Some(last));
        assert!(again.refuse_vote(&as_long).is_none(), "left to openraft");

        // Dropped again before it learnt anything, it keeps the first tombstone.
        raft.drop_group(7).await.unwrap();
        let kept_again = Tombstone::read(&engine, 7).unwrap().unwrap();
        assert_eq!(kept_again.last_log_id(), kept.last_log_id());
        raft.shutdown().await;
    }
}
