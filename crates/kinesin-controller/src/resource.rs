//! Tags and resource policies, which streams and consumers both carry.

use std::collections::BTreeMap;

use crate::command::{require_active, stream_mut, MAX_TAGS};
use crate::consumer::{consumer_mut, consumer_not_active, too_many_tags, ConsumerStatus};
use crate::state::{ClusterState, Resource};
use crate::{ControllerError, Outcome};

fn tags_mut<'a>(
    state: &'a mut ClusterState,
    resource: &Resource,
) -> Result<&'a mut BTreeMap<String, String>, ControllerError> {
    match resource {
        Resource::Stream(key) => Ok(&mut stream_mut(state, key)?.tags),
        // A consumer's tags take effect from CREATING on, as AWS's.
        Resource::Consumer(key) => Ok(&mut consumer_mut(state, key)?.tags),
    }
}

pub(crate) fn add_tags(
    state: &mut ClusterState,
    resource: &Resource,
    tags: BTreeMap<String, String>,
) -> Result<Outcome, ControllerError> {
    let current = tags_mut(state, resource)?;
    let mut merged = current.clone();
    merged.extend(tags);
    if merged.len() > MAX_TAGS {
        return Err(match resource {
            // AWS's words, "10" included: its message kept the old limit when the limit became
            // 50 (kinesalite `test/addTagsToStream.js`, recorded against AWS, adds tags up to
            // 50 and then expects "more than 10 tags").
            Resource::Stream(key) => ControllerError::InvalidArgument(format!(
                "Failed to add tags to stream {} under account {} because a given stream cannot have more than 10 tags associated with it.",
                key.name, key.account
            )),
            Resource::Consumer(key) => too_many_tags(&key.name),
        });
    }
    *current = merged;
    Ok(Outcome::Done)
}

pub(crate) fn remove_tags(
    state: &mut ClusterState,
    resource: &Resource,
    tag_keys: &[String],
) -> Result<Outcome, ControllerError> {
    let tags = tags_mut(state, resource)?;
    for k in tag_keys {
        tags.remove(k);
    }
    Ok(Outcome::Done)
}

/// The policy slot of a resource that takes policy changes now: an ACTIVE stream, or an ACTIVE
/// consumer (AWS refuses a policy on a consumer still CREATING).
fn policy_mut<'a>(
    state: &'a mut ClusterState,
    resource: &Resource,
) -> Result<&'a mut Option<String>, ControllerError> {
    match resource {
        Resource::Stream(key) => {
            let stream = stream_mut(state, key)?;
            require_active(stream)?;
            Ok(&mut stream.policy)
        }
        Resource::Consumer(key) => {
            let consumer = consumer_mut(state, key)?;
            if consumer.status != ConsumerStatus::Active {
                return Err(consumer_not_active(&key.stream, consumer));
            }
            Ok(&mut consumer.policy)
        }
    }
}

pub(crate) fn put_policy(
    state: &mut ClusterState,
    resource: &Resource,
    policy: String,
) -> Result<Outcome, ControllerError> {
    *policy_mut(state, resource)? = Some(policy);
    Ok(Outcome::Done)
}

pub(crate) fn delete_policy(
    state: &mut ClusterState,
    resource: &Resource,
) -> Result<Outcome, ControllerError> {
    if policy_mut(state, resource)?.take().is_none() {
        return Ok(Outcome::Unchanged);
    }
    Ok(Outcome::Done)
}
