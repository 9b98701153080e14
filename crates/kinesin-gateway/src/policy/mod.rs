//! IAM-style policies: parsing policy documents (identity policies from the credentials file,
//! resource policies of streams and consumers) and deciding a request against them with AWS's
//! evaluation order.

mod condition;
mod document;
mod evaluate;
mod glob;

pub use document::{Policy, PolicyKind};
pub use evaluate::{decide, AccessRequest, Denial};

/// Why a policy document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy is not JSON: {0}")]
    Json(String),
    #[error("the policy must be a JSON object")]
    NotObject,
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
}

#[cfg(test)]
mod tests;
