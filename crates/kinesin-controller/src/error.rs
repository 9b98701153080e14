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
    /// The controller group could not commit the change (no leader, stopped, unknown outcome).
    #[error("controller unavailable: {0}")]
    Unavailable(String),
}
