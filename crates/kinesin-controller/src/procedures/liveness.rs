//! Node liveness, judged by the controller's leader, and replacement of dead nodes.
//!
//! Every node pings every other every 200 ms (kinesin-raft's `liveness.rs`: the detector that
//! also stands in for quiet shard groups' heartbeats); how long ago the controller's leader last
//! heard from a node is the signal, so the cluster has one view of who is up. The leader records
//! transitions (down since / up again) through the controller log, so every node's admin view
//! shows them, and once a node has been down for `dead_after`, proposes moving its replicas
//! elsewhere. The shards' leaders then carry the moves out (see the reconciler). A new controller
//! leader judges only after watching for `down_after` itself.

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
    /// Since when this node leads the controller (None: it does not).
    leading_since: Option<Instant>,
}

impl Procedure for Liveness {
    const NAME: &'static str = "liveness";

    async fn pass(&mut self) -> Result<(), PassError> {
        if !self.controller.group().is_some_and(|g| g.is_leader()) {
            self.leading_since = None;
            return Ok(());
        }
        let since = *self.leading_since.get_or_insert_with(Instant::now);
        let liveness = self.raft.liveness();
        let ages = self
            .controller
            .state()
            .nodes
            .keys()
            .map(|&node| (node, liveness.silent_for(node)))
            .collect();
        Ok(self.check(&ages, since.elapsed()).await?)
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
            leading_since: None,
        }
    }

    /// One pass on the controller's leader, which has led for `leading_for`.
    async fn check(
        &self,
        ages: &std::collections::BTreeMap<u64, Option<Duration>>,
        leading_for: Duration,
    ) -> Result<(), crate::ControllerError> {
        let state = self.controller.state();
        let now = self.clock.now_ms();
        for (&node, info) in &state.nodes {
            let Some(silent_for) = silence(node, self.node_id, ages, leading_for) else {
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

/// How long `node` has been silent as the controller's leader `me` sees it, leading for
/// `leading_for`, from how long ago it last heard each node (`None`: not since this process
/// started); `None` for a node not in `ages`.
///
/// The leader itself is never silent: a previous leader may have marked it down while it was away,
/// and nobody else would mark it up again (a jepsen membership run ended with the controller's
/// leader shown down for good).
fn silence(
    node: u64,
    me: u64,
    ages: &std::collections::BTreeMap<u64, Option<Duration>>,
    leading_for: Duration,
) -> Option<Duration> {
    if node == me {
        return Some(Duration::ZERO);
    }
    // A node not heard from since this leader took over has been silent since then: as far as
    // this leader knows, and no longer.
    ages.get(&node)
        .map(|age| age.unwrap_or(leading_for).min(leading_for))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::silence;

    #[test]
    fn the_leader_is_never_silent_and_others_are_judged_by_when_last_heard() {
        let secs = Duration::from_secs;
        let ages = BTreeMap::from([(2, Some(secs(3))), (3, None), (4, Some(secs(90)))]);
        let leading_for = secs(60);
        // The leader is up, whatever the ages say.
        assert_eq!(silence(1, 1, &ages, leading_for), Some(Duration::ZERO));
        assert_eq!(silence(2, 1, &ages, leading_for), Some(secs(3)));
        // Never heard by this leader: silent since it took over, no longer.
        assert_eq!(silence(3, 1, &ages, leading_for), Some(leading_for));
        assert_eq!(silence(4, 1, &ages, leading_for), Some(leading_for));
        // Not a node of the cluster: not judged.
        assert_eq!(silence(5, 1, &ages, leading_for), None);
    }
}
