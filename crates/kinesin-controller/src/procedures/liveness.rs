//! Node liveness, judged by the controller's leader, and replacement of dead nodes.
//!
//! Every node pings every other every 200 ms (kinesin-raft's `liveness.rs`: the detector that
//! also stands in for quiet shard groups' heartbeats); how long ago the controller's leader last
//! heard from a node is the signal, so the cluster has one view of who is up. The leader records
//! transitions (down since / up again) through the controller log, so every node's admin view
//! shows them, and once a node has been down for `dead_after`, proposes moving its replicas
//! elsewhere. The shards' leaders then carry the moves out (see the reconciler). A new controller
//! leader judges a node only after watching it for `down_after` itself, and so does any leader a
//! node that just joined.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::{PassError, Procedure, ProcedureSettings};
use crate::{Command, Controller};
use kinesin_raft::MultiRaft;

use kinesin_types::SharedClock;
use tokio::time::Instant;

pub(super) const CHECK_EVERY: Duration = Duration::from_millis(500);

pub(super) struct Liveness {
    raft: Arc<MultiRaft>,
    controller: Arc<Controller>,
    node_id: u64,
    /// Silence after which a node is shown as down.
    down_after: Duration,
    /// Silence after which a node's replicas are moved.
    dead_after: Duration,
    clock: SharedClock,
    /// Since when this node, leading the controller, has watched each member: since it took over,
    /// or since the member joined (empty while it does not lead).
    watching_since: HashMap<u64, Instant>,
}

impl Procedure for Liveness {
    const NAME: &'static str = "liveness";

    async fn pass(&mut self) -> Result<(), PassError> {
        if !self.controller.group().is_some_and(|g| g.is_leader()) {
            self.watching_since.clear();
            return Ok(());
        }
        let liveness = self.raft.liveness();
        let members: Vec<u64> = self.controller.state().nodes.keys().copied().collect();
        self.watching_since.retain(|node, _| members.contains(node));
        let now = Instant::now();
        let heard = members
            .into_iter()
            .map(|node| {
                let watched_for = now - *self.watching_since.entry(node).or_insert(now);
                let last_heard = Heard {
                    ago: liveness.silent_for(node),
                    watched_for,
                };
                (node, last_heard)
            })
            .collect();
        Ok(self.check(&heard).await?)
    }
}

impl Liveness {
    pub(super) fn new(
        raft: &Arc<MultiRaft>,
        controller: &Arc<Controller>,
        settings: &ProcedureSettings,
    ) -> Liveness {
        Liveness {
            raft: raft.clone(),
            controller: controller.clone(),
            node_id: settings.node_id,
            down_after: settings.down_after,
            dead_after: settings.dead_after,
            clock: settings.clock.clone(),
            watching_since: HashMap::new(),
        }
    }

    /// One pass on the controller's leader, with what it heard of each member.
    async fn check(&self, heard: &BTreeMap<u64, Heard>) -> Result<(), crate::ControllerError> {
        let state = self.controller.state();
        let now = self.clock.now_ms();
        for (&node, info) in &state.nodes {
            let Some(silent_for) = silence(node, self.node_id, heard) else {
                continue;
            };
            let down = silent_for >= self.down_after;
            if down != info.is_down() {
                let since_ms = down.then(|| now.saturating_sub(silent_for.as_millis() as u64));
                if down {
                    tracing::warn!(
                        node,
                        silent_ms = silent_for.as_millis() as u64,
                        "node is down"
                    );
                } else {
                    tracing::info!(node, "node is up again");
                }
                self.controller
                    .propose(&Command::SetNodeDown { node, since_ms })
                    .await?;
            } else if down && silent_for >= self.dead_after {
                let moved = self
                    .controller
                    .propose(&Command::ReplaceNode {
                        node,
                        now_ms: now,
                        dead_after_ms: self.dead_after.as_millis() as u64,
                    })
                    .await?;
                if moved.changed() {
                    tracing::warn!(
                        node,
                        down_secs = silent_for.as_secs(),
                        "node declared dead: moving its replicas to other nodes"
                    );
                }
            }
        }
        Ok(())
    }
}

/// What the controller's leader heard of a member.
#[derive(Clone, Copy, Debug)]
struct Heard {
    /// How long ago it last heard the member (`None`: not since this process started).
    ago: Option<Duration>,
    /// How long it has watched the member: since it took over, or since the member joined.
    watched_for: Duration,
}

/// How long `node` has been silent as the controller's leader `me` sees it; `None` for a node not
/// in `heard`.
///
/// The leader itself is never silent: a previous leader may have marked it down while it was away,
/// and nobody else would mark it up again (a jepsen membership run ended with the controller's
/// leader shown down for good).
fn silence(node: u64, me: u64, heard: &BTreeMap<u64, Heard>) -> Option<Duration> {
    if node == me {
        return Some(Duration::ZERO);
    }
    // A node not heard from since this leader began watching it has been silent since then: as
    // far as this leader knows, and no longer. Counted from the leader's takeover instead, a node
    // that joined seconds after it was shown down before its first ping, and the join's rebalance
    // found nowhere to move replicas (test_resharding's join timed out waiting for it).
    heard
        .get(&node)
        .map(|h| h.ago.unwrap_or(h.watched_for).min(h.watched_for))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::{silence, Heard};

    #[test]
    fn the_leader_is_never_silent_and_others_are_judged_by_when_last_heard() {
        let secs = Duration::from_secs;
        let watched = |ago, watched_for| Heard { ago, watched_for };
        let heard = BTreeMap::from([
            (2, watched(Some(secs(3)), secs(60))),
            (3, watched(None, secs(60))),
            (4, watched(Some(secs(90)), secs(60))),
            (5, watched(None, secs(1))),
        ]);
        // The leader is up, whatever it heard.
        assert_eq!(silence(1, 1, &heard), Some(Duration::ZERO));
        assert_eq!(silence(2, 1, &heard), Some(secs(3)));
        // Never heard by this leader: silent since it began watching, no longer.
        assert_eq!(silence(3, 1, &heard), Some(secs(60)));
        assert_eq!(silence(4, 1, &heard), Some(secs(60)));
        // A node that joined a second ago has been silent for a second, not since the takeover.
        assert_eq!(silence(5, 1, &heard), Some(secs(1)));
        // Not a node of the cluster: not judged.
        assert_eq!(silence(6, 1, &heard), None);
    }
}
