//! HTTP: the router, one handler for every Kinesis operation, and the response envelope.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Extension;
use axum::Router;
use base64::Engine as _;
use kinesin_api::{ErrorKind, KinesisError, Operation, Protocol};
use kinesin_controller::Controller;
use kinesin_raft::MultiRaft;
use kinesin_types::SharedClock;
use tracing::Instrument as _;

use crate::admission::Admission;
use crate::context::RequestContext;
use crate::credentials::CredentialStore;
use crate::encryption::DataKeys;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::ops;
use crate::read_quota::ReadLimiter;
use crate::stream_metrics::StreamMetrics;

/// How long a request's body may take to arrive.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What a gateway needs to know about its node.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub node_id: u64,
    pub account_id: String,
    pub default_region: String,
    pub limits: Limits,
    /// Replicas per shard of new streams (capped at the node count).
    pub replication_factor: u32,
    /// The principals who may sign requests: with them every request must be signed by one
    /// (and acts in its account); without, requests are not authenticated.
    pub credentials: Option<Arc<CredentialStore>>,
    /// The streams' data keys, opened by the node's key provider (encryption at rest).
    pub data_keys: Arc<DataKeys>,
    /// `--console-dir`: serve the web console's files from here instead of the built-in ones.
    pub console_dir: Option<std::path::PathBuf>,
}

pub struct Gateway {
    pub(crate) settings: GatewaySettings,
    pub(crate) controller: Arc<Controller>,
    pub(crate) raft: Arc<MultiRaft>,
    pub(crate) metrics: Metrics,
    pub(crate) stream_metrics: StreamMetrics,
    pub(crate) admission: Admission,
    pub(crate) subscriptions: crate::ops::Subscriptions,
    pub(crate) read_limiter: ReadLimiter,
    clock: SharedClock,
}

impl Gateway {
    /// The node's wall clock, in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn new(
        settings: GatewaySettings,
        controller: Arc<Controller>,
        raft: Arc<MultiRaft>,
        clock: SharedClock,
    ) -> Arc<Gateway> {
        let admission = Admission::new(settings.limits.max_inflight_request_bytes);
        let read_limiter = ReadLimiter::new(settings.limits.shard_read_quota);
        Arc::new(Gateway {
            admission,
            read_limiter,
            settings,
            controller,
            raft,
            metrics: Metrics::default(),
            stream_metrics: StreamMetrics::default(),
            clock,
            subscriptions: Default::default(),
        })
    }

    /// Whether this node was removed from the cluster (`kinesin ctl node remove`): it hosts
    /// nothing and may be stopped, so it sends clients elsewhere at once instead of waiting for a
    /// controller it no longer belongs to.
    pub(crate) fn removed_from_cluster(&self) -> bool {
        let state = self.controller.state();
        state.iterator_secret.is_some() && !state.nodes.contains_key(&self.settings.node_id)
    }

    /// [`Gateway::router`] for the TLS listener: its requests are `aws:SecureTransport`.
    pub fn tls_router(self: &Arc<Self>) -> Router {
        self.router().layer(Extension(OverTls))
    }

    /// `POST /` for the Kinesis API, `GET /healthz` for orchestrators.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/admin/v1/cluster", get(crate::admin::cluster))
            .route("/admin/v1/nodes", post(crate::admin::add_node))
            .route("/admin/v1/nodes/{id}", delete(crate::admin::remove_node))
            .route("/admin/v1/nodes/{id}/drain", post(crate::admin::drain_node))
            .route(
                "/admin/v1/streams/{name}/shards",
                get(crate::admin::stream_shards),
            )
            // Only the routes above: the admin API needs an admin's signature when auth is on.
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                crate::auth::admin_only,
            ))
            .route("/", post(handle))
            .route("/healthz", get(healthz))
            .route("/console", get(crate::console::redirect))
            .route("/console/", get(crate::console::index))
            .route("/console/{file}", get(crate::console::file))
            .route("/metrics", get(metrics))
            // The handler enforces its own limit, to answer with a Kinesis error.
            .layer(DefaultBodyLimit::disable())
            .with_state(self.clone())
    }
}

/// Marks the requests of the TLS listener, for `aws:SecureTransport` in policies.
#[derive(Debug, Clone, Copy)]
struct OverTls;

async fn healthz(State(gateway): State<Arc<Gateway>>) -> Response {
    if gateway.removed_from_cluster() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "removed from the cluster\n",
        )
            .into_response();
    }
    let ready = gateway
        .controller
        .group()
        .is_some_and(|g| g.leader().is_some());
    if ready {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no controller leader\n").into_response()
    }
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    let body = gateway.metrics_text();
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

impl Gateway {
    /// This node's metrics in Prometheus's text format: what `/metrics` serves, and what goes
    /// over OTLP when an endpoint is configured.
    pub fn metrics_text(&self) -> String {
        let state = self.controller.state();
        let mut body = self.metrics.render(&self.raft, &self.admission, &state);
        self.stream_metrics.render(&state, &mut body);
        body
    }
}

async fn handle(
    State(gateway): State<Arc<Gateway>>,
    version: Version,
    over_tls: Option<Extension<OverTls>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    gateway.metrics.count_http_version(version);
    let protocol = Protocol::from_content_type(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let op = Operation::from_target(
        headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    if let (Some(store), Some(_)) = (&gateway.settings.credentials, op) {
        if let Err(error) = crate::auth::screen(store, &method, &uri, &headers) {
            let op_name = op.map_or("unknown", |o| o.name());
            let elapsed_us = started.elapsed().as_micros() as u64;
            gateway
                .metrics
                .observe(op_name, error.type_name(), elapsed_us);
            return failure(protocol, &error);
        }
    }
    let limit = gateway.settings.limits.max_body_bytes();
    // A body without a length (chunked) may be as large as the limit.
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(limit, |length| length.min(limit));
    let _admitted = match gateway.admission.admit(declared).await {
        Ok(admitted) => admitted,
        Err(error) => {
            gateway.metrics.observe(
                "unknown",
                error.type_name(),
                started.elapsed().as_micros() as u64,
            );
            return failure(protocol, &error);
        }
    };
    // A client that stops sending its body must not hold its share of the budget for good.
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit)).await;
    let body = match read
        .map_err(|_| "timed out".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(body) => body,
        Err(e) => {
            let error = KinesisError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "The request body could not be read within {} s and the limit of {limit} bytes: {e}",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            );
            return failure(protocol, &error);
        }
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    // Every line logged while the request is served carries its id, the one the client sees in
    // x-amzn-RequestId.
    let span = tracing::info_span!(
        "request",
        %request_id,
        op = op.map(|o| o.name()).unwrap_or("unknown")
    );
    let result = match op {
        Some(op) => {
            let request = crate::auth::http_request(&method, &uri, &headers, &body);
            serve(&gateway, op, protocol, &request, over_tls.is_some())
                .instrument(span.clone())
                .await
        }
        // AWS answers `{"__type":"UnknownOperationException"}`, with no message (kinesalite
        // `test/connection.js`, recorded against AWS).
        None => Err(KinesisError::unknown_operation()),
    };
    let op_name = op.map(|o| o.name()).unwrap_or("unknown");
    let elapsed_us = started.elapsed().as_micros() as u64;
    span.in_scope(|| match result {
        Ok(reply) => {
            gateway.metrics.observe(op_name, "ok", elapsed_us);
            tracing::debug!(elapsed_us, "ok");
            match reply {
                Reply::Whole(body) => envelope(protocol, StatusCode::OK, body, &request_id),
                Reply::Events(body) => event_stream_envelope(body, &request_id),
            }
        }
        Err(error) => {
            gateway
                .metrics
                .observe(op_name, error.type_name(), elapsed_us);
            tracing::debug!(elapsed_us, error = error.type_name(), message = %error.message, "error");
            error_envelope(protocol, &error, &request_id)
        }
    })
}

/// A successful answer: a whole body, or (SubscribeToShard) an event stream that goes on.
enum Reply {
    Whole(Vec<u8>),
    Events(Body),
}

async fn serve(
    gateway: &Arc<Gateway>,
    op: Operation,
    protocol: Protocol,
    request: &kinesin_api::HttpRequest<'_>,
    over_tls: bool,
) -> Result<Reply, KinesisError> {
    let settings = &gateway.settings;
    let mut principal = None;
    let (account, region) = match &settings.credentials {
        Some(store) => {
            let now = gateway.now_ms() / 1000;
            let (signer, scope) = crate::auth::authenticate(store, request, now)?;
            let account = signer.account.clone();
            principal = Some(signer);
            (account, scope.region)
        }
        None => {
            let authorization = request.header("authorization");
            let scope = kinesin_api::credential_scope(authorization, Some(request.query))?;
            let region = scope.map(|s| s.region);
            (
                settings.account_id.clone(),
                region.unwrap_or_else(|| settings.default_region.clone()),
            )
        }
    };
    let ctx = RequestContext {
        account,
        region,
        protocol,
    };
    let decoded = protocol.decode_request(op, request.body)?;
    if let Some(principal) = &principal {
        crate::authorize::authorize(gateway, principal, &ctx, &decoded, over_tls)?;
    }
    match decoded {
        kinesin_api::Request::SubscribeToShard(input) => {
            Ok(Reply::Events(ops::subscribe(gateway, &ctx, input).await?))
        }
        request => Ok(Reply::Whole(ops::dispatch(gateway, &ctx, request).await?)),
    }
}

/// The answer of a subscription: an event stream, without a length (it lasts minutes).
fn event_stream_envelope(body: Body, request_id: &str) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static(kinesin_api::event_stream::CONTENT_TYPE_EVENT_STREAM),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// An error answered before the request was read, with a request id of its own.
pub(crate) fn failure(protocol: Protocol, error: &KinesisError) -> Response {
    error_envelope(protocol, error, &uuid::Uuid::new_v4().to_string())
}

/// An error answer: the error body in the request's protocol, its HTTP status, and the
/// `X-Amzn-ErrorType` header that some SDKs read the type from.
fn error_envelope(protocol: Protocol, error: &KinesisError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = envelope(protocol, status, protocol.encode_error(error), request_id);
    response.headers_mut().insert(
        "x-amzn-errortype",
        HeaderValue::from_static(error.type_name()),
    );
    response
}

fn envelope(protocol: Protocol, status: StatusCode, body: Vec<u8>, request_id: &str) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static(protocol.content_type()),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    let id2 = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    if let Ok(id2) = HeaderValue::from_str(&id2) {
        headers.insert("x-amz-id-2", id2);
    }
    response
}
