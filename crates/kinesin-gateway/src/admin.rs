//! The operators' API, as JSON: views (`GET /admin/v1/cluster`, `GET
//! /admin/v1/streams/{name}/shards`), read from this node's applied controller state and its local
//! groups' Raft metrics; and membership changes (`POST /admin/v1/nodes`, `POST
//! /admin/v1/nodes/{id}/drain`, `DELETE /admin/v1/nodes/{id}`), proposed to the controller.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use kinesin_controller::{Command, ControllerError, StreamKey, CONTROLLER_GROUP};
use kinesin_raft::TrustError;
use serde::Deserialize;
use serde_json::json;

use crate::credentials::Principal;
use crate::Gateway;

pub(crate) async fn cluster(State(gateway): State<Arc<Gateway>>) -> Response {
    let state = gateway.controller.state();
    let controller = gateway.raft.group(CONTROLLER_GROUP);
    let leader = controller.as_ref().and_then(|g| g.leader());
    // Only the controller's leader hears from every node; elsewhere the age is unknown (null).
    let ack_ages = controller.as_ref().and_then(|g| g.ack_ages());
    let versions = gateway.raft.peer_versions().all();
    let nodes: Vec<_> = state
        .nodes
        .iter()
        .map(|(id, node)| {
            let last_heartbeat_ms_ago = if *id == gateway.settings.node_id {
                Some(0)
            } else {
                ack_ages
                    .as_ref()
                    .and_then(|ages| ages.get(id).copied().flatten())
                    .map(|age| age.as_millis() as u64)
            };
            // What the node last said it speaks (this node's own build for itself); a node
            // from before versions names no build.
            let version = if *id == gateway.settings.node_id {
                Some(kinesin_raft::PeerVersion::this_build())
            } else {
                versions.get(id).cloned()
            };
            json!({
                "id": id,
                "cluster_addr": node.cluster_addr,
                "state": if node.is_down() { "down" } else { "up" },
                "down_since_ms": node.down_since_ms,
                "last_heartbeat_ms_ago": last_heartbeat_ms_ago,
                "controller_leader": Some(*id) == leader,
                "draining": node.draining,
                "life": format!("{:x}", node.life),
                "replicas": state.held_replicas(*id),
                "replicas_moving_off": state.leaving_replicas(*id),
                "protocol": version.as_ref().map(|v| v.protocol),
                "build": version.and_then(|v| v.build),
            })
        })
        .collect();
    Json(json!({
        "node_id": gateway.settings.node_id,
        "controller_leader": leader,
        "cluster_version": state.cluster_version(),
        "nodes": nodes,
        "streams": state.streams.len(),
    }))
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct StreamQuery {
    account: Option<String>,
    region: Option<String>,
}

pub(crate) async fn stream_shards(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    Query(query): Query<StreamQuery>,
    principal: Option<Extension<Arc<Principal>>>,
) -> Response {
    // Without `?account=`: the signing admin's account (with credentials), else the node's.
    let account = principal.map(|Extension(p)| p.account.clone());
    let key = StreamKey {
        account: query
            .account
            .or(account)
            .unwrap_or_else(|| gateway.settings.account_id.clone()),
        region: query
            .region
            .unwrap_or_else(|| gateway.settings.default_region.clone()),
        name,
    };
    let state = gateway.controller.state();
    let Some(stream) = state.stream(&key) else {
        let body = json!({"error": format!("stream {} not found in {} / {}", key.name, key.account, key.region)});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let shards: Vec<_> = stream
        .shards
        .iter()
        .map(|shard| {
            let local = gateway.raft.group(shard.group);
            json!({
                "shard_id": shard.id.to_string(),
                "group": shard.group,
                "state": if shard.is_open() { "OPEN" } else { "CLOSED" },
                "replicas": shard.replicas,
                // Known only where this node hosts a replica, and about that replica.
                "leader": local.as_ref().and_then(|g| g.leader()),
                // Raft's term here: moves with each election this replica saw.
                "term": local.as_ref().map(|g| g.term()),
                // Idle and caught up: not ticking or heartbeating here (kinesin-raft's quiesce.rs).
                "quiet": local.as_ref().map(|g| g.is_quiet()),
                "applied_index": local.as_ref().map(|g| g.applied_index()),
                "snapshot_index": local.as_ref().and_then(|g| g.snapshot_index()),
                "purged_index": local.as_ref().and_then(|g| g.purged_index()),
                "starting_hash_key": shard.hash_range.start.to_string(),
                "ending_hash_key": shard.hash_range.end.to_string(),
                "parent_shard_id": shard.parent.map(|p| p.to_string()),
                "adjacent_parent_shard_id": shard.adjacent_parent.map(|p| p.to_string()),
            })
        })
        .collect();
    Json(json!({
        "stream": stream.key.name,
        "arn": stream.arn,
        "status": stream.status.as_str(),
        "shards": shards,
    }))
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct NewNode {
    node_id: u64,
    cluster_addr: String,
    /// The life of the joining node's data; absent when it restarts on data it has.
    #[serde(default)]
    life: Option<u64>,
}

/// Answers a membership change: 200 with the node's state after it, or the controller's refusal.
async fn membership_change(gateway: &Gateway, node: u64, command: Command) -> Response {
    match gateway.controller.propose(&command).await {
        Ok(_) => {
            let state = gateway.controller.state();
            let info = state.nodes.get(&node);
            Json(json!({
                "node_id": node,
                "member": info.is_some(),
                "draining": info.is_some_and(|n| n.draining),
                "replicas": state.held_replicas(node),
                "replicas_moving_off": state.leaving_replicas(node),
                "moves_at_once": state.moves_at_once,
            }))
            .into_response()
        }
        Err(e) => {
            let status = match &e {
                ControllerError::NotFound(_) => StatusCode::NOT_FOUND,
                ControllerError::InUse(_) => StatusCode::CONFLICT,
                ControllerError::InvalidArgument(_)
                | ControllerError::Validation(_)
                | ControllerError::LimitExceeded(_) => StatusCode::BAD_REQUEST,
                ControllerError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                ControllerError::OutcomeUnknown(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, Json(json!({"error": e.to_string()}))).into_response()
        }
    }
}

/// What a join refused for its certificates says (`kinesin server --join` stops retrying on it).
pub const JOIN_REFUSED: &str = "mutual TLS between the nodes failed";

/// `kinesin server --join`: adds a node to the cluster.
pub(crate) async fn add_node(
    State(gateway): State<Arc<Gateway>>,
    Json(node): Json<NewNode>,
) -> Response {
    if node.node_id == 0 || node.cluster_addr.is_empty() {
        let body =
            json!({"error": "node_id must be a positive integer and cluster_addr host:port"});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    tracing::info!(node = node.node_id, addr = %node.cluster_addr, "a node asks to join");
    // With cluster mTLS, a node that cannot talk to this one (a certificate of another CA, or
    // none) is refused here: let in, it would hold replicas no one can reach.
    if let Err(e) = gateway.raft.check_peer_trust(&node.cluster_addr).await {
        let (status, error) = match &e {
            TrustError::Refused(why) => (
                StatusCode::FORBIDDEN,
                format!("node {} at {} is refused: {JOIN_REFUSED} ({why}); it needs a certificate issued by the cluster's CA (--cluster-tls-cert, --cluster-tls-key) and to trust that CA (--cluster-tls-ca)", node.node_id, node.cluster_addr),
            ),
            TrustError::Unreachable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot check node {}'s certificate at {}: {why}", node.node_id, node.cluster_addr),
            ),
        };
        tracing::warn!(node = node.node_id, addr = %node.cluster_addr, %error, "join not accepted");
        return (status, Json(json!({ "error": error }))).into_response();
    }
    let command = Command::AddNode {
        node: node.node_id,
        cluster_addr: node.cluster_addr,
        life: node.life,
    };
    membership_change(&gateway, node.node_id, command).await
}

/// `kinesin ctl node drain`: moves every replica off the node.
pub(crate) async fn drain_node(
    State(gateway): State<Arc<Gateway>>,
    Path(node): Path<u64>,
) -> Response {
    membership_change(&gateway, node, Command::DrainNode { node }).await
}

/// `kinesin ctl node remove`: forgets a drained node.
pub(crate) async fn remove_node(
    State(gateway): State<Arc<Gateway>>,
    Path(node): Path<u64>,
) -> Response {
    membership_change(&gateway, node, Command::RemoveNode { node }).await
}
