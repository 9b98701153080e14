//! Where a node's logs, traces and metrics go: log lines to stderr (text or JSON, filtered by
//! RUST_LOG), and, with `--otlp-endpoint`, request traces and the metrics over OTLP/gRPC.
//!
//! Traces are the kinesin crates' spans only: the gateway's `request` span (one per Kinesis
//! request) and, below it, `cluster.forward` (a write sent to the shard's leader on another
//! node), `cluster.proposal` (that node's side of it, a child of the forward through the trace
//! context the cluster transport carries) and `raft.write` (committed on a majority and applied).
//! Those below `request` are debug-level spans: without an endpoint nothing creates them.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::LogFormat;

pub mod otlp_metrics;

/// How long the last traces may take to leave when the node stops.
const FLUSH_WITHIN: Duration = Duration::from_secs(5);

/// Who sends the traces and metrics: the resource every one of them names.
pub struct Origin {
    pub node_id: u64,
}

impl Origin {
    fn attributes(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::new("service.name", "kinesin"),
            KeyValue::new("service.version", kinesin_raft::BUILD),
            KeyValue::new("service.instance.id", format!("node-{}", self.node_id)),
        ]
    }
}

/// The traces' exporter, flushed when the node stops.
#[derive(Default)]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the traces not sent yet (waits at most a few seconds).
    pub fn flush(self) {
        if let Some(provider) = self.traces {
            if let Err(e) = provider.shutdown_with_timeout(FLUSH_WITHIN) {
                tracing::warn!(error = %e, "the last traces were not all sent");
            }
        }
    }
}

/// Installs the log lines' writer and, with `otlp_endpoint`, the traces' exporter. Must run
/// inside the Tokio runtime (the exporter's gRPC channel lives on it).
pub fn init(
    format: LogFormat,
    otlp_endpoint: Option<&str>,
    origin: &Origin,
) -> anyhow::Result<Telemetry> {
    // openraft warns once per group and heartbeat about a peer that is down: with a thousand
    // groups, hundreds of lines a second that cost CPU while the survivors elect; "peer lost"
    // (kinesin_raft) says it once.
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "info,openraft=warn,openraft::core::heartbeat=error,openraft::replication=error",
        )
    });
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        // The request's span (request_id, op) as fields of the line, not a list of spans.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
    .with_filter(log_filter);
    let traces = otlp_endpoint
        .map(|endpoint| trace_provider(endpoint, origin))
        .transpose()?;
    let trace_layer = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("kinesin"))
            .with_filter(filter_fn(|meta| {
                meta.is_span()
                    && meta.target().starts_with("kinesin")
                    && *meta.level() <= tracing::Level::DEBUG
            }))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(trace_layer)
        .init();
    Ok(Telemetry { traces })
}

fn trace_provider(endpoint: &str, origin: &Origin) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder_empty()
                .with_attributes(origin.attributes())
                .build(),
        )
        .build())
}
