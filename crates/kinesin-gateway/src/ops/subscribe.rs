//! SubscribeToShard: enhanced fan-out. A subscription pushes a shard's records to a registered
//! consumer for up to five minutes, as AWS event-stream messages over the request's connection
//! (HTTP/1.1 chunks or HTTP/2 data frames), in the request's protocol (JSON or CBOR).
//!
//! Records are pushed as they commit: each read waits on the shard's apply (on this node's
//! replica, or on another node's over the cluster transport when this node holds none), not on
//! a poll interval. Every event carries a `ContinuationSequenceNumber` — a resubscription
//! `AFTER_SEQUENCE_NUMBER` it loses and repeats nothing — that advances even when no record
//! arrives; at the end of a closed shard the last event has none and names the `ChildShards`
//! instead, exactly the pairing the KCL checks. Reads here are not charged to the shard's
//! GetRecords limits; each subscription has its own 2 MiB/s.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use kinesin_api::event_stream;
use kinesin_api::model::{SubscribeToShardEvent, SubscribeToShardInput};
use kinesin_api::{ErrorKind, KinesisError, Protocol};
use kinesin_controller::{
    consumer_not_active, consumer_not_found, ClusterState, ConsumerKey, ConsumerStatus, ShardMeta,
    StreamKey,
};
use kinesin_raft::TokenBuckets;
use tokio::sync::mpsc;

use super::describe::sequence_number;
use super::invalid_argument;
use super::records::{
    child_shards, iterator_type, shard_of, starting_position, usable, wire_records,
};
use crate::context::RequestContext;
use crate::error::{from_controller, from_raft};
use crate::stream_metrics::Counter;
use crate::Gateway;

/// How long a subscription lasts before the client must subscribe again (AWS: 5 minutes).
const LIFETIME: Duration = Duration::from_secs(300);
/// The longest a subscriber waits for an event while nothing is written (AWS: at most 5 s).
const KEEPALIVE: Duration = Duration::from_secs(2);
/// A new subscription of the same consumer and shard within this long of the last one is refused;
/// later, it takes over (AWS's rule).
const TAKEOVER_AFTER: Duration = Duration::from_secs(5);
/// Most records in one event.
const MAX_EVENT_RECORDS: usize = 10_000;
/// Events queued for a slow reader before the subscription waits for it.
const QUEUED_EVENTS: usize = 4;
/// While a closed shard's seal is applied but not yet in the controller's state, how long to wait
/// before looking again.
const SEAL_REPORT_POLL: Duration = Duration::from_millis(20);

/// The subscriptions this node serves, one per consumer and shard.
#[derive(Default)]
pub(crate) struct Subscriptions {
    next_token: AtomicU64,
    current: Mutex<HashMap<(String, String), (u64, Instant)>>,
}

impl Subscriptions {
    /// Registers a subscription of `consumer` to `shard`: its token, or ResourceInUse while
    /// another started less than [`TAKEOVER_AFTER`] ago (an older one is taken over).
    fn claim(&self, consumer: &str, shard: &str) -> Result<u64, KinesisError> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed) + 1;
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let key = (consumer.to_string(), shard.to_string());
        if let Some((_, started)) = current.get(&key) {
            if started.elapsed() < TAKEOVER_AFTER {
                return Err(in_use(consumer));
            }
        }
        current.insert(key, (token, Instant::now()));
        Ok(token)
    }

    fn is_current(&self, consumer: &str, shard: &str, token: u64) -> bool {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current
            .get(&(consumer.to_string(), shard.to_string()))
            .is_some_and(|(t, _)| *t == token)
    }

    fn release(&self, consumer: &str, shard: &str, token: u64) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let key = (consumer.to_string(), shard.to_string());
        if current.get(&key).is_some_and(|(t, _)| *t == token) {
            current.remove(&key);
        }
    }
}

fn in_use(consumer: &str) -> KinesisError {
    KinesisError::new(
        ErrorKind::ResourceInUse,
        format!("Another active subscription exists for this consumer: {consumer}"),
    )
}

/// A subscription that passed every check, ready to stream.
struct Plan {
    consumer: String,
    key: StreamKey,
    shard_id: String,
    position: u64,
    protocol: Protocol,
    token: u64,
}

/// Checks the request (consumer, stream, shard, starting position, the one-subscriber rule) and
/// starts the stream: its body, whose first message is the `initial-response`.
pub(crate) async fn subscribe(
    gateway: &Arc<Gateway>,
    ctx: &RequestContext,
    input: SubscribeToShardInput,
) -> Result<Body, KinesisError> {
    gateway
        .controller
        .catch_up()
        .await
        .map_err(from_controller)?;
    let state = gateway.controller.state();
    let key = consumer_stream(&state, &input.consumer_arn)?;
    let stream = usable(&state, &key)?;
    let shard = shard_of(stream, &input.shard_id)?;
    let kind = iterator_type(&input.starting_position.r#type, "StartingPosition.Type")?;
    let position = starting_position(
        gateway,
        &state,
        stream,
        shard,
        kind,
        input.starting_position.sequence_number.as_deref(),
        input.starting_position.timestamp,
        gateway.now_ms(),
    )
    .await?;
    let token = gateway
        .subscriptions
        .claim(&input.consumer_arn, &input.shard_id)
        .inspect_err(|_| {
            gateway
                .stream_metrics
                .of(stream)
                .add(Counter::SubscribeToShardRateExceeded, 1)
        })?;
    let plan = Plan {
        consumer: input.consumer_arn,
        key,
        shard_id: input.shard_id,
        position,
        protocol: ctx.protocol,
        token,
    };
    let (sender, receiver) = mpsc::channel::<Bytes>(QUEUED_EVENTS);
    let initial = event_stream::event(
        plan.protocol,
        "initial-response",
        &empty_body(plan.protocol),
    );
    // The channel is new and has room: the first message cannot be refused.
    let _ = sender.try_send(Bytes::from(initial));
    gateway.metrics.subscription_started();
    tokio::spawn(stream_events(gateway.clone(), plan, sender));
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(bytes), receiver))
    });
    Ok(Body::from_stream(body))
}

/// The stream of the consumer `arn` names, when it may subscribe: registered and ACTIVE.
fn consumer_stream(state: &ClusterState, arn: &str) -> Result<StreamKey, KinesisError> {
    let key = ConsumerKey::from_arn(arn).map_err(|e| invalid_argument(e.to_string()))?;
    let (stream, consumer) = state
        .consumer(&key)
        .ok_or_else(|| from_controller(consumer_not_found(&key)))?;
    if consumer.status != ConsumerStatus::Active {
        return Err(from_controller(consumer_not_active(&stream.key, consumer)));
    }
    Ok(stream.key.clone())
}

/// `{}` in the protocol: the initial response's payload.
fn empty_body(protocol: Protocol) -> Vec<u8> {
    protocol
        .encode_shape("SubscribeToShardOutput", &serde_json::json!({}))
        .unwrap_or_default()
}

/// Feeds a subscription's events into `sender` until its lifetime ends, the shard ends, the
/// client goes away (the receiver is dropped) or an error ends it with an exception message.
async fn stream_events(gateway: Arc<Gateway>, mut plan: Plan, sender: mpsc::Sender<Bytes>) {
    let outcome = run(&gateway, &mut plan, &sender).await;
    if let Err(error) = outcome {
        tracing::debug!(consumer = %plan.consumer, shard = %plan.shard_id, error = %error, "subscription ended by an error");
        let _ = sender
            .send(Bytes::from(event_stream::exception(plan.protocol, &error)))
            .await;
    }
    gateway
        .subscriptions
        .release(&plan.consumer, &plan.shard_id, plan.token);
    gateway.metrics.subscription_ended();
}

/// `Ok` when the subscription ended normally (lifetime over, shard ended, client gone).
async fn run(
    gateway: &Gateway,
    plan: &mut Plan,
    sender: &mpsc::Sender<Bytes>,
) -> Result<(), KinesisError> {
    let started = Instant::now();
    let mut budget = ByteBudget::new(gateway.settings.limits.subscription_bytes_per_sec);
    let mut last_event = Instant::now();
    loop {
        if !gateway
            .subscriptions
            .is_current(&plan.consumer, &plan.shard_id, plan.token)
        {
            return Err(in_use(&plan.consumer));
        }
        let lived = started.elapsed();
        if lived >= LIFETIME {
            return Ok(());
        }
        budget.wait_for_room().await;
        let state = gateway.controller.state();
        // A consumer deregistered (or its stream deleted) ends its subscriptions.
        consumer_stream(&state, &plan.consumer)?;
        let stream = usable(&state, &plan.key)?;
        let shard = shard_of(stream, &plan.shard_id)?;
        let wait = KEEPALIVE
            .saturating_sub(last_event.elapsed())
            .min(LIFETIME - lived);
        let asked = Instant::now();
        let read = gateway
            .raft
            .await_shard_records(
                shard.group,
                plan.position,
                MAX_EVENT_RECORDS,
                budget.room(),
                wait,
                &state.addresses(&shard.replicas),
            )
            .await
            .map_err(from_raft)?;
        let event = if let Some(last) = read.records.last() {
            let last_arrival = last.arrival_ms;
            plan.position = last.position + 1;
            let bytes: usize = read
                .records
                .iter()
                .map(|r| r.data.len() + r.partition_key.len())
                .sum();
            budget.spend(bytes);
            gateway
                .metrics
                .records_pushed
                .fetch_add(read.records.len() as u64, Ordering::Relaxed);
            let millis_behind_latest = read.bounds.last_arrival_ms.saturating_sub(last_arrival);
            let figures = gateway.stream_metrics.of(stream);
            figures.add(Counter::SubscribeToShardEventSuccess, 1);
            figures.add(
                Counter::SubscribeToShardEventRecords,
                read.records.len() as u64,
            );
            figures.add(Counter::SubscribeToShardEventBytes, bytes as u64);
            figures.set_millis_behind_latest(millis_behind_latest);
            SubscribeToShardEvent {
                millis_behind_latest: millis_behind_latest as i64,
                continuation_sequence_number: Some(continuation(
                    shard,
                    plan.position,
                    last_arrival,
                )),
                records: wire_records(gateway, stream, shard, read.records)?,
                child_shards: None,
            }
        } else {
            // Nothing at or after the position up to what the replica had applied when it read.
            plan.position = plan.position.max(read.scanned_to);
            let ended = shard
                .ending_position
                .is_some_and(|end| read.bounds.next_position > end && plan.position >= end);
            if ended {
                let children = child_shards(stream, shard.id);
                let last = SubscribeToShardEvent {
                    records: Vec::new(),
                    continuation_sequence_number: None,
                    millis_behind_latest: 0,
                    child_shards: Some(children),
                };
                send(sender, plan.protocol, &last).await;
                return Ok(());
            }
            if asked.elapsed() < wait {
                // Answered early with nothing: the replica has applied the seal, and the
                // controller's state does not close the shard yet (it will, soon).
                tokio::time::sleep(SEAL_REPORT_POLL).await;
            }
            if last_event.elapsed() < KEEPALIVE {
                continue;
            }
            SubscribeToShardEvent {
                records: Vec::new(),
                continuation_sequence_number: Some(continuation(
                    shard,
                    plan.position,
                    gateway.now_ms(),
                )),
                millis_behind_latest: 0,
                child_shards: None,
            }
        };
        if !send(sender, plan.protocol, &event).await {
            return Ok(());
        }
        last_event = Instant::now();
    }
}

/// The continuation for a reader whose next record is at `position`: the sequence number of the
/// position before it, so that `AFTER_SEQUENCE_NUMBER` resumes exactly there. (Position 0 never
/// holds a record, so the first continuation of a shard is its starting sequence number.)
fn continuation(shard: &ShardMeta, position: u64, arrival_ms: u64) -> String {
    sequence_number(shard, position.saturating_sub(1), arrival_ms)
}

/// Sends one event; `false` when the client went away.
async fn send(
    sender: &mpsc::Sender<Bytes>,
    protocol: Protocol,
    event: &SubscribeToShardEvent,
) -> bool {
    let payload = match protocol.encode_shape("SubscribeToShardEvent", event) {
        Ok(payload) => payload,
        Err(error) => {
            tracing::error!(error = %error, "encoding a SubscribeToShardEvent");
            return false;
        }
    };
    let message = event_stream::event(protocol, "SubscribeToShardEvent", &payload);
    sender.send(Bytes::from(message)).await.is_ok()
}

/// A subscription's allowance of bytes per second (AWS: 2 MiB/s per consumer and shard): one
/// read may overdraw it, and the next waits until it is out of debt.
struct ByteBudget(TokenBuckets<1>);

impl ByteBudget {
    /// `per_sec` 0 means unlimited.
    fn new(per_sec: u64) -> ByteBudget {
        ByteBudget(TokenBuckets::full([per_sec], Instant::now()))
    }

    /// Bytes the next read may return (at least one record is always returned).
    fn room(&self) -> usize {
        match self.0.levels(Instant::now()) {
            [None] => usize::MAX,
            [Some(level)] => level.max(1.0) as usize,
        }
    }

    fn spend(&mut self, bytes: usize) {
        self.0.charge([bytes as u64], Instant::now());
    }

    /// Waits until the allowance is out of debt.
    async fn wait_for_room(&self) {
        let wait = self.0.debt_cleared_in(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_subscription_within_five_seconds_is_refused() {
        let subscriptions = Subscriptions::default();
        let first = subscriptions.claim("c", "s").unwrap();
        let error = subscriptions.claim("c", "s").unwrap_err();
        assert_eq!(error.type_name(), "ResourceInUseException");
        assert!(error
            .message
            .contains("Another active subscription exists for this consumer: c"));
        // Another shard, or another consumer, is another subscription.
        assert!(subscriptions.claim("c", "t").is_ok());
        assert!(subscriptions.claim("d", "s").is_ok());
        assert!(subscriptions.is_current("c", "s", first));
        subscriptions.release("c", "s", first);
        let again = subscriptions.claim("c", "s").unwrap();
        assert!(subscriptions.is_current("c", "s", again));
        assert!(!subscriptions.is_current("c", "s", first));
    }

    #[test]
    fn the_byte_budget_allows_a_second_of_bytes_then_refills() {
        let mut budget = ByteBudget::new(1000);
        assert_eq!(budget.room(), 1000);
        budget.spend(1500);
        // Overdrawn: the next read may return one record, and waits first.
        assert_eq!(budget.room(), 1);
        let mut unlimited = ByteBudget::new(0);
        unlimited.spend(1 << 40);
        assert_eq!(unlimited.room(), usize::MAX);
    }
}
