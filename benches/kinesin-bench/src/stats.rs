//! What the generator measures and how it is counted: latency histograms (HdrHistogram, in
//! microseconds), record and byte counts, and errors by type with throttling kept apart, since
//! "the server pushed back" and "the server failed" call for different conclusions.
//!
//! Tasks record into `Shard`s (a few, shared by many tasks, each behind its own lock); every
//! shard keeps the measured figures (warm-up excluded) and the figures since the last progress
//! tick, which the progress task takes away once a second.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Why a call (or a record in it) did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// A JSON error answer: its `__type` (or `x-amzn-ErrorType`), namespace dropped.
    Api { status: u16, name: String },
    /// An error answer without an error type (a proxy's 502, a 503 page, ...).
    Http(u16),
    /// No answer: connect failure, reset, timeout, undecodable body.
    Transport { kind: String, detail: String },
    /// A record a PutRecords answer reports as failed: its ErrorCode.
    Record(String),
}

const THROTTLES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "SlowDown",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

impl ErrorKind {
    pub fn timeout() -> ErrorKind {
        ErrorKind::Transport {
            kind: "timeout".into(),
            detail: "no answer within --timeout-ms".into(),
        }
    }

    /// The name errors are counted under.
    pub fn key(&self) -> String {
        match self {
            ErrorKind::Api { name, .. } => name.clone(),
            ErrorKind::Http(status) => format!("HTTP {status}"),
            ErrorKind::Transport { kind, .. } => format!("transport:{kind}"),
            ErrorKind::Record(code) => format!("record:{code}"),
        }
    }

    /// The server asked us to slow down (rather than failed).
    pub fn is_throttle(&self) -> bool {
        match self {
            ErrorKind::Api { name, .. } | ErrorKind::Record(name) => {
                THROTTLES.contains(&name.as_str())
            }
            ErrorKind::Http(status) => *status == 503 || *status == 429,
            ErrorKind::Transport { .. } => false,
        }
    }

    /// For messages: what happened, with the status and detail.
    pub fn describe(&self) -> String {
        match self {
            ErrorKind::Api { status, name } => format!("HTTP {status} {name}"),
            ErrorKind::Http(status) => format!("HTTP {status}"),
            ErrorKind::Transport { kind, detail } => format!("transport error ({kind}): {detail}"),
            ErrorKind::Record(code) => format!("record error {code}"),
        }
    }
}

/// Drops an AWS error type's namespace (`com.amazonaws.kinesis.v20131202#X` → `X`) and the
/// `:http://...` suffix `x-amzn-ErrorType` may carry.
pub fn bare_error_type(raw: &str) -> &str {
    let name = raw.rsplit('#').next().unwrap_or(raw);
    name.split(':').next().unwrap_or(name).trim()
}

/// Classifies a non-200 answer.
pub fn classify_error(status: u16, header_type: Option<&str>, body: &[u8]) -> ErrorKind {
    let from_body = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        ["__type", "code", "Code"]
            .iter()
            .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_string))
    });
    match from_body.as_deref().or(header_type) {
        Some(raw) if !bare_error_type(raw).is_empty() => ErrorKind::Api {
            status,
            name: bare_error_type(raw).to_string(),
        },
        _ => ErrorKind::Http(status),
    }
}

/// The `message` of a JSON error answer, else the start of the body.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            ["message", "Message"]
                .iter()
                .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_string))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

fn histogram() -> Histogram<u64> {
    // Auto-resizing: it grows only as far as the largest value recorded.
    Histogram::new(3).expect("3 significant digits")
}

/// Errors of one kind of work, throttling apart.
#[derive(Debug, Default, Clone)]
pub struct ErrorCounts {
    pub errors: BTreeMap<String, u64>,
    pub throttled: BTreeMap<String, u64>,
    /// The first message seen for each key, so a report says what went wrong.
    pub samples: BTreeMap<String, String>,
}

impl ErrorCounts {
    pub fn add(&mut self, kind: &ErrorKind, count: u64) {
        let key = kind.key();
        if let ErrorKind::Transport { detail, .. } = kind {
            self.samples
                .entry(key.clone())
                .or_insert_with(|| detail.clone());
        }
        let map = if kind.is_throttle() {
            &mut self.throttled
        } else {
            &mut self.errors
        };
        *map.entry(key).or_default() += count;
    }

    pub fn note(&mut self, key: &str, message: &str) {
        if !message.is_empty() {
            self.samples
                .entry(key.to_string())
                .or_insert_with(|| message.to_string());
        }
    }

    pub fn merge(&mut self, other: &ErrorCounts) {
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.throttled {
            *self.throttled.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.samples {
            self.samples.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn throttled_total(&self) -> u64 {
        self.throttled.values().sum()
    }
}

/// The figures of one kind of work (producing or consuming) over some span of time.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Call latency of answered calls (HTTP 200), µs; open loop: from the intended send time.
    pub latency: Histogram<u64>,
    /// Consumers: put→get latency per tagged record, µs.
    pub put_get: Histogram<u64>,
    /// Calls made, whatever their outcome.
    pub calls: u64,
    /// Calls answered 200.
    pub ok_calls: u64,
    /// Records written (producers) or received (consumers).
    pub records: u64,
    /// Their data bytes.
    pub bytes: u64,
    /// Producers: records a PutRecords answer reported failed.
    pub failed_records: u64,
    /// Consumers: calls (or events) that brought no record.
    pub empty: u64,
    /// Consumers: records without this run's tag, or tagged outside the measured window.
    pub foreign: u64,
    /// Consumers: the largest MillisBehindLatest seen.
    pub millis_behind_max: u64,
    /// Open loop: sends that started more than --late-ms after their intended time.
    pub late: u64,
    /// Open loop: sends given up because the backlog passed --max-backlog.
    pub skipped: u64,
    /// Open loop: the largest delay between intended and actual send, µs.
    pub max_send_lag_us: u64,
    pub errors: ErrorCounts,
}

impl Default for Figures {
    fn default() -> Figures {
        Figures {
            latency: histogram(),
            put_get: histogram(),
            calls: 0,
            ok_calls: 0,
            records: 0,
            bytes: 0,
            failed_records: 0,
            empty: 0,
            foreign: 0,
            millis_behind_max: 0,
            late: 0,
            skipped: 0,
            max_send_lag_us: 0,
            errors: ErrorCounts::default(),
        }
    }
}

impl Figures {
    pub fn merge(&mut self, other: &Figures) {
        let _ = self.latency.add(&other.latency);
        let _ = self.put_get.add(&other.put_get);
        self.calls += other.calls;
        self.ok_calls += other.ok_calls;
        self.records += other.records;
        self.bytes += other.bytes;
        self.failed_records += other.failed_records;
        self.empty += other.empty;
        self.foreign += other.foreign;
        self.millis_behind_max = self.millis_behind_max.max(other.millis_behind_max);
        self.late += other.late;
        self.skipped += other.skipped;
        self.max_send_lag_us = self.max_send_lag_us.max(other.max_send_lag_us);
        self.errors.merge(&other.errors);
    }

    pub fn record_latency(&mut self, micros: u64) {
        let _ = self.latency.record(micros.max(1));
    }

    pub fn record_put_get(&mut self, micros: u64, count: u64) {
        let _ = self.put_get.record_n(micros.max(1), count);
    }
}

/// Measured figures and figures since the last progress tick.
#[derive(Default)]
pub struct Pair {
    pub measured: Figures,
    pub window: Figures,
}

impl Pair {
    /// Applies `f` to the window, and to the measured figures when `measured`.
    pub fn apply(&mut self, measured: bool, f: impl Fn(&mut Figures)) {
        f(&mut self.window);
        if measured {
            f(&mut self.measured);
        }
    }
}

pub type Shard = Arc<Mutex<Pair>>;

/// A few lock-protected shards that many tasks record into.
#[derive(Clone)]
pub struct Recorder {
    shards: Vec<Shard>,
}

impl Recorder {
    pub fn new(shards: usize) -> Recorder {
        Recorder {
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
        }
    }

    pub fn shard(&self, task: usize) -> Shard {
        self.shards[task % self.shards.len()].clone()
    }

    /// Takes the figures since the last call.
    pub fn take_window(&self) -> Figures {
        let mut total = Figures::default();
        for shard in &self.shards {
            let window = std::mem::take(&mut shard.lock().expect("stats lock").window);
            total.merge(&window);
        }
        total
    }

    pub fn measured(&self) -> Figures {
        let mut total = Figures::default();
        for shard in &self.shards {
            total.merge(&shard.lock().expect("stats lock").measured);
        }
        total
    }
}

pub fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// p50 / p90 / p99 / p99.9 / max / mean in milliseconds.
pub fn percentiles(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.5)),
        "p90": ms(h.value_at_quantile(0.9)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p99_9": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "mean": h.mean().round() / 1000.0,
    })
}

/// One line of percentiles for the human summary.
pub fn percentile_line(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    format!(
        "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_are_named_by_their_type_without_namespace() {
        let body = br#"{"__type":"com.amazonaws.kinesis.v20131202#ProvisionedThroughputExceededException","message":"Rate exceeded"}"#;
        let kind = classify_error(400, None, body);
        assert_eq!(
            kind,
            ErrorKind::Api {
                status: 400,
                name: "ProvisionedThroughputExceededException".into()
            }
        );
        assert!(kind.is_throttle());
        assert_eq!(kind.key(), "ProvisionedThroughputExceededException");
        assert_eq!(error_message(body), "Rate exceeded");

        let kind = classify_error(400, None, br#"{"__type":"ResourceNotFoundException"}"#);
        assert_eq!(kind.key(), "ResourceNotFoundException");
        assert!(!kind.is_throttle());
    }

    #[test]
    fn the_error_type_header_is_used_when_the_body_has_none() {
        let kind = classify_error(
            400,
            Some("ThrottlingException:http://internal.amazon.com/coral/"),
            b"{}",
        );
        assert_eq!(kind.key(), "ThrottlingException");
        assert!(kind.is_throttle());
    }

    #[test]
    fn non_json_errors_are_counted_by_status_and_503_is_throttling() {
        let kind = classify_error(503, None, b"<html>Slow Down</html>");
        assert_eq!(kind, ErrorKind::Http(503));
        assert_eq!(kind.key(), "HTTP 503");
        assert!(kind.is_throttle());
        let kind = classify_error(502, None, b"Bad Gateway");
        assert_eq!(kind.key(), "HTTP 502");
        assert!(!kind.is_throttle());
    }

    #[test]
    fn slowdown_and_limit_exceeded_are_throttling() {
        for name in ["SlowDown", "LimitExceededException", "ThrottlingException"] {
            let body = format!(r#"{{"__type":"{name}"}}"#);
            assert!(
                classify_error(400, None, body.as_bytes()).is_throttle(),
                "{name}"
            );
        }
        assert!(ErrorKind::Record("ProvisionedThroughputExceededException".into()).is_throttle());
        assert!(!ErrorKind::Record("InternalFailure".into()).is_throttle());
        assert!(!ErrorKind::timeout().is_throttle());
    }

    #[test]
    fn error_counts_keep_throttling_apart() {
        let mut counts = ErrorCounts::default();
        counts.add(&ErrorKind::Record("InternalFailure".into()), 3);
        counts.add(
            &ErrorKind::Record("ProvisionedThroughputExceededException".into()),
            2,
        );
        counts.add(&ErrorKind::timeout(), 1);
        counts.add(&ErrorKind::Http(503), 1);
        assert_eq!(counts.error_total(), 4);
        assert_eq!(counts.throttled_total(), 3);
        assert_eq!(counts.errors["record:InternalFailure"], 3);
        assert_eq!(counts.errors["transport:timeout"], 1);
        assert_eq!(
            counts.throttled["record:ProvisionedThroughputExceededException"],
            2
        );
        assert!(counts.samples.contains_key("transport:timeout"));
    }

    #[test]
    fn figures_merge_and_windows_are_taken_away() {
        let recorder = Recorder::new(2);
        for task in 0..4 {
            let shard = recorder.shard(task);
            let mut pair = shard.lock().unwrap();
            pair.apply(task >= 2, |f| {
                f.calls += 1;
                f.records += 10;
                f.record_latency(1000 * (task as u64 + 1));
            });
        }
        let window = recorder.take_window();
        assert_eq!(window.calls, 4);
        assert_eq!(window.records, 40);
        assert_eq!(recorder.take_window().calls, 0);
        let measured = recorder.measured();
        assert_eq!(measured.calls, 2);
        assert_eq!(measured.latency.len(), 2);
        assert!(measured.latency.max() >= 4000);
    }
}
