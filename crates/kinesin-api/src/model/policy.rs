//! Resource policies on streams and consumers.

use serde::{Deserialize, Serialize};

/// Request of `PutResourcePolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PutResourcePolicyInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    pub policy: String,
}

/// Response of `PutResourcePolicy`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PutResourcePolicyOutput {}

/// Request of `GetResourcePolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcePolicyInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `GetResourcePolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcePolicyOutput {
    pub policy: String,
}

/// Request of `DeleteResourcePolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteResourcePolicyInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `DeleteResourcePolicy`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DeleteResourcePolicyOutput {}
