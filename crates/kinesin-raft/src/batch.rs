//! Heartbeat batching: the empty AppendEntries that every group's leader sends each follower every
//! heartbeat interval are gathered per peer for a few milliseconds and sent as one `RaftBatch`
//! call. With a thousand groups, that turns thousands of calls per second per node pair into a
//! few hundred, while each heartbeat still reaches its group within the interval.
//!
//! Only heartbeats wait here; appends that carry entries or a new commit index go straight out
//! (`transport::may_batch`), so batching never adds to write latency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::transport::pb::RaftRequest;
use crate::wire::Wire;

/// Most requests in one batch.
const MAX_BATCH: usize = 4096;

/// Counters of the cluster transport, shown at `/metrics`.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Calls made to other nodes (a batch counts once).
    pub rpcs_sent: AtomicU64,
    /// Heartbeats sent inside batches.
    pub heartbeats_batched: AtomicU64,
}

type Reply = Result<Vec<u8>, String>;

struct Queued {
    request: RaftRequest,
    timeout: Duration,
    reply: oneshot::Sender<Reply>,
}

/// One queue (and one sending task) per peer address.
pub(crate) struct HeartbeatQueues {
    /// How long the first heartbeat of a batch waits for others to join it; zero turns batching
    /// off (every heartbeat is its own call).
    linger: Duration,
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Queued>>>,
}

impl HeartbeatQueues {
    pub(crate) fn new(linger: Duration) -> HeartbeatQueues {
        HeartbeatQueues {
            linger,
            queues: Mutex::default(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.linger.is_zero()
    }

    /// Sends `request` to `addr` in the next batch; the reply's payload, or why it failed.
    pub(crate) async fn send(
        &self,
        addr: &str,
        wire: &Arc<dyn Wire>,
        stats: &Arc<TransportStats>,
        request: RaftRequest,
        timeout: Duration,
    ) -> Reply {
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            request,
            timeout,
            reply,
        };
        let queued = {
            let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            let sent = match queues.get(addr) {
                Some(queue) => queue.send(queued),
                None => Err(mpsc::error::SendError(queued)),
            };
            match sent {
                Ok(()) => None,
                // No queue yet, or its task ended with the runtime it ran on: start one.
                Err(mpsc::error::SendError(queued)) => {
                    let (queue, requests) = mpsc::unbounded_channel();
                    let to = Peer {
                        addr: addr.to_string(),
                        wire: wire.clone(),
                    };
                    tokio::spawn(run(requests, to, stats.clone(), self.linger));
                    queues.insert(addr.to_string(), queue.clone());
                    queue.send(queued).err().map(|e| e.0)
                }
            }
        };
        if queued.is_some() {
            return Err("heartbeat queue closed".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err("heartbeat batch dropped".into()))
    }
}

/// Where a queue's batches go.
#[derive(Clone)]
struct Peer {
    addr: String,
    wire: Arc<dyn Wire>,
}

async fn run(
    mut requests: mpsc::UnboundedReceiver<Queued>,
    to: Peer,
    stats: Arc<TransportStats>,
    linger: Duration,
) {
    while let Some(first) = requests.recv().await {
        tokio::time::sleep(linger).await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        // Heartbeats whose sender gave up (timed out) are not worth sending.
        batch.retain(|q| !q.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        // Sent on its own task, so a slow or unreachable peer never holds up the next batch.
        tokio::spawn(send_batch(batch, to.clone(), stats.clone()));
    }
}

async fn send_batch(batch: Vec<Queued>, to: Peer, stats: Arc<TransportStats>) {
    let timeout = batch
        .iter()
        .map(|q| q.timeout)
        .max()
        .unwrap_or(Duration::from_secs(1));
    let (requests, replies): (Vec<RaftRequest>, Vec<oneshot::Sender<Reply>>) =
        batch.into_iter().map(|q| (q.request, q.reply)).unzip();
    stats.rpcs_sent.fetch_add(1, Ordering::Relaxed);
    stats
        .heartbeats_batched
        .fetch_add(requests.len() as u64, Ordering::Relaxed);
    let count = requests.len();
    match to.wire.raft_batch(&to.addr, requests, timeout).await {
        Ok(answers) => {
            if answers.len() != count {
                let reason = format!("batch of {count} answered with {}", answers.len());
                for reply in replies {
                    let _ = reply.send(Err(reason.clone()));
                }
                return;
            }
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.to_string()));
            }
        }
    }
}
