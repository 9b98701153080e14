//! Per-stream settings: enhanced monitoring, encryption, maximum record size, resource policies.

use kinesin_api::model::{
    DeleteResourcePolicyInput, DeleteResourcePolicyOutput, DisableEnhancedMonitoringInput,
    EnableEnhancedMonitoringInput, EncryptionType as WireEncryption, EnhancedMonitoringOutput,
    GetResourcePolicyInput, GetResourcePolicyOutput, MetricsName, PutResourcePolicyInput,
    PutResourcePolicyOutput, StartStreamEncryptionInput, StartStreamEncryptionOutput,
    StopStreamEncryptionInput, StopStreamEncryptionOutput, UpdateMaxRecordSizeInput,
    UpdateMaxRecordSizeOutput,
};
use kinesin_api::{ErrorKind, KinesisError};
use kinesin_controller::{
    require_active, Command, EncryptionType, Outcome, MAX_RECORD_SIZE_KIB, MIN_RECORD_SIZE_KIB,
};

use super::tags::{find_resource, resource};
use super::{change, invalid_argument};
use crate::context::{find, RequestContext};
use crate::encryption::KeyScope;
use crate::error::{from_controller, from_kms};
use crate::policy::{Policy, PolicyKind};
use crate::Gateway;

/// What GetResourcePolicy answers for a stream or consumer without a policy, as AWS does.
const NO_POLICY: &str = "{}";

fn metric_names(names: &[String]) -> Vec<MetricsName> {
    names
        .iter()
        .filter_map(|m| MetricsName::from_wire(m))
        .collect()
}

pub(super) async fn enable_monitoring(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: EnableEnhancedMonitoringInput,
) -> Result<EnhancedMonitoringOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    set_monitoring(gateway, key, input.shard_level_metrics, true).await
}

pub(super) async fn disable_monitoring(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: DisableEnhancedMonitoringInput,
) -> Result<EnhancedMonitoringOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    set_monitoring(gateway, key, input.shard_level_metrics, false).await
}

async fn set_monitoring(
    gateway: &Gateway,
    key: kinesin_controller::StreamKey,
    metrics: Vec<String>,
    enable: bool,
) -> Result<EnhancedMonitoringOutput, KinesisError> {
    let outcome = change(
        gateway,
        &Command::SetEnhancedMetrics {
            key: key.clone(),
            metrics,
            enable,
        },
    )
    .await?;
    let Outcome::Metrics { current, desired } = outcome else {
        return Err(KinesisError::new(
            ErrorKind::InternalFailure,
            format!("unexpected controller outcome {outcome:?}"),
        ));
    };
    // The ARN is fixed for the stream's lifetime, so reading it after the change is safe.
    let stream_arn = gateway
        .controller
        .state()
        .stream(&key)
        .map(|s| s.arn.clone());
    Ok(EnhancedMonitoringOutput {
        stream_name: Some(key.name),
        // AWS answers empty lists as `[]`, not by leaving the member out.
        current_shard_level_metrics: Some(metric_names(&current)),
        desired_shard_level_metrics: Some(metric_names(&desired)),
        stream_arn,
    })
}

/// KMS is the only encryption a client can ask for; the model also allows `NONE`.
fn require_kms(encryption_type: &str) -> Result<(), KinesisError> {
    match WireEncryption::from_wire(encryption_type) {
        Some(WireEncryption::Kms) => Ok(()),
        _ => Err(invalid_argument(format!(
            "Invalid EncryptionType {encryption_type}. The only valid value is KMS."
        ))),
    }
}

pub(super) async fn start_encryption(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: StartStreamEncryptionInput,
) -> Result<StartStreamEncryptionOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    require_kms(&input.encryption_type)?;
    let state = gateway.controller.state();
    let stream = find(&state, &key)?;
    // The stream's state is AWS's first answer, before the key's.
    require_active(stream).map_err(from_controller)?;
    let requested = EncryptionType::Kms {
        key_id: input.key_id.clone(),
    };
    // A repeated start changes nothing (the controller answers so): no new data key for it.
    // Otherwise the key is checked (KMS's errors) and a data key made and wrapped here, so the
    // replicated state only ever holds it wrapped.
    let data_key = if stream.encryption == requested {
        None
    } else {
        let scope = KeyScope {
            account: &key.account,
            region: &key.region,
        };
        let data_keys = &gateway.settings.data_keys;
        Some(
            data_keys
                .new_data_key(stream, &input.key_id, scope)
                .map_err(from_kms)?,
        )
    };
    change(
        gateway,
        &Command::StartEncryption {
            key,
            key_id: input.key_id,
            data_key,
        },
    )
    .await?;
    Ok(StartStreamEncryptionOutput {})
}

pub(super) async fn stop_encryption(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: StopStreamEncryptionInput,
) -> Result<StopStreamEncryptionOutput, KinesisError> {
    let key = ctx.stream_key(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    require_kms(&input.encryption_type)?;
    change(
        gateway,
        &Command::StopEncryption {
            key,
            key_id: input.key_id,
        },
    )
    .await?;
    Ok(StopStreamEncryptionOutput {})
}

pub(super) async fn update_max_record_size(
    gateway: &Gateway,
    ctx: &RequestContext,
    input: UpdateMaxRecordSizeInput,
) -> Result<UpdateMaxRecordSizeOutput, KinesisError> {
    // The operation takes only a StreamARN; the model has no StreamName member.
    let key = ctx.stream_key(None, input.stream_arn.as_deref())?;
    let kib = input.max_record_size_in_kib;
    // The model's range check runs before dispatch; this guards callers that skip it.
    let kib = u32::try_from(kib)
        .ok()
        .filter(|k| (MIN_RECORD_SIZE_KIB..=MAX_RECORD_SIZE_KIB).contains(k))
        .ok_or_else(|| {
            KinesisError::new(
                ErrorKind::Validation,
                format!(
                    "1 validation error detected: Value '{kib}' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have value between {MIN_RECORD_SIZE_KIB} and {MAX_RECORD_SIZE_KIB}"
                ),
            )
        })?;
    change(gateway, &Command::SetMaxRecordSize { key, kib }).await?;
    Ok(UpdateMaxRecordSizeOutput {})
}

pub(super) async fn put_policy(
    gateway: &Gateway,
    _ctx: &RequestContext,
    input: PutResourcePolicyInput,
) -> Result<PutResourcePolicyOutput, KinesisError> {
    let resource = resource(&input.resource_arn)?;
    // The parser that enforces it: a policy that could not be enforced is refused.
    Policy::parse(&input.policy, PolicyKind::Resource).map_err(|e| {
        invalid_argument(format!(
            "Invalid policy for resource {}: {e}.",
            input.resource_arn
        ))
    })?;
    change(
        gateway,
        &Command::PutPolicy {
            resource,
            policy: input.policy,
        },
    )
    .await?;
    Ok(PutResourcePolicyOutput {})
}

pub(super) fn get_policy(
    gateway: &Gateway,
    _ctx: &RequestContext,
    input: GetResourcePolicyInput,
) -> Result<GetResourcePolicyOutput, KinesisError> {
    let state = gateway.controller.state();
    let (_, policy) = find_resource(&state, &resource(&input.resource_arn)?)?;
    Ok(GetResourcePolicyOutput {
        policy: policy.unwrap_or(NO_POLICY).to_string(),
    })
}

pub(super) async fn delete_policy(
    gateway: &Gateway,
    _ctx: &RequestContext,
    input: DeleteResourcePolicyInput,
) -> Result<DeleteResourcePolicyOutput, KinesisError> {
    let resource = resource(&input.resource_arn)?;
    change(gateway, &Command::DeletePolicy { resource }).await?;
    Ok(DeleteResourcePolicyOutput {})
}
