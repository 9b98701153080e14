//! Operator views as JSON: `GET /admin/v1/cluster` and `GET /admin/v1/streams/{name}/shards`.
//! Read from this node's applied controller state and its local groups' Raft metrics.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kinesin_controller::{StreamKey, CONTROLLER_GROUP};
use serde::Deserialize;
use serde_json::json;

use crate::Gateway;

pub(crate) async fn cluster(State(gateway): State<Arc<Gateway>>) -> Response {
    let state = gateway.controller.state();
    let controller = gateway.raft.group(CONTROLLER_GROUP);
    let leader = controller.as_ref().and_then(|g| g.leader());
    // Only the controller's leader hears from every node; elsewhere the age is unknown (null).
    let ack_ages = controller.as_ref().and_then(|g| g.ack_ages());
    let load = state.replica_load();
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
            json!({
                "id": id,
                "cluster_addr": node.cluster_addr,
                "state": if node.is_down() { "down" } else { "up" },
                "down_since_ms": node.down_since_ms,
                "last_heartbeat_ms_ago": last_heartbeat_ms_ago,
                "controller_leader": Some(*id) == leader,
                "replicas": load.get(id).copied().unwrap_or(0),
            })
        })
        .collect();
    Json(json!({
        "node_id": gateway.settings.node_id,
        "controller_leader": leader,
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
) -> Response {
    let key = StreamKey {
        account: query
            .account
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
                // Known only where this node hosts a replica.
                "leader": local.as_ref().and_then(|g| g.leader()),
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
