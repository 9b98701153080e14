//! Node liveness, judged by the controller's leader, and replacement of dead nodes.
//!
//! Every node is a member of the controller group, so its leader already hears from each node on
//! every heartbeat; how long ago a node last acknowledged one is the liveness signal, with no extra
//! traffic. The leader records transitions (down since / up again) through the controller log, so
//! every node's admin view shows them, and once a node has been down for `dead_after`, proposes
//! moving its replicas elsewhere. The shards' leaders then carry the moves out (see the
//! reconciler). A new controller leader judges only after watching for `down_after` itself.

use std::sync::Arc;
use std::time::Duration;

use kinesin_controller::{Command, Controller};
use tokio::sync::watch;

use crate::clock::now_ms;
use tokio::time::Instant;

const CHECK_EVERY: Duration = Duration::from_millis(500);

pub(crate) struct Liveness {
    pub controller: Arc<Controller>,
    pub node_id: u64,
    /// Silence after which a node is shown as down.
    pub down_after: Duration,
    /// Silence after which a node's replicas are moved.
    pub dead_after: Duration,
}

impl Liveness {
    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut leading_since: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => return,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
            let ages = self.controller.group().and_then(|g| g.ack_ages());
            let Some(ages) = ages else {
                leading_since = None;
                continue;
            };
            let since = *leading_since.get_or_insert_with(Instant::now);
            if let Err(e) = self.check(&ages, since.elapsed()).await {
                tracing::warn!(error = %e, "liveness check failed; retrying");
            }
        }
    }

    /// One pass on the controller's leader, which has led for `leading_for`.
    async fn check(
        &self,
        ages: &std::collections::BTreeMap<u64, Option<Duration>>,
        leading_for: Duration,
    ) -> Result<(), kinesin_controller::ControllerError> {
        let state = self.controller.state();
        let now = now_ms();
        for (&node, info) in &state.nodes {
            if node == self.node_id {
                continue;
            }
            // A node that never acknowledged this leader has been silent since it took over.
            let silent_for = match ages.get(&node) {
                Some(age) => age.unwrap_or(leading_for).min(leading_for),
                None => continue,
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
