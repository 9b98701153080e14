//! The credentials file (`kinesin server --credentials FILE`): the principals who may sign
//! requests, each with an account, an access key pair, whether it may use the admin API, and
//! IAM identity policies (see [`crate::policy`]). Re-read when it changes; a bad new file keeps
//! the previous one. Secrets never appear in `Debug` output or logs.
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! account = "111111111111"
//! access_key_id = "AKIAALICE"
//! secret_access_key = "..."
//! admin = true            # default false
//! policies = ['{"Version": "2012-10-17", "Statement": []}']
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::policy::{Policy, PolicyKind};
use crate::watched::{FileContents, WatchedFile};

/// Why a credentials file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("credentials file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("credentials file {path}: `{key}`: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
}

/// A secret access key: shown as `<redacted>`, never compared but by the signature check.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One `[[user]]`: a principal who may sign requests.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    /// 12 digits: the account the principal's requests act in.
    pub account: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// May use the admin API (`/admin/...`, `kinesin ctl`).
    pub admin: bool,
    /// IAM identity policies: what the principal may do with the Kinesis API (nothing without).
    pub policies: Vec<Policy>,
}

impl Principal {
    /// `arn:aws:iam::ACCOUNT:user/NAME`.
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::{}:user/{}", self.account, self.name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    account: String,
    access_key_id: String,
    secret_access_key: Secret,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    policies: Vec<String>,
}

/// The principals of one version of the file, by access key id.
#[derive(Debug, Default)]
pub struct Credentials {
    by_key: HashMap<String, Arc<Principal>>,
}

impl Credentials {
    /// Parses the TOML text of the file at `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Credentials, CredentialsError> {
        let path_name = path.display().to_string();
        let file: FileFormat = toml::from_str(text).map_err(|e| CredentialsError::Parse {
            path: path_name.clone(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid = |key: String, message: String| CredentialsError::Invalid {
            path: path_name.clone(),
            key,
            message,
        };
        if file.user.is_empty() {
            return Err(invalid(
                "user".into(),
                "no [[user]] table: nobody could sign a request".into(),
            ));
        }
        let mut by_key: HashMap<String, Arc<Principal>> = HashMap::new();
        for (i, user) in file.user.into_iter().enumerate() {
            let key = |field: &str| format!("user[{i}].{field}");
            let name_ok = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
            if user.name.is_empty() || user.name.len() > 64 || !user.name.chars().all(name_ok) {
                return Err(invalid(
                    key("name"),
                    "must be 1 to 64 letters, digits or +=,.@_-".into(),
                ));
            }
            if user.account.len() != 12 || !user.account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    key("account"),
                    "must be 12 digits, like 123456789012".into(),
                ));
            }
            let id = &user.access_key_id;
            if id.len() < 3 || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(invalid(
                    key("access_key_id"),
                    "must be 3 to 128 letters or digits".into(),
                ));
            }
            if user.secret_access_key.expose().is_empty() {
                return Err(invalid(
                    key("secret_access_key"),
                    "must not be empty".into(),
                ));
            }
            let mut policies = Vec::with_capacity(user.policies.len());
            for (j, policy) in user.policies.iter().enumerate() {
                let document = Policy::parse(policy, PolicyKind::Identity).map_err(|e| {
                    invalid(
                        key(&format!("policies[{j}]")),
                        format!(
                            "user {:?}'s policy is not a valid IAM policy: {e}",
                            user.name
                        ),
                    )
                })?;
                policies.push(document);
            }
            if let Some(other) = by_key.get(id) {
                return Err(invalid(
                    key("access_key_id"),
                    format!("the same as user {:?}'s", other.name),
                ));
            }
            if let Some(other) = by_key
                .values()
                .find(|p| p.name == user.name && p.account == user.account)
            {
                return Err(invalid(
                    key("name"),
                    format!(
                        "user {:?} is already in account {}",
                        other.name, other.account
                    ),
                ));
            }
            by_key.insert(
                id.clone(),
                Arc::new(Principal {
                    name: user.name,
                    account: user.account,
                    access_key_id: user.access_key_id,
                    secret_access_key: user.secret_access_key,
                    admin: user.admin,
                    policies,
                }),
            );
        }
        Ok(Credentials { by_key })
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Credentials::parse(&text, path)
    }

    /// The principal holding `access_key_id`.
    pub fn principal(&self, access_key_id: &str) -> Option<Arc<Principal>> {
        self.by_key.get(access_key_id).cloned()
    }

    /// How many principals there are.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

impl FileContents for Credentials {
    type Error = CredentialsError;
    const WHAT: &'static str = "credentials";

    fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        Credentials::load(path)
    }

    fn entries(&self) -> usize {
        self.by_key.len()
    }
}

/// The credentials in force, from a file that is re-read when it changes.
pub type CredentialStore = WatchedFile<Credentials>;

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
