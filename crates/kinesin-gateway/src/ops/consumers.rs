//! Enhanced fan-out consumers: RegisterStreamConsumer, DescribeStreamConsumer,
//! ListStreamConsumers, DeregisterStreamConsumer.

use kinesin_api::model::{
    Consumer, ConsumerDescription, ConsumerStatus as WireStatus, DeregisterStreamConsumerInput,
    DeregisterStreamConsumerOutput, DescribeStreamConsumerInput, DescribeStreamConsumerOutput,
    ListStreamConsumersInput, ListStreamConsumersOutput, RegisterStreamConsumerInput,
    RegisterStreamConsumerOutput,
};
use kinesin_api::{ErrorKind, KinesisError};
use kinesin_controller::{
    consumer_not_found, Command, ConsumerKey, ConsumerMeta, ConsumerStatus, Registration,
};
use kinesin_types::{consumer_arn, stream_arn};

use super::{change, invalid_argument, ms_to_secs, page, page_size, secs_to_ms};
use crate::context::{find, RequestContext};
use crate::error::from_controller;
use crate::tokens::{self, ListConsumersToken};
use crate::Gateway;

/// ListStreamConsumers answers at most this many consumers per call, whatever MaxResults says.
const LIST_MAX_RESULTS: usize = 100;

fn status_to_wire(status: ConsumerStatus) -> WireStatus {
    match status {
        ConsumerStatus::Creating => WireStatus::Creating,
        ConsumerStatus::Active => WireStatus::Active,
        ConsumerStatus::Deleting => WireStatus::Deleting,
    }
}

fn consumer_to_wire(consumer: &ConsumerMeta) -> Consumer {
    Consumer {
        consumer_name: consumer.name.clone(),
        consumer_arn: consumer.arn.clone(),
        consumer_status: status_to_wire(consumer.status),
        consumer_creation_timestamp: ms_to_secs(consumer.created_ms),
    }
}

fn conflict(what: &str) -> KinesisError {
    invalid_argument(format!(
        "ConsumerARN and {what} refer to different consumers."
    ))
}

/// The consumer a request names: by ConsumerARN, or by StreamARN and ConsumerName, or by all
/// three as long as they agree.
pub(crate) fn consumer_key(
    ctx: &RequestContext,
    stream_arn: Option<&str>,
    name: Option<&str>,
    arn: Option<&str>,
) -> Result<ConsumerKey, KinesisError> {
    let stream = stream_arn
        .map(|s| ctx.stream_key(None, Some(s)))
        .transpose()?;
    let Some(arn) = arn else {
        return match (stream, name) {
            (Some(stream), Some(name)) => Ok(ConsumerKey {
                stream,
                name: name.to_string(),
                created_secs: None,
            }),
            _ => Err(invalid_argument(
                "ConsumerARN or both ConsumerName and StreamARN are required for this request.",
            )),
        };
    };
    let key = ConsumerKey::from_arn(arn)
        .map_err(|e| invalid_argument(format!("Invalid ConsumerARN {arn}: {e}")))?;
    if stream.is_some_and(|s| s != key.stream) {
        return Err(conflict("StreamARN"));
    }
    if name.is_some_and(|n| n != key.name) {
        return Err(conflict("ConsumerName"));
    }
    Ok(key)
}

pub(super) async fn register(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: RegisterStreamConsumerInput,
) -> Result<RegisterStreamConsumerOutput, KinesisError> {
    let key = ctx.stream_key(None, Some(&input.stream_arn))?;
    let tags = input.tags.unwrap_or_default();
    super::tags::validate_tags(&tags)?;
    let now = gateway.now_ms();
    let arn = consumer_arn(
        &stream_arn(&key.region, &key.account, &key.name),
        &input.consumer_name,
        now / 1000,
    );
    change(
        gateway,
        &Command::RegisterConsumer(Registration {
            key,
            name: input.consumer_name.clone(),
            arn: arn.clone(),
            now_ms: now,
            tags,
            max_consumers: gateway.settings.limits.max_consumers_per_stream,
        }),
    )
    .await?;
    tracing::info!(consumer = %arn, "consumer registered");
    Ok(RegisterStreamConsumerOutput {
        consumer: Consumer {
            consumer_name: input.consumer_name,
            consumer_arn: arn,
            consumer_status: WireStatus::Creating,
            consumer_creation_timestamp: ms_to_secs(now),
        },
    })
}

pub(super) fn describe(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: DescribeStreamConsumerInput,
) -> Result<DescribeStreamConsumerOutput, KinesisError> {
    let key = consumer_key(
        ctx,
        input.stream_arn.as_deref(),
        input.consumer_name.as_deref(),
        input.consumer_arn.as_deref(),
    )?;
    let state = gateway.controller.state();
    if key.created_secs.is_none() {
        // Named by stream: a missing stream is reported as such.
        find(&state, &key.stream)?;
    }
    let (stream, consumer) = state
        .consumer(&key)
        .ok_or_else(|| from_controller(consumer_not_found(&key)))?;
    let wire = consumer_to_wire(consumer);
    Ok(DescribeStreamConsumerOutput {
        consumer_description: ConsumerDescription {
            consumer_name: wire.consumer_name,
            consumer_arn: wire.consumer_arn,
            consumer_status: wire.consumer_status,
            consumer_creation_timestamp: wire.consumer_creation_timestamp,
            stream_arn: stream.arn.clone(),
        },
    })
}

pub(super) fn list(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: ListStreamConsumersInput,
) -> Result<ListStreamConsumersOutput, KinesisError> {
    let now = gateway.now_ms();
    let key = ctx.stream_key(None, Some(&input.stream_arn))?;
    let (after, created_ms) = match &input.next_token {
        Some(token) => {
            if input.stream_creation_timestamp.is_some() {
                return Err(invalid_argument(
                    "NextToken and StreamCreationTimestamp cannot be provided together.",
                ));
            }
            let token = tokens::decode::<ListConsumersToken>(token, |t| t.issued_ms, now)?;
            let same_stream = token.account == key.account
                && token.region == key.region
                && token.stream == key.name;
            if !same_stream {
                return Err(invalid_argument(
                    "NextToken belongs to another stream than StreamARN.",
                ));
            }
            (Some(token.after), Some(token.stream_created_ms))
        }
        None => (None, None),
    };
    let state = gateway.controller.state();
    let stream = find(&state, &key)?;
    if created_ms.is_some_and(|created| created != stream.created_ms) {
        return Err(invalid_argument(
            "NextToken belongs to a stream that no longer exists.",
        ));
    }
    // The timestamp tells apart streams that had the same name; clients may send back the
    // creation time rounded to the second.
    if let Some(ts) = input.stream_creation_timestamp {
        if secs_to_ms(ts) != stream.created_ms && ts.floor() as u64 != stream.created_ms / 1000 {
            return Err(KinesisError::new(
                ErrorKind::ResourceNotFound,
                format!(
                    "Stream {} under account {} with creation timestamp {ts} not found.",
                    key.name, key.account
                ),
            ));
        }
    }
    let consumers = stream
        .consumers
        .values()
        .filter(|c| after.as_deref().is_none_or(|a| c.name.as_str() > a));
    let max = page_size(input.max_results, LIST_MAX_RESULTS, LIST_MAX_RESULTS);
    let (page, more) = page(consumers, max);
    let next_token = match (more, page.last()) {
        (true, Some(last)) => Some(tokens::encode(&ListConsumersToken {
            account: key.account.clone(),
            region: key.region.clone(),
            stream: key.name.clone(),
            stream_created_ms: stream.created_ms,
            after: last.name.clone(),
            issued_ms: now,
        })),
        _ => None,
    };
    Ok(ListStreamConsumersOutput {
        consumers: Some(page.into_iter().map(consumer_to_wire).collect()),
        next_token,
    })
}

pub(super) async fn deregister(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: DeregisterStreamConsumerInput,
) -> Result<DeregisterStreamConsumerOutput, KinesisError> {
    let consumer = consumer_key(
        ctx,
        input.stream_arn.as_deref(),
        input.consumer_name.as_deref(),
        input.consumer_arn.as_deref(),
    )?;
    change(gateway, &Command::DeregisterConsumer { consumer }).await?;
    Ok(DeregisterStreamConsumerOutput {})
}
