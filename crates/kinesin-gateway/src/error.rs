//! The one place internal errors become Kinesis errors.

use kinesin_api::{ErrorKind, KinesisError};
use kinesin_controller::ControllerError;
use kinesin_raft::RaftError;

use crate::encryption::KmsError;

pub(crate) fn from_controller(e: ControllerError) -> KinesisError {
    match e {
        ControllerError::NotFound(m) => KinesisError::new(ErrorKind::ResourceNotFound, m),
        ControllerError::InUse(m) => KinesisError::new(ErrorKind::ResourceInUse, m),
        ControllerError::LimitExceeded(m) => KinesisError::new(ErrorKind::LimitExceeded, m),
        ControllerError::InvalidArgument(m) => KinesisError::new(ErrorKind::InvalidArgument, m),
        ControllerError::Validation(m) => KinesisError::new(ErrorKind::Validation, m),
        ControllerError::Unavailable(m) => unavailable(m),
        ControllerError::OutcomeUnknown(m) => {
            tracing::error!(message = %m, "controller change failed");
            KinesisError::new(ErrorKind::InternalFailure, m)
        }
    }
}

pub(crate) fn from_raft(e: RaftError) -> KinesisError {
    match e {
        // The request never reached a leader, so nothing was written: the client may retry.
        RaftError::NotLeader { .. } | RaftError::NoSuchGroup(_) | RaftError::Unreachable { .. } => {
            unavailable(e.to_string())
        }
        RaftError::Throttled { .. } => {
            KinesisError::new(ErrorKind::ProvisionedThroughputExceeded, e.to_string())
        }
        other => {
            tracing::error!(error = %other, "shard request failed");
            KinesisError::new(ErrorKind::InternalFailure, other.to_string())
        }
    }
}

pub(crate) fn from_kms(e: KmsError) -> KinesisError {
    let kind = match &e {
        KmsError::NotFound(_) => ErrorKind::KmsNotFound,
        KmsError::Disabled(_) => ErrorKind::KmsDisabled,
        KmsError::AccessDenied(_) => ErrorKind::KmsAccessDenied,
        KmsError::InvalidState(_) => ErrorKind::KmsInvalidState,
    };
    tracing::warn!(error = %e, "a KMS key could not be used");
    KinesisError::new(kind, e.to_string())
}

fn unavailable(message: String) -> KinesisError {
    tracing::warn!(%message, "request could not be served now");
    KinesisError::new(ErrorKind::ServiceUnavailable, message)
}
