//! TEST-ONLY FAULT, the failpoint `raft::ack-on-append` (compiled only with the cargo feature
//! `failpoints`, never in a release build): a shard leader acknowledges a `Put` as soon as the
//! entry is in its *own* log, before a majority has it. That is the classic broker bug —
//! acknowledging what a failover can still discard — and the jepsen/ harness must report such a
//! cluster INVALID (`make jepsen-unsafe`); this module exists so that claim is tested, not assumed.
//!
//! The leader's log store tells us when an entry is appended and at which index; the waiting
//! write is found by a fingerprint of its command (unique payloads in the harness make it exact).

#[cfg(not(debug_assertions))]
compile_error!("failpoints must never be built into a release binary");

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock};

use tokio::sync::oneshot;

use crate::types::Command;

type Waiters = HashMap<(u64, u64), oneshot::Sender<u64>>;

fn waiters() -> &'static Mutex<Waiters> {
    static WAITERS: OnceLock<Mutex<Waiters>> = OnceLock::new();
    WAITERS.get_or_init(Default::default)
}

fn fingerprint(command: &Command) -> Option<u64> {
    let Command::Put {
        arrival_ms,
        records,
    } = command
    else {
        return None;
    };
    let mut hasher = DefaultHasher::new();
    arrival_ms.hash(&mut hasher);
    for record in records {
        record.partition_key.hash(&mut hasher);
        record.data.hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// Whether the fault is switched on now (`FAILPOINTS=raft::ack-on-append=return`).
fn switched_on() -> bool {
    fail::fail_point!("raft::ack-on-append", |_| true);
    false
}

/// Registers a `Put` about to be proposed to `group` when the fault is on; the receiver yields
/// the log index the entry got once this node has appended it.
pub(crate) fn register(group: u64, command: &Command) -> Option<oneshot::Receiver<u64>> {
    if !switched_on() {
        return None;
    }
    let key = (group, fingerprint(command)?);
    let (tx, rx) = oneshot::channel();
    waiters().lock().ok()?.insert(key, tx);
    Some(rx)
}

/// Forgets a registration whose write finished the honest way first.
pub(crate) fn unregister(group: u64, command: &Command) {
    if let (Some(print), Ok(mut waiting)) = (fingerprint(command), waiters().lock()) {
        waiting.remove(&(group, print));
    }
}

/// Called by the log store for each entry it appends.
pub(crate) fn appended(group: u64, index: u64, command: &Command) {
    let Some(print) = fingerprint(command) else {
        return;
    };
    let waiter = waiters()
        .lock()
        .ok()
        .and_then(|mut waiting| waiting.remove(&(group, print)));
    if let Some(waiter) = waiter {
        let _ = waiter.send(index);
    }
}
