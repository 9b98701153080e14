//! Who a leader may hand its group to, and when a membership change has truly finished.
//!
//! openraft's leadership transfer stops the leader's writes, membership changes and heartbeats
//! until the next term: a transfer to a node that has just died, or that is far behind, leaves
//! the shard unwritable until that node catches up or an election replaces the leader. So a
//! group is only handed to a voter that answered just now and holds nearly the whole log.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use crate::registry::GroupHandle;
use crate::types::NodeId;

/// A node must have acknowledged the current leader this recently to be handed the group.
pub(crate) const FRESHNESS: Duration = Duration::from_secs(1);

/// How many entries behind the leader's applied index a node may be and still be handed a group.
/// A replica still catching up (say, restarted after minutes of load) would take the leadership
/// without the entries it lacks, and the shard would take no write until it had them: handing
/// shards back to a restarted node that way stopped every write for over a minute (the catch-up
/// run of benches/README.md).
const HANDOVER_SLACK: u64 = 8;

/// Whether a node may be handed a group's leadership: a voter that acknowledged the leader within
/// [`FRESHNESS`] and whose log matches the leader's up to [`HANDOVER_SLACK`] entries of what the
/// leader applied.
fn may_lead(ack_age: Option<Duration>, voter: bool, matched: Option<u64>, applied: u64) -> bool {
    voter
        && ack_age.is_some_and(|age| age < FRESHNESS)
        && matched.is_some_and(|m| m.saturating_add(HANDOVER_SLACK) >= applied)
}

impl GroupHandle {
    /// On the leader: whether `node` may be handed the group now (see [`may_lead`]).
    pub fn ready_to_lead(&self, node: NodeId) -> bool {
        // A quiet group's members acknowledged nothing lately because nothing was sent; they
        // all held its last entry when it went quiet, so a live node is as fresh as an answer.
        let ack_age = if self.is_quiet() && self.liveness.is_live(node) {
            Some(Duration::ZERO)
        } else {
            self.ack_ages()
                .and_then(|ages| ages.get(&node).copied().flatten())
        };
        // A node that is stopping refuses leadership (`MultiRaft::hand_over_leadership`).
        if self.liveness.is_stopping(node) {
            return false;
        }
        may_lead(
            ack_age,
            self.voters().contains(&node),
            self.matched_indexes()
                .and_then(|matched| matched.get(&node).copied()),
            self.applied_index(),
        )
    }

    /// On the leader: the voter other than this node that may lead and holds the most of the log.
    pub fn successor(&self) -> Option<NodeId> {
        let me = self.node_id();
        self.matched_indexes()
            .unwrap_or_default()
            .into_iter()
            .filter(|(node, _)| *node != me && self.ready_to_lead(*node))
            .max_by_key(|(_, matched)| *matched)
            .map(|(node, _)| node)
    }

    /// Whether the group's voters are exactly `desired` (node → member address), each in the life
    /// `desired` names, in a uniform membership that has committed. Only then may a replica moved
    /// away be dropped: a membership the leader has appended but not committed can still be
    /// replaced by the one before it (a new leader that never received it), and a joint membership
    /// still counts the old voters towards its majority.
    pub fn is_settled(&self, desired: &BTreeMap<NodeId, String>) -> bool {
        if !self.is_placed(desired) {
            return false;
        }
        let metrics = self.raft().metrics();
        let metrics = metrics.borrow_watched();
        let applied = metrics.last_applied.as_ref().map(|id| id.index);
        let membership_at = metrics
            .membership_config
            .log_id()
            .as_ref()
            .map(|id| id.index);
        membership_at <= applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: Option<Duration> = Some(Duration::from_millis(100));

    #[test]
    fn only_a_fresh_voter_that_holds_nearly_the_whole_log_may_lead() {
        assert!(may_lead(FRESH, true, Some(1_000), 1_000));
        assert!(may_lead(FRESH, true, Some(1_000 - HANDOVER_SLACK), 1_000));
        assert!(
            !may_lead(FRESH, true, Some(1_000 - HANDOVER_SLACK - 1), 1_000),
            "a replica catching up is not handed the group"
        );
        assert!(!may_lead(FRESH, true, None, 1_000), "no progress known");
        assert!(!may_lead(FRESH, false, Some(1_000), 1_000), "a learner");
        assert!(!may_lead(None, true, Some(1_000), 1_000), "never answered");
        assert!(!may_lead(Some(FRESHNESS), true, Some(1_000), 1_000));
    }
}
