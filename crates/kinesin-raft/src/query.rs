//! Reads of a shard, served by any of its replicas that is caught up with its leader: the local
//! [`ShardView`] when this node hosts one, else by one call to a node that does.
//!
//! Every replica answers from what it has applied, and applied means committed, so a read never
//! returns a record that could still be lost. A replica answers only once it has applied what its
//! leader had committed when the read arrived (Raft's read index): one still catching up would
//! answer an empty page as if the reader were at the tip. Readers move forward by the positions in
//! their iterators, so switching nodes never moves a reader backwards.

use kinesin_storage::StoredRecord;
use serde::{Deserialize, Serialize};

use crate::error::RaftError;
use crate::shard::ShardView;

/// A stored record as it travels between nodes in answers to reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireRecord {
    position: u64,
    arrival_ms: u64,
    partition_key: String,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    data_key: u32,
}

impl From<StoredRecord> for WireRecord {
    fn from(r: StoredRecord) -> WireRecord {
        WireRecord {
            position: r.position,
            arrival_ms: r.arrival_ms,
            partition_key: r.partition_key,
            data: r.data,
            data_key: r.data_key,
        }
    }
}

impl From<WireRecord> for StoredRecord {
    fn from(r: WireRecord) -> StoredRecord {
        StoredRecord {
            position: r.position,
            arrival_ms: r.arrival_ms,
            partition_key: r.partition_key,
            data: r.data,
            data_key: r.data_key,
        }
    }
}

/// What a reader asks of a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardQuery {
    /// Up to `max_records` records (and about `max_bytes`) from position `from` on.
    Records {
        from: u64,
        max_records: u32,
        max_bytes: u64,
    },
    /// The shard's retained range and its newest arrival time.
    Bounds,
    /// The position of the first record that arrived at or after `arrival_ms`.
    PositionAt { arrival_ms: u64 },
    /// Asked of a group's leader, of any group: the log index a replica must have applied to
    /// answer as of now (Raft's read index, after the leader confirmed it still leads).
    ReadIndex,
    /// Like `Records`, but when there is none yet the replica waits up to `wait_ms` for its next
    /// apply (a push to a subscriber, not a poll). Kept last: variants are numbered on the wire.
    AwaitRecords {
        from: u64,
        max_records: u32,
        max_bytes: u64,
        wait_ms: u64,
    },
}

/// The retained range of a shard as one replica sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardBounds {
    /// The oldest retained position (`TRIM_HORIZON`).
    pub trim_position: u64,
    /// The position after every applied record (`LATEST`).
    pub next_position: u64,
    pub last_arrival_ms: u64,
    /// Records and bytes the answering replica applied since it opened the group; two answers of
    /// one replica a while apart give the shard's write throughput.
    pub written_records: u64,
    pub written_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireAnswer {
    Records {
        records: Vec<WireRecord>,
        bounds: ShardBounds,
        reached_seal: bool,
    },
    Bounds(ShardBounds),
    Position(u64),
    ReadIndex(u64),
    /// The answer to `AwaitRecords`: `Records`, and how far the replica had applied before it
    /// read (so a reader that found nothing knows it may move up to there).
    AwaitedRecords {
        records: Vec<WireRecord>,
        bounds: ShardBounds,
        scanned_to: u64,
    },
}

/// Records read from a shard, with the bounds of the replica that served them (read after the
/// records, so `next_position` is never behind the last record returned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRead {
    pub records: Vec<StoredRecord>,
    pub bounds: ShardBounds,
    /// The answering replica had applied the shard's seal and no record follows those returned:
    /// a reader past them has read the whole shard. A replica that has not applied the seal yet
    /// never says so, however far it has read.
    pub reached_seal: bool,
    /// The answering replica had applied everything its leader had committed when the read
    /// arrived. False only when no replica could confirm that (no leader, or none reachable):
    /// the records are committed, but newer ones may exist, and `bounds` may be behind.
    pub caught_up: bool,
}

/// Records awaited from a shard ([`crate::MultiRaft::await_shard_records`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitedRead {
    pub records: Vec<StoredRecord>,
    pub bounds: ShardBounds,
    /// Every record before this position had been applied when the replica read: with no
    /// record returned, a reader may move up to it without missing any. (`bounds.next_position`
    /// is read after the records and may include some the read did not see.)
    pub scanned_to: u64,
}

impl ShardView {
    pub fn bounds(&self) -> ShardBounds {
        ShardBounds {
            trim_position: self.trim_position(),
            next_position: self.next_position(),
            last_arrival_ms: self.last_arrival_ms(),
            written_records: self.written().0,
            written_bytes: self.written().1,
        }
    }

    /// Answers `query` from this replica's applied state.
    pub(crate) fn answer(&self, query: &ShardQuery) -> Result<WireAnswer, RaftError> {
        Ok(match *query {
            ShardQuery::Records {
                from,
                max_records,
                max_bytes,
            } => {
                // Seen before the read: once sealed, no record is added, so the read below and
                // the look past it see the shard's final records.
                let sealed = self.sealed_at().is_some();
                let records = self.read(
                    from,
                    max_records as usize,
                    usize::try_from(max_bytes).unwrap_or(usize::MAX),
                )?;
                let reached_seal = sealed
                    && match records.last() {
                        // A read of one or more returns a record when any is at or after `from`.
                        None => max_records > 0,
                        Some(last) => self.read(last.position + 1, 1, usize::MAX)?.is_empty(),
                    };
                WireAnswer::Records {
                    records: records.into_iter().map(WireRecord::from).collect(),
                    bounds: self.bounds(),
                    reached_seal,
                }
            }
            ShardQuery::Bounds => WireAnswer::Bounds(self.bounds()),
            ShardQuery::PositionAt { arrival_ms } => {
                WireAnswer::Position(self.position_at_time(arrival_ms)?)
            }
            ShardQuery::ReadIndex | ShardQuery::AwaitRecords { .. } => {
                return Err(RaftError::Other(
                    "a read index or an awaited read is asked of the group, not of a shard view"
                        .into(),
                ))
            }
        })
    }
}

impl crate::registry::GroupHandle {
    /// Records from `from` on, waiting up to `wait` for the next apply when there is none yet. A
    /// sealed shard gets no more records, so it is answered at once.
    pub(crate) async fn await_records(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
        wait: std::time::Duration,
    ) -> Result<WireAnswer, RaftError> {
        let view = self
            .shard()
            .cloned()
            .ok_or_else(|| RaftError::Other(format!("group {} is not a shard", self.id())))?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Taken before the read: an entry applied after it wakes the wait below at once.
            let applied = self.applied_index();
            let scanned_to = view.next_position();
            let records = view.read(from, max_records, max_bytes)?;
            let now = tokio::time::Instant::now();
            if !records.is_empty() || view.sealed_at().is_some() || now >= deadline {
                return Ok(WireAnswer::AwaitedRecords {
                    records: records.into_iter().map(WireRecord::from).collect(),
                    bounds: view.bounds(),
                    scanned_to,
                });
            }
            // Woken by the apply of the next entry (openraft's metrics channel), or the deadline.
            let _ = self.wait_applied(applied + 1, deadline - now).await;
        }
    }
}

impl WireAnswer {
    pub(crate) fn into_read(self, group: u64) -> Result<ShardRead, RaftError> {
        match self {
            WireAnswer::Records {
                records,
                bounds,
                reached_seal,
            } => Ok(ShardRead {
                records: records.into_iter().map(StoredRecord::from).collect(),
                bounds,
                reached_seal,
                caught_up: true,
            }),
            other => Err(mismatch(group, &other)),
        }
    }

    pub(crate) fn into_awaited(self, group: u64) -> Result<AwaitedRead, RaftError> {
        match self {
            WireAnswer::AwaitedRecords {
                records,
                bounds,
                scanned_to,
            } => Ok(AwaitedRead {
                records: records.into_iter().map(StoredRecord::from).collect(),
                bounds,
                scanned_to,
            }),
            other => Err(mismatch(group, &other)),
        }
    }

    pub(crate) fn into_bounds(self, group: u64) -> Result<ShardBounds, RaftError> {
        match self {
            WireAnswer::Bounds(bounds) => Ok(bounds),
            other => Err(mismatch(group, &other)),
        }
    }

    pub(crate) fn into_position(self, group: u64) -> Result<u64, RaftError> {
        match self {
            WireAnswer::Position(position) => Ok(position),
            other => Err(mismatch(group, &other)),
        }
    }

    pub(crate) fn into_read_index(self, group: u64) -> Result<u64, RaftError> {
        match self {
            WireAnswer::ReadIndex(index) => Ok(index),
            other => Err(mismatch(group, &other)),
        }
    }
}

fn mismatch(group: u64, answer: &WireAnswer) -> RaftError {
    let kind = match answer {
        WireAnswer::Records { .. } | WireAnswer::AwaitedRecords { .. } => "records",
        WireAnswer::Bounds(_) => "bounds",
        WireAnswer::Position(_) => "a position",
        WireAnswer::ReadIndex(_) => "a read index",
    };
    RaftError::Other(format!(
        "group {group}: a replica answered with {kind} to another question"
    ))
}

/// How long one forwarded read may take before the next replica is tried.
const REMOTE_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a replica may take to apply what its leader had committed when a read arrived before
/// the read goes to another replica: a follower applies within milliseconds of its leader; one
/// that is further behind is catching up (restarted, rebuilt, just added) and must not answer.
const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// What a read was answered from.
enum Answered {
    /// A replica that had applied everything its leader had committed when the read arrived.
    CaughtUp(WireAnswer),
    /// This node's replica, which could not confirm that: no replica that could was reachable
    /// (no leader, or a partition). Committed records, but maybe not the newest.
    Behind(WireAnswer),
}

impl Answered {
    fn answer(self) -> WireAnswer {
        match self {
            Answered::CaughtUp(answer) | Answered::Behind(answer) => answer,
        }
    }
}

impl crate::registry::MultiRaft {
    /// Whether this node's replica of group `id` has applied everything its leader had committed
    /// when asked (Raft's read index), waiting up to [`CATCH_UP_WAIT`] for it to get there. Only
    /// such a replica answers reads: one still catching up would answer an empty page as if the
    /// reader were at the tip, or place `LATEST` before records already acknowledged.
    pub(crate) async fn caught_up(&self, id: u64) -> bool {
        match self.linearize(id, CATCH_UP_WAIT).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(group = id, error = %e, "replica not caught up with its leader");
                false
            }
        }
    }

    /// Asks `query` of group `id`: of the local replica when this node hosts one and it is caught
    /// up, else of the other `replicas` (node, cluster address) in turn, each of which answers
    /// only if it is caught up; when none is, of the local replica as it is.
    async fn query_shard(
        &self,
        id: u64,
        query: ShardQuery,
        replicas: &[(crate::NodeId, String)],
    ) -> Result<Answered, RaftError> {
        let local = self.group(id).and_then(|g| g.shard().cloned());
        if let Some(view) = &local {
            if self.caught_up(id).await {
                return view.answer(&query).map(Answered::CaughtUp);
            }
        }
        let mut last_error = RaftError::NoSuchGroup(id);
        for (_, addr) in replicas.iter().filter(|(node, _)| *node != self.node_id()) {
            match self
                .peers()
                .query(addr, id, &query, REMOTE_READ_TIMEOUT)
                .await
            {
                Ok(answer) => return Ok(Answered::CaughtUp(answer)),
                Err(e) => {
                    tracing::debug!(group = id, addr, error = %e, "replica could not answer a read");
                    last_error = e;
                }
            }
        }
        match local {
            Some(view) => view.answer(&query).map(Answered::Behind),
            None => Err(last_error),
        }
    }

    /// Committed records of shard group `id` from `from` on, from any replica.
    pub async fn read_shard(
        &self,
        id: u64,
        from: u64,
        max_records: usize,
        max_bytes: usize,
        replicas: &[(crate::NodeId, String)],
    ) -> Result<ShardRead, RaftError> {
        let query = ShardQuery::Records {
            from,
            max_records: u32::try_from(max_records).unwrap_or(u32::MAX),
            max_bytes: max_bytes as u64,
        };
        let answered = self.query_shard(id, query, replicas).await?;
        let caught_up = matches!(answered, Answered::CaughtUp(_));
        let read = answered.answer().into_read(id)?;
        Ok(ShardRead { caught_up, ..read })
    }

    /// Committed records of shard group `id` from `from` on, from any replica; when there are
    /// none yet, the replica answers as soon as it applies more, or after `wait`. What a
    /// SubscribeToShard pushes: woken by the shard's apply, locally or on the replica asked. Like
    /// every read, answered by a replica caught up with its leader when one is reachable.
    pub async fn await_shard_records(
        &self,
        id: u64,
        from: u64,
        max_records: usize,
        max_bytes: usize,
        wait: std::time::Duration,
        replicas: &[(crate::NodeId, String)],
    ) -> Result<AwaitedRead, RaftError> {
        let local = self.group(id).filter(|g| g.shard().is_some());
        if let Some(group) = &local {
            if self.caught_up(id).await {
                return group
                    .await_records(from, max_records, max_bytes, wait)
                    .await?
                    .into_awaited(id);
            }
        }
        let query = ShardQuery::AwaitRecords {
            from,
            max_records: u32::try_from(max_records).unwrap_or(u32::MAX),
            max_bytes: max_bytes as u64,
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        let mut last_error = RaftError::NoSuchGroup(id);
        for (_, addr) in replicas.iter().filter(|(node, _)| *node != self.node_id()) {
            match self
                .peers()
                .query(addr, id, &query, wait + REMOTE_READ_TIMEOUT)
                .await
            {
                Ok(answer) => return answer.into_awaited(id),
                Err(e) => {
                    tracing::debug!(group = id, addr, error = %e, "replica could not answer an awaited read");
                    last_error = e;
                }
            }
        }
        match local {
            Some(group) => group
                .await_records(from, max_records, max_bytes, wait)
                .await?
                .into_awaited(id),
            None => Err(last_error),
        }
    }

    /// The retained range of shard group `id`, from any replica.
    pub async fn shard_bounds(
        &self,
        id: u64,
        replicas: &[(crate::NodeId, String)],
    ) -> Result<ShardBounds, RaftError> {
        self.query_shard(id, ShardQuery::Bounds, replicas)
            .await?
            .answer()
            .into_bounds(id)
    }

    /// A linearizable-read barrier: waits until this node's replica of group `id` has applied
    /// everything committed before the call, so what it answers next is at least as new as any
    /// write acknowledged before (on any node). Asks the group's leader for its read index (one
    /// call when the leader is elsewhere), then waits for the local replica to apply that far.
    pub async fn linearize(&self, id: u64, timeout: std::time::Duration) -> Result<(), RaftError> {
        let group = self.group(id).ok_or(RaftError::NoSuchGroup(id))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let not_now = |reason: String| RaftError::NotLinearizable { group: id, reason };
        let mut backoff = std::time::Duration::from_millis(20);
        // Right after an election or a healed partition the leader may be unknown for a moment,
        // or the one we knew may have just stepped down: wait for the next, up to the deadline.
        let index = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let leader = match group.leader() {
                Some(leader) => leader,
                None => group
                    .wait_for_leader(left)
                    .await
                    .map_err(|e| not_now(format!("no leader: {e}")))?,
            };
            let asked = if leader == self.node_id() {
                group.read_index().await
            } else if let Some(addr) = group.node_addr(leader) {
                match self
                    .peers()
                    .query(&addr, id, &ShardQuery::ReadIndex, left)
                    .await
                {
                    Ok(answer) => answer.into_read_index(id),
                    Err(e) => Err(e),
                }
            } else {
                // A node that just joined knows the leader before the membership that names its
                // address: wait for it like for an election.
                Err(RaftError::NotLeader {
                    group: id,
                    leader: Some(leader),
                })
            };
            match asked {
                Ok(index) => break index,
                // A leader that just died (unreachable) is replaced by the next election; one
                // that could not confirm its leadership in time (its followers' answers late on
                // a node busy starting a thousand groups) may well confirm it at the next try.
                Err(
                    RaftError::NotLeader { .. }
                    | RaftError::Unreachable { .. }
                    | RaftError::NotLinearizable { .. }
                    | RaftError::Unknown { .. },
                ) if tokio::time::Instant::now() + backoff < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_millis(200));
                }
                Err(e) => return Err(not_now(e.to_string())),
            }
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        group.wait_applied(index, left).await
    }

    /// Waits until group `id` has a leader that a majority still follows (it answered a read
    /// index), asking the local replica or the other `replicas` in turn. Resharding waits for this
    /// before it seals a parent, so its children can take writes the moment they are activated.
    pub async fn confirm_leader(
        &self,
        id: u64,
        replicas: &[(crate::NodeId, String)],
        timeout: std::time::Duration,
    ) -> Result<(), RaftError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(group) = self.group(id).filter(|g| g.is_leader()) {
                if group.read_index().await.is_ok() {
                    return Ok(());
                }
            }
            for (_, addr) in replicas.iter().filter(|(node, _)| *node != self.node_id()) {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let asked = self
                    .peers()
                    .query(
                        addr,
                        id,
                        &ShardQuery::ReadIndex,
                        left.min(REMOTE_READ_TIMEOUT),
                    )
                    .await;
                if asked.and_then(|answer| answer.into_read_index(id)).is_ok() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RaftError::NotLinearizable {
                    group: id,
                    reason: "no replica confirmed a leader before the deadline".into(),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The position of the first record of group `id` that arrived at or after `arrival_ms`.
    pub async fn position_at(
        &self,
        id: u64,
        arrival_ms: u64,
        replicas: &[(crate::NodeId, String)],
    ) -> Result<u64, RaftError> {
        self.query_shard(id, ShardQuery::PositionAt { arrival_ms }, replicas)
            .await?
            .answer()
            .into_position(id)
    }
}
