use serde::{Deserialize, Serialize};

/// Why the controller refused a change. Produced deterministically inside apply, so it travels
/// through the log as data; the gateway maps it to the Kinesis error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ControllerError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// A request the operation does not support in this state (ValidationException), e.g. warm
    /// throughput on a provisioned stream.
    #[error("{0}")]
    Validation(String),
    /// The controller group could not take the change (no leader, stopped): it was not made.
    #[error("controller unavailable: {0}")]
    Unavailable(String),
    /// The change was handed to a leader and may still commit (a timeout, a connection lost
    /// mid-call). Never "unavailable": a client must not take it as not done.
    #[error("the outcome of this change is unknown: {0}")]
    OutcomeUnknown(String),
}
