//! The node's metrics over OTLP/gRPC: every interval, what `/metrics` would serve, sent to the
//! configured receiver as OTLP metrics with the same names and labels (counters as cumulative
//! monotonic sums, gauges as gauges, the latency summaries as summaries of count and sum).
//!
//! The Prometheus text is the one source of the figures, so the two views never disagree; it is
//! parsed back here (a few hundred lines every ten seconds) rather than kept twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::watch;

use super::Origin;

/// Sends `metrics()` to `endpoint` every `every` until `stopped`.
pub async fn export_every(
    metrics: impl Fn() -> String,
    endpoint: String,
    every: Duration,
    origin: Origin,
    mut stopped: watch::Receiver<bool>,
) {
    let channel = match tonic::transport::Endpoint::from_shared(endpoint.clone()) {
        Ok(endpoint) => endpoint.connect_lazy(),
        Err(e) => {
            tracing::error!(%endpoint, error = %e, "not an OTLP endpoint; no metrics are sent");
            return;
        }
    };
    let mut client = MetricsServiceClient::new(channel);
    let started = unix_nanos(SystemTime::now());
    let resource = Resource {
        attributes: origin
            .attributes()
            .into_iter()
            .map(|kv| attribute(kv.key.as_str(), kv.value.as_str().as_ref()))
            .collect(),
        ..Default::default()
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.changed() => return,
        }
        let now = unix_nanos(SystemTime::now());
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "kinesin".into(),
                        version: kinesin_raft::BUILD.into(),
                        ..Default::default()
                    }),
                    metrics: from_prometheus_text(&metrics(), started, now),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let mut call = tonic::Request::new(request);
        call.set_timeout(every);
        match client.export(call).await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!(%endpoint, "metrics reach the OTLP receiver again");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(%endpoint, error = %e, "metrics could not be sent over OTLP; retrying every interval");
            }
            Err(_) => {}
        }
    }
}

fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// One sample line: `name{label="value",…} number`.
struct Sample<'a> {
    name: &'a str,
    labels: Vec<KeyValue>,
    value: f64,
}

fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// `a="x",b="y"` (values escaped as Prometheus escapes them: `\\`, `\"`, `\n`).
fn parse_labels(mut text: &str) -> Option<Vec<KeyValue>> {
    let mut labels = Vec::new();
    while !text.is_empty() {
        let (key, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push(attribute(key, &value));
        text = rest[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

/// The metric families of a Prometheus text exposition as OTLP metrics.
fn from_prometheus_text(text: &str, start: u64, now: u64) -> Vec<Metric> {
    let mut kinds: HashMap<&str, &str> = HashMap::new();
    let mut helps: HashMap<&str, &str> = HashMap::new();
    let mut metrics: Vec<Metric> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // Summaries arrive as name_sum and name_count lines: paired up by series.
    let mut summaries: HashMap<(String, String), SummaryDataPoint> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                kinds.insert(name, kind);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, help)) = rest.split_once(' ') {
                helps.insert(name, help);
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some(sample) = parse_sample(line) else {
            continue;
        };
        let summary_of = ["_sum", "_count"].iter().find_map(|suffix| {
            let base = sample.name.strip_suffix(suffix)?;
            (kinds.get(base) == Some(&"summary")).then_some((base, *suffix))
        });
        if let Some((base, part)) = summary_of {
            let series = format!("{:?}", sample.labels);
            let point = summaries
                .entry((base.to_string(), series))
                .or_insert_with(|| SummaryDataPoint {
                    attributes: sample.labels.clone(),
                    start_time_unix_nano: start,
                    time_unix_nano: now,
                    ..Default::default()
                });
            if part == "_sum" {
                point.sum = sample.value;
            } else {
                point.count = sample.value as u64;
            }
            continue;
        }
        let point = NumberDataPoint {
            attributes: sample.labels,
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsDouble(sample.value)),
            ..Default::default()
        };
        let slot = *index.entry(sample.name.to_string()).or_insert_with(|| {
            let data = match kinds.get(sample.name) {
                Some(&"counter") => metric::Data::Sum(Sum {
                    data_points: Vec::new(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
                _ => metric::Data::Gauge(Gauge {
                    data_points: Vec::new(),
                }),
            };
            metrics.push(Metric {
                name: sample.name.to_string(),
                description: helps.get(sample.name).unwrap_or(&"").to_string(),
                data: Some(data),
                ..Default::default()
            });
            metrics.len() - 1
        });
        match &mut metrics[slot].data {
            Some(metric::Data::Sum(sum)) => sum.data_points.push(point),
            Some(metric::Data::Gauge(gauge)) => gauge.data_points.push(point),
            _ => {}
        }
    }
    let mut by_summary: HashMap<String, Vec<SummaryDataPoint>> = HashMap::new();
    for ((base, _), point) in summaries {
        by_summary.entry(base).or_default().push(point);
    }
    for (name, data_points) in by_summary {
        metrics.push(Metric {
            description: helps.get(name.as_str()).unwrap_or(&"").to_string(),
            name,
            data: Some(metric::Data::Summary(Summary { data_points })),
            ..Default::default()
        });
    }
    metrics
}

/// Starts [`export_every`] for `gateway`'s metrics on its own task.
pub fn spawn(
    gateway: Arc<kinesin_gateway::Gateway>,
    endpoint: String,
    every: Duration,
    origin: Origin,
    stopped: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(export_every(
        move || gateway.metrics_text(),
        endpoint,
        every,
        origin,
        stopped,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(kv: &KeyValue) -> (&str, &str) {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => (kv.key.as_str(), s.as_str()),
            _ => panic!("not a string attribute: {kv:?}"),
        }
    }

    #[test]
    fn counters_gauges_and_summaries_keep_their_names_labels_and_values() {
        let text = "\
# HELP kinesis_IncomingRecords_total Records written.
# TYPE kinesis_IncomingRecords_total counter
kinesis_IncomingRecords_total{account=\"1\",region=\"us-east-1\",stream=\"a \\\"b\\\"\"} 42
kinesis_IncomingRecords_total{account=\"1\",region=\"us-east-1\",stream=\"c\"} 7
# TYPE kinesin_disk_free_bytes gauge
kinesin_disk_free_bytes 1.5e9
# TYPE kinesis_PutRecord_Latency summary
kinesis_PutRecord_Latency_sum{stream=\"a\"} 12.5
kinesis_PutRecord_Latency_count{stream=\"a\"} 5
";
        let metrics = from_prometheus_text(text, 1, 2);
        assert_eq!(metrics.len(), 3);
        let incoming = &metrics[0];
        assert_eq!(incoming.name, "kinesis_IncomingRecords_total");
        assert_eq!(incoming.description, "Records written.");
        let Some(metric::Data::Sum(sum)) = &incoming.data else {
            panic!("{incoming:?}")
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.data_points.len(), 2);
        let first = &sum.data_points[0];
        assert_eq!(
            first.attributes.iter().map(text_of).collect::<Vec<_>>(),
            vec![
                ("account", "1"),
                ("region", "us-east-1"),
                ("stream", "a \"b\"")
            ]
        );
        assert_eq!(first.value, Some(number_data_point::Value::AsDouble(42.0)));
        assert_eq!((first.start_time_unix_nano, first.time_unix_nano), (1, 2));
        let Some(metric::Data::Gauge(disk)) = &metrics[1].data else {
            panic!("{:?}", metrics[1])
        };
        assert_eq!(
            disk.data_points[0].value,
            Some(number_data_point::Value::AsDouble(1.5e9))
        );
        let Some(metric::Data::Summary(latency)) = &metrics[2].data else {
            panic!("{:?}", metrics[2])
        };
        assert_eq!(metrics[2].name, "kinesis_PutRecord_Latency");
        assert_eq!(
            (latency.data_points[0].count, latency.data_points[0].sum),
            (5, 12.5)
        );
    }

    #[test]
    fn lines_that_do_not_parse_are_skipped() {
        let metrics =
            from_prometheus_text("garbage\nname{a=\"x} 1\nname{a=\"x\"} notanumber\n", 0, 0);
        assert!(metrics.is_empty(), "{metrics:?}");
    }
}
