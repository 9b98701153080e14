//! Fault injection on the cluster transport, for tests: filters that drop what this node sends,
//! chosen by destination, message kind and group, in the manner of TiKV's test_raftstore filters.
//! A filter on node A's traffic to B cuts one direction only; the same filter on B cuts the
//! other. A dropped message fails at once, as if the peer were unreachable. Nothing is filtered
//! by default, and the check is then one atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// What a filter can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// AppendEntries carrying entries.
    Append,
    /// AppendEntries without entries (a leader's heartbeat or commit update).
    Heartbeat,
    Vote,
    PreVote,
    Snapshot,
    TransferLeader,
    /// A write forwarded to a group's leader.
    Propose,
    /// A read-only question to a replica (reads, read indexes).
    Query,
    /// A node liveness ping (not of any group: filtered as group 0).
    Liveness,
    /// A leader asking a member to go quiet.
    Quiesce,
}

/// A message this node is about to send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The receiver's cluster address.
    pub to: &'a str,
    pub group: u64,
    pub kind: MessageKind,
}

/// Decides which outgoing messages are dropped.
pub trait SendFilter: Send + Sync + 'static {
    fn drops(&self, message: &Outgoing<'_>) -> bool;
}

impl<F> SendFilter for F
where
    F: Fn(&Outgoing<'_>) -> bool + Send + Sync + 'static,
{
    fn drops(&self, message: &Outgoing<'_>) -> bool {
        self(message)
    }
}

/// Drops messages of some kinds, to one address or to every peer.
#[derive(Debug, Clone)]
pub struct DropKinds {
    /// `None`: to every peer.
    pub to: Option<String>,
    pub kinds: Vec<MessageKind>,
}

impl SendFilter for DropKinds {
    fn drops(&self, message: &Outgoing<'_>) -> bool {
        self.to.as_deref().is_none_or(|to| to == message.to) && self.kinds.contains(&message.kind)
    }
}

/// The filters on this node's outgoing cluster traffic.
#[derive(Default)]
pub struct NetworkFaults {
    any: AtomicBool,
    filters: RwLock<Vec<Arc<dyn SendFilter>>>,
    /// Messages delivered whose answers are lost (`lose_answers`).
    any_lost: AtomicBool,
    lost_answers: RwLock<Vec<Arc<dyn SendFilter>>>,
}

impl NetworkFaults {
    /// Drops everything this node sends to the node listening at `addr`.
    pub fn block(&self, addr: &str) {
        let addr = addr.to_string();
        self.add(move |message: &Outgoing<'_>| message.to == addr);
    }

    /// Drops what `filter` says, beside the filters already in place.
    pub fn add(&self, filter: impl SendFilter) {
        let mut filters = self.filters.write().unwrap_or_else(|p| p.into_inner());
        filters.push(Arc::new(filter));
        self.any.store(true, Ordering::Release);
    }

    /// Delivers the messages `filter` picks but loses their answers, as a connection that
    /// closes after the peer took the message: the sender cannot know whether it was acted on.
    /// (Forwarded proposals only, so far.)
    pub fn lose_answers(&self, filter: impl SendFilter) {
        let mut filters = self.lost_answers.write().unwrap_or_else(|p| p.into_inner());
        filters.push(Arc::new(filter));
        self.any_lost.store(true, Ordering::Release);
    }

    /// Lets all traffic through again.
    pub fn heal(&self) {
        let mut filters = self.filters.write().unwrap_or_else(|p| p.into_inner());
        filters.clear();
        self.any.store(false, Ordering::Release);
        let mut lost = self.lost_answers.write().unwrap_or_else(|p| p.into_inner());
        lost.clear();
        self.any_lost.store(false, Ordering::Release);
    }

    /// Whether the answer to a `kind` message of `group` that this node sent to `to` is lost.
    pub(crate) fn answer_lost(&self, to: &str, group: u64, kind: MessageKind) -> bool {
        if !self.any_lost.load(Ordering::Acquire) {
            return false;
        }
        let message = Outgoing { to, group, kind };
        let filters = self.lost_answers.read().unwrap_or_else(|p| p.into_inner());
        filters.iter().any(|filter| filter.drops(&message))
    }

    /// Whether this node may send a `kind` message of `group` to `to`: `Err(why)` when a
    /// filter drops it.
    pub(crate) fn check(&self, to: &str, group: u64, kind: MessageKind) -> Result<(), String> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        let message = Outgoing { to, group, kind };
        let filters = self.filters.read().unwrap_or_else(|p| p.into_inner());
        if filters.iter().any(|filter| filter.drops(&message)) {
            return Err(format!(
                "{:?} of group {} to {} dropped (fault injection)",
                message.kind, message.group, message.to
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: u64 = 3;

    #[test]
    fn filters_drop_by_kind_and_destination_until_healed() {
        let faults = NetworkFaults::default();
        assert!(faults.check("a:1", GROUP, MessageKind::Vote).is_ok());
        faults.add(DropKinds {
            to: Some("a:1".into()),
            kinds: vec![MessageKind::Vote, MessageKind::PreVote],
        });
        assert!(faults.check("a:1", GROUP, MessageKind::Vote).is_err());
        assert!(faults.check("a:1", GROUP, MessageKind::PreVote).is_err());
        assert!(faults.check("a:1", GROUP, MessageKind::Append).is_ok());
        assert!(faults.check("b:1", GROUP, MessageKind::Vote).is_ok());
        faults.block("b:1");
        assert!(faults.check("b:1", GROUP, MessageKind::Query).is_err());
        faults.heal();
        assert!(faults.check("a:1", GROUP, MessageKind::Vote).is_ok());
        assert!(faults.check("b:1", GROUP, MessageKind::Query).is_ok());
    }

    #[test]
    fn a_closure_filters_by_group() {
        let faults = NetworkFaults::default();
        faults.add(|m: &Outgoing<'_>| m.group == GROUP && m.kind == MessageKind::Heartbeat);
        let err = faults
            .check("a:1", GROUP, MessageKind::Heartbeat)
            .unwrap_err();
        assert!(err.contains("Heartbeat of group 3 to a:1"), "{err}");
        assert!(faults
            .check("a:1", GROUP + 1, MessageKind::Heartbeat)
            .is_ok());
    }
}
