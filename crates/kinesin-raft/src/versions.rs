//! Which cluster protocol each node speaks, so that a cluster can run two versions at once while
//! it is upgraded one node at a time.
//!
//! Every message a node sends names the protocol it speaks (proto/raft.proto's `protocol`
//! fields; builds from before them send none, which reads as protocol 1), and liveness pings and
//! their answers name the sender's build too. A node refuses, with an error that says why, a
//! message in a protocol outside [`OLDEST_PEER_PROTOCOL`]..=[`CLUSTER_PROTOCOL`]; it never
//! guesses at bytes it may not understand.
//!
//! A build speaks every protocol from [`OLDEST_PEER_PROTOCOL`] up, and sends only what the oldest
//! node of its cluster understands: the controller's state records the *cluster version*, raised
//! (`Command::SetClusterVersion` in kinesin-controller) only once every node of the cluster has
//! been heard speaking it. Whatever a later protocol adds waits for that.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::cluster_tls::RefusalLog;
use crate::types::NodeId;

/// The cluster protocol this build speaks. 2: messages name their protocol and pings their build;
/// everything else as protocol 1.
pub const CLUSTER_PROTOCOL: u32 = 2;

/// The oldest protocol this build still understands. 1: builds that predate protocol numbers.
pub const OLDEST_PEER_PROTOCOL: u32 = 1;

/// This build's version, as pings tell it to peers.
pub const BUILD: &str = env!("CARGO_PKG_VERSION");

/// The protocol a message's `protocol` field names: absent (0) from builds that predate it.
pub fn spoken(field: u32) -> u32 {
    field.max(1)
}

/// Why a message in `protocol` from `peer` (who sent it, named only for a refusal: every message
/// is checked) is refused, if it is, in a cluster whose version is `cluster_version`: once every
/// node was upgraded to a protocol, a node that speaks an older one may not take part again (it
/// could not decode what the others now send).
pub fn refusal(
    protocol: u32,
    cluster_version: u32,
    peer: impl FnOnce() -> String,
) -> Option<String> {
    let protocol = spoken(protocol);
    let oldest = OLDEST_PEER_PROTOCOL.max(cluster_version);
    if (oldest..=CLUSTER_PROTOCOL).contains(&protocol) {
        return None;
    }
    let peer = peer();
    Some(if protocol > CLUSTER_PROTOCOL {
        format!(
            "{peer} speaks cluster protocol {protocol}; this node (kinesin {BUILD}) understands \
             protocols {OLDEST_PEER_PROTOCOL} to {CLUSTER_PROTOCOL}: upgrade this node"
        )
    } else if protocol < OLDEST_PEER_PROTOCOL {
        format!(
            "{peer} speaks cluster protocol {protocol}; this node (kinesin {BUILD}) understands \
             protocols {OLDEST_PEER_PROTOCOL} to {CLUSTER_PROTOCOL}: upgrade that node first"
        )
    } else {
        format!(
            "{peer} speaks cluster protocol {protocol}, but every node of this cluster was \
             upgraded to protocol {cluster_version}: run that node on this build (kinesin \
             {BUILD}) or a later one"
        )
    })
}

/// What a peer said of itself in its last ping or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerVersion {
    pub protocol: u32,
    /// Its build's version; `None` from builds that predate protocol numbers.
    pub build: Option<String>,
}

impl PeerVersion {
    /// From a message's fields.
    pub(crate) fn from_fields(protocol: u32, build: &str) -> PeerVersion {
        PeerVersion {
            protocol: spoken(protocol),
            build: (!build.is_empty()).then(|| build.to_string()),
        }
    }

    /// This build's.
    pub fn this_build() -> PeerVersion {
        PeerVersion {
            protocol: CLUSTER_PROTOCOL,
            build: Some(BUILD.to_string()),
        }
    }
}

/// The versions this node has heard its peers speak (from this process's start).
#[derive(Default)]
pub struct PeerVersions {
    heard: Mutex<BTreeMap<NodeId, PeerVersion>>,
    /// Peers whose protocol and this node's do not meet, each logged once.
    refusals: RefusalLog,
}

impl PeerVersions {
    /// A message to or from `peer` was refused for its protocol or this node's: an error
    /// operators must see, once per peer (pings go every 200 ms).
    pub(crate) fn refused(&self, peer: &str, why: &str) {
        if self.refusals.refused(peer) {
            tracing::error!("cluster protocols do not meet: {why}");
        }
    }

    pub(crate) fn heard(&self, node: NodeId, version: PeerVersion) {
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        if heard.get(&node) != Some(&version) {
            tracing::info!(
                node,
                protocol = version.protocol,
                build = version.build.as_deref().unwrap_or("before 0.2"),
                "peer's version"
            );
            heard.insert(node, version);
        }
    }

    /// What `node` last said it speaks, if it said anything to this process.
    pub fn of(&self, node: NodeId) -> Option<PeerVersion> {
        let heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        heard.get(&node).cloned()
    }

    /// Every peer heard from.
    pub fn all(&self) -> BTreeMap<NodeId, PeerVersion> {
        self.heard.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64) -> impl FnOnce() -> String {
        move || format!("node {id}")
    }

    #[test]
    fn builds_that_name_no_protocol_speak_protocol_1_and_are_understood() {
        assert_eq!(spoken(0), 1);
        assert_eq!(refusal(0, 1, node(2)), None);
        assert_eq!(refusal(CLUSTER_PROTOCOL, 1, node(2)), None);
    }

    #[test]
    fn once_the_cluster_version_rose_older_protocols_are_refused() {
        let old = refusal(0, 2, node(2)).unwrap();
        assert!(old.contains("upgraded to protocol 2"), "{old}");
        assert_eq!(refusal(2, 2, node(2)), None);
    }

    #[test]
    fn a_protocol_outside_the_range_is_refused_with_what_to_do() {
        let newer = refusal(CLUSTER_PROTOCOL + 1, 1, node(3)).unwrap();
        assert!(newer.starts_with(&format!(
            "node 3 speaks cluster protocol {}",
            CLUSTER_PROTOCOL + 1
        )));
        assert!(newer.contains("upgrade this node"), "{newer}");
        assert!(newer.contains(BUILD), "{newer}");
    }

    #[test]
    fn a_peer_that_names_no_build_predates_versions() {
        assert_eq!(
            PeerVersion::from_fields(0, ""),
            PeerVersion {
                protocol: 1,
                build: None
            }
        );
        assert_eq!(
            PeerVersion::from_fields(2, "0.2.0").build.as_deref(),
            Some("0.2.0")
        );
    }
}
