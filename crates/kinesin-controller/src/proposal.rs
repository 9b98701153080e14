//! At-most-once controller changes, so that a change whose outcome was lost can be asked again.
//!
//! A change forwarded to the controller's leader can lose its answer (the connection closed under
//! load, the leader stepped down after appending it) while the entry still commits. Answering
//! "unknown" to a CreateStream is correct but useless to a client; asking again is only safe when
//! the second ask cannot apply the change twice. So every change a node proposes carries a
//! [`ProposalId`], and apply remembers the outcome of the last [`REMEMBERED`] ids in the replicated
//! state: a repeat is answered with the first outcome and changes nothing. Raft's "client
//! sessions" (Ongaro's thesis, §6.3), bounded by count instead of by session.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::command::Outcome;
use crate::ControllerError;

/// How many changes' outcomes the state remembers. A proposer asks again within seconds; a
/// thousand later changes pushing an id out before its repeat would take a cluster doing hundreds
/// of metadata changes a second.
const REMEMBERED: usize = 1024;

/// Names one proposal across its attempts: the proposing node and a random number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalId {
    pub node: u64,
    pub nonce: u64,
}

impl ProposalId {
    pub fn new(node: u64) -> ProposalId {
        ProposalId {
            node,
            nonce: rand::random(),
        }
    }
}

/// The outcomes of the newest proposals, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentProposals {
    outcomes: VecDeque<(ProposalId, Result<Outcome, ControllerError>)>,
}

impl RecentProposals {
    /// What applying `id` answered, when it was applied and is still remembered.
    pub fn outcome(&self, id: ProposalId) -> Option<&Result<Outcome, ControllerError>> {
        // Newest first: a repeat follows its first attempt closely.
        self.outcomes
            .iter()
            .rev()
            .find(|(seen, _)| *seen == id)
            .map(|(_, outcome)| outcome)
    }

    pub(crate) fn record(&mut self, id: ProposalId, outcome: &Result<Outcome, ControllerError>) {
        if self.outcomes.len() == REMEMBERED {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((id, outcome.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_outcomes_are_forgotten_first() {
        let mut recent = RecentProposals::default();
        let ids: Vec<ProposalId> = (0..=REMEMBERED as u64)
            .map(|nonce| ProposalId { node: 1, nonce })
            .collect();
        for id in &ids {
            recent.record(*id, &Ok(Outcome::Done));
        }
        assert_eq!(recent.outcome(ids[0]), None);
        assert_eq!(recent.outcome(ids[1]), Some(&Ok(Outcome::Done)));
        assert_eq!(recent.outcome(ids[REMEMBERED]), Some(&Ok(Outcome::Done)));
        assert_eq!(
            recent.outcome(ProposalId { node: 2, nonce: 1 }),
            None,
            "an id is the node and the nonce together"
        );
    }
}
