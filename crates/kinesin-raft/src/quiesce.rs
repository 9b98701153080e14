//! Quiescent groups: an idle shard costs nothing.
//!
//! openraft ticks every group several times per heartbeat interval and its leader heartbeats
//! every interval; with thousands of shards that, not the records, was most of a node's CPU
//! (benches/README.md, idle cost). So a shard group that has taken no write for a while and
//! whose members all hold, have committed and have applied its last entry goes quiet, as TiKV's
//! hibernated regions and CockroachDB's quiesced ranges do: its leader asks each member to stop
//! ticking at that point (the messages travel in the per-peer heartbeat batches), and once every
//! member agreed, stops its own ticks and heartbeats.
//!
//! What wakes a group: on its leader, a write, a read index, a membership change or a leadership
//! transfer; on a follower, any Raft message that tells it something new (entries, a commit, a
//! new term), a vote request, a snapshot. A pure heartbeat of the same leader and term does not:
//! one sent just before the leader went quiet may arrive after the follower did.
//!
//! Nothing heartbeats a quiet group, so node liveness (`liveness.rs`) stands in for the leader:
//! a quiet follower refuses to vote for anyone but its leader while the leader's node is live
//! (a restarted follower would otherwise unseat a healthy leader), and when the leader's node
//! loses support, its groups are woken and one follower of each campaigns.
//!
//! Only shard groups quiesce: the controller group's heartbeats are the controller's view of
//! which nodes are up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::raft::{AppendEntriesRequest, VoteRequest, VoteResponse};
use openraft::vote::RaftLeaderId;
use openraft::{Instant as _, ServerState};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::pre_vote::LastLeaderWord;
use crate::registry::GroupHandle;
use crate::succession::FRESHNESS;
use crate::types::{NodeId, TypeConfig};

/// The point a group went quiet at: the leader, its term and the last entry, which every member
/// holds, committed and applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QuietPoint {
    pub leader: NodeId,
    pub term: u64,
    pub index: u64,
}

/// One group's quiescence on this node.
pub(crate) struct Quiet {
    /// `Some` while the group is quiet here.
    point: Mutex<Option<QuietPoint>>,
    /// When this node, leading the group, last saw it used (ms since `EPOCH`).
    last_used_ms: AtomicU64,
    /// When the group last woke here (ms since `EPOCH`; 0: never).
    woke_ms: AtomicU64,
    /// The group's last word from its leader here (`pre_vote.rs`).
    pub(crate) leader_word: LastLeaderWord,
}

/// How long after waking a group's appends skip the per-peer heartbeat batches. The first
/// appends after a wake look like heartbeats, but a write waits on them: in a batch they wait
/// for its slowest member (a follower's fsync), and a write to one of 200 quiet shards took
/// 76 ms instead of 2.9 ms.
const UNBATCHED_AFTER_WAKE_MS: u64 = 1000;

impl Quiet {
    /// Whether the group woke here within [`UNBATCHED_AFTER_WAKE_MS`].
    pub(crate) fn woke_lately(&self) -> bool {
        let woke = self.woke_ms.load(Ordering::Acquire);
        woke != 0 && millis_since_origin().saturating_sub(woke) < UNBATCHED_AFTER_WAKE_MS
    }
}

/// Milliseconds since a process-wide origin, the clock of `last_used_ms` (tokio's clock, so
/// simulated time works).
pub(crate) fn millis_since_origin() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(Instant::now().saturating_duration_since(origin).as_millis()).unwrap_or(u64::MAX)
}

impl Default for Quiet {
    fn default() -> Quiet {
        Quiet {
            point: Mutex::new(None),
            last_used_ms: AtomicU64::new(millis_since_origin()),
            woke_ms: AtomicU64::new(0),
            leader_word: LastLeaderWord::default(),
        }
    }
}

impl Quiet {
    fn point(&self) -> std::sync::MutexGuard<'_, Option<QuietPoint>> {
        self.point.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn idle_for(&self) -> Duration {
        Duration::from_millis(
            millis_since_origin().saturating_sub(self.last_used_ms.load(Ordering::Acquire)),
        )
    }
}

/// Whether the leader whose metrics these are may write a moment from now: it is its group's
/// only voter (its own quorum: openraft records no acknowledgement then, and waiting for one
/// held every write of a single node for a whole lease), or a quorum acknowledged it within three
/// quarters of `lease`.
fn lease_held(metrics: &openraft::RaftMetrics<TypeConfig>, lease: Duration) -> bool {
    metrics.membership_config.voter_ids().nth(1).is_none()
        || since_quorum_ack(metrics).is_some_and(|age| age < lease * 3 / 4)
}

fn since_quorum_ack(metrics: &openraft::RaftMetrics<TypeConfig>) -> Option<Duration> {
    metrics
        .last_quorum_acked
        .as_ref()
        .map(|acked| acked.elapsed())
}

/// Whether `id` names the entry at `index`.
fn is_at(id: &Option<openraft::alias::LogIdOf<TypeConfig>>, index: u64) -> bool {
    id.as_ref().map(|id| id.index) == Some(index)
}

/// Whether an AppendEntries tells a follower quiet at `point` anything it does not know.
fn is_news(point: &QuietPoint, request: &AppendEntriesRequest<TypeConfig>) -> bool {
    !request.entries.is_empty()
        || request.vote.leader_id().term() != point.term
        || request.leader_commit.as_ref().map(|id| id.index) != Some(point.index)
}

impl GroupHandle {
    /// Whether this group is quiet on this node.
    pub fn is_quiet(&self) -> bool {
        self.quiet.point().is_some()
    }

    /// On the leader: marks the group used now, waking it if it was quiet. Does nothing on a
    /// follower (a write or read there is sent to the leader, which wakes).
    pub(crate) fn touch(&self) {
        if !self.is_leader() {
            return;
        }
        let mut point = self.quiet.point();
        self.quiet
            .last_used_ms
            .store(millis_since_origin(), Ordering::Release);
        if point.take().is_some() {
            self.resume();
        }
    }

    /// On the leader: makes sure a quorum acknowledged it recently enough to write, heartbeating
    /// at once if not. openraft refuses a write from a leader whose quorum-acknowledged lease has
    /// lapsed (a redirect to no leader), and a quiet leader's lapsed long ago: a write to a quiet
    /// shard was refused, retried through the other replicas with backoff until the resumed
    /// heartbeats renewed the lease, and took 40–80 ms instead of one round trip more.
    pub(crate) async fn renew_lease(&self) {
        if !self.is_leader() || self.holds_lease() {
            return;
        }
        if self.raft().trigger().heartbeat().await.is_err() {
            return;
        }
        // Past this, the write goes ahead and meets openraft's answer, whatever it is.
        let lease = self.lease();
        let _renewed = self
            .raft()
            .wait(Some(lease))
            .metrics(
                move |m| m.state != ServerState::Leader || lease_held(m, lease),
                "a renewed leader lease",
            )
            .await;
    }

    /// On the leader: whether a quorum acknowledged it recently enough that openraft still
    /// takes writes from it a moment from now (within three quarters of the lease).
    pub fn holds_lease(&self) -> bool {
        lease_held(&self.raft().metrics().borrow_watched(), self.lease())
    }

    /// On the leader: how long ago a quorum last acknowledged it (`None` elsewhere).
    pub fn since_quorum_ack(&self) -> Option<Duration> {
        since_quorum_ack(&self.raft().metrics().borrow_watched())
    }

    /// openraft's leader lease: its longest election timeout.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.raft().config().election_timeout_max)
    }

    /// How long since this group last served a write, a read or a membership change here.
    pub(crate) fn unused_for(&self) -> Duration {
        self.quiet.idle_for()
    }

    /// Wakes the group if it is quiet here.
    pub(crate) fn wake(&self) {
        if self.quiet.point().take().is_some() {
            self.resume();
        }
    }

    /// Wakes the group if it is quiet here under this node's lead and `member` is one of its
    /// members.
    pub(crate) fn wake_if_led_here_with(&self, member: NodeId) {
        let led_here = self
            .quiet
            .point()
            .is_some_and(|point| point.leader == self.node_id());
        if led_here && self.members().contains(&member) {
            self.wake();
        }
    }

    /// Wakes every other member of the group (each wakes if it is quiet), waiting at most a
    /// second for their answers.
    pub(crate) async fn wake_members(&self) {
        let members = self.other_members();
        futures::future::join_all(members.iter().map(|m| self.peers.wake(self.id(), m))).await;
    }

    /// The membership addresses of the group's members other than this node.
    pub(crate) fn other_members(&self) -> Vec<String> {
        let metrics = self.raft().metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .nodes()
            .filter(|(id, _)| **id != metrics.id)
            .map(|(_, member)| member.addr.clone())
            .collect()
    }

    fn resume(&self) {
        self.quiet
            .woke_ms
            .store(millis_since_origin().max(1), Ordering::Release);
        let runtime = self.raft().runtime_config();
        runtime.heartbeat(true);
        runtime.tick(true);
    }

    fn go_quiet(&self, point: QuietPoint) {
        let runtime = self.raft().runtime_config();
        runtime.tick(false);
        runtime.heartbeat(false);
        tracing::debug!(group = self.id(), ?point, "quiet");
    }

    /// On the leader: the point this group could go quiet at, if it is a shard group unused for
    /// `after` whose members all hold, committed and applied its last entry and acknowledged the
    /// leader within the last second.
    pub(crate) fn quiet_point(&self, after: Duration) -> Option<QuietPoint> {
        if self.shard().is_none() || self.is_quiet() || self.quiet.idle_for() < after {
            return None;
        }
        // One look at the metrics, and no other borrow of them while it lasts: openraft's
        // metrics are a watch behind a read-write lock that makes new readers wait behind a
        // waiting writer, so a second borrow taken while holding one deadlocks the thread as
        // soon as the group's core publishes new metrics in between (openraft issue 1238). It
        // froze whole nodes while hundreds of groups started.
        let metrics = self.raft().metrics();
        let metrics = metrics.borrow_watched();
        if metrics.state != ServerState::Leader {
            return None;
        }
        let index = metrics.last_log_index?;
        let membership = &metrics.membership_config;
        let uniform = membership.membership().get_joint_config().len() == 1;
        let membership_committed = membership.log_id().as_ref().map(|id| id.index)
            <= metrics.local_committed.as_ref().map(|id| id.index);
        let settled = is_at(&metrics.local_committed, index)
            && is_at(&metrics.last_applied, index)
            && uniform
            && membership_committed;
        // Every other member holds the last entry and answered lately (the replication targets
        // are exactly the members but the leader).
        let all_matched = metrics
            .replication
            .as_ref()?
            .values()
            .all(|matched| is_at(matched, index));
        let all_fresh = metrics
            .heartbeat
            .as_ref()?
            .iter()
            .filter(|(node, _)| **node != metrics.id)
            .all(|(_, acked)| acked.as_ref().is_some_and(|at| at.elapsed() < FRESHNESS));
        (settled && all_matched && all_fresh).then_some(QuietPoint {
            leader: metrics.id,
            term: metrics.current_term,
            index,
        })
    }

    /// On a quiet leader backed by a majority of its voters (each answered a liveness ping sent
    /// moments ago, so each, quiet, votes for no other leader for a while yet): Raft's read
    /// index, without waking the group. A consumer polling an idle shard then keeps it quiet.
    pub(crate) fn quiet_read_index(&self) -> Option<u64> {
        let point = (*self.quiet.point())?;
        if point.leader != self.node_id() {
            return None;
        }
        let voters = self.voters();
        let backing = voters.iter().filter(|v| self.liveness.backs(**v)).count();
        (backing * 2 > voters.len()).then_some(point.index)
    }

    /// On the leader, once every member agreed to `point`: goes quiet, unless the group was used
    /// or moved on since `asked_at_ms` ([`millis_since_origin`]).
    pub(crate) fn quiesce_as_leader(&self, point: QuietPoint, asked_at_ms: u64) -> bool {
        let mut quiet = self.quiet.point();
        let used_since = self.quiet.last_used_ms.load(Ordering::Acquire) >= asked_at_ms;
        let still = {
            let metrics = self.raft().metrics();
            let metrics = metrics.borrow_watched();
            metrics.state == ServerState::Leader
                && metrics.current_term == point.term
                && metrics.last_log_index == Some(point.index)
        };
        if used_since || !still || quiet.is_some() {
            return false;
        }
        *quiet = Some(point);
        self.go_quiet(point);
        true
    }

    /// On a member, asked by its leader: goes quiet at `point` if this replica is there too (it
    /// follows that leader in that term and holds, committed and applied exactly that entry).
    pub(crate) fn quiesce_as_member(&self, point: QuietPoint) -> bool {
        let mut quiet = self.quiet.point();
        let there = {
            let metrics = self.raft().metrics();
            let metrics = metrics.borrow_watched();
            matches!(metrics.state, ServerState::Follower | ServerState::Learner)
                && metrics.current_term == point.term
                && metrics.current_leader == Some(point.leader)
                && metrics.last_log_index == Some(point.index)
                && is_at(&metrics.local_committed, point.index)
                && is_at(&metrics.last_applied, point.index)
        };
        if !there {
            return false;
        }
        if quiet.is_none() {
            *quiet = Some(point);
            self.go_quiet(point);
        }
        true
    }

    /// On a member: whether `request` must wake this group (it is quiet here and the request
    /// carries something new).
    pub(crate) fn woken_by_append(&self, request: &AppendEntriesRequest<TypeConfig>) -> bool {
        self.quiet
            .point()
            .as_ref()
            .is_some_and(|point| is_news(point, request))
    }

    /// A quiet member's answer to a (pre-)vote request from a node other than its leader while
    /// the leader's node is live: refused, as a lease would refuse it (openraft's own lease has
    /// long expired on a quiet group). The candidate is typically a restarted follower that
    /// heard nothing; if this node is the leader it wakes, so its heartbeats tell the candidate.
    /// `None` when the request is for openraft to judge (the group is woken first).
    pub(crate) fn hold_quiet_against(
        &self,
        request: &VoteRequest<TypeConfig>,
    ) -> Option<VoteResponse<TypeConfig>> {
        let point = (*self.quiet.point())?;
        let candidate = *request.vote.leader_id().node_id();
        if request.leadership_transfer
            || candidate == point.leader
            || !self.liveness.is_live(point.leader)
        {
            self.wake();
            return None;
        }
        if point.leader == self.node_id() {
            self.wake();
            let raft = self.raft().clone();
            tokio::spawn(async move { raft.trigger().heartbeat().await });
        }
        Some(self.refusal())
    }

    /// A vote refused, with this replica's vote. Its last applied entry stands for its last log
    /// id (a candidate only uses it to wait longer when it sees a longer log): never longer.
    fn refusal(&self) -> VoteResponse<TypeConfig> {
        let metrics = self.raft().metrics();
        let metrics = metrics.borrow_watched();
        VoteResponse::new(metrics.vote, metrics.last_applied, false)
    }

    /// After `lost`'s node lost this node's support (or came back as a new process): wakes the
    /// group if `lost` led it, and campaigns when this node is the follower chosen to: one of
    /// the live voters other than `lost`, picked by the group's id, so that one campaigns
    /// rather than all.
    pub(crate) async fn take_over_from(&self, lost: NodeId, campaigns: &tokio::sync::Semaphore) {
        let led_by_lost = self
            .quiet
            .point()
            .as_ref()
            // A group with no leader known here needs an election anyway (a follower whose own
            // timer fired first may have dropped the dead leader already).
            .map_or(self.leader().is_none_or(|l| l == lost), |point| {
                point.leader == lost
            });
        if !led_by_lost {
            tracing::debug!(
                group = self.id(),
                lost,
                leader = self.leader(),
                "not led by the lost node"
            );
            return;
        }
        self.wake();
        let me = self.node_id();
        let voters = self.voters();
        let live: Vec<NodeId> = voters
            .iter()
            .copied()
            .filter(|node| *node != lost && self.liveness.is_live(*node))
            .collect();
        // A node that hears too few voters could not win, and a failed vote would only raise
        // its term: after a pause (SIGSTOP) every peer looks silent to the resumed node for a
        // moment, and its campaigns would unseat the leaders elected meanwhile. Pre-vote, by
        // liveness.
        if live.len() * 2 <= voters.len() {
            tracing::debug!(
                group = self.id(),
                lost,
                ?live,
                "too few live voters to campaign"
            );
            return;
        }
        // One campaigner per group, the same one in every live voter's eyes, and different
        // ones across groups: a dead node's groups are split among the survivors (the lowest
        // id for all of them put a thousand elections on one node while the other idled).
        let chosen = live[self.id() as usize % live.len()] == me;
        if !chosen {
            // Leave the campaign to the chosen voter: this node's own election timer fires
            // about when the lease lapses too, and two candidates split the vote (a group took
            // up to nine campaigns, 1.7 s, on a loaded node).
            self.raft().runtime_config().elect(false);
        }
        // A group that was busy still holds openraft's leader lease (election_timeout_max from
        // the dead leader's last word), and until it lapses a pre-vote is refused, here first:
        // campaign the moment it lapses, and again (a voter's lease may end a little later)
        // until a leader is seen. Waiting on the leader, not sleeping, frees this group's place
        // among the groups campaigning at once as soon as it is won.
        let lease = self.lease();
        if let Ok(Some(since_last_word)) = self
            .raft()
            .with_raft_state(|state| state.vote_last_modified().map(|at| at.elapsed()))
            .await
        {
            // The other voters heard the dead leader's last word a little after this node did
            // (one message's delivery apart): campaigning at this node's own lease end was
            // refused by them about half the time, and retried a round later.
            tokio::time::sleep(lease.saturating_sub(since_last_word) + LEASE_SKEW).await;
        }
        if !chosen {
            self.wait_for_leader_other_than(Some(lost), HANDS_OFF).await;
            self.raft().runtime_config().elect(true);
            if self.leader().is_some_and(|l| l != lost) {
                return;
            }
            // The chosen voter could not win: its log may end before this node's (the dead
            // leader's last entries reached only this one), and then only this node can.
        }
        // Waiting out the lease holds no place: only campaigning groups count against the bound.
        let Ok(_campaigning) = campaigns.acquire().await else {
            return;
        };
        let started = Instant::now();
        for _ in 0..CAMPAIGN_TRIES {
            if self.is_leader() || self.leader().is_some_and(|l| l != lost) {
                tracing::info!(
                    group = self.id(),
                    leader = self.leader(),
                    campaigned_ms = started.elapsed().as_millis() as u64,
                    "took over from a lost leader"
                );
                return;
            }
            // A vote still being counted is let be: campaigning again would start a new term
            // over it (a slow round on a loaded node was restarted up to five times).
            if !self.is_candidate() {
                tracing::info!(
                    group = self.id(),
                    lost,
                    "campaigning: the leader's node is gone"
                );
                if self.raft().trigger().elect(true).await.is_err() {
                    return;
                }
            }
            self.wait_for_leader_other_than(Some(lost), CAMPAIGN_PATIENCE)
                .await;
        }
    }

    fn is_candidate(&self) -> bool {
        self.raft().metrics().borrow_watched().state == ServerState::Candidate
    }
}

/// How many times, and how long each time, a chosen follower campaigns (and waits for a leader)
/// after its leader's node was lost: a round takes a pre-vote, a vote and the new leader's first
/// commit, a few fsyncs, and on a loaded node with hundreds of groups electing at once, hundreds
/// of milliseconds; a try repeats only when no vote is being counted (its pre-vote was refused,
/// by a voter whose lease ended later still, or lost).
const CAMPAIGN_TRIES: usize = 10;
const CAMPAIGN_PATIENCE: Duration = Duration::from_millis(200);

/// How long after the lease a voter not chosen to campaign leaves it to the chosen one (its
/// first campaign takes 150 ms at the median on a loaded node, 300 ms at p90) before it
/// campaigns itself.
const HANDS_OFF: Duration = Duration::from_millis(500);

/// How much later than this node another voter may have heard the dead leader last.
const LEASE_SKEW: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use kinesin_storage::{Engine, EngineOptions};

    use super::*;
    use crate::{Command, GroupKind, GroupOptions, MultiRaft, NewRecord, RaftTuning};

    /// The upkeep looks for quiet points of busy groups all the time; while it looked, openraft
    /// publishing the group's metrics must never block (a nested borrow of the metrics froze two
    /// of three nodes creating 600 shards). A deadlock cannot fail a test that waits on it, so a
    /// watchdog aborts the test binary instead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn looking_for_a_quiet_point_never_blocks_the_groups_core() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path(), &EngineOptions::default()).unwrap());
        let raft = MultiRaft::new(1, engine, &RaftTuning::default()).unwrap();
        let members = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
        let options = GroupOptions {
            kind: GroupKind::Shard,
            initial_members: Some(members),
        };
        let group = raft.open_group(7, options).await.unwrap();
        group
            .wait_for_leader(Duration::from_secs(10))
            .await
            .unwrap();

        let (finished, watched) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if watched.recv_timeout(Duration::from_secs(60)).is_err() {
                eprintln!("deadlock: writes stalled while quiet points were looked for");
                std::process::abort();
            }
        });
        let writing = Arc::new(AtomicBool::new(true));
        let looker = {
            let group = group.clone();
            let writing = writing.clone();
            std::thread::spawn(move || {
                let mut looks = 0u64;
                while writing.load(Ordering::Acquire) {
                    group.quiet_point(Duration::ZERO);
                    looks += 1;
                }
                looks
            })
        };
        for i in 0..300 {
            let put = Command::Put {
                arrival_ms: i,
                records: vec![NewRecord::plain("k", b"record".to_vec())],
            };
            group.write(put).await.unwrap();
        }
        writing.store(false, Ordering::Release);
        let looks = looker.join().unwrap();
        let _ = finished.send(());
        assert!(looks > 0);
    }
}
