//! Enhanced fan-out consumers: register, deregister, describe, list.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{Consumer, ConsumerDescription};

/// Request of `RegisterStreamConsumer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterStreamConsumerInput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    pub consumer_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// Response of `RegisterStreamConsumer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterStreamConsumerOutput {
    pub consumer: Consumer,
}

/// Request of `DeregisterStreamConsumer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DeregisterStreamConsumerInput {
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN", skip_serializing_if = "Option::is_none")]
    pub consumer_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `DeregisterStreamConsumer`: the operation has no output shape, so AWS answers
/// `200` with an empty body (see [`crate::Operation::has_output`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DeregisterStreamConsumerOutput {}

/// Request of `DescribeStreamConsumer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamConsumerInput {
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN", skip_serializing_if = "Option::is_none")]
    pub consumer_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `DescribeStreamConsumer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamConsumerOutput {
    pub consumer_description: ConsumerDescription,
}

/// Request of `ListStreamConsumers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamConsumersInput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i32>,
    #[serde(
        with = "crate::codec::opt_timestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_creation_timestamp: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// Response of `ListStreamConsumers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamConsumersOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumers: Option<Vec<Consumer>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}
