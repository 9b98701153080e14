//! Tags on streams and consumers: by stream (AddTagsToStream …) and by resource ARN
//! (TagResource …, which names a stream or a consumer).

use std::collections::BTreeMap;

use kinesin_api::model::{
    AddTagsToStreamInput, AddTagsToStreamOutput, ListTagsForResourceInput,
    ListTagsForResourceOutput, ListTagsForStreamInput, ListTagsForStreamOutput,
    RemoveTagsFromStreamInput, RemoveTagsFromStreamOutput, Tag, TagResourceInput,
    TagResourceOutput, UntagResourceInput, UntagResourceOutput,
};
use kinesin_api::KinesisError;
use kinesin_controller::{
    consumer_not_found, ClusterState, Command, ConsumerKey, Resource, StreamKey,
};
use kinesin_types::{parse_resource_arn, ResourceArn};

use super::{change, invalid_argument};
use crate::context::{find, RequestContext};
use crate::error::from_controller;
use crate::Gateway;

const LIST_TAGS_DEFAULT_LIMIT: usize = 50;

fn valid_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_./=+-%@:".contains(c)
}

/// AWS's rules for tag keys and values beyond the model's lengths.
pub(super) fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), KinesisError> {
    for (key, value) in tags {
        if key.starts_with("aws:") {
            return Err(invalid_argument(format!(
                "Tag key {key} uses the reserved prefix aws:."
            )));
        }
        if !key.chars().chain(value.chars()).all(valid_tag_char) {
            return Err(invalid_argument(
                "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @.",
            ));
        }
    }
    Ok(())
}

fn tag_list<'a>(tags: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<Tag> {
    tags.map(|(k, v)| Tag {
        key: k.clone(),
        value: Some(v.clone()),
    })
    .collect()
}

/// The stream or consumer a resource ARN names.
pub(crate) fn resource(arn: &str) -> Result<Resource, KinesisError> {
    let invalid =
        |e: kinesin_types::TypesError| invalid_argument(format!("Invalid ResourceARN {arn}: {e}"));
    match parse_resource_arn(arn).map_err(invalid)? {
        ResourceArn::Stream(stream) => Ok(Resource::Stream(StreamKey {
            account: stream.account,
            region: stream.region,
            name: stream.stream_name,
        })),
        ResourceArn::Consumer(_) => Ok(Resource::Consumer(
            ConsumerKey::from_arn(arn).map_err(invalid)?,
        )),
    }
}

/// What a resource ARN names in `state`: its tags and resource policy.
pub(super) fn find_resource<'a>(
    state: &'a ClusterState,
    resource: &Resource,
) -> Result<(&'a BTreeMap<String, String>, Option<&'a str>), KinesisError> {
    match resource {
        Resource::Stream(key) => {
            let stream = find(state, key)?;
            Ok((&stream.tags, stream.policy.as_deref()))
        }
        Resource::Consumer(key) => {
            let (_, consumer) = state
                .consumer(key)
                .ok_or_else(|| from_controller(consumer_not_found(key)))?;
            Ok((&consumer.tags, consumer.policy.as_deref()))
        }
    }
}

async fn add(
    gateway: &Gateway,
    resource: Resource,
    tags: BTreeMap<String, String>,
) -> Result<(), KinesisError> {
    validate_tags(&tags)?;
    change(gateway, &Command::AddTags { resource, tags }).await?;
    Ok(())
}

async fn remove(
    gateway: &Gateway,
    resource: Resource,
    tag_keys: Vec<String>,
) -> Result<(), KinesisError> {
    change(gateway, &Command::RemoveTags { resource, tag_keys }).await?;
    Ok(())
}

pub(super) async fn add_to_stream(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: AddTagsToStreamInput,
) -> Result<AddTagsToStreamOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    add(gateway, Resource::Stream(key), input.tags).await?;
    Ok(AddTagsToStreamOutput {})
}

pub(super) async fn remove_from_stream(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: RemoveTagsFromStreamInput,
) -> Result<RemoveTagsFromStreamOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    remove(gateway, Resource::Stream(key), input.tag_keys).await?;
    Ok(RemoveTagsFromStreamOutput {})
}

pub(super) fn list_for_stream(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: ListTagsForStreamInput,
) -> Result<ListTagsForStreamOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let state = gateway.controller.state();
    let stream = find(&state, &key)?;
    let limit = input
        .limit
        .map(|l| l.max(1) as usize)
        .unwrap_or(LIST_TAGS_DEFAULT_LIMIT);
    let after = input.exclusive_start_tag_key.as_deref();
    let mut tags = stream
        .tags
        .iter()
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a));
    let page = tag_list(tags.by_ref().take(limit));
    Ok(ListTagsForStreamOutput {
        tags: page,
        has_more_tags: tags.next().is_some(),
    })
}

pub(super) async fn tag_resource(
    gateway: &Gateway,
    _ctx: &RequestContext,
    input: TagResourceInput,
) -> Result<TagResourceOutput, KinesisError> {
    add(gateway, resource(&input.resource_arn)?, input.tags).await?;
    Ok(TagResourceOutput {})
}

pub(super) async fn untag_resource(
    gateway: &Gateway,
    _ctx: &RequestContext,
    input: UntagResourceInput,
) -> Result<UntagResourceOutput, KinesisError> {
    remove(gateway, resource(&input.resource_arn)?, input.tag_keys).await?;
    Ok(UntagResourceOutput {})
}

pub(super) fn list_for_resource(
    gateway: &Gateway,
    _ctx: &RequestContext,
    input: ListTagsForResourceInput,
) -> Result<ListTagsForResourceOutput, KinesisError> {
    let state = gateway.controller.state();
    let (tags, _) = find_resource(&state, &resource(&input.resource_arn)?)?;
    Ok(ListTagsForResourceOutput {
        tags: Some(tag_list(tags.iter())),
    })
}
