//! The producers: `--connections` slots sending prebuilt bodies, either closed loop (each slot
//! sends its next request when the last is answered) or open loop (`--rate`: a fixed schedule
//! shared by all slots).
//!
//! Open loop latency is counted from each request's *intended* send time, so when the server
//! (or the generator) falls behind, the waiting counts too (no coordinated omission). The
//! schedule is a shared ticket counter rather than a queue, so memory does not grow when the
//! generator falls behind; past `--max-backlog` overdue tickets, the oldest are skipped and
//! reported.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::client::Transport;
use crate::stats::{classify_error, error_message, ErrorKind, Figures, Recorder};
use crate::workload::{Body, Workload};

/// Nanoseconds since the UNIX epoch, the clock records are tagged with.
pub fn wall_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The run's timeline and the counts producers and consumers compare.
pub struct Run {
    pub started: Instant,
    /// Warm-up ends here: what happens before is left out of the figures.
    pub measure_from: Instant,
    /// The same instant on the wall clock (ns since the epoch), for comparing with tags.
    pub measure_from_wall: u64,
    /// Producers send nothing from here on.
    pub end: Instant,
    /// Set to end the run early (Ctrl-C).
    pub stopped: AtomicBool,
    /// Records acknowledged that were sent in the measured window.
    pub produced_in_window: AtomicU64,
    /// Tagged records consumers received that were sent in the measured window.
    pub received_in_window: AtomicU64,
}

impl Run {
    /// Whether a request meant for `at` is past the end of the run.
    pub fn over(&self, at: Instant) -> bool {
        at >= self.end || self.stopped.load(Ordering::Relaxed)
    }

    pub fn new(warmup: Duration, seconds: Duration) -> Run {
        let started = Instant::now();
        let now_wall = wall_nanos();
        let measure_from = started + warmup;
        Run {
            started,
            measure_from,
            measure_from_wall: now_wall + warmup.as_nanos() as u64,
            end: measure_from + seconds,
            stopped: AtomicBool::new(false),
            produced_in_window: AtomicU64::new(0),
            received_in_window: AtomicU64::new(0),
        }
    }
}

/// The open-loop schedule: ticket `k` is due `k / rate` seconds after the start.
pub struct Schedule {
    rate: f64,
    max_backlog: u64,
    next: AtomicU64,
}

/// A ticket a slot took from the schedule.
#[derive(Debug, PartialEq)]
pub struct Claim {
    pub ticket: u64,
    /// When the request should be sent, after the schedule's start.
    pub due: Duration,
    /// Tickets given up because too many were overdue.
    pub skipped: u64,
}

/// How many tickets are due `elapsed` after the start (ticket 0 is due at once).
pub fn tickets_due(elapsed: Duration, rate: f64) -> u64 {
    (elapsed.as_nanos() as f64 * rate / 1e9).floor() as u64 + 1
}

/// When ticket `ticket` is due, after the schedule's start.
pub fn ticket_due(ticket: u64, rate: f64) -> Duration {
    Duration::from_nanos((ticket as f64 * 1e9 / rate).round() as u64)
}

/// With `next` the first ticket not taken yet and `due` tickets due: the ticket to take, and
/// how many to skip so that at most `max_backlog` stay overdue.
pub fn claim(next: u64, due: u64, max_backlog: u64) -> (u64, u64) {
    let overdue = due.saturating_sub(next);
    if overdue > max_backlog.max(1) {
        let skip = overdue - max_backlog.max(1);
        (next + skip, skip)
    } else {
        (next, 0)
    }
}

impl Schedule {
    pub fn new(rate: f64, max_backlog: u64) -> Schedule {
        Schedule {
            rate,
            max_backlog,
            next: AtomicU64::new(0),
        }
    }

    /// Takes the next ticket, `elapsed` after the schedule's start.
    pub fn claim(&self, elapsed: Duration) -> Claim {
        let due = tickets_due(elapsed, self.rate);
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            let (ticket, skipped) = claim(next, due, self.max_backlog);
            match self.next.compare_exchange_weak(
                next,
                ticket + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Claim {
                        ticket,
                        due: ticket_due(ticket, self.rate),
                        skipped,
                    }
                }
                Err(current) => next = current,
            }
        }
    }
}

#[derive(Deserialize)]
struct PutRecordsOut {
    #[serde(rename = "Records", default)]
    records: Vec<PutRecordsEntry>,
}

#[derive(Deserialize)]
struct PutRecordsEntry {
    #[serde(rename = "ErrorCode")]
    error_code: Option<String>,
}

/// The `FailedRecordCount` of a PutRecords answer, read without parsing the whole answer.
fn failed_record_count(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"FailedRecordCount\"";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &body[at..];
    let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..];
    let rest = rest.strip_prefix(b":")?;
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let digits = rest[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&rest[start..start + digits])
        .ok()?
        .parse()
        .ok()
}

/// The failed records of a PutRecords answer by ErrorCode; an empty map when all were written.
pub fn put_records_failures(body: &[u8]) -> Result<BTreeMap<String, u64>, String> {
    if failed_record_count(body) == Some(0) {
        return Ok(BTreeMap::new());
    }
    let out: PutRecordsOut =
        serde_json::from_slice(body).map_err(|e| format!("undecodable PutRecords answer: {e}"))?;
    let mut failures = BTreeMap::new();
    for entry in out.records {
        if let Some(code) = entry.error_code {
            *failures.entry(code).or_default() += 1;
        }
    }
    Ok(failures)
}

pub struct Producer {
    pub transport: Arc<Transport>,
    pub workload: Arc<Workload>,
    pub recorder: Recorder,
    pub run: Arc<Run>,
    pub record_size: u64,
    pub schedule: Option<Arc<Schedule>>,
    pub late: Duration,
}

impl Producer {
    /// Starts one task per slot; they end by themselves at `run.end` (or when stopped).
    pub fn spawn(self: &Arc<Self>, slots: usize) -> Vec<tokio::task::JoinHandle<()>> {
        (0..slots)
            .map(|slot| {
                let me = self.clone();
                tokio::spawn(async move {
                    match me.schedule.clone() {
                        None => me.closed_loop(slot).await,
                        Some(schedule) => me.open_loop(slot, &schedule).await,
                    }
                })
            })
            .collect()
    }

    async fn closed_loop(&self, slot: usize) {
        let bodies = &self.workload.bodies;
        let mut n = slot;
        loop {
            let now = Instant::now();
            if self.run.over(now) {
                return;
            }
            self.send(slot, &bodies[n % bodies.len()], now).await;
            n += 1;
        }
    }

    async fn open_loop(&self, slot: usize, schedule: &Schedule) {
        let bodies = &self.workload.bodies;
        let shard = self.recorder.shard(slot);
        let start = self.run.started;
        loop {
            let claim = schedule.claim(start.elapsed());
            let intended = start + claim.due;
            if claim.skipped > 0 {
                let measured = intended >= self.run.measure_from;
                shard
                    .lock()
                    .expect("stats lock")
                    .apply(measured, |f| f.skipped += claim.skipped);
            }
            if self.run.over(intended) {
                return;
            }
            tokio::time::sleep_until(intended.into()).await;
            if self.run.over(intended) {
                return;
            }
            let lag = Instant::now().saturating_duration_since(intended);
            let measured = intended >= self.run.measure_from;
            shard.lock().expect("stats lock").apply(measured, |f| {
                f.max_send_lag_us = f.max_send_lag_us.max(lag.as_micros() as u64);
                if lag > self.late {
                    f.late += 1;
                }
            });
            self.send(
                slot,
                &bodies[claim.ticket as usize % bodies.len()],
                intended,
            )
            .await;
        }
    }

    /// Sends one request meant to leave at `intended` and records its outcome.
    async fn send(&self, slot: usize, body: &Body, intended: Instant) {
        let sent_wall = wall_nanos();
        let (payload, hash) = if self.workload.tagged {
            (body.stamped(sent_wall), None)
        } else {
            (body.json.clone(), Some(body.sha256.as_str()))
        };
        let result = self
            .transport
            .call(slot, self.workload.op, payload, hash)
            .await;
        let latency = intended.elapsed().as_micros() as u64;
        let measured = intended >= self.run.measure_from;
        let in_window = sent_wall >= self.run.measure_from_wall;
        let record_size = self.record_size;
        let outcome: Result<BTreeMap<String, u64>, ErrorKind> = match result {
            Ok(reply) if reply.status == 200 => {
                if self.workload.op == "PutRecords" {
                    put_records_failures(&reply.body).map_err(|detail| ErrorKind::Transport {
                        kind: "bad-answer".into(),
                        detail,
                    })
                } else {
                    Ok(BTreeMap::new())
                }
            }
            Ok(reply) => {
                let kind = classify_error(reply.status, reply.error_type.as_deref(), &reply.body);
                let message = error_message(&reply.body);
                let shard = self.recorder.shard(slot);
                let mut pair = shard.lock().expect("stats lock");
                pair.apply(measured, |f: &mut Figures| {
                    f.calls += 1;
                    f.errors.add(&kind, 1);
                    f.errors.note(&kind.key(), &message);
                });
                return;
            }
            Err(kind) => Err(kind),
        };
        let shard = self.recorder.shard(slot);
        let mut pair = shard.lock().expect("stats lock");
        match outcome {
            Ok(failures) => {
                let failed: u64 = failures.values().sum();
                let written = body.records.saturating_sub(failed);
                if in_window {
                    self.run
                        .produced_in_window
                        .fetch_add(written, Ordering::Relaxed);
                }
                pair.apply(measured, |f| {
                    f.calls += 1;
                    f.ok_calls += 1;
                    f.record_latency(latency);
                    f.records += written;
                    f.bytes += written * record_size;
                    f.failed_records += failed;
                    for (code, n) in &failures {
                        f.errors.add(&ErrorKind::Record(code.clone()), *n);
                    }
                });
            }
            Err(kind) => pair.apply(measured, |f| {
                f.calls += 1;
                f.errors.add(&kind, 1);
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn tickets_fall_due_on_a_fixed_schedule() {
        assert_eq!(tickets_due(Duration::ZERO, 100.0), 1);
        assert_eq!(tickets_due(9 * MS, 100.0), 1);
        assert_eq!(tickets_due(10 * MS, 100.0), 2);
        assert_eq!(tickets_due(Duration::from_secs(1), 100.0), 101);
    }

    #[test]
    fn a_generator_on_time_takes_tickets_in_order_without_skipping() {
        let schedule = Schedule::new(100.0, 10);
        for k in 0..5 {
            let claim = schedule.claim(Duration::ZERO);
            assert_eq!(claim.ticket, k);
            assert_eq!(claim.skipped, 0);
            assert_eq!(claim.due, Duration::from_millis(10 * k));
        }
    }

    #[test]
    fn a_generator_far_behind_skips_down_to_the_backlog_cap() {
        assert_eq!(claim(0, 5, 10), (0, 0));
        assert_eq!(claim(0, 10, 10), (0, 0));
        assert_eq!(claim(0, 15, 10), (5, 5));
        assert_eq!(claim(20, 15, 10), (20, 0));

        // 1 s late at 100 requests/s: 101 tickets due, 10 may stay overdue.
        let schedule = Schedule::new(100.0, 10);
        let claim = schedule.claim(Duration::from_secs(1));
        assert_eq!(claim.skipped, 91);
        assert_eq!(claim.ticket, 91);
        assert_eq!(claim.due, Duration::from_millis(910));
        // The next slot finds 9 overdue: no more skipping.
        let next = schedule.claim(Duration::from_secs(1));
        assert_eq!((next.ticket, next.skipped), (92, 0));
    }

    /// One slot, a server that takes 20 ms, a schedule of one request every 10 ms: the
    /// generator falls further behind each request, and the latency from the intended send
    /// time shows it, where the time from the actual send (what a closed loop measures) would
    /// stay at 20 ms.
    #[test]
    fn latency_counts_from_the_intended_send_time() {
        let schedule = Schedule::new(100.0, 1_000);
        let service = 20 * MS;
        let mut now = Duration::ZERO;
        let mut from_intended = Vec::new();
        let mut from_sent = Vec::new();
        for _ in 0..5 {
            let claim = schedule.claim(now);
            let sent = now.max(claim.due);
            let done = sent + service;
            from_intended.push((done - claim.due).as_millis());
            from_sent.push((done - sent).as_millis());
            now = done;
        }
        assert_eq!(from_intended, vec![20, 30, 40, 50, 60]);
        assert_eq!(from_sent, vec![20; 5]);
    }

    #[test]
    fn put_records_answers_are_read_for_failed_records() {
        let ok = br#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"}]}"#;
        assert!(put_records_failures(ok).unwrap().is_empty());
        let spaced = br#"{ "FailedRecordCount" : 0 , "Records": [] }"#;
        assert!(put_records_failures(spaced).unwrap().is_empty());
        let partial = br#"{"FailedRecordCount":3,"Records":[
            {"SequenceNumber":"1","ShardId":"shardId-000000000000"},
            {"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded"},
            {"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded"},
            {"ErrorCode":"InternalFailure","ErrorMessage":"oops"}]}"#;
        let failures = put_records_failures(partial).unwrap();
        assert_eq!(failures["ProvisionedThroughputExceededException"], 2);
        assert_eq!(failures["InternalFailure"], 1);
        assert!(put_records_failures(b"not json").is_err());
    }
}
