//! Whether the signing principal may do what a request asks: every operation mapped to its IAM
//! action (`kinesis:<Operation>`) and the resource it acts on (a stream or consumer ARN, or `*`
//! for operations on no resource), decided against the principal's identity policies and the
//! resource's policy (see [`crate::policy`]). Only when the node has credentials.

use std::collections::BTreeMap;

use kinesin_api::{KinesisError, Request};
use kinesin_controller::{ClusterState, ConsumerKey, Resource, StreamKey};
use kinesin_types::stream_arn;

use crate::context::RequestContext;
use crate::credentials::Principal;
use crate::ops::{consumer_key, iterator_codec, resource};
use crate::policy::{decide, AccessRequest, Denial, Policy, PolicyKind};
use crate::tokens::{self, ListShardsToken};
use crate::Gateway;

/// What a request acts on.
enum Target {
    /// ListStreams, DescribeLimits, the account settings: `*`, in the caller's account.
    Account,
    Stream(StreamKey),
    Consumer(ConsumerKey),
}

/// The resource a target names as the policies see it, with what the cluster knows of it.
struct Resolved {
    arn: String,
    account: String,
    policy: Option<String>,
    tags: BTreeMap<String, String>,
    consumer_name: Option<String>,
}

/// Refuses the request with AWS's AccessDeniedException unless the policies allow it.
/// `secure`: whether it came over TLS (`aws:SecureTransport`).
pub(crate) fn authorize(
    gateway: &Gateway,
    principal: &Principal,
    ctx: &RequestContext,
    request: &Request,
    secure: bool,
) -> Result<(), KinesisError> {
    let state = gateway.controller.state();
    let now_ms = gateway.now_ms();
    // A request naming nothing readable (a malformed ARN, iterator or token) is refused by its
    // operation with the same parsers, before it reads or changes anything.
    let Some(target) = target(&state, ctx, request, now_ms) else {
        return Ok(());
    };
    let resolved = resolve(&state, principal, target);
    let action = format!("kinesis:{}", request.operation().name());
    let principal_arn = principal.arn();
    let mut context = BTreeMap::from([
        (
            "aws:principalaccount".to_string(),
            principal.account.clone(),
        ),
        ("aws:principalarn".to_string(), principal_arn.clone()),
        ("aws:principaltype".to_string(), "User".to_string()),
        ("aws:username".to_string(), principal.name.clone()),
        ("aws:securetransport".to_string(), secure.to_string()),
        ("aws:requestedregion".to_string(), ctx.region.clone()),
        ("aws:resourceaccount".to_string(), resolved.account.clone()),
        ("aws:epochtime".to_string(), (now_ms / 1000).to_string()),
    ]);
    for (key, value) in &resolved.tags {
        context.insert(
            format!("aws:resourcetag/{}", key.to_lowercase()),
            value.clone(),
        );
    }
    if let Some(name) = &resolved.consumer_name {
        context.insert("kinesis:consumername".to_string(), name.clone());
    }
    let policy = resolved.policy.as_deref().and_then(|text| {
        Policy::parse(text, PolicyKind::Resource)
            .inspect_err(|error| {
                // Stored before policies were enforced: it can neither allow nor deny.
                tracing::warn!(resource = %resolved.arn, %error, "resource policy ignored: it is not a valid policy");
            })
            .ok()
    });
    let access = AccessRequest {
        principal_arn: &principal_arn,
        principal_account: &principal.account,
        action: &action,
        resource: &resolved.arn,
        resource_account: &resolved.account,
        context: &context,
    };
    decide(&principal.policies, policy.as_ref(), &access)
        .map_err(|denial| denied(&principal_arn, &action, &resolved.arn, denial))
}

/// AWS's message: "User: ARN is not authorized to perform: ACTION on resource: ARN because
/// ..." (no `on resource:` for operations on no resource).
fn denied(principal_arn: &str, action: &str, resource: &str, denial: Denial) -> KinesisError {
    let on = if resource == "*" {
        String::new()
    } else {
        format!(" on resource: {resource}")
    };
    let why = match denial {
        Denial::ExplicitIdentityDeny => "with an explicit deny in an identity-based policy".into(),
        Denial::ExplicitResourceDeny => "with an explicit deny in a resource-based policy".into(),
        Denial::NoIdentityAllow => {
            format!("because no identity-based policy allows the {action} action")
        }
        Denial::NoResourceAllow => {
            format!("because no resource-based policy allows the {action} action")
        }
    };
    KinesisError::access_denied(format!(
        "User: {principal_arn} is not authorized to perform: {action}{on} {why}"
    ))
}

fn target(
    state: &ClusterState,
    ctx: &RequestContext,
    request: &Request,
    now_ms: u64,
) -> Option<Target> {
    let stream = |name: Option<&String>, arn: Option<&String>| {
        ctx.stream_key(name.map(String::as_str), arn.map(String::as_str))
            .ok()
            .map(Target::Stream)
    };
    let consumer = |stream_arn: &Option<String>, name: &Option<String>, arn: &Option<String>| {
        consumer_key(ctx, stream_arn.as_deref(), name.as_deref(), arn.as_deref())
            .ok()
            .map(Target::Consumer)
    };
    let by_arn = |arn: &str| match resource(arn).ok()? {
        Resource::Stream(key) => Some(Target::Stream(key)),
        Resource::Consumer(key) => Some(Target::Consumer(key)),
    };
    use Request as R;
    match request {
        R::ListStreams(_)
        | R::DescribeLimits(_)
        | R::DescribeAccountSettings(_)
        | R::UpdateAccountSettings(_) => Some(Target::Account),
        R::CreateStream(i) => stream(Some(&i.stream_name), None),
        R::DeleteStream(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::DescribeStream(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::DescribeStreamSummary(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::IncreaseStreamRetentionPeriod(i) => {
            stream(i.stream_name.as_ref(), i.stream_arn.as_ref())
        }
        R::DecreaseStreamRetentionPeriod(i) => {
            stream(i.stream_name.as_ref(), i.stream_arn.as_ref())
        }
        R::PutRecord(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::PutRecords(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::GetShardIterator(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::AddTagsToStream(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::RemoveTagsFromStream(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::ListTagsForStream(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::SplitShard(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::MergeShards(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::UpdateShardCount(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::StartStreamEncryption(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::StopStreamEncryption(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::EnableEnhancedMonitoring(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::DisableEnhancedMonitoring(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::UpdateStreamWarmThroughput(i) => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        R::UpdateMaxRecordSize(i) => stream(None, i.stream_arn.as_ref()),
        R::UpdateStreamMode(i) => stream(None, Some(&i.stream_arn)),
        R::RegisterStreamConsumer(i) => stream(None, Some(&i.stream_arn)),
        R::ListStreamConsumers(i) => stream(None, Some(&i.stream_arn)),
        R::ListShards(i) => match &i.next_token {
            // The listing goes on in the stream its token names, whatever else is given.
            Some(token) => {
                let token =
                    tokens::decode::<ListShardsToken>(token, |t| t.issued_ms, now_ms).ok()?;
                Some(Target::Stream(StreamKey {
                    account: token.account,
                    region: token.region,
                    name: token.stream,
                }))
            }
            None => stream(i.stream_name.as_ref(), i.stream_arn.as_ref()),
        },
        // GetRecords reads the stream its iterator names (a StreamARN beside it is not used).
        R::GetRecords(i) => {
            let payload = iterator_codec(state)
                .ok()?
                .decode(&i.shard_iterator, now_ms)
                .ok()?;
            Some(Target::Stream(StreamKey {
                account: payload.account,
                region: payload.region,
                name: payload.stream_name,
            }))
        }
        R::DescribeStreamConsumer(i) => consumer(&i.stream_arn, &i.consumer_name, &i.consumer_arn),
        R::DeregisterStreamConsumer(i) => {
            consumer(&i.stream_arn, &i.consumer_name, &i.consumer_arn)
        }
        R::SubscribeToShard(i) => ConsumerKey::from_arn(&i.consumer_arn)
            .ok()
            .map(Target::Consumer),
        R::TagResource(i) => by_arn(&i.resource_arn),
        R::UntagResource(i) => by_arn(&i.resource_arn),
        R::ListTagsForResource(i) => by_arn(&i.resource_arn),
        R::PutResourcePolicy(i) => by_arn(&i.resource_arn),
        R::GetResourcePolicy(i) => by_arn(&i.resource_arn),
        R::DeleteResourcePolicy(i) => by_arn(&i.resource_arn),
    }
}

fn resolve(state: &ClusterState, principal: &Principal, target: Target) -> Resolved {
    let bare = |arn: String, account: String, consumer_name: Option<String>| Resolved {
        arn,
        account,
        policy: None,
        tags: BTreeMap::new(),
        consumer_name,
    };
    match target {
        Target::Account => bare("*".into(), principal.account.clone(), None),
        Target::Stream(key) => {
            let arn = stream_arn(&key.region, &key.account, &key.name);
            match state.stream(&key) {
                Some(stream) => Resolved {
                    arn,
                    account: key.account,
                    policy: stream.policy.clone(),
                    tags: stream.tags.clone(),
                    consumer_name: None,
                },
                None => bare(arn, key.account, None),
            }
        }
        Target::Consumer(key) => match state.consumer(&key) {
            Some((_, consumer)) => Resolved {
                arn: consumer.arn.clone(),
                account: key.stream.account.clone(),
                policy: consumer.policy.clone(),
                tags: consumer.tags.clone(),
                consumer_name: Some(consumer.name.clone()),
            },
            // Not registered (or named without its creation time and gone): the ARN it would
            // have, with `*` for the creation time it cannot be known by.
            None => {
                let stream = stream_arn(&key.stream.region, &key.stream.account, &key.stream.name);
                let created = key.created_secs.map_or("*".to_string(), |s| s.to_string());
                let arn = format!("{stream}/consumer/{}:{created}", key.name);
                bare(arn, key.stream.account, Some(key.name))
            }
        },
    }
}
