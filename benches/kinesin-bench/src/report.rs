//! The results: a human summary on stdout and, with `--json`, one JSON document holding the
//! arguments, the environment and every figure, for scripts that compare runs.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::args::{Args, Consumers};
use crate::client::Endpoint;
use crate::stats::{percentile_line, percentiles, ErrorCounts, Figures};

pub struct Environment {
    /// Every `--endpoint` (as given, and parsed) in the order slots are assigned to them; the
    /// first also took the control-plane calls.
    pub endpoints: Vec<(String, Arc<Endpoint>)>,
    pub signed: bool,
    pub server: Option<String>,
    pub started_at_unix: f64,
    pub stream_arn: Option<String>,
    pub open_shards: Option<u64>,
    pub stream_created: bool,
}

pub struct ConsumerOutcome {
    pub figures: Figures,
    pub shards: usize,
    pub expected: u64,
    pub received_in_window: u64,
    pub drain_secs: f64,
    pub deregister_error: Option<String>,
}

pub struct Outcome<'a> {
    pub args: &'a Args,
    pub env: Environment,
    pub op: &'static str,
    pub measured_secs: f64,
    pub producer: Figures,
    pub consumer: Option<ConsumerOutcome>,
}

fn errors_json(errors: &ErrorCounts) -> Value {
    json!({
        "total": errors.error_total(),
        "by_type": errors.errors,
        "throttled_total": errors.throttled_total(),
        "throttled_by_type": errors.throttled,
        "samples": errors.samples,
    })
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

fn errors_line(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Outcome<'_> {
    fn protocol(&self) -> &'static str {
        if self.args.http2 {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        }
    }

    fn records_per_request(&self) -> usize {
        self.args.batch.max(1)
    }

    pub fn to_json(&self) -> Value {
        let secs = self.measured_secs.max(1e-9);
        let p = &self.producer;
        let mut producer = json!({
            "operation": self.op,
            "records_per_request": self.records_per_request(),
            "record_size": self.args.record_size,
            "slots": self.args.connections,
            "loop": if self.args.rate.is_some() { "open" } else { "closed" },
            "requests": p.calls,
            "ok_requests": p.ok_calls,
            "requests_per_sec": round(p.ok_calls as f64 / secs, 1),
            "records": p.records,
            "records_per_sec": round(p.records as f64 / secs, 1),
            "bytes": p.bytes,
            "mb_per_sec": round(p.bytes as f64 / secs / 1e6, 3),
            "failed_records": p.failed_records,
            "latency_ms": percentiles(&p.latency),
            "errors": errors_json(&p.errors),
        });
        if let Some(rate) = self.args.rate {
            producer["open_loop"] = json!({
                "rate": rate,
                "late": p.late,
                "late_threshold_ms": self.args.late_ms,
                "skipped": p.skipped,
                "max_backlog": self.args.max_backlog,
                "max_send_lag_ms": p.max_send_lag_us as f64 / 1000.0,
            });
        }
        let consumer = self.consumer.as_ref().map(|c| {
            let f = &c.figures;
            json!({
                "mode": match self.args.consumers {
                    Consumers::Getrecords => "getrecords",
                    Consumers::Subscribe => "subscribe",
                    Consumers::None => "none",
                },
                "shards": c.shards,
                "records_expected": c.expected,
                "records_received": c.received_in_window,
                "records_received_total": f.records + f.foreign,
                "foreign_records": f.foreign,
                "records_per_sec": round(f.records as f64 / secs, 1),
                "mb_per_sec": round(f.bytes as f64 / secs / 1e6, 3),
                "calls": f.calls,
                "ok_calls": f.ok_calls,
                "empty_responses": f.empty,
                "call_latency_ms": percentiles(&f.latency),
                "put_get_latency_ms": percentiles(&f.put_get),
                "millis_behind_latest_max": f.millis_behind_max,
                "drain_secs": round(c.drain_secs, 3),
                "errors": errors_json(&f.errors),
                "deregister_error": c.deregister_error,
            })
        });
        // The flags as they took effect (--create / --no-create folded, defaults resolved).
        let mut args = serde_json::to_value(self.args).unwrap_or(Value::Null);
        if let Some(map) = args.as_object_mut() {
            map.remove("no_create");
            map.insert("create".into(), json!(self.args.create_stream()));
            if self.args.http2 {
                map.insert(
                    "h2_connections".into(),
                    json!(self.args.h2_connection_count()),
                );
            }
        }
        json!({
            "tool": "kinesin-bench",
            "args": args,
            "environment": {
                "bench_version": env!("CARGO_PKG_VERSION"),
                // The first endpoint, as before several could be given; all under "endpoints".
                "endpoint": self.env.endpoints.first().map(|(url, _)| url),
                "host": self.env.endpoints.first().map(|(_, e)| &e.host),
                "tls": self.env.endpoints.first().map(|(_, e)| e.tls),
                "endpoints": self.env.endpoints.iter().map(|(url, e)| json!({
                    "endpoint": url,
                    "host": e.host,
                    "tls": e.tls,
                })).collect::<Vec<_>>(),
                "protocol": self.protocol(),
                "signed": self.env.signed,
                "region": self.args.region,
                "server": self.env.server,
                "client_host": hostname(),
                "client_cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "client_os": format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
                "started_at_unix": round(self.env.started_at_unix, 3),
                "stream": self.args.stream,
                "stream_arn": self.env.stream_arn,
                "open_shards": self.env.open_shards,
                "stream_created": self.env.stream_created,
            },
            "measured_secs": round(self.measured_secs, 3),
            "warmup_secs": self.args.warmup_secs,
            "producer": producer,
            "consumer": consumer,
        })
    }

    pub fn summary(&self) -> String {
        let secs = self.measured_secs.max(1e-9);
        let p = &self.producer;
        let mut out = String::new();
        let push = |out: &mut String, line: String| {
            out.push_str(&line);
            out.push('\n');
        };
        push(
            &mut out,
            format!(
                "kinesin-bench {} → {} ({}, {}), stream {}{}",
                env!("CARGO_PKG_VERSION"),
                self.env
                    .endpoints
                    .iter()
                    .map(|(url, _)| url.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                self.protocol(),
                if self.env.signed { "SigV4" } else { "unsigned" },
                self.args.stream,
                self.env
                    .open_shards
                    .map(|n| format!(" ({n} shards)"))
                    .unwrap_or_default(),
            ),
        );
        let mode = match self.args.rate {
            Some(rate) => format!("open loop at {rate} requests/s"),
            None => "closed loop".into(),
        };
        push(
            &mut out,
            format!(
                "{} × {} records of {} B, {} slots, {mode}, {:.1} s measured after {} s warm-up",
                self.op,
                self.records_per_request(),
                self.args.record_size,
                self.args.connections,
                self.measured_secs,
                self.args.warmup_secs
            ),
        );
        push(
            &mut out,
            format!(
                "  throughput  {:.0} records/s, {:.2} MB/s, {:.0} requests/s ({} requests, {} answered 200, {} records)",
                p.records as f64 / secs,
                p.bytes as f64 / secs / 1e6,
                p.ok_calls as f64 / secs,
                p.calls,
                p.ok_calls,
                p.records
            ),
        );
        push(
            &mut out,
            format!("  latency     {}", percentile_line(&p.latency)),
        );
        push(
            &mut out,
            format!(
                "  errors      {}{}",
                errors_line(&p.errors.errors),
                if p.failed_records > 0 {
                    format!(" ({} records failed)", p.failed_records)
                } else {
                    String::new()
                }
            ),
        );
        push(
            &mut out,
            format!("  throttled   {}", errors_line(&p.errors.throttled)),
        );
        for (key, sample) in &p.errors.samples {
            push(&mut out, format!("    {key}: {sample}"));
        }
        if self.args.rate.is_some() {
            push(
                &mut out,
                format!(
                    "  schedule    {} sends late (> {} ms), {} skipped (backlog over {}), max send lag {:.2} ms",
                    p.late,
                    self.args.late_ms,
                    p.skipped,
                    self.args.max_backlog,
                    p.max_send_lag_us as f64 / 1000.0
                ),
            );
        }
        if let Some(c) = &self.consumer {
            let f = &c.figures;
            let mode = match self.args.consumers {
                Consumers::Subscribe => "SubscribeToShard",
                _ => "GetRecords",
            };
            push(&mut out, format!("{mode} consumers on {} shards", c.shards));
            let share = if c.expected > 0 {
                format!(
                    " ({:.2}%)",
                    c.received_in_window as f64 * 100.0 / c.expected as f64
                )
            } else {
                String::new()
            };
            push(
                &mut out,
                format!(
                    "  received    {} of the {} records written in the window{share}, {:.0} records/s, {} other records, drained in {:.1} s",
                    c.received_in_window,
                    c.expected,
                    f.records as f64 / secs,
                    f.foreign,
                    c.drain_secs
                ),
            );
            push(
                &mut out,
                format!(
                    "  calls       {} ({} answered 200, {} empty), latency {}",
                    f.calls,
                    f.ok_calls,
                    f.empty,
                    percentile_line(&f.latency)
                ),
            );
            push(
                &mut out,
                format!("  put→get     {}", percentile_line(&f.put_get)),
            );
            push(
                &mut out,
                format!(
                    "  behind      MillisBehindLatest max {} ms",
                    f.millis_behind_max
                ),
            );
            push(
                &mut out,
                format!("  errors      {}", errors_line(&f.errors.errors)),
            );
            push(
                &mut out,
                format!("  throttled   {}", errors_line(&f.errors.throttled)),
            );
            for (key, sample) in &f.errors.samples {
                push(&mut out, format!("    {key}: {sample}"));
            }
            if let Some(error) = &c.deregister_error {
                push(&mut out, format!("  deregister  {error}"));
            }
        }
        out
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}
