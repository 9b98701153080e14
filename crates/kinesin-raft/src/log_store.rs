//! openraft's log storage on the node's engine: one instance per group, all sharing one WAL.
//!
//! Appends are written without sync and completed by the engine's group-commit syncer, so the
//! `IOFlushed` callback fires only once the entries are on disk, and many groups' appends share one
//! fsync. Votes are synced before `save_vote` returns. Both go through the same WAL, so a vote and
//! the log can never be reordered on disk.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kinesin_storage::{Engine, StateTag, WriteBatch};
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;

use crate::disk_format;
use crate::node_stats::NodeStats;
use crate::quota::TokenBuckets;
use crate::TypeConfig;

#[derive(Clone)]
pub struct LogStore {
    group: u64,
    engine: Arc<Engine>,
    /// Held by every copy openraft makes, so the registry can tell when they are all gone.
    _lease: Arc<()>,
    catch_up: Option<Arc<CatchUpThrottle>>,
    /// This reader's last replication read filled a call and left more: its replica is catching
    /// up, and the next read waits for the node's catch-up budget. (openraft gives each
    /// replication stream a reader of its own.)
    behind: bool,
    /// Where a vote that moves this replica to a later term is counted.
    term_moves: Option<Arc<NodeStats>>,
}

/// The node's budget for sending log to replicas far behind. A read for replication that fills a
/// whole call ([`REPLICATION_BYTES_PER_CALL`]) with more left to send is catch-up, not live
/// replication (a replica keeping up is sent what was just written, far less per call): it is
/// charged here, and that stream's next read waits until the node's budget is back. Live
/// replication is never charged and never waits.
pub(crate) struct CatchUpThrottle {
    /// A rate of zero is no limit (`TokenBuckets`' rule): never in debt, so nothing waits.
    bucket: std::sync::Mutex<TokenBuckets<1>>,
}

/// Tokio's clock, the one its sleeps follow.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl CatchUpThrottle {
    pub(crate) fn new(bytes_per_sec: u64) -> CatchUpThrottle {
        CatchUpThrottle {
            bucket: std::sync::Mutex::new(TokenBuckets::full([bytes_per_sec], now())),
        }
    }

    fn bucket(&self) -> std::sync::MutexGuard<'_, TokenBuckets<1>> {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long to wait before the next catch-up read.
    fn wait(&self) -> Duration {
        self.bucket().debt_cleared_in(now())
    }

    fn charge(&self, bytes: usize) {
        self.bucket().charge([bytes as u64], now());
    }
}

impl LogStore {
    pub fn new(group: u64, engine: Arc<Engine>) -> LogStore {
        LogStore::with_lease(group, engine, Arc::new(()))
    }

    pub(crate) fn with_lease(group: u64, engine: Arc<Engine>, lease: Arc<()>) -> LogStore {
        LogStore {
            group,
            engine,
            _lease: lease,
            catch_up: None,
            behind: false,
            term_moves: None,
        }
    }

    /// The entries from `start` (before `end`), decoded straight from the engine's iterator,
    /// until `byte_budget` of them are read (at least one); and their stored bytes.
    fn read_entries(
        &self,
        start: u64,
        end: u64,
        byte_budget: usize,
    ) -> io::Result<(Vec<EntryOf<TypeConfig>>, usize)> {
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        self.engine
            .scan_log(self.group, start, end, |_, value| -> io::Result<bool> {
                entries.push(disk_format::decode_entry(value)?);
                bytes += value.len();
                Ok(bytes < byte_budget)
            })?;
        Ok((entries, bytes))
    }

    /// Paces this group's catch-up reads with the node's `throttle`.
    pub(crate) fn throttled_by(mut self, throttle: Arc<CatchUpThrottle>) -> LogStore {
        self.catch_up = Some(throttle);
        self
    }

    /// Counts in `stats` (and logs) every vote that moves this replica to a later term.
    pub(crate) fn counting_term_moves_in(mut self, stats: Arc<NodeStats>) -> LogStore {
        self.term_moves = Some(stats);
        self
    }

    fn read_state<T>(
        &self,
        tag: StateTag,
        decode: impl FnOnce(&[u8]) -> io::Result<T>,
    ) -> Result<Option<T>, io::Error> {
        match self.engine.state(self.group, tag)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn write_state(&self, tag: StateTag, bytes: &[u8]) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        self.engine.put_state(&mut batch, self.group, tag, bytes);
        Ok(self.engine.write(batch)?)
    }
}

fn index_range<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(x) => *x,
        Bound::Excluded(x) => x.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(x) => x.saturating_add(1),
        Bound::Excluded(x) => *x,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        let (start, end) = index_range(&range);
        Ok(self.read_entries(start, end, usize::MAX)?.0)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        self.read_state(StateTag::Vote, disk_format::decode_vote)
    }

    /// What the leader's replication reads for one AppendEntries: entries from `start` until
    /// about [`REPLICATION_BYTES_PER_CALL`], at least one. openraft bounds a call by entry count
    /// only (300), and a shard's entries are whole PutRecords batches (up to 5 MiB each): a
    /// replica far behind would be sent hundreds of megabytes in one call that cannot finish
    /// within its timeout (the heartbeat interval), and retried forever.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        if let (Some(throttle), true) = (&self.catch_up, self.behind) {
            let wait = throttle.wait();
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let (entries, bytes) = self.read_entries(start, end, REPLICATION_BYTES_PER_CALL)?;
        self.behind = entries.last().is_some_and(|e| e.index() + 1 < end);
        if let (Some(throttle), true) = (&self.catch_up, self.behind) {
            throttle.charge(bytes);
        }
        Ok(entries)
    }
}

/// About how many bytes of log one AppendEntries call carries to a replica that is behind: small
/// enough to cross within the call's timeout on a busy node, large enough that catching up is not
/// bound by round trips.
pub const REPLICATION_BYTES_PER_CALL: usize = 2 << 20;

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged = self
            .read_state(StateTag::LastPurged, disk_format::decode_log_id)?
            .flatten();
        let last = match self.engine.last_log_entry(self.group)? {
            Some((_, bytes)) => Some(disk_format::decode_entry(&bytes)?.log_id()),
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        // Every term a replica enters passes through here, whatever moved it (its own campaign,
        // a vote it granted, a leader's append, a higher term in an answer), and nothing else
        // does: counting here misses none, where sampling the groups' metrics missed a term
        // entered and left while the sampler was not looking.
        //
        // Only counted: a vote that cannot be read back here must not stop the new one being
        // saved (a failing disk fails the write below anyway).
        let before = match &self.term_moves {
            Some(_) => self
                .read_state(StateTag::Vote, disk_format::decode_vote)
                .unwrap_or(None),
            None => None,
        };
        self.write_state(StateTag::Vote, &disk_format::encode_vote(vote))?;
        self.engine.sync().await?;
        if let (Some(stats), Some(before)) = (&self.term_moves, before) {
            if vote.leader_id.term > before.leader_id.term {
                stats.term_changes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    group = self.group,
                    from = before.leader_id.term,
                    to = vote.leader_id.term,
                    voted_for = vote.leader_id.node_id,
                    leader_known = vote.committed,
                    "term moved"
                );
            }
        }
        Ok(())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        // Not synced: it only lets a restarted node re-apply sooner; losing it is harmless.
        self.write_state(
            StateTag::Committed,
            &disk_format::encode_log_id(committed.as_ref()),
        )
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        Ok(self
            .read_state(StateTag::Committed, disk_format::decode_log_id)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        #[cfg(feature = "failpoints")]
        let mut appended = Vec::new();
        for entry in entries {
            self.engine.put_log_entry(
                &mut batch,
                self.group,
                entry.index(),
                &disk_format::encode_entry(&entry),
            );
            #[cfg(feature = "failpoints")]
            if let openraft::EntryPayload::Normal(command) = &entry.payload {
                appended.push((entry.index(), command.clone()));
            }
        }
        // Written now so the entries are readable when this returns; durable when the callback fires.
        self.engine.write(batch)?;
        #[cfg(feature = "failpoints")]
        for (index, command) in appended {
            crate::early_ack::appended(self.group, index, &command);
        }
        self.engine
            .sync_then(move |result| callback.io_completed(result.map_err(io::Error::from)));
        Ok(())
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        let from = last_log_id.map(|id| id.index() + 1).unwrap_or(0);
        Ok(self.engine.delete_log_range(self.group, from, u64::MAX)?)
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        // Record the purge point first: entries at or below it are ignored from then on, so a crash
        // between the two writes leaves at worst some dead entries behind.
        self.write_state(
            StateTag::LastPurged,
            &disk_format::encode_log_id(Some(&log_id)),
        )?;
        Ok(self
            .engine
            .delete_log_range(self.group, 0, log_id.index() + 1)?)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kinesin_storage::EngineOptions;
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::EntryPayload;

    use super::*;
    use crate::types::{Command, NewRecord};

    /// A log of `sizes.len()` Put entries from index 1, each one record of that many bytes.
    fn log_of(sizes: &[usize]) -> (tempfile::TempDir, LogStore) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path(), &EngineOptions::default()).unwrap());
        let mut batch = WriteBatch::default();
        for (i, size) in sizes.iter().enumerate() {
            let index = i as u64 + 1;
            let entry = EntryOf::<TypeConfig> {
                log_id: LogIdOf::<TypeConfig>::new(
                    LeaderId {
                        term: 1,
                        node_id: 1,
                    },
                    index,
                ),
                payload: EntryPayload::Normal(Command::Put {
                    arrival_ms: 1,
                    records: vec![NewRecord::plain("pk", Bytes::from(vec![7; *size]))],
                }),
            };
            engine.put_log_entry(&mut batch, 1, index, &disk_format::encode_entry(&entry));
        }
        engine.write(batch).unwrap();
        (dir, LogStore::new(1, engine))
    }

    fn indexes(entries: &[EntryOf<TypeConfig>]) -> Vec<u64> {
        entries.iter().map(|e| e.index()).collect()
    }

    #[tokio::test]
    async fn replication_reads_stop_after_about_one_calls_worth_of_bytes() {
        let (_dir, mut log) = log_of(&[1 << 20; 10]);
        let sent = log.limited_get_log_entries(1, 11).await.unwrap();
        assert_eq!(indexes(&sent), [1, 2]);
        let sent = log.limited_get_log_entries(9, 11).await.unwrap();
        assert_eq!(indexes(&sent), [9, 10]);
    }

    #[tokio::test]
    async fn replication_reads_send_an_entry_larger_than_the_budget_alone() {
        let (_dir, mut log) = log_of(&[REPLICATION_BYTES_PER_CALL * 2, 10]);
        let sent = log.limited_get_log_entries(1, 3).await.unwrap();
        assert_eq!(indexes(&sent), [1]);
        let sent = log.limited_get_log_entries(2, 3).await.unwrap();
        assert_eq!(indexes(&sent), [2]);
    }

    #[tokio::test]
    async fn a_stream_catching_up_waits_for_the_budget_and_live_reads_never_do() {
        let (_dir, log) = log_of(&[1 << 20; 20]);
        let throttle = Arc::new(CatchUpThrottle::new(4 << 20));
        let mut catching_up = log.clone().throttled_by(throttle.clone());
        let mut live = log.throttled_by(throttle.clone());
        let started = std::time::Instant::now();
        // 2 MiB per read; the budget holds one second of 4 MiB/s and may go into debt.
        for from in [1, 3, 5, 7, 9, 11] {
            catching_up.limited_get_log_entries(from, 21).await.unwrap();
        }
        // 12 MiB charged, 4 MiB there at first, the last 2 MiB not waited for: 6 MiB at 4 MiB/s.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(1400), "waited {waited:?}");
        // The budget is in debt now, and a stream that is keeping up still reads at once.
        assert!(!throttle.wait().is_zero());
        let sent = live.limited_get_log_entries(20, 21).await.unwrap();
        assert_eq!(indexes(&sent), [20]);
        assert!(!live.behind);
    }

    #[tokio::test]
    async fn replication_reads_of_small_entries_take_the_whole_range() {
        let (_dir, mut log) = log_of(&[100; 50]);
        let sent = log.limited_get_log_entries(5, 40).await.unwrap();
        assert_eq!(indexes(&sent), (5..40).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn every_vote_into_a_later_term_is_counted_and_nothing_else() {
        let (_dir, log) = log_of(&[]);
        let stats = Arc::new(NodeStats::default());
        let mut log = log.counting_term_moves_in(stats.clone());
        let counted = || stats.term_changes.load(Ordering::Relaxed);
        let vote = |term, node, committed| {
            let mut vote = VoteOf::<TypeConfig>::new(term, node);
            vote.committed = committed;
            vote
        };
        // A group's first vote (its creation) moves no term.
        log.save_vote(&vote(1, 1, false)).await.unwrap();
        assert_eq!(counted(), 0);
        // Its candidate winning is the same term.
        log.save_vote(&vote(1, 1, true)).await.unwrap();
        assert_eq!(counted(), 0);
        // A vote granted to another candidate, and that one's win, then a term skipped.
        log.save_vote(&vote(2, 3, false)).await.unwrap();
        log.save_vote(&vote(2, 3, true)).await.unwrap();
        log.save_vote(&vote(5, 2, true)).await.unwrap();
        assert_eq!(counted(), 2);
        assert_eq!(log.read_vote().await.unwrap(), Some(vote(5, 2, true)));
    }

    #[tokio::test]
    async fn a_vote_saved_over_one_that_cannot_be_read_is_saved_and_not_counted() {
        let (_dir, log) = log_of(&[]);
        let stats = Arc::new(NodeStats::default());
        let mut log = log.counting_term_moves_in(stats.clone());
        log.write_state(StateTag::Vote, b"not a vote").unwrap();
        let vote = VoteOf::<TypeConfig>::new(3, 2);
        log.save_vote(&vote).await.unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(vote));
        assert_eq!(stats.term_changes.load(Ordering::Relaxed), 0);
    }
}
