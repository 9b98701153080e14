//! The consumers: reading the stream back while the producers write, to measure what a reader
//! sees (records received, put→get latency from each record's send-time tag,
//! MillisBehindLatest) and to check that what was acknowledged can be read.
//!
//! `getrecords`: one task per open shard polling GetRecords from LATEST (iterators taken
//! before the first record is sent), following NextShardIterator, and ChildShards when a shard
//! closes. `subscribe`: enhanced fan-out: RegisterStreamConsumer, then SubscribeToShard per
//! shard over HTTP/2, resubscribing from ContinuationSequenceNumber when AWS ends a
//! subscription (every 5 minutes); the consumer is deregistered at the end.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::{ApiError, Transport};
use crate::eventstream::Decoder;
use crate::producer::{wall_nanos, Run};
use crate::stats::{classify_error, error_message, ErrorKind, Pair, Recorder};
use crate::workload::decode_tag;

/// AWS ends a subscription after 5 minutes; resubscribe at the latest then.
const SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(300);
/// A subscription that sends nothing (AWS sends an event at least every few seconds) for this
/// long is considered dead.
const SUBSCRIPTION_IDLE: Duration = Duration::from_secs(60);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct RecordIn<'a> {
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, str>,
    #[serde(rename = "SequenceNumber", borrow, default)]
    sequence_number: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChildShard {
    #[serde(rename = "ShardId")]
    shard_id: String,
}

/// A GetRecords answer or a SubscribeToShardEvent: the same fields matter in both.
#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<RecordIn<'a>>,
    #[serde(rename = "NextShardIterator", default)]
    next_shard_iterator: Option<String>,
    #[serde(rename = "ContinuationSequenceNumber", default)]
    continuation_sequence_number: Option<String>,
    #[serde(rename = "MillisBehindLatest", default)]
    millis_behind_latest: Option<u64>,
    #[serde(rename = "ChildShards", default)]
    child_shards: Vec<ChildShard>,
}

/// Decoded bytes of a base64 string.
fn decoded_len(data: &str) -> u64 {
    let padding = data.bytes().rev().take_while(|&b| b == b'=').count();
    (data.len() / 4 * 3).saturating_sub(padding) as u64
}

/// What records one answer (or event) brought, counted into `pair`.
fn absorb(
    pair: &mut Pair,
    run: &Run,
    call_measured: bool,
    records: &[RecordIn<'_>],
    received_wall: u64,
    millis_behind: Option<u64>,
) {
    let mut in_window = 0u64;
    for record in records {
        let bytes = decoded_len(&record.data);
        match decode_tag(&record.data) {
            Some(sent) if sent >= run.measure_from_wall => {
                in_window += 1;
                let latency = received_wall.saturating_sub(sent) / 1000;
                pair.apply(true, |f| {
                    f.records += 1;
                    f.bytes += bytes;
                    f.record_put_get(latency, 1);
                });
            }
            _ => pair.apply(call_measured, |f| {
                f.foreign += 1;
                f.bytes += bytes;
            }),
        }
    }
    run.received_in_window
        .fetch_add(in_window, Ordering::Relaxed);
    pair.apply(call_measured, |f| {
        if records.is_empty() {
            f.empty += 1;
        }
        if let Some(behind) = millis_behind {
            f.millis_behind_max = f.millis_behind_max.max(behind);
        }
    });
}

/// Open shards of the stream (ListShards, all pages).
pub async fn open_shards(transport: &Transport, stream: &str) -> anyhow::Result<Vec<String>> {
    let mut shards = Vec::new();
    let mut request = json!({ "StreamName": stream });
    loop {
        let answer = transport.json("ListShards", &request).await?;
        for shard in answer["Shards"].as_array().into_iter().flatten() {
            let closed = shard["SequenceNumberRange"]
                .get("EndingSequenceNumber")
                .is_some_and(|v| !v.is_null());
            if !closed {
                if let Some(id) = shard["ShardId"].as_str() {
                    shards.push(id.to_string());
                }
            }
        }
        match answer["NextToken"].as_str() {
            Some(token) => request = json!({ "NextToken": token }),
            None => return Ok(shards),
        }
    }
}

async fn shard_iterator(
    transport: &Transport,
    stream: &str,
    shard: &str,
    position: &Value,
) -> Result<String, ApiError> {
    let mut request = json!({ "StreamName": stream, "ShardId": shard });
    if let (Some(target), Some(from)) = (request.as_object_mut(), position.as_object()) {
        target.extend(from.clone());
    }
    let answer = transport.json("GetShardIterator", &request).await?;
    answer["ShardIterator"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ApiError {
            op: "GetShardIterator".into(),
            kind: ErrorKind::Transport {
                kind: "bad-answer".into(),
                detail: "no ShardIterator".into(),
            },
            message: answer.to_string(),
        })
}

/// Tasks that run until stopped, including those started for child shards.
#[derive(Clone, Default)]
pub struct Tasks {
    handles: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Shards a task was started for (a merge's child has two parents).
    started: Arc<Mutex<HashSet<String>>>,
}

impl Tasks {
    /// Marks the shard started; false when it already was.
    fn claim(&self, shard: &str) -> bool {
        self.started
            .lock()
            .expect("tasks lock")
            .insert(shard.to_string())
    }

    fn push(&self, handle: tokio::task::JoinHandle<()>) {
        self.handles.lock().expect("tasks lock").push(handle);
    }

    pub fn shard_count(&self) -> usize {
        self.started.lock().expect("tasks lock").len()
    }

    pub fn stop(&self) {
        for handle in self.handles.lock().expect("tasks lock").drain(..) {
            handle.abort();
        }
    }
}

pub struct Settings {
    pub stream: String,
    pub poll_wait: Duration,
    pub limit: u32,
}

// ---------------------------------------------------------------------------------------------
// GetRecords

/// GetRecords consumers with their LATEST iterators, taken before producing starts.
pub struct Pollers {
    transport: Arc<Transport>,
    settings: Arc<Settings>,
    iterators: Vec<(String, String)>,
}

pub async fn prepare_pollers(
    transport: Arc<Transport>,
    settings: Settings,
) -> anyhow::Result<Pollers> {
    let shards = open_shards(&transport, &settings.stream).await?;
    anyhow::ensure!(
        !shards.is_empty(),
        "stream {} has no open shard",
        settings.stream
    );
    let mut iterators = Vec::with_capacity(shards.len());
    for shard in shards {
        let iterator = shard_iterator(
            &transport,
            &settings.stream,
            &shard,
            &json!({ "ShardIteratorType": "LATEST" }),
        )
        .await?;
        iterators.push((shard, iterator));
    }
    Ok(Pollers {
        transport,
        settings: Arc::new(settings),
        iterators,
    })
}

#[derive(Clone)]
struct PollContext {
    transport: Arc<Transport>,
    settings: Arc<Settings>,
    recorder: Recorder,
    run: Arc<Run>,
    tasks: Tasks,
}

impl Pollers {
    pub fn start(&self, recorder: Recorder, run: Arc<Run>) -> Tasks {
        let tasks = Tasks::default();
        let context = PollContext {
            transport: self.transport.clone(),
            settings: self.settings.clone(),
            recorder,
            run,
            tasks: tasks.clone(),
        };
        for (shard, iterator) in &self.iterators {
            context.spawn(shard.clone(), Some(iterator.clone()), "LATEST");
        }
        tasks
    }
}

impl PollContext {
    /// Starts polling `shard` from `iterator`, else from `start` (TRIM_HORIZON for a child
    /// shard); `start` is also where an iterator that expired before any record restarts.
    fn spawn(&self, shard: String, iterator: Option<String>, start: &'static str) {
        if !self.tasks.claim(&shard) {
            return;
        }
        let me = self.clone();
        // The slot picks the statistics shard and, in turn, the endpoint (`client::assign`).
        let slot = self.tasks.shard_count();
        self.tasks.push(tokio::spawn(async move {
            me.poll(slot, shard, iterator, start).await
        }));
    }

    fn count_error(&self, slot: usize, measured: bool, kind: &ErrorKind, message: &str) {
        let shard = self.recorder.shard(slot);
        let mut pair = shard.lock().expect("stats lock");
        pair.apply(measured, |f| {
            f.calls += 1;
            f.errors.add(kind, 1);
            f.errors.note(&kind.key(), message);
        });
    }

    async fn poll(self, slot: usize, shard: String, iterator: Option<String>, start: &'static str) {
        let stream = self.settings.stream.clone();
        let mut backoff = BACKOFF_START;
        let mut last_sequence: Option<String> = None;
        let mut iterator = iterator;
        loop {
            let current = match iterator.take() {
                Some(it) => it,
                None => {
                    // A child shard from its start, or an expired iterator renewed after
                    // the last record read.
                    let position = match &last_sequence {
                        Some(seq) => json!({
                            "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                            "StartingSequenceNumber": seq,
                        }),
                        None => json!({ "ShardIteratorType": start }),
                    };
                    match shard_iterator(&self.transport, &stream, &shard, &position).await {
                        Ok(it) => it,
                        Err(error) => {
                            let measured = Instant::now() >= self.run.measure_from;
                            self.count_error(slot, measured, &error.kind, &error.message);
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                            continue;
                        }
                    }
                }
            };
            let body = json!({ "ShardIterator": current, "Limit": self.settings.limit });
            let started = Instant::now();
            let measured = started >= self.run.measure_from;
            let reply = self
                .transport
                .call(slot, "GetRecords", Bytes::from(body.to_string()), None)
                .await;
            let received_wall = wall_nanos();
            let latency = started.elapsed().as_micros() as u64;
            let reply = match reply {
                Ok(reply) => reply,
                Err(kind) => {
                    self.count_error(slot, measured, &kind, "");
                    iterator = Some(current);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            if reply.status != 200 {
                let kind = classify_error(reply.status, reply.error_type.as_deref(), &reply.body);
                self.count_error(slot, measured, &kind, &error_message(&reply.body));
                let expired = matches!(&kind, ErrorKind::Api { name, .. } if name == "ExpiredIteratorException");
                if !expired {
                    iterator = Some(current);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            backoff = BACKOFF_START;
            let batch: Batch<'_> = match serde_json::from_slice(&reply.body) {
                Ok(batch) => batch,
                Err(e) => {
                    let kind = ErrorKind::Transport {
                        kind: "bad-answer".into(),
                        detail: format!("undecodable GetRecords answer: {e}"),
                    };
                    self.count_error(slot, measured, &kind, "");
                    iterator = Some(current);
                    tokio::time::sleep(BACKOFF_MAX).await;
                    continue;
                }
            };
            if let Some(seq) = batch
                .records
                .last()
                .and_then(|r| r.sequence_number.as_ref())
            {
                last_sequence = Some(seq.to_string());
            }
            let empty = batch.records.is_empty();
            {
                let stats = self.recorder.shard(slot);
                let mut pair = stats.lock().expect("stats lock");
                pair.apply(measured, |f| {
                    f.calls += 1;
                    f.ok_calls += 1;
                    f.record_latency(latency);
                });
                absorb(
                    &mut pair,
                    &self.run,
                    measured,
                    &batch.records,
                    received_wall,
                    batch.millis_behind_latest,
                );
            }
            match batch.next_shard_iterator {
                Some(next) => iterator = Some(next),
                None => {
                    // The shard is closed and read to its end: read its children (asking
                    // ListShards when the answer does not name them).
                    let mut children: Vec<String> =
                        batch.child_shards.into_iter().map(|c| c.shard_id).collect();
                    if children.is_empty() {
                        children = children_of(&self.transport, &stream, &shard)
                            .await
                            .unwrap_or_default();
                    }
                    for child in children {
                        self.spawn(child, None, "TRIM_HORIZON");
                    }
                    return;
                }
            }
            if empty && !self.settings.poll_wait.is_zero() {
                tokio::time::sleep(self.settings.poll_wait).await;
            }
        }
    }
}

/// Shards whose parent (or adjacent parent) is `shard`.
async fn children_of(
    transport: &Transport,
    stream: &str,
    shard: &str,
) -> anyhow::Result<Vec<String>> {
    let mut children = Vec::new();
    let mut request = json!({ "StreamName": stream });
    loop {
        let answer = transport.json("ListShards", &request).await?;
        for s in answer["Shards"].as_array().into_iter().flatten() {
            if s["ParentShardId"].as_str() == Some(shard)
                || s["AdjacentParentShardId"].as_str() == Some(shard)
            {
                if let Some(id) = s["ShardId"].as_str() {
                    children.push(id.to_string());
                }
            }
        }
        match answer["NextToken"].as_str() {
            Some(token) => request = json!({ "NextToken": token }),
            None => return Ok(children),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SubscribeToShard

/// A registered stream consumer and the shards to subscribe to.
pub struct Subscribers {
    control: Arc<Transport>,
    transport: Arc<Transport>,
    pub consumer_arn: String,
    shards: Vec<String>,
    /// Subscriptions start at this time (AT_TIMESTAMP), taken before producing, so records
    /// written while a subscription is being set up are not missed.
    start_seconds: f64,
    stream: String,
}

pub async fn prepare_subscribers(
    control: Arc<Transport>,
    transport: Arc<Transport>,
    stream: &str,
    stream_arn: &str,
    consumer_name: &str,
) -> anyhow::Result<Subscribers> {
    let registered = control
        .json(
            "RegisterStreamConsumer",
            &json!({ "StreamARN": stream_arn, "ConsumerName": consumer_name }),
        )
        .await;
    let consumer_arn = match registered {
        Ok(answer) => answer["Consumer"]["ConsumerARN"]
            .as_str()
            .context("RegisterStreamConsumer answered without Consumer.ConsumerARN")?
            .to_string(),
        Err(error) if error.api_type() == Some("ResourceInUseException") => {
            let answer = control
                .json(
                    "DescribeStreamConsumer",
                    &json!({ "StreamARN": stream_arn, "ConsumerName": consumer_name }),
                )
                .await?;
            answer["ConsumerDescription"]["ConsumerARN"]
                .as_str()
                .context("DescribeStreamConsumer answered without a ConsumerARN")?
                .to_string()
        }
        Err(error) => return Err(error.into()),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answer = control
            .json(
                "DescribeStreamConsumer",
                &json!({ "ConsumerARN": consumer_arn }),
            )
            .await?;
        let status = answer["ConsumerDescription"]["ConsumerStatus"]
            .as_str()
            .unwrap_or("");
        if status == "ACTIVE" {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "stream consumer {consumer_name} still {status:?} after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let shards = open_shards(&control, stream).await?;
    anyhow::ensure!(!shards.is_empty(), "stream {stream} has no open shard");
    let start_seconds = wall_nanos() as f64 / 1e9;
    Ok(Subscribers {
        control,
        transport,
        consumer_arn,
        shards,
        start_seconds,
        stream: stream.to_string(),
    })
}

/// Deregisters the stream consumer (at the end of the run).
pub async fn deregister(control: &Transport, consumer_arn: &str) -> Result<(), ApiError> {
    control
        .json(
            "DeregisterStreamConsumer",
            &json!({ "ConsumerARN": consumer_arn }),
        )
        .await
        .map(|_| ())
}

#[derive(Clone)]
struct SubscribeContext {
    transport: Arc<Transport>,
    control: Arc<Transport>,
    consumer_arn: Arc<str>,
    stream: Arc<str>,
    recorder: Recorder,
    run: Arc<Run>,
    tasks: Tasks,
}

/// How a subscription ended.
enum Ended {
    /// Resubscribe from the last position (AWS's 5 minutes are up, or an error).
    Resubscribe,
    /// The shard is closed and read to its end; its children were started.
    ShardEnded,
}

impl Subscribers {
    pub fn start(&self, recorder: Recorder, run: Arc<Run>) -> Tasks {
        let tasks = Tasks::default();
        let context = SubscribeContext {
            transport: self.transport.clone(),
            control: self.control.clone(),
            consumer_arn: self.consumer_arn.as_str().into(),
            stream: self.stream.as_str().into(),
            recorder,
            run,
            tasks: tasks.clone(),
        };
        let position = json!({ "Type": "AT_TIMESTAMP", "Timestamp": self.start_seconds });
        for shard in &self.shards {
            context.spawn(shard.clone(), position.clone());
        }
        tasks
    }
}

impl SubscribeContext {
    fn spawn(&self, shard: String, position: Value) {
        if !self.tasks.claim(&shard) {
            return;
        }
        let me = self.clone();
        // The slot picks the statistics shard and, in turn, the endpoint (`client::assign`).
        let slot = self.tasks.shard_count();
        self.tasks.push(tokio::spawn(async move {
            me.subscribe_loop(slot, shard, position).await
        }));
    }

    fn count_error(&self, slot: usize, kind: &ErrorKind, message: &str) {
        let measured = Instant::now() >= self.run.measure_from;
        let shard = self.recorder.shard(slot);
        let mut pair = shard.lock().expect("stats lock");
        pair.apply(measured, |f| {
            f.errors.add(kind, 1);
            f.errors.note(&kind.key(), message);
        });
    }

    async fn subscribe_loop(self, slot: usize, shard: String, mut position: Value) {
        let mut backoff = BACKOFF_START;
        loop {
            let started = Instant::now();
            match self.subscribe_once(slot, &shard, &mut position).await {
                Ok(Ended::ShardEnded) => return,
                // A subscription that lived its time: renew it at once.
                Ok(Ended::Resubscribe) if started.elapsed() >= Duration::from_secs(1) => {
                    backoff = BACKOFF_START
                }
                // One the server ended at once: do not spin.
                Ok(Ended::Resubscribe) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err((kind, message)) => {
                    self.count_error(slot, &kind, &message);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// One subscription, read until it ends. `position` follows ContinuationSequenceNumber.
    async fn subscribe_once(
        &self,
        slot: usize,
        shard: &str,
        position: &mut Value,
    ) -> Result<Ended, (ErrorKind, String)> {
        let body = json!({
            "ConsumerARN": &*self.consumer_arn,
            "ShardId": shard,
            "StartingPosition": position,
        });
        let request = self
            .transport
            .request(
                slot,
                "SubscribeToShard",
                Bytes::from(body.to_string()),
                None,
            )
            .map_err(|e| {
                (
                    ErrorKind::Transport {
                        kind: "build".into(),
                        detail: e.to_string(),
                    },
                    String::new(),
                )
            })?;
        let started = Instant::now();
        let response = self
            .transport
            .send(slot, request)
            .await
            .map_err(|kind| (kind, String::new()))?;
        let status = response.status().as_u16();
        let measured = started >= self.run.measure_from;
        {
            let stats = self.recorder.shard(slot);
            let mut pair = stats.lock().expect("stats lock");
            pair.apply(measured, |f| {
                f.calls += 1;
                if status == 200 {
                    f.ok_calls += 1;
                    f.record_latency(started.elapsed().as_micros() as u64);
                }
            });
        }
        if status != 200 {
            let error_type = response
                .headers()
                .get("x-amzn-errortype")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let kind = classify_error(status, error_type.as_deref(), &body);
            return Err((kind, error_message(&body)));
        }
        let mut body = response.into_body();
        let mut decoder = Decoder::default();
        let deadline = tokio::time::Instant::from(started + SUBSCRIPTION_LIFETIME);
        loop {
            let frame = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(Ended::Resubscribe),
                frame = tokio::time::timeout(SUBSCRIPTION_IDLE, body.frame()) => frame,
            };
            let frame = match frame {
                Err(_) => {
                    return Err((
                        ErrorKind::Transport {
                            kind: "idle".into(),
                            detail: "subscription sent nothing for 60 s".into(),
                        },
                        String::new(),
                    ))
                }
                Ok(None) => return Ok(Ended::Resubscribe),
                Ok(Some(Err(e))) => {
                    return Err((
                        ErrorKind::Transport {
                            kind: "body".into(),
                            detail: e.to_string(),
                        },
                        String::new(),
                    ))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            decoder.push(&data);
            loop {
                let message = match decoder.next_message() {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(e) => {
                        return Err((
                            ErrorKind::Transport {
                                kind: "eventstream".into(),
                                detail: e.to_string(),
                            },
                            String::new(),
                        ))
                    }
                };
                match message.header(":message-type") {
                    Some("event") => {}
                    Some("exception") => {
                        let name = message.header(":exception-type").unwrap_or("exception");
                        return Err((
                            ErrorKind::Api {
                                status: 200,
                                name: name.to_string(),
                            },
                            error_message(&message.payload),
                        ));
                    }
                    Some("error") => {
                        let name = message.header(":error-code").unwrap_or("error");
                        let text = message.header(":error-message").unwrap_or("");
                        return Err((
                            ErrorKind::Api {
                                status: 200,
                                name: name.to_string(),
                            },
                            text.to_string(),
                        ));
                    }
                    other => {
                        return Err((
                            ErrorKind::Transport {
                                kind: "eventstream".into(),
                                detail: format!("unexpected :message-type {other:?}"),
                            },
                            String::new(),
                        ))
                    }
                }
                if message.header(":event-type") != Some("SubscribeToShardEvent") {
                    continue; // initial-response
                }
                let received_wall = wall_nanos();
                let event: Batch<'_> = serde_json::from_slice(&message.payload).map_err(|e| {
                    (
                        ErrorKind::Transport {
                            kind: "bad-answer".into(),
                            detail: format!("undecodable SubscribeToShardEvent: {e}"),
                        },
                        String::new(),
                    )
                })?;
                let measured = Instant::now() >= self.run.measure_from;
                {
                    let stats = self.recorder.shard(slot);
                    let mut pair = stats.lock().expect("stats lock");
                    absorb(
                        &mut pair,
                        &self.run,
                        measured,
                        &event.records,
                        received_wall,
                        event.millis_behind_latest,
                    );
                }
                match event.continuation_sequence_number {
                    Some(seq) => {
                        *position =
                            json!({ "Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": seq });
                    }
                    None => {
                        let children: Vec<String> =
                            event.child_shards.into_iter().map(|c| c.shard_id).collect();
                        let children = if children.is_empty() {
                            children_of(&self.control, &self.stream, shard)
                                .await
                                .unwrap_or_default()
                        } else {
                            children
                        };
                        for child in children {
                            self.spawn(child, json!({ "Type": "TRIM_HORIZON" }));
                        }
                        return Ok(Ended::ShardEnded);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstream::{encode, HeaderValue};
    use crate::workload::encode_tag;
    use base64::Engine as _;

    /// A SubscribeToShard server: what each subscription (by shard and attempt) sends.
    mod fake {
        use super::*;
        use std::convert::Infallible;
        use std::pin::Pin;
        use std::task::{Context, Poll};

        use hyper::body::{Frame, Incoming};
        use hyper::{Request, Response};
        use hyper_util::rt::{TokioExecutor, TokioIo};

        /// A response body fed from a channel; it ends when the sender is dropped.
        pub struct ChannelBody(pub tokio::sync::mpsc::UnboundedReceiver<Bytes>);

        impl hyper::body::Body for ChannelBody {
            type Data = Bytes;
            type Error = Infallible;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
                self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
            }
        }

        pub fn frame(message_type: &str, kind: &str, payload: &Value) -> Bytes {
            let kind_header = if message_type == "exception" {
                ":exception-type"
            } else {
                ":event-type"
            };
            Bytes::from(encode(
                &[
                    (":message-type", HeaderValue::String(message_type.into())),
                    (kind_header, HeaderValue::String(kind.into())),
                ],
                payload.to_string().as_bytes(),
            ))
        }

        pub fn tagged() -> Value {
            let tag = std::str::from_utf8(&encode_tag(wall_nanos()))
                .unwrap()
                .to_string();
            json!({ "Data": format!("{tag}AAAA"), "SequenceNumber": "1", "PartitionKey": "k" })
        }

        /// Calls made: (ShardId, StartingPosition); senders kept to hold streams open.
        #[derive(Default)]
        pub struct State {
            pub calls: Mutex<Vec<(String, Value)>>,
            pub open: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Bytes>>>,
        }

        async fn handle(
            state: Arc<State>,
            request: Request<Incoming>,
        ) -> Result<Response<ChannelBody>, Infallible> {
            assert_eq!(request.version(), http::Version::HTTP_2);
            let target = request.headers()["x-amz-target"]
                .to_str()
                .unwrap()
                .to_string();
            assert_eq!(target, "Kinesis_20131202.SubscribeToShard");
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&body).unwrap();
            let shard = body["ShardId"].as_str().unwrap().to_string();
            let attempt = {
                let mut calls = state.calls.lock().unwrap();
                calls.push((shard.clone(), body["StartingPosition"].clone()));
                calls.iter().filter(|(s, _)| *s == shard).count()
            };
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let initial = frame("event", "initial-response", &json!({}));
            let event = "SubscribeToShardEvent";
            match (shard.as_str(), attempt) {
                ("shardId-0", 1) => {
                    tx.send(initial).unwrap();
                    let e = json!({"Records": [tagged(), tagged()], "ContinuationSequenceNumber": "2",
                                   "MillisBehindLatest": 3});
                    // Split across DATA frames.
                    let bytes = frame("event", event, &e);
                    tx.send(bytes.slice(..10)).unwrap();
                    tx.send(bytes.slice(10..)).unwrap();
                }
                ("shardId-0", 2) => {
                    tx.send(initial).unwrap();
                    let e = json!({"Records": [tagged()], "ContinuationSequenceNumber": null,
                                   "MillisBehindLatest": 0,
                                   "ChildShards": [{"ShardId": "shardId-1", "ParentShards": ["shardId-0"],
                                                    "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"}}]});
                    tx.send(frame("event", event, &e)).unwrap();
                }
                ("shardId-1", 1) => {
                    tx.send(initial).unwrap();
                    let e = json!({"message": "another subscription is active"});
                    tx.send(frame("exception", "ResourceInUseException", &e))
                        .unwrap();
                }
                ("shardId-1", 2) => {
                    tx.send(initial).unwrap();
                    let e = json!({"Records": [tagged()], "ContinuationSequenceNumber": "9",
                                   "MillisBehindLatest": 0});
                    tx.send(frame("event", event, &e)).unwrap();
                    state.open.lock().unwrap().push(tx.clone());
                }
                other => panic!("unexpected subscription {other:?}"),
            }
            drop(tx);
            let mut response = Response::new(ChannelBody(rx));
            response.headers_mut().insert(
                "content-type",
                "application/vnd.amazon.eventstream".parse().unwrap(),
            );
            Ok(response)
        }

        /// Serves h2c on an ephemeral port; returns the endpoint.
        pub async fn serve(state: Arc<State>) -> String {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            handle(state.clone(), request)
                        });
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            format!("http://{address}")
        }
    }

    /// SubscribeToShard end to end against a fake HTTP/2 server: records counted with their
    /// put→get latency, the resubscription continues from ContinuationSequenceNumber, a closed
    /// shard's child is read from TRIM_HORIZON, an exception event is counted and retried.
    #[tokio::test]
    async fn subscribers_follow_continuations_children_and_exceptions() {
        let state = Arc::new(fake::State::default());
        let endpoint = fake::serve(state.clone()).await;
        let shared = crate::client::Shared {
            signer: None,
            timeout: Duration::from_secs(5),
            server: Default::default(),
            tls: crate::client::tls_config(None).unwrap(),
        };
        let endpoints = [Arc::new(crate::client::Endpoint::parse(&endpoint).unwrap())];
        let h2 = Arc::new(Transport::new(&shared, &endpoints, true, 1, 1).unwrap());
        let control = Arc::new(Transport::new(&shared, &endpoints, false, 1, 1).unwrap());
        let subscribers = Subscribers {
            control,
            transport: h2,
            consumer_arn: "arn:consumer".into(),
            shards: vec!["shardId-0".into()],
            start_seconds: 1234.5,
            stream: "s".into(),
        };
        let run = Arc::new(Run::new(Duration::ZERO, Duration::from_secs(60)));
        let recorder = Recorder::new(2);
        let tasks = subscribers.start(recorder.clone(), run.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while run.received_in_window.load(Ordering::Relaxed) < 4 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        tasks.stop();
        assert_eq!(tasks.shard_count(), 2);
        let calls = state.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec![
                (
                    "shardId-0".to_string(),
                    json!({"Type": "AT_TIMESTAMP", "Timestamp": 1234.5})
                ),
                (
                    "shardId-0".to_string(),
                    json!({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "2"})
                ),
                ("shardId-1".to_string(), json!({"Type": "TRIM_HORIZON"})),
                ("shardId-1".to_string(), json!({"Type": "TRIM_HORIZON"})),
            ]
        );
        let f = recorder.measured();
        assert_eq!(f.records, 4);
        assert_eq!(f.put_get.len(), 4);
        assert_eq!(f.calls, 4);
        assert_eq!(f.ok_calls, 4);
        assert_eq!(f.millis_behind_max, 3);
        assert_eq!(f.errors.errors.get("ResourceInUseException"), Some(&1));
        assert_eq!(
            f.errors
                .samples
                .get("ResourceInUseException")
                .map(String::as_str),
            Some("another subscription is active")
        );
    }

    #[test]
    fn decoded_length_of_base64() {
        let engine = base64::engine::general_purpose::STANDARD;
        for n in 0..10 {
            assert_eq!(decoded_len(&engine.encode(vec![1u8; n])), n as u64);
        }
    }

    /// A SubscribeToShardEvent as AWS frames it, through the decoder into the statistics.
    #[test]
    fn subscribe_events_are_counted_with_put_get_latency() {
        let run = Run::new(Duration::ZERO, Duration::from_secs(1));
        let sent = run.measure_from_wall + 1_000_000;
        let tag = std::str::from_utf8(&encode_tag(sent)).unwrap().to_string();
        let payload = json!({
            "Records": [
                {"Data": format!("{tag}AAAA"), "SequenceNumber": "1", "PartitionKey": "a",
                 "ApproximateArrivalTimestamp": 1.0},
                {"Data": "aGVsbG8=", "SequenceNumber": "2", "PartitionKey": "b",
                 "ApproximateArrivalTimestamp": 1.0},
            ],
            "ContinuationSequenceNumber": "2",
            "MillisBehindLatest": 7,
            "ChildShards": [],
        })
        .to_string();
        let frame = encode(
            &[
                (":message-type", HeaderValue::String("event".into())),
                (
                    ":event-type",
                    HeaderValue::String("SubscribeToShardEvent".into()),
                ),
            ],
            payload.as_bytes(),
        );
        let mut decoder = Decoder::default();
        decoder.push(&frame);
        let message = decoder.next_message().unwrap().unwrap();
        let event: Batch<'_> = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(event.continuation_sequence_number.as_deref(), Some("2"));
        let mut pair = Pair::default();
        absorb(
            &mut pair,
            &run,
            true,
            &event.records,
            sent + 3_000_000,
            event.millis_behind_latest,
        );
        let f = &pair.measured;
        assert_eq!(f.records, 1);
        assert_eq!(f.foreign, 1);
        assert_eq!(f.bytes, 15 + 5);
        assert_eq!(f.millis_behind_max, 7);
        assert_eq!(f.put_get.len(), 1);
        assert!((2990..=3010).contains(&f.put_get.max()));
        assert_eq!(run.received_in_window.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn records_tagged_before_the_window_are_not_counted_as_received() {
        let run = Run::new(Duration::from_secs(5), Duration::from_secs(1));
        let tag = std::str::from_utf8(&encode_tag(run.measure_from_wall - 1))
            .unwrap()
            .to_string();
        let records = vec![RecordIn {
            data: Cow::Owned(tag),
            sequence_number: None,
        }];
        let mut pair = Pair::default();
        absorb(&mut pair, &run, false, &records, wall_nanos(), None);
        assert_eq!(pair.window.foreign, 1);
        assert_eq!(pair.window.records, 0);
        assert_eq!(pair.measured.foreign, 0);
        assert_eq!(run.received_in_window.load(Ordering::Relaxed), 0);
    }
}
