//! Pre-votes a follower keeps to itself while its leader's node is live.
//!
//! openraft starts a pre-vote when a follower's election timer runs out: no word from its
//! leader for an election timeout (700–840 ms). On a machine whose CPU was oversubscribed while
//! hundreds of groups started, followers heard their leaders later than that; each one's
//! pre-vote went to peers just as late, timed out after 700 ms and was sent again, about a
//! thousand a second per node, which kept the groups from going quiet and delayed the
//! controller's heartbeats until its reads could not gather a quorum
//! (`test_the_metadata_api_answers_while_hundreds_of_groups_start`).
//!
//! Node liveness (`liveness.rs`) is the failure detector; a group's election timer is the
//! safety net. A follower whose leader's node is live, as the same process this group last heard
//! its leader from, and whose group heard that leader within [`LEADER_HEARD_WITHIN`], does not
//! send its pre-vote: the round counts as refused, and the timer tries again. A dead leader's
//! node loses support within `SUPPORT_FOR` and a restarted one is a new process at once, so
//! neither holds a pre-vote back, nor a take-over (`quiesce.rs`), which starts from one of them.
//! A leader whose node lives but whose group fell silent is replaced after
//! [`LEADER_HEARD_WITHIN`].
//!
//! Only pre-votes: a real vote (a leadership transfer, a forced election) is never held back.
//! It must never decide who leads: it only keeps a follower from asking.

use std::sync::Mutex;
use std::time::Duration;

use openraft::raft::{VoteRequest, VoteResponse};
use openraft::vote::{RaftLeaderId, RaftVote};
use tokio::time::Instant;

use crate::liveness::Liveness;
use crate::types::{NodeId, TypeConfig};

/// How long after its last word a live leader's followers keep their pre-votes: about four
/// election timeouts, the longest a group whose leader's node lives may wait for a new leader.
pub(crate) const LEADER_HEARD_WITHIN: Duration = Duration::from_secs(3);

/// The last AppendEntries this replica took from a leader.
#[derive(Debug, Clone, Copy)]
struct LeaderWord {
    leader: NodeId,
    term: u64,
    at: Instant,
}

/// One group's last word from its leader on this node.
#[derive(Debug, Default)]
pub(crate) struct LastLeaderWord(Mutex<Option<LeaderWord>>);

impl LastLeaderWord {
    /// Records an AppendEntries this replica took (not refused for a higher vote) from `leader`
    /// in `term`.
    pub(crate) fn heard(&self, leader: NodeId, term: u64) {
        let word = LeaderWord {
            leader,
            term,
            at: Instant::now(),
        };
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(word);
    }

    /// The leader last heard, its term and how long ago, for logs.
    pub(crate) fn last(&self) -> Option<(NodeId, u64, Duration)> {
        let word = (*self.0.lock().unwrap_or_else(|p| p.into_inner()))?;
        Some((word.leader, word.term, word.at.elapsed()))
    }

    /// The answer to this replica's own `pre_vote` when it must not be sent: refused, with the
    /// vote of the leader that spoke lately (what this replica holds, so openraft changes
    /// nothing but waits for its next timeout).
    pub(crate) fn withholds(
        &self,
        pre_vote: &VoteRequest<TypeConfig>,
        liveness: &Liveness,
    ) -> Option<VoteResponse<TypeConfig>> {
        let word = (*self.0.lock().unwrap_or_else(|p| p.into_inner()))?;
        // A pre-vote asks for the term after the one this replica holds: held since the word,
        // unless it voted in a later term in between.
        let same_term = pre_vote.vote.leader_id().term() == word.term + 1;
        let lately = word.at.elapsed() < LEADER_HEARD_WITHIN;
        let same_process = || {
            liveness
                .live_since(word.leader)
                .is_some_and(|since| since <= word.at)
        };
        (same_term && lately && same_process()).then(|| {
            let leader = openraft::alias::LeaderIdOf::<TypeConfig>::new(word.term, word.leader);
            VoteResponse::new(
                openraft::alias::VoteOf::<TypeConfig>::from_leader_id(leader, true),
                None,
                false,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liveness::{Ping, SUPPORT_FOR};

    const ME: NodeId = 1;
    const LEADER: NodeId = 2;

    fn pre_vote(term: u64) -> VoteRequest<TypeConfig> {
        let me = openraft::alias::LeaderIdOf::<TypeConfig>::new(term, ME);
        VoteRequest::new(
            openraft::alias::VoteOf::<TypeConfig>::from_leader_id(me, false),
            None,
        )
    }

    fn ping(epoch: u64) -> Ping {
        Ping {
            from: LEADER,
            epoch,
        }
    }

    /// This node's view right after its leader (node 2, process 7) spoke in term 5.
    fn leader_heard_just_now() -> (Liveness, LastLeaderWord) {
        let liveness = Liveness::new(ME);
        let word = LastLeaderWord::default();
        liveness.heard(ping(7));
        word.heard(LEADER, 5);
        (liveness, word)
    }

    #[tokio::test(start_paused = true)]
    async fn a_pre_vote_is_kept_while_the_leader_lives_and_spoke_lately() {
        let liveness = Liveness::new(ME);
        let word = LastLeaderWord::default();
        liveness.heard(ping(7));
        assert!(
            word.withholds(&pre_vote(6), &liveness).is_none(),
            "nothing heard from a leader yet"
        );
        word.heard(LEADER, 5);
        let refusal = word
            .withholds(&pre_vote(6), &liveness)
            .expect("the leader lives and spoke just now");
        assert!(!refusal.vote_granted);
        assert_eq!(refusal.vote.leader_id().term(), 5);
        assert!(
            refusal.vote.is_committed(),
            "openraft keeps the vote it has"
        );
        assert!(
            word.withholds(&pre_vote(8), &liveness).is_none(),
            "this replica has voted in a later term since"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_takes_over_once_the_leader_is_silent_for_long() {
        let (liveness, word) = leader_heard_just_now();
        // Its node stays live (its pings arrive) but the group hears nothing.
        let mut waited = Duration::ZERO;
        while waited < LEADER_HEARD_WITHIN {
            assert!(word.withholds(&pre_vote(6), &liveness).is_some());
            tokio::time::advance(SUPPORT_FOR / 2).await;
            waited += SUPPORT_FOR / 2;
            liveness.heard(ping(7));
        }
        assert!(liveness.is_live(LEADER));
        assert!(word.withholds(&pre_vote(6), &liveness).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_or_restarted_leader_holds_nothing_back() {
        let (liveness, word) = leader_heard_just_now();
        tokio::time::advance(SUPPORT_FOR).await;
        assert!(
            word.withholds(&pre_vote(6), &liveness).is_none(),
            "its node went silent"
        );
        // Killed and started again at once: the new process leads nothing.
        liveness.heard(ping(8));
        assert!(liveness.is_live(LEADER));
        assert!(
            word.withholds(&pre_vote(6), &liveness).is_none(),
            "the word came from the process before"
        );
    }
}
