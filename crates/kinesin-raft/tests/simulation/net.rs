//! The simulated network: every node's [`SimWire`] hands requests to the receiving node's
//! [`Inbox`] after seeded delays, and loses them, or their answers, where the nemesis says.
//!
//! A message from or to a node that crashed since it was sent is never delivered (its connection
//! died with it); a cut link loses everything on it in that direction. The caller learns of a lost
//! message or a broken connection when its timeout runs out, or after [`KEEPALIVE`] at the latest:
//! that is how long the gRPC wire's keepalive pings take to declare a connection dead.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kinesin_raft::pb::{ProposeRequest, QueryRequest, RaftKind, RaftReply, RaftRequest};
use kinesin_raft::{Inbox, MultiRaft, NodeId, Wire, WireError, WireFuture};

use crate::trace::Trace;
use crate::SimRng;

/// How long a node takes to notice that a connection is dead (`wire.rs`: a ping every second,
/// one second to answer it).
pub const KEEPALIVE: Duration = Duration::from_secs(2);

/// How the network behaves between faults.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// One-way delay: uniform in `min..=max` milliseconds.
    pub min_ms: u64,
    pub max_ms: u64,
}

#[derive(Default)]
struct State {
    /// The running incarnation of each node that is up.
    up: BTreeMap<NodeId, (u64, Arc<MultiRaft>)>,
    /// Directed links that lose everything.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Messages lost per thousand, each way.
    loss_per_mille: u32,
    /// Every leadership transfer is lost (a leader that transfers then stops its heartbeats and
    /// refuses writes until a new term: the soak's stuck groups).
    transfers_lost: bool,
}

pub struct SimNet {
    state: Mutex<State>,
    /// Bumped whenever a node goes up or down or a link is cut or mended.
    changes: tokio::sync::watch::Sender<u64>,
    latency: Latency,
    rng: SimRng,
    trace: Arc<Trace>,
}

fn node_of(addr: &str) -> Option<NodeId> {
    addr.strip_prefix('n')?.parse().ok()
}

/// A node's cluster address in the simulation.
pub fn address(node: NodeId) -> String {
    format!("n{node}")
}

impl SimNet {
    pub fn new(latency: Latency, rng: SimRng, trace: Arc<Trace>) -> Arc<SimNet> {
        Arc::new(SimNet {
            state: Mutex::default(),
            changes: tokio::sync::watch::Sender::new(0),
            latency,
            rng,
            trace,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    pub fn up(&self, node: NodeId, incarnation: u64, raft: Arc<MultiRaft>) {
        self.state().up.insert(node, (incarnation, raft));
        self.changed();
    }

    pub fn down(&self, node: NodeId) {
        self.state().up.remove(&node);
        self.changed();
    }

    /// The incarnation of `node` running now, if it is up.
    pub fn incarnation(&self, node: NodeId) -> Option<u64> {
        self.state()
            .up
            .get(&node)
            .map(|(incarnation, _)| *incarnation)
    }

    pub fn cut(&self, links: &[(NodeId, NodeId)]) {
        self.state().cut.extend(links.iter().copied());
        self.changed();
    }

    pub fn mend(&self, links: &[(NodeId, NodeId)]) {
        let mut state = self.state();
        for link in links {
            state.cut.remove(link);
        }
        drop(state);
        self.changed();
    }

    pub fn set_loss(&self, per_mille: u32) {
        self.state().loss_per_mille = per_mille;
    }

    pub fn lose_transfers(&self, lost: bool) {
        self.state().transfers_lost = lost;
    }

    pub fn heal(&self) {
        let mut state = self.state();
        state.cut.clear();
        state.loss_per_mille = 0;
        state.transfers_lost = false;
        drop(state);
        self.changed();
    }

    /// Whether the connection from `from` to `to`'s `incarnation` still stands.
    fn connected(&self, from: (NodeId, u64), to: (NodeId, u64)) -> bool {
        let state = self.state();
        let alive = |(node, incarnation): (NodeId, u64)| {
            state.up.get(&node).map(|(i, _)| *i) == Some(incarnation)
        };
        alive(from)
            && alive(to)
            && !state.cut.contains(&(from.0, to.0))
            && !state.cut.contains(&(to.0, from.0))
    }

    /// Resolves once the connection from `from` to `to` breaks.
    async fn broken(&self, from: (NodeId, u64), to: (NodeId, u64)) {
        let mut changes = self.changes.subscribe();
        while self.connected(from, to) {
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Whether a message from `from`'s `incarnation` to `to` gets through now; the receiving
    /// node's running incarnation and its groups if so.
    fn passes(&self, from: (NodeId, u64), to: NodeId) -> Option<(u64, Arc<MultiRaft>)> {
        let state = self.state();
        if state.up.get(&from.0).map(|(i, _)| *i) != Some(from.1)
            || state.cut.contains(&(from.0, to))
        {
            return None;
        }
        if state.loss_per_mille > 0 && self.rng.below(1000) < u64::from(state.loss_per_mille) {
            return None;
        }
        state.up.get(&to).cloned()
    }

    fn delay(&self) -> Duration {
        Duration::from_millis(self.rng.between(self.latency.min_ms, self.latency.max_ms))
    }

    /// One request from `from` to `addr` and its answer, as the network lets them through.
    async fn call<T, F, Fut>(
        &self,
        from: (NodeId, u64),
        addr: &str,
        what: &str,
        timeout: Duration,
        handle: F,
    ) -> Result<T, WireError>
    where
        F: FnOnce(Inbox) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        let Some(to) = node_of(addr) else {
            return Err(WireError::NotSent(format!("no node at {addr}")));
        };
        if self.incarnation(to).is_none() {
            // Nobody listens there: the connection is refused at once.
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.trace
                .event(format_args!("n{}→n{to} {what}: refused", from.0));
            return Err(WireError::NotSent(format!("n{to} is down")));
        }
        let lost = |why: &str| {
            self.trace
                .event(format_args!("n{}→n{to} {what}: {why}", from.0));
            WireError::NoAnswer(format!("{what} to n{to}: {why}"))
        };
        // A lost message is noticed at the timeout or when keepalive gives up, whichever is first.
        let noticed =
            || tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + KEEPALIVE));
        tokio::time::sleep(self.delay()).await;
        let Some((incarnation, receiver)) = self.passes(from, to) else {
            noticed().await;
            return Err(lost("request lost"));
        };
        let answer = tokio::select! {
            biased;
            answer = tokio::time::timeout_at(deadline, handle(receiver.inbox())) => match answer {
                Ok(answer) => answer,
                Err(_) => return Err(lost("timed out")),
            },
            () = self.broken(from, (to, incarnation)) => {
                noticed().await;
                return Err(lost("connection broke"));
            }
        };
        drop(receiver);
        tokio::time::sleep(self.delay()).await;
        if self.passes((to, incarnation), from.0).is_none() {
            noticed().await;
            return Err(lost("answer lost"));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(lost("answered too late"));
        }
        match answer {
            Ok(answer) => {
                self.trace
                    .event(format_args!("n{}→n{to} {what}: ok", from.0));
                Ok(answer)
            }
            Err(failure) => Err(lost(&failure)),
        }
    }
}

/// One node's side of the simulated network.
pub struct SimWire {
    pub net: Arc<SimNet>,
    pub node: NodeId,
    pub incarnation: u64,
}

impl SimWire {
    fn me(&self) -> (NodeId, u64) {
        (self.node, self.incarnation)
    }
}

fn raft_what(request: &RaftRequest) -> String {
    format!("g{} raft/{}", request.group, request.kind)
}

impl Wire for SimWire {
    fn raft<'a>(
        &'a self,
        to: &'a str,
        request: RaftRequest,
        timeout: Duration,
    ) -> WireFuture<'a, RaftReply> {
        Box::pin(async move {
            let what = raft_what(&request);
            if request.kind() == RaftKind::TransferLeader && self.net.state().transfers_lost {
                self.net
                    .trace
                    .event(format_args!("n{}→{to} {what}: transfer lost", self.node));
                tokio::time::sleep(timeout.min(KEEPALIVE)).await;
                return Err(WireError::NoAnswer(format!("{what} to {to}: lost")));
            }
            self.net
                .call(self.me(), to, &what, timeout, |inbox| async move {
                    inbox.raft(request).await
                })
                .await
        })
    }

    fn raft_batch<'a>(
        &'a self,
        to: &'a str,
        requests: Vec<RaftRequest>,
        timeout: Duration,
    ) -> WireFuture<'a, Vec<Vec<u8>>> {
        Box::pin(async move {
            let what = format!("batch of {}", requests.len());
            self.net
                .call(self.me(), to, &what, timeout, |inbox| async move {
                    inbox.raft_batch(requests).await
                })
                .await
        })
    }

    fn propose<'a>(
        &'a self,
        to: &'a str,
        request: ProposeRequest,
        timeout: Duration,
    ) -> WireFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let what = format!("g{} propose", request.group);
            self.net
                .call(self.me(), to, &what, timeout, |inbox| async move {
                    inbox.propose(request).await
                })
                .await
        })
    }

    fn query<'a>(
        &'a self,
        to: &'a str,
        request: QueryRequest,
        timeout: Duration,
    ) -> WireFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let what = format!("g{} query", request.group);
            self.net
                .call(self.me(), to, &what, timeout, |inbox| async move {
                    inbox.query(request).await
                })
                .await
        })
    }
}
