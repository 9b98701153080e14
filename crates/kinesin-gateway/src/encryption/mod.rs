//! Encryption at rest: records of a stream under StartStreamEncryption are sealed here, in the
//! gateway that takes the write, with AES-256-GCM under the stream's data key, before they reach
//! a shard group; so the Raft log (the only place a record is stored, on every replica, and what
//! catch-up and snapshots copy) holds ciphertext only, and a record is encrypted once.
//!
//! Envelope encryption as on AWS: each stream's data keys are generated here and stored in the
//! controller's replicated state wrapped by a master key (a KMS key); only the key provider
//! (the keyring file by default, [`KeyProvider`] for a real KMS) holds master keys. Reads open
//! records with the data key their record names; a key that is missing, disabled or wrong fails
//! the read with KMS's error, never answering ciphertext as data. Keys are never logged.

mod keyring;
mod seal;

pub use keyring::{Keyring, KeyringError, DEFAULT_KEY_ALIAS};
pub use seal::{DataKeys, RecordSealer};

/// Why a master key cannot be used; each is one of Kinesis's KMS errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    /// KMSNotFoundException: no key or alias of that name.
    #[error("{0}")]
    NotFound(String),
    /// KMSDisabledException.
    #[error("{0}")]
    Disabled(String),
    /// KMSAccessDeniedException: the key belongs to another account.
    #[error("{0}")]
    AccessDenied(String),
    /// KMSInvalidStateException: the key cannot open what it is asked to (another key's
    /// material), or the provider failed.
    #[error("{0}")]
    InvalidState(String),
}

/// Where a request asks for a key: KMS keys and aliases belong to an account and a region.
#[derive(Debug, Clone, Copy)]
pub struct KeyScope<'a> {
    pub account: &'a str,
    pub region: &'a str,
}

/// A source of master keys: the keyring file, or a KMS. Wrapping and unwrapping bind the data
/// key to `context` (the stream), so a wrapped key copied to another stream does not open.
pub trait KeyProvider: Send + Sync + std::fmt::Debug {
    /// The ARN of the key a client's KeyId names: a key id, a key ARN, an alias name
    /// (`alias/…`) or an alias ARN. [`DEFAULT_KEY_ALIAS`] is created on first use.
    fn resolve(&self, key_id: &str, scope: KeyScope<'_>) -> Result<String, KmsError>;
    /// `data_key` encrypted under the master key `key_arn`.
    fn wrap(&self, key_arn: &str, data_key: &[u8], context: &[u8]) -> Result<Vec<u8>, KmsError>;
    /// The data key `wrapped` holds, if `key_arn` is present, enabled and the one that wrapped it.
    fn unwrap(&self, key_arn: &str, wrapped: &[u8], context: &[u8]) -> Result<Vec<u8>, KmsError>;
    /// Changes whenever keys may have changed (a reloaded keyring): unwrapped keys cached before
    /// are then checked again, so a removed or disabled key stops opening records.
    fn version(&self) -> u64;
}
