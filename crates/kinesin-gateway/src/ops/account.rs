//! Account settings (DescribeAccountSettings, UpdateAccountSettings) and warm throughput
//! (UpdateStreamWarmThroughput, and how DescribeStreamSummary reports it).

use kinesin_api::model::{
    DescribeAccountSettingsOutput, MinimumThroughputBillingCommitmentInputStatus as InputStatus,
    MinimumThroughputBillingCommitmentOutput,
    MinimumThroughputBillingCommitmentOutputStatus as OutputStatus, UpdateAccountSettingsInput,
    UpdateAccountSettingsOutput, UpdateStreamWarmThroughputInput, UpdateStreamWarmThroughputOutput,
    WarmThroughputObject,
};
use kinesin_api::KinesisError;
use kinesin_controller::{
    AccountKey, AccountSettings, ClusterState, Command, CommitmentStatus, StreamMeta, StreamMode,
};

use super::{change, invalid_argument, ms_to_secs};
use crate::context::{find, RequestContext};
use crate::Gateway;

/// A MiB/s figure from the wire; the model's validation has refused negative ones.
pub(super) fn mibps(value: i32) -> u32 {
    value.max(0) as u32
}

/// The WarmThroughput DescribeStreamSummary reports: only for on-demand streams of accounts
/// with a commitment in force, as AWS's model documents.
pub(super) fn warm_throughput(
    state: &ClusterState,
    stream: &StreamMeta,
    now_ms: u64,
) -> Option<WarmThroughputObject> {
    let shown = stream.mode == StreamMode::OnDemand && state.committed_at(&stream.key, now_ms);
    shown.then(|| warm_throughput_of(stream))
}

fn warm_throughput_of(stream: &StreamMeta) -> WarmThroughputObject {
    WarmThroughputObject {
        target_mibps: stream.warm_throughput_mibps.map(|m| m as i32),
        current_mibps: Some(stream.write_capacity_mibps() as i32),
    }
}

pub(super) async fn update_warm_throughput(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: UpdateStreamWarmThroughputInput,
) -> Result<UpdateStreamWarmThroughputOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    change(
        gateway,
        &Command::SetWarmThroughput {
            key: key.clone(),
            mibps: mibps(input.warm_throughput_mibps),
            now_ms: gateway.now_ms(),
        },
    )
    .await?;
    let state = gateway.controller.state();
    let stream = find(&state, &key)?;
    Ok(UpdateStreamWarmThroughputOutput {
        stream_arn: Some(stream.arn.clone()),
        stream_name: Some(key.name),
        warm_throughput: Some(warm_throughput_of(stream)),
    })
}

fn commitment_to_wire(
    settings: &AccountSettings,
    now_ms: u64,
) -> MinimumThroughputBillingCommitmentOutput {
    let Some(c) = &settings.commitment else {
        return MinimumThroughputBillingCommitmentOutput {
            status: OutputStatus::Disabled,
            started_at: None,
            ended_at: None,
            earliest_allowed_end_at: None,
        };
    };
    let status = c.status_at(now_ms);
    let ended = status == CommitmentStatus::Disabled;
    MinimumThroughputBillingCommitmentOutput {
        status: match status {
            CommitmentStatus::Enabled => OutputStatus::Enabled,
            CommitmentStatus::EnabledUntilEarliestAllowedEnd => {
                OutputStatus::EnabledUntilEarliestAllowedEnd
            }
            CommitmentStatus::Disabled => OutputStatus::Disabled,
        },
        started_at: Some(ms_to_secs(c.started_ms)),
        ended_at: c.ends_ms.filter(|_| ended).map(ms_to_secs),
        earliest_allowed_end_at: (!ended).then(|| ms_to_secs(c.earliest_end_ms)),
    }
}

fn settings_of(gateway: &Gateway, ctx: &RequestContext) -> AccountSettings {
    gateway
        .controller
        .state()
        .account_settings(&ctx.account, &ctx.region)
}

pub(super) fn describe(
    gateway: &Gateway,
    ctx: &RequestContext,
) -> Result<DescribeAccountSettingsOutput, KinesisError> {
    let settings = settings_of(gateway, ctx);
    Ok(DescribeAccountSettingsOutput {
        minimum_throughput_billing_commitment: Some(commitment_to_wire(
            &settings,
            gateway.now_ms(),
        )),
    })
}

pub(super) async fn update(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: UpdateAccountSettingsInput,
) -> Result<UpdateAccountSettingsOutput, KinesisError> {
    let requested = &input.minimum_throughput_billing_commitment.status;
    // The model's enum check runs before dispatch; this guards callers that skip it.
    let enable = match InputStatus::from_wire(requested) {
        Some(InputStatus::Enabled) => true,
        Some(InputStatus::Disabled) => false,
        None => {
            return Err(invalid_argument(format!(
                "Invalid MinimumThroughputBillingCommitment Status {requested}."
            )))
        }
    };
    let now = gateway.now_ms();
    change(
        gateway,
        &Command::SetAccountCommitment {
            account: AccountKey {
                account: ctx.account.clone(),
                region: ctx.region.clone(),
            },
            enable,
            now_ms: now,
        },
    )
    .await?;
    let settings = settings_of(gateway, ctx);
    Ok(UpdateAccountSettingsOutput {
        minimum_throughput_billing_commitment: Some(commitment_to_wire(&settings, now)),
    })
}
