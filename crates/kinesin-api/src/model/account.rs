//! Account settings: the minimum throughput billing commitment.

use serde::{Deserialize, Serialize};

use super::{MinimumThroughputBillingCommitmentInput, MinimumThroughputBillingCommitmentOutput};

/// Request of `DescribeAccountSettings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAccountSettingsInput {}

/// Response of `DescribeAccountSettings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAccountSettingsOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_throughput_billing_commitment: Option<MinimumThroughputBillingCommitmentOutput>,
}

/// Request of `UpdateAccountSettings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAccountSettingsInput {
    pub minimum_throughput_billing_commitment: MinimumThroughputBillingCommitmentInput,
}

/// Response of `UpdateAccountSettings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAccountSettingsOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_throughput_billing_commitment: Option<MinimumThroughputBillingCommitmentOutput>,
}
