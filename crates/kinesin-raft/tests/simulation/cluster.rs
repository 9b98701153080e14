//! The simulated cluster: nodes with their disks and groups, started, crashed and restarted by the
//! run; replicas moved between nodes as a join or a drain moves them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use kinesin_raft::{GroupHandle, GroupKind, GroupOptions, MultiRaft, NodeId, RaftTuning};

use crate::disk::{Crash, Disk};
use crate::net::{address, SimNet, SimWire};
use crate::trace::Trace;

struct Node {
    disk: Disk,
    running: Option<Arc<MultiRaft>>,
    incarnation: u64,
    /// The life of its data (`kinesin_raft::life`), as the controller knows it: new after a wipe.
    life: u64,
    /// Groups this node hosts (reopened from disk when it restarts).
    groups: BTreeSet<u64>,
}

pub struct Cluster {
    pub net: Arc<SimNet>,
    pub trace: Arc<Trace>,
    tuning: RaftTuning,
    nodes: Mutex<BTreeMap<NodeId, Node>>,
    /// Each group's replicas as placement last decided them (the controller's `replicas`).
    placement: Mutex<BTreeMap<u64, BTreeSet<NodeId>>>,
    /// Nodes each group's replica moved away from, which keep it until its voters no longer
    /// count them (the controller's `leaving`).
    leaving: Mutex<BTreeMap<u64, BTreeSet<NodeId>>>,
    /// Groups being resharded or sealed: clients no longer pick them.
    retired: Mutex<BTreeSet<u64>>,
}

fn shard() -> GroupOptions {
    GroupOptions {
        kind: GroupKind::Shard,
        initial_members: None,
    }
}

impl Cluster {
    pub fn new(
        root: &Path,
        nodes: u64,
        net: Arc<SimNet>,
        trace: Arc<Trace>,
        tuning: RaftTuning,
    ) -> Cluster {
        let nodes = (1..=nodes)
            .map(|id| {
                let node = Node {
                    disk: Disk::new(root.join(format!("n{id}"))),
                    running: None,
                    incarnation: 0,
                    life: 0,
                    groups: BTreeSet::new(),
                };
                (id, node)
            })
            .collect();
        Cluster {
            net,
            trace,
            tuning,
            nodes: Mutex::new(nodes),
            placement: Mutex::default(),
            leaving: Mutex::default(),
            retired: Mutex::default(),
        }
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Node>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes().keys().copied().collect()
    }

    pub fn running(&self, node: NodeId) -> Option<(Arc<MultiRaft>, u64)> {
        let nodes = self.nodes();
        let node = nodes.get(&node)?;
        Some((node.running.clone()?, node.incarnation))
    }

    /// The nodes running (`up`) or down (`!up`).
    fn nodes_up(&self, up: bool) -> Vec<NodeId> {
        self.nodes()
            .iter()
            .filter(|(_, n)| n.running.is_some() == up)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn up_nodes(&self) -> Vec<NodeId> {
        self.nodes_up(true)
    }

    pub fn down_nodes(&self) -> Vec<NodeId> {
        self.nodes_up(false)
    }

    pub fn replicas(&self, group: u64) -> BTreeSet<NodeId> {
        self.placement
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&group)
            .cloned()
            .unwrap_or_default()
    }

    /// What a membership records for `nodes`: each one's address in its current life.
    pub fn member_addresses(&self, nodes: &BTreeSet<NodeId>) -> BTreeMap<NodeId, String> {
        let known = self.nodes();
        nodes
            .iter()
            .map(|n| {
                let life = known.get(n).map_or(0, |node| node.life);
                (*n, kinesin_raft::member_address(&address(*n), life))
            })
            .collect()
    }

    /// Stops `node` and erases its disk; it starts again empty in `life`, under its old id, as a
    /// node rebuilt after corruption or a lost disk joins again.
    pub fn wipe(&self, id: NodeId, life: u64) -> Result<(), String> {
        self.crash(id, Crash::Power)?;
        let mut nodes = self.nodes();
        let node = nodes.get_mut(&id).ok_or("no such node")?;
        node.disk
            .wipe()
            .map_err(|e| format!("n{id}: wiping its disk: {e}"))?;
        node.life = life;
        drop(nodes);
        self.trace
            .event(format_args!("n{id} wiped (new life {life:x})"));
        Ok(())
    }

    pub fn replica_addresses(&self, group: u64) -> Vec<(NodeId, String)> {
        self.replicas(group)
            .into_iter()
            .map(|node| (node, address(node)))
            .collect()
    }

    pub fn groups(&self) -> Vec<u64> {
        self.placement
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// The group's handle on every running node that hosts it.
    pub fn handles(&self, group: u64) -> Vec<(NodeId, GroupHandle)> {
        self.nodes()
            .iter()
            .filter_map(|(id, node)| Some((*id, node.running.as_ref()?.group(group)?)))
            .collect()
    }

    /// Groups clients write to: every group but those resharding retired.
    pub fn open_groups(&self) -> Vec<u64> {
        let retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        self.groups()
            .into_iter()
            .filter(|g| !retired.contains(g))
            .collect()
    }

    /// Takes `group` away from the clients (a reshard seals it).
    pub fn retire(&self, group: u64) {
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group);
    }

    /// The handle of the replica that leads `group` now, if one does.
    pub fn leader(&self, group: u64) -> Option<GroupHandle> {
        self.handles(group)
            .into_iter()
            .find(|(_, h)| h.is_leader())
            .map(|(_, h)| h)
    }

    /// Starts `node` from what its disk holds.
    pub async fn start(&self, id: NodeId) -> Result<(), String> {
        let (engine, incarnation, life) = {
            let mut nodes = self.nodes();
            let node = nodes.get_mut(&id).ok_or("no such node")?;
            if node.running.is_some() {
                return Ok(());
            }
            node.incarnation += 1;
            let engine = node
                .disk
                .open()
                .map_err(|e| format!("n{id} cannot open its disk: {e}"))?;
            (engine, node.incarnation, node.life)
        };

        let wire = Arc::new(SimWire {
            net: self.net.clone(),
            node: id,
            incarnation,
        });
        let raft = Arc::new(
            MultiRaft::over(id, engine, &self.tuning, wire)
                .map_err(|e| e.to_string())?
                .in_life(life),
        );
        raft.learn_addresses(
            self.node_ids()
                .into_iter()
                .map(|n| (n, address(n)))
                .collect(),
        );
        raft.start_upkeep();
        self.net.up(id, incarnation, raft.clone());
        let groups = {
            let mut nodes = self.nodes();
            let node = nodes.get_mut(&id).ok_or("no such node")?;
            node.running = Some(raft.clone());
            node.groups.clone()
        };
        for group in groups {
            raft.open_group(group, shard())
                .await
                .map_err(|e| format!("n{id} cannot open group {group}: {e}"))?;
        }
        self.trace
            .event(format_args!("n{id} started (incarnation {incarnation})"));
        Ok(())
    }

    /// Creates `group` on `replicas`: each running one starts it with them as its first voters;
    /// one that is down (it crashed meanwhile) waits to hear from them when it restarts. Fails when
    /// fewer than a majority started it.
    pub async fn create_group(
        &self,
        group: u64,
        replicas: &BTreeSet<NodeId>,
    ) -> Result<(), String> {
        self.placement
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group, replicas.clone());
        let members = self.member_addresses(replicas);
        for node in replicas {
            if let Some(node) = self.nodes().get_mut(node) {
                node.groups.insert(group);
            }
        }
        let mut started = 0;
        for node in replicas {
            let Some((raft, _)) = self.running(*node) else {
                continue;
            };
            let options = GroupOptions {
                kind: GroupKind::Shard,
                initial_members: Some(members.clone()),
            };
            match raft.open_group(group, options).await {
                Ok(_) => started += 1,
                Err(e) => self
                    .trace
                    .event(format_args!("g{group}@n{node}: not started: {e}")),
            }
        }
        if started * 2 <= replicas.len() {
            return Err(format!("g{group} started on {started} of {replicas:?}"));
        }
        Ok(())
    }

    /// Stops `node` at once, leaving on its disk what `crash` keeps.
    pub fn crash(&self, id: NodeId, crash: Crash) -> Result<(), String> {
        let raft = {
            let mut nodes = self.nodes();
            let node = nodes.get_mut(&id).ok_or("no such node")?;
            let Some(raft) = node.running.take() else {
                return Ok(());
            };
            self.net.down(id);
            node.disk
                .crash(crash)
                .map_err(|e| format!("n{id}: imaging its disk: {e}"))?;
            raft
        };
        self.trace.event(format_args!("n{id} crashed ({crash:?})"));
        // Its tasks wind down on their own; nothing they do reaches the network or the image.
        tokio::spawn(async move { raft.shutdown().await });
        Ok(())
    }

    /// Moves `group`'s replica from `from` to `to`, as a drain or a join decides it: the placement
    /// changes at once, `to` opens the group, and the group's leader makes the voters follow
    /// (`reconciler.rs`); `from` keeps its copy until then. False when `from` is not a replica
    /// or `to` already is one.
    pub fn move_replica(&self, group: u64, from: NodeId, to: NodeId) -> bool {
        {
            let mut placement = self.placement.lock().unwrap_or_else(|p| p.into_inner());
            let Some(replicas) = placement.get_mut(&group) else {
                return false;
            };
            if !replicas.contains(&from) || replicas.contains(&to) {
                return false;
            }
            replicas.remove(&from);
            replicas.insert(to);
        }
        {
            let mut leaving = self.leaving.lock().unwrap_or_else(|p| p.into_inner());
            let leaving = leaving.entry(group).or_default();
            leaving.remove(&to);
            leaving.insert(from);
        }
        if let Some(node) = self.nodes().get_mut(&to) {
            node.groups.insert(group);
        }
        self.trace
            .event(format_args!("g{group}: replica n{from}→n{to} placed"));
        true
    }

    /// Nodes `group`'s replica moved away from that still host it.
    pub fn leaving(&self, group: u64) -> BTreeSet<NodeId> {
        self.leaving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&group)
            .cloned()
            .unwrap_or_default()
    }

    /// `group`'s voters are `voters`: when that is its placement, the nodes it left drop their
    /// copies (the controller's settle, then each node's next reconciler pass).
    pub async fn settle(&self, group: u64, voters: &BTreeSet<NodeId>) {
        if *voters != self.replicas(group) {
            return;
        }
        let left = self
            .leaving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&group)
            .unwrap_or_default();
        for from in left {
            self.trace
                .event(format_args!("g{group}: n{from} settled out"));
            if let Some(node) = self.nodes().get_mut(&from) {
                node.groups.remove(&group);
            }
            if let Some((raft, _)) = self.running(from) {
                if let Err(e) = raft.drop_group(group).await {
                    self.trace
                        .event(format_args!("g{group}@n{from}: not dropped: {e}"));
                }
            }
        }
    }

    /// A node a replica was placed on opens the group when its reconciler sees the placement.
    pub async fn open_placed(&self, group: u64, node: NodeId) {
        if let Some((raft, _)) = self.running(node) {
            if raft.group(group).is_none() {
                if let Err(e) = raft.open_group(group, shard()).await {
                    self.trace
                        .event(format_args!("g{group}@n{node}: not opened: {e}"));
                }
            }
        }
    }

    /// Stops every node (the run is over).
    pub async fn stop(&self) {
        let running: Vec<Arc<MultiRaft>> = {
            let mut nodes = self.nodes();
            nodes
                .values_mut()
                .filter_map(|n| n.running.take())
                .collect()
        };
        for (id, _) in self.nodes().iter() {
            self.net.down(*id);
        }
        for raft in running {
            raft.shutdown().await;
        }
    }
}
