//! Enhanced fan-out consumers: what a stream's registered consumers are, how a request names one,
//! and how registering, activating, deregistering and removing them apply.
//!
//! A consumer lives inside its stream's [`StreamMeta`], so it goes with the stream. Its lifecycle
//! is CREATING → ACTIVE → DELETING → gone: a request registers or deregisters it, and the
//! controller's leader (the node's reconciler) makes the next step with [`Command::ActivateConsumer`]
//! and [`Command::RemoveConsumer`], as it activates and removes streams.
//!
//! [`Command::ActivateConsumer`]: crate::Command::ActivateConsumer
//! [`Command::RemoveConsumer`]: crate::Command::RemoveConsumer

use std::collections::BTreeMap;

use kinesin_types::{parse_consumer_arn, TypesError};
use serde::{Deserialize, Serialize};

use crate::command::{not_found as stream_not_found, MAX_TAGS};
use crate::state::{ClusterState, StreamKey, StreamMeta, StreamStatus};
use crate::{ControllerError, Outcome};

/// AWS lets at most this many consumers of one stream be in CREATING at once.
pub const MAX_CREATING_CONSUMERS: usize = 5;
/// AWS's limit of registered consumers per stream (On-demand Advantage streams aside); the node's
/// `max_consumers_per_stream` setting defaults to it.
pub const DEFAULT_MAX_CONSUMERS_PER_STREAM: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsumerStatus {
    Creating,
    Active,
    Deleting,
}

impl ConsumerStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ConsumerStatus::Creating => "CREATING",
            ConsumerStatus::Active => "ACTIVE",
            ConsumerStatus::Deleting => "DELETING",
        }
    }
}

/// An enhanced fan-out consumer registered with a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMeta {
    pub name: String,
    /// `<stream ARN>/consumer/<name>:<creation epoch seconds>`: a consumer registered again under
    /// the same name is another consumer with another ARN.
    pub arn: String,
    pub status: ConsumerStatus,
    pub created_ms: u64,
    pub tags: BTreeMap<String, String>,
    /// The resource policy document (JSON), stored as given; the gateway enforces it.
    pub policy: Option<String>,
}

impl ConsumerMeta {
    /// The creation time as the ARN carries it.
    pub fn created_secs(&self) -> u64 {
        self.created_ms / 1000
    }
}

/// How a request names a consumer: its stream and name, and — when it gave the consumer's ARN —
/// the creation second of the one registration it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerKey {
    pub stream: StreamKey,
    pub name: String,
    pub created_secs: Option<u64>,
}

impl ConsumerKey {
    /// The consumer a consumer ARN names.
    pub fn from_arn(arn: &str) -> Result<ConsumerKey, TypesError> {
        let parsed = parse_consumer_arn(arn)?;
        Ok(ConsumerKey {
            stream: StreamKey {
                account: parsed.stream.account,
                region: parsed.stream.region,
                name: parsed.stream.stream_name,
            },
            name: parsed.consumer_name,
            created_secs: Some(parsed.created_secs),
        })
    }

    fn matches(&self, consumer: &ConsumerMeta) -> bool {
        consumer.name == self.name
            && self
                .created_secs
                .is_none_or(|secs| secs == consumer.created_secs())
    }
}

impl StreamMeta {
    /// The registered consumer named `name`, in any state.
    pub fn consumer(&self, name: &str) -> Option<&ConsumerMeta> {
        self.consumers.get(name)
    }
}

impl ClusterState {
    /// The consumer `key` names, with its stream.
    pub fn consumer(&self, key: &ConsumerKey) -> Option<(&StreamMeta, &ConsumerMeta)> {
        let stream = self.stream(&key.stream)?;
        let consumer = stream.consumer(&key.name).filter(|c| key.matches(c))?;
        Some((stream, consumer))
    }

    /// The consumer a consumer ARN names, with its stream — or `None` when the ARN is malformed
    /// or names no registered consumer (an earlier registration under the same name included).
    /// The consumer's [`ConsumerMeta::status`] tells whether it may read (only ACTIVE ones may
    /// subscribe) and [`ConsumerMeta::created_ms`] when it was registered.
    pub fn consumer_by_arn(&self, arn: &str) -> Option<(&StreamMeta, &ConsumerMeta)> {
        self.consumer(&ConsumerKey::from_arn(arn).ok()?)
    }
}

/// ResourceNotFoundException's message for a consumer that does not exist.
pub fn consumer_not_found(key: &ConsumerKey) -> ControllerError {
    let ConsumerKey {
        stream,
        name,
        created_secs,
    } = key;
    ControllerError::NotFound(match created_secs {
        Some(secs) => format!(
            "Consumer {name} with creation timestamp {secs} under stream {} and account {} not found.",
            stream.name, stream.account
        ),
        None => format!(
            "Consumer {name} under stream {} and account {} not found.",
            stream.name, stream.account
        ),
    })
}

/// ResourceInUseException's message for a consumer that must be ACTIVE and is not.
pub fn consumer_not_active(stream: &StreamKey, consumer: &ConsumerMeta) -> ControllerError {
    ControllerError::InUse(format!(
        "Consumer {} with creation timestamp {} under stream {} and account {} is not in ACTIVE status.",
        consumer.name,
        consumer.created_secs(),
        stream.name,
        stream.account
    ))
}

/// The consumer `key` names, to change it. A consumer named by ARN whose stream does not exist
/// is a consumer not found; one named by stream and name, a stream not found.
pub(crate) fn consumer_mut<'a>(
    state: &'a mut ClusterState,
    key: &ConsumerKey,
) -> Result<&'a mut ConsumerMeta, ControllerError> {
    let Some(stream) = state.streams.get_mut(&key.stream) else {
        return Err(match key.created_secs {
            Some(_) => consumer_not_found(key),
            None => stream_not_found(&key.stream),
        });
    };
    stream
        .consumers
        .get_mut(&key.name)
        .filter(|c| key.matches(c))
        .ok_or_else(|| consumer_not_found(key))
}

/// RegisterStreamConsumer, as the controller applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub key: StreamKey,
    pub name: String,
    /// Built by the caller from the stream's ARN, the name and `now_ms`.
    pub arn: String,
    pub now_ms: u64,
    pub tags: BTreeMap<String, String>,
    /// Consumers allowed per stream.
    pub max_consumers: u32,
}

pub(crate) fn register(
    state: &mut ClusterState,
    r: Registration,
) -> Result<Outcome, ControllerError> {
    let stream = state
        .streams
        .get_mut(&r.key)
        .ok_or_else(|| stream_not_found(&r.key))?;
    // Consumers may join a stream that is resharding (UPDATING), as a KCL application starting
    // while an on-demand stream scales must.
    if !matches!(stream.status, StreamStatus::Active | StreamStatus::Updating) {
        return Err(ControllerError::InUse(format!(
            "Stream {} under account {} not ACTIVE, instead in state {}",
            r.key.name,
            r.key.account,
            stream.status.as_str()
        )));
    }
    if stream.consumers.contains_key(&r.name) {
        return Err(ControllerError::InUse(format!(
            "Consumer {} under stream {} and account {} already exists.",
            r.name, r.key.name, r.key.account
        )));
    }
    if stream.consumers.len() >= r.max_consumers as usize {
        return Err(ControllerError::LimitExceeded(format!(
            "This request would exceed the limit of {} consumers registered with stream {} under account {}.",
            r.max_consumers, r.key.name, r.key.account
        )));
    }
    let creating = stream
        .consumers
        .values()
        .filter(|c| c.status == ConsumerStatus::Creating)
        .count();
    if creating >= MAX_CREATING_CONSUMERS {
        return Err(ControllerError::LimitExceeded(format!(
            "This request would exceed the limit of {MAX_CREATING_CONSUMERS} consumers in CREATING state for stream {} under account {}.",
            r.key.name, r.key.account
        )));
    }
    if r.tags.len() > MAX_TAGS {
        return Err(too_many_tags(&r.name));
    }
    stream.consumers.insert(
        r.name.clone(),
        ConsumerMeta {
            name: r.name,
            arn: r.arn,
            status: ConsumerStatus::Creating,
            created_ms: r.now_ms,
            tags: r.tags,
            policy: None,
        },
    );
    Ok(Outcome::Done)
}

/// The consumer of `key`'s stream named `name` and registered at `created_ms`, if it is still
/// there (a later registration under the same name is another consumer).
fn registration_mut<'a>(
    state: &'a mut ClusterState,
    key: &StreamKey,
    name: &str,
    created_ms: u64,
) -> Option<&'a mut ConsumerMeta> {
    state
        .streams
        .get_mut(key)?
        .consumers
        .get_mut(name)
        .filter(|c| c.created_ms == created_ms)
}

pub(crate) fn activate(
    state: &mut ClusterState,
    key: &StreamKey,
    name: &str,
    created_ms: u64,
) -> Outcome {
    match registration_mut(state, key, name, created_ms) {
        Some(c) if c.status == ConsumerStatus::Creating => {
            c.status = ConsumerStatus::Active;
            Outcome::Done
        }
        _ => Outcome::Unchanged,
    }
}

pub(crate) fn deregister(
    state: &mut ClusterState,
    key: &ConsumerKey,
) -> Result<Outcome, ControllerError> {
    let consumer = consumer_mut(state, key)?;
    if consumer.status == ConsumerStatus::Deleting {
        return Ok(Outcome::Unchanged);
    }
    consumer.status = ConsumerStatus::Deleting;
    Ok(Outcome::Done)
}

pub(crate) fn remove(
    state: &mut ClusterState,
    key: &StreamKey,
    name: &str,
    created_ms: u64,
) -> Outcome {
    let deleting = registration_mut(state, key, name, created_ms)
        .is_some_and(|c| c.status == ConsumerStatus::Deleting);
    if !deleting {
        return Outcome::Unchanged;
    }
    if let Some(stream) = state.streams.get_mut(key) {
        stream.consumers.remove(name);
    }
    Outcome::Done
}

/// DeleteStream's rule: a stream with consumers goes only when the caller says they go too.
pub(crate) fn delete_with_stream(
    stream: &mut StreamMeta,
    enforce: bool,
) -> Result<(), ControllerError> {
    let live = stream
        .consumers
        .values()
        .any(|c| c.status != ConsumerStatus::Deleting);
    if live && !enforce {
        return Err(ControllerError::InUse(format!(
            "DeleteStream can't delete {} because there are consumers associated with this data stream. To delete {} anyway, set the EnforceConsumerDeletion parameter to true to force the deletion of all the consumers that are associated with it.",
            stream.arn, stream.key.name
        )));
    }
    for consumer in stream.consumers.values_mut() {
        consumer.status = ConsumerStatus::Deleting;
    }
    Ok(())
}

pub(crate) fn too_many_tags(resource: &str) -> ControllerError {
    ControllerError::InvalidArgument(format!(
        "Failed to add tags to resource {resource} because a given resource cannot have more than {MAX_TAGS} tags associated with it."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Resource;
    use crate::test_support::*;
    use crate::Command;

    const STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/a";

    fn register_at(name: &str, now_ms: u64, max_consumers: u32) -> Command {
        Command::RegisterConsumer(Registration {
            key: key("a"),
            name: name.into(),
            arn: kinesin_types::consumer_arn(STREAM_ARN, name, now_ms / 1000),
            now_ms,
            tags: BTreeMap::new(),
            max_consumers,
        })
    }

    fn register(name: &str) -> Command {
        register_at(name, NOW + 5_000, DEFAULT_MAX_CONSUMERS_PER_STREAM)
    }

    fn arn_of(state: &ClusterState, name: &str) -> String {
        state.streams[&key("a")].consumers[name].arn.clone()
    }

    fn by_arn(arn: &str) -> ConsumerKey {
        ConsumerKey::from_arn(arn).unwrap()
    }

    fn status(state: &ClusterState, name: &str) -> Option<ConsumerStatus> {
        state.streams[&key("a")].consumer(name).map(|c| c.status)
    }

    fn activate_consumer(state: &mut ClusterState, name: &str) -> Outcome {
        let created_ms = state.streams[&key("a")].consumers[name].created_ms;
        Command::ActivateConsumer {
            key: key("a"),
            name: name.into(),
            created_ms,
        }
        .apply(state)
        .unwrap()
    }

    fn message(e: ControllerError) -> String {
        e.to_string()
    }

    #[test]
    fn a_consumer_goes_from_creating_to_active_to_deleting_to_gone() {
        let mut state = active("a");
        register("c").apply(&mut state).unwrap();
        assert_eq!(status(&state, "c"), Some(ConsumerStatus::Creating));
        let arn = arn_of(&state, "c");
        assert_eq!(
            arn,
            "arn:aws:kinesis:us-east-1:000000000000:stream/a/consumer/c:1700000005"
        );
        let created_ms = state.streams[&key("a")].consumers["c"].created_ms;
        // An activation meant for another registration under the name changes nothing.
        let stale = Command::ActivateConsumer {
            key: key("a"),
            name: "c".into(),
            created_ms: created_ms - 1,
        };
        assert_eq!(stale.apply(&mut state), Ok(Outcome::Unchanged));
        assert_eq!(activate_consumer(&mut state, "c"), Outcome::Done);
        assert_eq!(activate_consumer(&mut state, "c"), Outcome::Unchanged);
        let (stream, consumer) = state.consumer_by_arn(&arn).unwrap();
        assert_eq!(
            (
                stream.key.name.as_str(),
                consumer.status,
                consumer.created_ms
            ),
            ("a", ConsumerStatus::Active, NOW + 5_000)
        );
        let other_incarnation = kinesin_types::consumer_arn(STREAM_ARN, "c", 1_700_000_004);
        assert!(state.consumer_by_arn(&other_incarnation).is_none());
        assert!(state.consumer_by_arn("not an arn").is_none());

        let deregister = Command::DeregisterConsumer {
            consumer: by_arn(&arn),
        };
        assert_eq!(deregister.clone().apply(&mut state), Ok(Outcome::Done));
        assert_eq!(status(&state, "c"), Some(ConsumerStatus::Deleting));
        assert_eq!(deregister.apply(&mut state), Ok(Outcome::Unchanged));
        let remove = Command::RemoveConsumer {
            key: key("a"),
            name: "c".into(),
            created_ms,
        };
        assert_eq!(remove.clone().apply(&mut state), Ok(Outcome::Done));
        assert_eq!(status(&state, "c"), None);
        assert_eq!(remove.apply(&mut state), Ok(Outcome::Unchanged));
        assert!(state.consumer_by_arn(&arn).is_none());
    }

    #[test]
    fn only_a_deleting_consumer_is_removed() {
        let mut state = active("a");
        register("c").apply(&mut state).unwrap();
        let created_ms = state.streams[&key("a")].consumers["c"].created_ms;
        let remove = Command::RemoveConsumer {
            key: key("a"),
            name: "c".into(),
            created_ms,
        };
        assert_eq!(remove.apply(&mut state), Ok(Outcome::Unchanged));
        assert_eq!(status(&state, "c"), Some(ConsumerStatus::Creating));
    }

    #[test]
    fn a_name_stays_taken_until_its_consumer_is_removed() {
        let mut state = active("a");
        register("c").apply(&mut state).unwrap();
        let e = register("c").apply(&mut state).unwrap_err();
        assert_eq!(
            e,
            ControllerError::InUse(
                "Consumer c under stream a and account 000000000000 already exists.".into()
            )
        );
        activate_consumer(&mut state, "c");
        Command::DeregisterConsumer {
            consumer: ConsumerKey {
                stream: key("a"),
                name: "c".into(),
                created_secs: None,
            },
        }
        .apply(&mut state)
        .unwrap();
        assert!(matches!(
            register("c").apply(&mut state),
            Err(ControllerError::InUse(_))
        ));
        let created_ms = state.streams[&key("a")].consumers["c"].created_ms;
        Command::RemoveConsumer {
            key: key("a"),
            name: "c".into(),
            created_ms,
        }
        .apply(&mut state)
        .unwrap();
        register_at("c", NOW + 9_000, 20).apply(&mut state).unwrap();
        assert!(arn_of(&state, "c").ends_with("/consumer/c:1700000009"));
    }

    #[test]
    fn consumers_per_stream_and_consumers_in_creating_are_limited() {
        let mut state = active("a");
        let max = 7;
        for i in 0..5 {
            register_at(&format!("c{i}"), NOW, max)
                .apply(&mut state)
                .unwrap();
        }
        let e = register_at("c5", NOW, max).apply(&mut state).unwrap_err();
        assert_eq!(
            message(e),
            "This request would exceed the limit of 5 consumers in CREATING state for stream a under account 000000000000."
        );
        activate_consumer(&mut state, "c0");
        register_at("c5", NOW, max).apply(&mut state).unwrap();
        for i in 1..=5 {
            activate_consumer(&mut state, &format!("c{i}"));
        }
        register_at("c6", NOW, max).apply(&mut state).unwrap();
        let e = register_at("c7", NOW, max).apply(&mut state).unwrap_err();
        assert!(matches!(e, ControllerError::LimitExceeded(_)));
        assert_eq!(
            message(e),
            "This request would exceed the limit of 7 consumers registered with stream a under account 000000000000."
        );
        assert_eq!(state.streams[&key("a")].consumers.len(), 7);
    }

    #[test]
    fn unknown_streams_and_consumers_are_not_found() {
        let mut state = active("a");
        let on_other = Command::RegisterConsumer(Registration {
            key: key("zz"),
            name: "c".into(),
            arn: "x".into(),
            now_ms: NOW,
            tags: BTreeMap::new(),
            max_consumers: 20,
        });
        assert_eq!(
            on_other.apply(&mut state),
            Err(ControllerError::NotFound(
                "Stream zz under account 000000000000 not found.".into()
            ))
        );
        let missing = kinesin_types::consumer_arn(STREAM_ARN, "nope", 1_700_000_000);
        assert_eq!(
            Command::DeregisterConsumer {
                consumer: by_arn(&missing)
            }
            .apply(&mut state),
            Err(ControllerError::NotFound(
                "Consumer nope with creation timestamp 1700000000 under stream a and account 000000000000 not found.".into()
            ))
        );
        let on_missing_stream =
            kinesin_types::consumer_arn("arn:aws:kinesis:us-east-1:000000000000:stream/zz", "c", 1);
        assert!(matches!(
            Command::DeregisterConsumer {
                consumer: by_arn(&on_missing_stream)
            }
            .apply(&mut state),
            Err(ControllerError::NotFound(m)) if m.starts_with("Consumer c ")
        ));
        let by_name = ConsumerKey {
            stream: key("zz"),
            name: "c".into(),
            created_secs: None,
        };
        assert!(matches!(
            Command::DeregisterConsumer { consumer: by_name }.apply(&mut state),
            Err(ControllerError::NotFound(m)) if m.starts_with("Stream zz ")
        ));
    }

    #[test]
    fn consumers_join_active_or_updating_streams_only() {
        let mut state = bootstrapped();
        create("a", 1, 10).apply(&mut state).unwrap();
        assert!(matches!(
            register("c").apply(&mut state),
            Err(ControllerError::InUse(m)) if m.ends_with("instead in state CREATING")
        ));
        crate::test_support::activate(&mut state, "a");
        state.streams.get_mut(&key("a")).unwrap().status = StreamStatus::Updating;
        register("c").apply(&mut state).unwrap();
    }

    #[test]
    fn a_stream_with_consumers_is_deleted_only_with_enforcement() {
        let mut state = active("a");
        register("c").apply(&mut state).unwrap();
        let e = delete("a", false).apply(&mut state).unwrap_err();
        assert_eq!(
            message(e),
            "DeleteStream can't delete arn:aws:kinesis:us-east-1:000000000000:stream/a because there are consumers associated with this data stream. To delete a anyway, set the EnforceConsumerDeletion parameter to true to force the deletion of all the consumers that are associated with it."
        );
        assert_eq!(state.streams[&key("a")].status, StreamStatus::Active);
        delete("a", true).apply(&mut state).unwrap();
        let stream = &state.streams[&key("a")];
        assert_eq!(stream.status, StreamStatus::Deleting);
        assert_eq!(status(&state, "c"), Some(ConsumerStatus::Deleting));
        Command::RemoveStream {
            key: key("a"),
            created_ms: NOW,
        }
        .apply(&mut state)
        .unwrap();
        assert!(state.streams.is_empty());
    }

    #[test]
    fn consumers_already_deleting_do_not_hold_their_stream() {
        let mut state = active("a");
        register("c").apply(&mut state).unwrap();
        Command::DeregisterConsumer {
            consumer: by_arn(&arn_of(&state, "c")),
        }
        .apply(&mut state)
        .unwrap();
        delete("a", false).apply(&mut state).unwrap();
        assert_eq!(state.streams[&key("a")].status, StreamStatus::Deleting);
    }

    #[test]
    fn consumer_tags_and_policies() {
        let mut state = active("a");
        Command::RegisterConsumer(Registration {
            key: key("a"),
            name: "c".into(),
            arn: kinesin_types::consumer_arn(STREAM_ARN, "c", NOW / 1000),
            now_ms: NOW,
            tags: BTreeMap::from([("team".to_string(), "x".to_string())]),
            max_consumers: 20,
        })
        .apply(&mut state)
        .unwrap();
        let resource = Resource::Consumer(by_arn(&arn_of(&state, "c")));
        let tag = |keys: std::ops::Range<u32>| Command::AddTags {
            resource: resource.clone(),
            tags: keys.map(|i| (format!("k{i}"), "v".to_string())).collect(),
        };
        tag(0..49).apply(&mut state).unwrap();
        assert_eq!(state.streams[&key("a")].consumers["c"].tags.len(), 50);
        assert!(matches!(
            tag(49..50).apply(&mut state),
            Err(ControllerError::InvalidArgument(_))
        ));
        Command::RemoveTags {
            resource: resource.clone(),
            tag_keys: vec!["team".into()],
        }
        .apply(&mut state)
        .unwrap();
        assert!(!state.streams[&key("a")].consumers["c"]
            .tags
            .contains_key("team"));
        assert!(
            state.streams[&key("a")].tags.is_empty(),
            "the stream's own tags are apart"
        );

        let put = Command::PutPolicy {
            resource: resource.clone(),
            policy: "{}".into(),
        };
        assert_eq!(
            put.clone().apply(&mut state),
            Err(ControllerError::InUse(
                "Consumer c with creation timestamp 1700000000 under stream a and account 000000000000 is not in ACTIVE status.".into()
            ))
        );
        activate_consumer(&mut state, "c");
        put.apply(&mut state).unwrap();
        assert_eq!(
            state.streams[&key("a")].consumers["c"].policy.as_deref(),
            Some("{}")
        );
        assert_eq!(state.streams[&key("a")].policy, None);
        let delete_policy = Command::DeletePolicy { resource };
        assert_eq!(delete_policy.clone().apply(&mut state), Ok(Outcome::Done));
        assert_eq!(delete_policy.apply(&mut state), Ok(Outcome::Unchanged));

        let stale = Resource::Consumer(by_arn(&kinesin_types::consumer_arn(STREAM_ARN, "c", 1)));
        assert!(matches!(
            Command::AddTags {
                resource: stale,
                tags: BTreeMap::new()
            }
            .apply(&mut state),
            Err(ControllerError::NotFound(_))
        ));
    }

    /// Every replica applies the log's bytes: the same commands, decoded from their stored format, must give
    /// the same state (and outcomes) wherever they are applied.
    #[test]
    fn the_same_log_gives_every_replica_the_same_consumers() {
        let mut log = vec![create("a", 2, 10), create("b", 1, 10)];
        log.push(Command::MarkActive {
            key: key("a"),
            created_ms: NOW,
        });
        let register = |i: u64| register_at(&format!("c{i}"), NOW + i * 700, 6);
        log.extend((0..6).map(register));
        log.push(Command::ActivateConsumer {
            key: key("a"),
            name: "c1".into(),
            created_ms: NOW + 700,
        });
        log.extend((5..8).map(register));
        log.push(Command::DeregisterConsumer {
            consumer: ConsumerKey {
                stream: key("a"),
                name: "c0".into(),
                created_secs: None,
            },
        });
        log.push(delete("a", false));
        log.push(Command::RemoveConsumer {
            key: key("a"),
            name: "c0".into(),
            created_ms: NOW,
        });
        let bytes: Vec<Vec<u8>> = log
            .iter()
            .map(|c| crate::disk_format::encode(c).unwrap())
            .collect();
        let replay = || {
            let mut state = bootstrapped();
            let outcomes: Vec<_> = bytes
                .iter()
                .map(|b| {
                    crate::disk_format::decode::<Command>(b)
                        .unwrap()
                        .apply(&mut state)
                })
                .collect();
            (state, outcomes)
        };
        let (one, outcomes_one) = replay();
        let (two, outcomes_two) = replay();
        assert_eq!(one, two);
        assert_eq!(outcomes_one, outcomes_two);
        let snapshot: ClusterState =
            crate::disk_format::decode(&crate::disk_format::encode(&one).unwrap()).unwrap();
        assert_eq!(snapshot, one, "consumers survive a snapshot");
        let names: Vec<&str> = one.streams[&key("a")]
            .consumers
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names, ["c1", "c2", "c3", "c4", "c5"]);
    }
}
