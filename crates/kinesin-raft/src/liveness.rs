//! Node liveness: one failure detector per pair of nodes, shared by every group.
//!
//! Each node pings every peer it shares a group with (or knows from the controller) every
//! [`PING_EVERY`]; a ping or its answer is the peer's *support*, good for [`SUPPORT_FOR`]. A
//! quiescent group (`quiesce.rs`) sends nothing of its own, so this is what tells its followers
//! that their leader's node is gone: when support lapses, or the peer comes back as a new
//! process (its epoch changed, so it leads nothing any more), the groups it led here are woken
//! and one follower per group campaigns at once. Per-group election timers stay as a safety net.
//!
//! It must never decide anything a Raft group decides: it only wakes groups and starts
//! campaigns that Raft's own voting then judges.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::types::NodeId;

/// How often a node pings each peer.
pub(crate) const PING_EVERY: Duration = Duration::from_millis(200);

/// How long a ping (or its answer) counts as the peer being alive and reachable: three pings
/// and a half. Most of a dead leader's failover is this wait (a second made the p99 over 1,000
/// shards 1.69 s; 750 ms, 1.40 s: benches/README.md); [`RELIED_ON`] must stay well inside it.
pub(crate) const SUPPORT_FOR: Duration = Duration::from_millis(750);

/// A liveness ping, and its answer: who sends it, and which process of that node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ping {
    pub from: NodeId,
    pub epoch: u64,
}

/// What hearing from a peer, or not hearing from it, changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Support lapsed: the peer is down or cut off from this node.
    Lost(NodeId),
    /// The peer answers as a new process: whatever it led, it leads no more.
    Restarted(NodeId),
    /// The peer answers again after its support had lapsed.
    Returned(NodeId),
}

#[derive(Debug, Clone, Copy)]
struct Heard {
    at: Instant,
    epoch: u64,
    /// When this process of the peer (`epoch`) was first heard from.
    since: Instant,
    supported: bool,
    /// When the newest ping this peer answered was sent: the peer heard this node after it, so
    /// it counts this node live until at least then plus [`SUPPORT_FOR`] (see [`Liveness::backs`]).
    answered_sent_at: Option<Instant>,
}

/// How much of a peer's support window this node relies on, leaving the rest for clocks that
/// run at slightly different rates and for scheduling delays.
/// Short enough that a vote held for it after a restart still fits the candidate's vote timeout
/// (three quarters of the election timeout's minimum: 525 ms by default), and a quarter of
/// [`SUPPORT_FOR`] short of it.
pub(crate) const RELIED_ON: Duration = Duration::from_millis(500);

/// This node's view of which peers are alive.
pub struct Liveness {
    me: NodeId,
    epoch: u64,
    started: Instant,
    peers: Mutex<HashMap<NodeId, Heard>>,
    /// Peers that said, in their last ping or answer, that they are stopping.
    stopping: Mutex<std::collections::HashSet<NodeId>>,
}

impl Liveness {
    pub(crate) fn new(me: NodeId) -> Liveness {
        Liveness {
            me,
            // Only compared for equality: any number that a restarted process does not repeat.
            epoch: crate::life::new_life(),
            started: Instant::now(),
            peers: Mutex::default(),
            stopping: Mutex::default(),
        }
    }

    /// What `node` said in its last ping or answer: whether it is stopping.
    pub(crate) fn set_stopping(&self, node: NodeId, stopping: bool) {
        let mut set = self.stopping.lock().unwrap_or_else(|p| p.into_inner());
        if stopping {
            set.insert(node);
        } else {
            set.remove(&node);
        }
    }

    /// Whether `node` said it is stopping: it must not be handed a group.
    pub(crate) fn is_stopping(&self, node: NodeId) -> bool {
        let set = self.stopping.lock().unwrap_or_else(|p| p.into_inner());
        set.contains(&node)
    }

    /// The ping this node sends (and answers with).
    pub(crate) fn ping(&self) -> Ping {
        Ping {
            from: self.me,
            epoch: self.epoch,
        }
    }

    /// Records a ping from `ping.from`, or its answer to ours.
    pub(crate) fn heard(&self, ping: Ping) -> Option<Change> {
        if ping.from == self.me {
            return None;
        }
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let same_process = peers
            .get(&ping.from)
            .filter(|before| before.epoch == ping.epoch);
        let answered_sent_at = same_process.and_then(|before| before.answered_sent_at);
        let since = same_process.map_or(now, |before| before.since);
        let before = peers.insert(
            ping.from,
            Heard {
                at: now,
                epoch: ping.epoch,
                since,
                supported: true,
                answered_sent_at,
            },
        );
        match before {
            Some(before) if before.epoch != ping.epoch => Some(Change::Restarted(ping.from)),
            Some(before) if !before.supported => Some(Change::Returned(ping.from)),
            _ => None,
        }
    }

    /// Records that `answer.from` answered a ping this node sent at `sent_at`.
    ///
    /// An answer proves that the peer hears this node, not that this node hears the peer's own
    /// messages: only its pings keep its support. A leader whose messages to its followers are
    /// lost while it still answers theirs (mute) must lose their support, or the followers of
    /// its quiet groups, which tick no election timer, would wait for it forever. The first word
    /// of a new process counts either way, so a restart is seen at once.
    pub(crate) fn answered(&self, answer: Ping, sent_at: Instant) -> Option<Change> {
        if answer.from == self.me {
            return None;
        }
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get_mut(&answer.from) {
            Some(heard) if heard.epoch == answer.epoch => {
                heard.answered_sent_at = heard.answered_sent_at.max(Some(sent_at));
                None
            }
            // The new process is not quiet where the old one was: it backs nothing until the
            // groups that counted on the old one have woken (`MultiRaft::on_change`).
            _ => {
                drop(peers);
                self.heard(answer)
            }
        }
    }

    /// Whether `node` is this node, or a peer that answered a ping sent within the part of the
    /// support window this node relies on: such a peer still counts this node live, so while it
    /// is quiet it votes for no other leader (`quiesce.rs`).
    pub(crate) fn backs(&self, node: NodeId) -> bool {
        if node == self.me {
            return true;
        }
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .get(&node)
            .and_then(|heard| heard.answered_sent_at)
            .is_some_and(|sent| sent.elapsed() < RELIED_ON)
    }

    /// Withdraws support from every peer not heard from for [`SUPPORT_FOR`]; the peers that
    /// just lost it.
    pub(crate) fn expire(&self) -> Vec<Change> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        peers
            .iter_mut()
            .filter(|(_, heard)| heard.supported && now.duration_since(heard.at) >= SUPPORT_FOR)
            .map(|(node, heard)| {
                heard.supported = false;
                Change::Lost(*node)
            })
            .collect()
    }

    /// Time this node itself did not run (its runtime starved of CPU, the process paused) is not
    /// its peers' silence: their pings may be waiting, unread, in this node's own queues. Moves
    /// each supported peer's last word forward by `stalled`, never past now. On a machine so
    /// loaded that every node ran late, support lapsed and came back every few seconds and each
    /// loss started campaigns for hundreds of groups, which loaded it more
    /// (`test_the_metadata_api_answers_while_hundreds_of_groups_start`). A quiet member refusing
    /// other candidates while it counts its leader live refuses for longer, never shorter, so
    /// the quiet leader's reads (`answered_sent_at`, untouched) stay safe.
    pub(crate) fn forgive(&self, stalled: Duration) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for heard in peers.values_mut().filter(|heard| heard.supported) {
            heard.at = (heard.at + stalled).min(now);
        }
    }

    /// How long a vote request must wait before this process may answer it: a quiet leader may
    /// still count on the process before this one (quiet, so refusing other candidates) for
    /// [`RELIED_ON`] after the last ping it answered, which was before this process started.
    /// Held rather than refused, so a candidate's election is delayed, not failed: refused, it
    /// would wait a whole election timeout to try again, and the simulation's groups were
    /// writable half as often.
    pub(crate) fn vote_hold(&self) -> Option<Duration> {
        let held_until = self.started + RELIED_ON;
        let now = Instant::now();
        (now < held_until).then(|| held_until - now)
    }

    /// Whether `node` is this node, or a peer heard from within [`SUPPORT_FOR`].
    pub fn is_live(&self, node: NodeId) -> bool {
        self.live_since(node).is_some()
    }

    /// When the process `node` runs as now was first heard from, if `node` is live (this node:
    /// when this process started). Whatever this node heard from `node` before then came from a
    /// process that has ended since, and that process's leadership with it.
    pub(crate) fn live_since(&self, node: NodeId) -> Option<Instant> {
        if node == self.me {
            return Some(self.started);
        }
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .get(&node)
            .filter(|heard| heard.supported && heard.at.elapsed() < SUPPORT_FOR)
            .map(|heard| heard.since)
    }

    /// How long ago `node` was last heard from (a ping, or an answer to one); zero for this
    /// node, `None` for a peer never heard from by this process.
    pub fn silent_for(&self, node: NodeId) -> Option<Duration> {
        if node == self.me {
            return Some(Duration::ZERO);
        }
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.get(&node).map(|heard| heard.at.elapsed())
    }

    /// Every peer ever heard from, and whether it is live now (for `/metrics`).
    pub fn peers(&self) -> Vec<(NodeId, bool)> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<(NodeId, bool)> = peers
            .iter()
            .map(|(node, heard)| (*node, heard.supported && heard.at.elapsed() < SUPPORT_FOR))
            .collect();
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(from: NodeId, epoch: u64) -> Ping {
        Ping { from, epoch }
    }

    #[tokio::test(start_paused = true)]
    async fn support_lapses_without_pings_and_returns_with_one() {
        let liveness = Liveness::new(1);
        assert!(liveness.is_live(1), "a node is live to itself");
        assert!(!liveness.is_live(2), "never heard from");
        assert_eq!(liveness.heard(ping(2, 7)), None);
        assert!(liveness.is_live(2));
        tokio::time::advance(SUPPORT_FOR / 2).await;
        assert_eq!(liveness.heard(ping(2, 7)), None);
        tokio::time::advance(SUPPORT_FOR / 2).await;
        assert!(liveness.expire().is_empty(), "heard from half a window ago");
        tokio::time::advance(SUPPORT_FOR).await;
        assert!(!liveness.is_live(2));
        assert_eq!(liveness.expire(), vec![Change::Lost(2)]);
        assert!(liveness.expire().is_empty(), "lost once, reported once");
        assert_eq!(liveness.heard(ping(2, 7)), Some(Change::Returned(2)));
        assert_eq!(liveness.peers(), vec![(2, true)]);
    }

    #[tokio::test(start_paused = true)]
    async fn this_nodes_own_stall_is_not_counted_as_its_peers_silence() {
        let liveness = Liveness::new(1);
        liveness.heard(ping(2, 7));
        liveness.heard(ping(3, 7));
        // This node did not run for a whole window (a pause, a starved runtime): nothing heard.
        tokio::time::advance(SUPPORT_FOR).await;
        liveness.forgive(SUPPORT_FOR);
        assert!(
            liveness.expire().is_empty(),
            "silence while this node stalled"
        );
        assert!(liveness.is_live(2) && liveness.is_live(3));
        // From then on its peers' silence counts, from when it ran again.
        tokio::time::advance(SUPPORT_FOR / 2).await;
        liveness.heard(ping(2, 7));
        tokio::time::advance(SUPPORT_FOR / 2).await;
        assert_eq!(liveness.expire(), vec![Change::Lost(3)]);
        liveness.forgive(Duration::from_secs(60));
        assert!(!liveness.is_live(3), "a lost peer stays lost");
        tokio::time::advance(SUPPORT_FOR).await;
        assert_eq!(
            liveness.expire(),
            vec![Change::Lost(2)],
            "forgiven up to now, never beyond"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_backs_this_node_for_less_than_its_window_from_the_ping_it_answered() {
        let liveness = Liveness::new(1);
        assert!(liveness.backs(1));
        liveness.heard(ping(2, 7));
        assert!(
            !liveness.backs(2),
            "a ping from it is not an answer to ours"
        );
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(300)).await;
        liveness.answered(ping(2, 7), sent);
        assert!(liveness.backs(2));
        tokio::time::advance(RELIED_ON - Duration::from_millis(300)).await;
        assert!(
            !liveness.backs(2),
            "timed from the ping's sending, not its answer"
        );
        assert!(
            liveness.is_live(2),
            "while the peer itself still counts it live"
        );
        liveness.answered(ping(2, 7), Instant::now());
        assert!(liveness.backs(2));
        liveness.heard(ping(2, 9));
        assert!(
            !liveness.backs(2),
            "a restarted peer backs nothing it answered before"
        );
        let restarted = liveness.answered(ping(2, 10), Instant::now());
        assert_eq!(restarted, Some(Change::Restarted(2)));
        assert!(!liveness.backs(2), "nor does its first answer");
        liveness.answered(ping(2, 10), Instant::now());
        assert!(liveness.backs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_peers_own_pings_keep_its_support() {
        let liveness = Liveness::new(1);
        assert_eq!(
            liveness.answered(ping(2, 7), Instant::now()),
            None,
            "a first word from a process, answer or ping, is support"
        );
        assert!(liveness.is_live(2));
        // It answers every ping, but its own pings never arrive (it is mute towards this node).
        for _ in 0..5 {
            tokio::time::advance(SUPPORT_FOR / 4).await;
            liveness.answered(ping(2, 7), Instant::now());
        }
        assert!(!liveness.is_live(2));
        assert_eq!(liveness.expire(), vec![Change::Lost(2)]);
        assert!(liveness.backs(2), "it still hears this node");
        assert_eq!(liveness.heard(ping(2, 7)), Some(Change::Returned(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_epoch_is_a_restart_even_within_the_window() {
        let liveness = Liveness::new(1);
        liveness.heard(ping(3, 7));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(liveness.heard(ping(3, 8)), Some(Change::Restarted(3)));
        assert_eq!(liveness.heard(ping(3, 8)), None);
        assert_eq!(
            liveness.heard(ping(1, 5)),
            None,
            "its own ping changes nothing"
        );
    }
}
