//! What this node's groups and its failure detector did, counted for `/metrics`: groups gone
//! quiet, terms entered, peers lost, writes refused for a lapsed lease, pre-votes kept. Counters
//! only; nothing here decides anything.

use std::sync::atomic::AtomicU64;

/// Counted since the node started.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// Groups that went quiet (as leader).
    pub quiesced: AtomicU64,
    /// Votes that moved a replica here to a later term: every election (won or not)
    /// this node's replicas took part in, or heard of.
    pub term_changes: AtomicU64,
    /// Times a peer's liveness support lapsed.
    pub peers_lost: AtomicU64,
    /// Writes openraft refused from a leader here because its quorum-acknowledged lease had
    /// lapsed (redirected, and retried through the other replicas): a woken quiet leader renews
    /// its lease before writing, so this stays flat unless heartbeats go unanswered.
    pub lease_refusals: AtomicU64,
    /// Pre-vote requests a follower here did not send because its leader's node was live and
    /// spoke lately (`pre_vote.rs`): late heartbeats on a loaded node, not failures.
    pub pre_votes_withheld: AtomicU64,
}
