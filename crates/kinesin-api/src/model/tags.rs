//! Tags on streams (by name or ARN) and on any resource (by ARN).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::Tag;

/// Request of `AddTagsToStream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct AddTagsToStreamInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    pub tags: BTreeMap<String, String>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `AddTagsToStream`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AddTagsToStreamOutput {}

/// Request of `RemoveTagsFromStream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveTagsFromStreamInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    pub tag_keys: Vec<String>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `RemoveTagsFromStream`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RemoveTagsFromStreamOutput {}

/// Request of `ListTagsForStream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForStreamInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_start_tag_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i32>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `ListTagsForStream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForStreamOutput {
    pub tags: Vec<Tag>,
    pub has_more_tags: bool,
}

/// Request of `TagResource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceInput {
    pub tags: BTreeMap<String, String>,
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `TagResource`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TagResourceOutput {}

/// Request of `UntagResource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceInput {
    pub tag_keys: Vec<String>,
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `UntagResource`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct UntagResourceOutput {}

/// Request of `ListTagsForResource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `ListTagsForResource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}
