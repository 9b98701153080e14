//! Concurrent writes to one shard share one Raft entry (Redpanda's replicate batcher does the
//! same). Every entry costs the leader and each follower a round of openraft bookkeeping, an
//! append, an apply and a time-index write, whatever its size; many producers writing small
//! batches to one shard would otherwise pay that per request.
//!
//! Requests wait here only while earlier ones are being committed: a write to an idle shard is
//! proposed at once, and what arrives while [`MAX_IN_FLIGHT`] entries are on their way is proposed
//! together as soon as one of them is done. Each request gets its own first position inside the
//! shared entry; its records stay contiguous and in order.

use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::error::RaftError;
use crate::types::{NewRecord, Response, POSITIONS_PER_ENTRY_BITS};

/// Entries of coalesced writes proposed at once per group; the next waits for one to commit.
const MAX_IN_FLIGHT: usize = 2;

/// Data bytes above which no more requests join an entry (a single larger request goes alone):
/// bounds what one entry costs to replicate and read back.
const MAX_ENTRY_BYTES: usize = 4 << 20;

/// Records one entry can give positions to.
const MAX_ENTRY_RECORDS: usize = (1 << POSITIONS_PER_ENTRY_BITS) - 1;

type Reply = oneshot::Sender<Result<Response, RaftError>>;

struct Waiting {
    arrival_ms: u64,
    records: Vec<NewRecord>,
    reply: Reply,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// Flushers running: each proposes one entry at a time until the queue is empty.
    flushers: usize,
}

/// What [`PutQueue::admit`] made of a write.
pub(crate) enum Admission {
    /// The caller proposes these records as its own entry now, then calls
    /// [`PutQueue::hand_over`].
    Alone(Vec<NewRecord>),
    /// Queued: the answer arrives when its shared entry is committed; `start_flusher` when the
    /// caller must start a flusher for the queue.
    Queued {
        start_flusher: bool,
        answer: oneshot::Receiver<Result<Response, RaftError>>,
    },
}

/// The writes of one shard group waiting to be proposed.
#[derive(Default)]
pub(crate) struct PutQueue {
    queue: Mutex<Queue>,
}

/// The requests that share one entry, and the entry's command.
pub(crate) struct SharedPut {
    pub(crate) arrival_ms: u64,
    pub(crate) records: Vec<NewRecord>,
    /// Each request's reply and its number of records, in entry order.
    parts: Vec<(Reply, usize)>,
}

impl PutQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a write: to be proposed by its caller at once when nothing waits and fewer than
    /// [`MAX_IN_FLIGHT`] entries are on their way (no task hop for a lone writer), else queued.
    pub(crate) fn admit(&self, arrival_ms: u64, records: Vec<NewRecord>) -> Admission {
        {
            let mut queue = self.lock();
            if queue.waiting.is_empty() && queue.flushers < MAX_IN_FLIGHT {
                queue.flushers += 1;
                return Admission::Alone(records);
            }
        }
        let (start_flusher, answer) = self.push(arrival_ms, records);
        Admission::Queued {
            start_flusher,
            answer,
        }
    }

    /// Called when a write admitted [`Admission::Alone`] is done (or its caller gone): true when
    /// writes queued meanwhile, and a flusher must be started for them (it takes over the slot).
    pub(crate) fn hand_over(&self) -> bool {
        let mut queue = self.lock();
        if queue.waiting.is_empty() {
            queue.flushers = queue.flushers.saturating_sub(1);
            return false;
        }
        true
    }

    /// Gives up a slot without starting anything (no runtime left to start a flusher on).
    pub(crate) fn release(&self) {
        let mut queue = self.lock();
        queue.flushers = queue.flushers.saturating_sub(1);
    }

    /// Queues a write; true when the caller must start a flusher for it.
    fn push(
        &self,
        arrival_ms: u64,
        records: Vec<NewRecord>,
    ) -> (bool, oneshot::Receiver<Result<Response, RaftError>>) {
        let (reply, answer) = oneshot::channel();
        let mut queue = self.lock();
        queue.waiting.push(Waiting {
            arrival_ms,
            records,
            reply,
        });
        let start = queue.flushers < MAX_IN_FLIGHT;
        if start {
            queue.flushers += 1;
        }
        (start, answer)
    }

    /// The next entry's worth of waiting writes, oldest first; `None` (and one flusher fewer)
    /// when nothing waits.
    pub(crate) fn next_entry(&self) -> Option<SharedPut> {
        let mut queue = self.lock();
        // Requests whose caller gave up (timed out) are not written.
        queue.waiting.retain(|w| !w.reply.is_closed());
        if queue.waiting.is_empty() {
            queue.flushers = queue.flushers.saturating_sub(1);
            return None;
        }
        let (mut bytes, mut count, mut take) = (0usize, 0usize, 0usize);
        for waiting in &queue.waiting {
            let size: usize = waiting.records.iter().map(|r| r.data.len()).sum();
            let fits = bytes + size <= MAX_ENTRY_BYTES
                && count + waiting.records.len() <= MAX_ENTRY_RECORDS;
            if take > 0 && !fits {
                break;
            }
            bytes += size;
            count += waiting.records.len();
            take += 1;
        }
        let mut shared = SharedPut {
            arrival_ms: 0,
            records: Vec::with_capacity(count),
            parts: Vec::with_capacity(take),
        };
        for waiting in queue.waiting.drain(..take) {
            shared.arrival_ms = shared.arrival_ms.max(waiting.arrival_ms);
            shared.parts.push((waiting.reply, waiting.records.len()));
            if shared.records.is_empty() {
                shared.records = waiting.records;
                shared
                    .records
                    .reserve(count.saturating_sub(shared.records.len()));
            } else {
                shared.records.extend(waiting.records);
            }
        }
        Some(shared)
    }
}

impl SharedPut {
    /// The entry's command, leaving the replies behind.
    pub(crate) fn take_command(&mut self) -> crate::types::Command {
        crate::types::Command::Put {
            arrival_ms: self.arrival_ms,
            records: std::mem::take(&mut self.records),
        }
    }

    /// Answers every request of the entry: its own first position inside the entry when it was
    /// stored, else the entry's outcome.
    pub(crate) fn answer(self, outcome: Result<Response, RaftError>) {
        let mut offset = 0u64;
        for (reply, count) in self.parts {
            let answer = match &outcome {
                Ok(Response::Put {
                    first_position,
                    arrival_ms,
                }) => Ok(Response::Put {
                    first_position: first_position + offset,
                    arrival_ms: *arrival_ms,
                }),
                Ok(other) => Ok(other.clone()),
                Err(e) => Err(e.shared_copy()),
            };
            offset += count as u64;
            // A caller that gave up meanwhile no longer listens.
            let _ = reply.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn records(n: usize, size: usize) -> Vec<NewRecord> {
        (0..n)
            .map(|i| NewRecord::plain(format!("k{i}"), Bytes::from(vec![0; size])))
            .collect()
    }

    #[test]
    fn a_lone_write_is_proposed_by_its_caller_and_hands_its_slot_to_what_queued_behind_it() {
        let queue = PutQueue::default();
        assert!(matches!(queue.admit(1, records(1, 1)), Admission::Alone(r) if r.len() == 1));
        assert!(matches!(queue.admit(1, records(1, 1)), Admission::Alone(_)));
        let Admission::Queued {
            start_flusher,
            answer: _queued,
        } = queue.admit(1, records(2, 1))
        else {
            panic!("two entries in flight: the third write waits");
        };
        assert!(!start_flusher);
        assert!(queue.hand_over(), "a write waits: a flusher takes the slot");
        assert_eq!(queue.next_entry().unwrap().records.len(), 2);
        assert!(
            !queue.hand_over(),
            "nothing waits: the other slot is given up"
        );
        assert!(queue.next_entry().is_none(), "the flusher leaves");
        assert!(matches!(queue.admit(1, records(1, 1)), Admission::Alone(_)));
    }

    #[test]
    fn at_most_two_flushers_start_and_each_leaves_when_the_queue_is_empty() {
        let queue = PutQueue::default();
        let (first, _a) = queue.push(1, records(1, 1));
        let (second, _b) = queue.push(2, records(1, 1));
        let (third, _c) = queue.push(3, records(1, 1));
        assert_eq!((first, second, third), (true, true, false));
        let shared = queue.next_entry().expect("three waiting");
        assert_eq!((shared.arrival_ms, shared.records.len()), (3, 3));
        assert!(queue.next_entry().is_none());
        assert!(queue.next_entry().is_none());
        let (again, _d) = queue.push(4, records(1, 1));
        assert!(again, "both flushers left, so a new write starts one");
    }

    #[test]
    fn an_entry_stops_before_the_request_that_would_pass_its_byte_bound() {
        let queue = PutQueue::default();
        let _answers: Vec<_> = [3usize, 1, 1]
            .into_iter()
            .map(|mib| queue.push(1, records(1, mib << 20)).1)
            .collect();
        assert_eq!(queue.next_entry().unwrap().parts.len(), 2);
        assert_eq!(queue.next_entry().unwrap().parts.len(), 1);
        let (_, _big) = queue.push(1, records(1, 5 << 20));
        assert_eq!(
            queue.next_entry().unwrap().parts.len(),
            1,
            "a request larger than the bound goes alone"
        );
    }

    #[test]
    fn requests_whose_caller_left_are_not_written() {
        let queue = PutQueue::default();
        let (_, gone) = queue.push(1, records(2, 1));
        let (_, _kept) = queue.push(1, records(3, 1));
        drop(gone);
        let shared = queue.next_entry().unwrap();
        assert_eq!(shared.records.len(), 3);
    }

    #[tokio::test]
    async fn each_request_is_answered_with_its_own_first_position() {
        let queue = PutQueue::default();
        let answers: Vec<_> = [2usize, 5, 1]
            .into_iter()
            .map(|n| queue.push(7, records(n, 1)).1)
            .collect();
        let shared = queue.next_entry().unwrap();
        shared.answer(Ok(Response::Put {
            first_position: 40 << POSITIONS_PER_ENTRY_BITS,
            arrival_ms: 9,
        }));
        let mut firsts = Vec::new();
        for answer in answers {
            match answer.await.unwrap().unwrap() {
                Response::Put {
                    first_position,
                    arrival_ms: 9,
                } => firsts.push(first_position - (40 << POSITIONS_PER_ENTRY_BITS)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(firsts, [0, 2, 7]);
    }

    #[tokio::test]
    async fn a_failed_entry_fails_every_request_in_it() {
        let queue = PutQueue::default();
        let answers: Vec<_> = (0..3).map(|_| queue.push(1, records(1, 1)).1).collect();
        queue
            .next_entry()
            .unwrap()
            .answer(Err(RaftError::NotLeader {
                group: 4,
                leader: Some(2),
            }));
        for answer in answers {
            assert!(matches!(
                answer.await.unwrap(),
                Err(RaftError::NotLeader {
                    group: 4,
                    leader: Some(2)
                })
            ));
        }
    }
}
