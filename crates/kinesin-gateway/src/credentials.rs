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
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::policy::{Policy, PolicyKind};

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

/// What a file looked like when last read: its modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The credentials in force, from a file that is re-read when it changes.
#[derive(Debug)]
pub struct CredentialStore {
    path: PathBuf,
    current: RwLock<Arc<Credentials>>,
    seen: Mutex<Stamp>,
}

impl CredentialStore {
    /// Loads the file at `path`; an error names the file and the bad key.
    pub fn open(path: &Path) -> Result<CredentialStore, CredentialsError> {
        let seen = stamp(path);
        let credentials = Credentials::load(path)?;
        Ok(CredentialStore {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(credentials)),
            seen: Mutex::new(seen),
        })
    }

    /// The file the credentials come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credentials in force now.
    pub fn current(&self) -> Arc<Credentials> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the file if its modification time or length changed since it was last read.
    /// Returns whether new credentials are in force; a file that fails to load is logged and
    /// the previous credentials stay.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.path);
        {
            let mut seen = match self.seen.lock() {
                Ok(seen) => seen,
                Err(poisoned) => poisoned.into_inner(),
            };
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match Credentials::load(&self.path) {
            Ok(credentials) => {
                tracing::info!(file = %self.path.display(), users = credentials.len(), "credentials reloaded");
                let mut current = match self.current.write() {
                    Ok(current) => current,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *current = Arc::new(credentials);
                true
            }
            Err(error) => {
                tracing::error!(%error, "the credentials file changed but cannot be used; the previous credentials stay in force");
                false
            }
        }
    }

    /// Checks the file for changes every `every`, until the task is aborted.
    pub fn spawn_reloader(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let store = store.clone();
                // A small file, but still blocking I/O.
                let _ = tokio::task::spawn_blocking(move || store.reload_if_changed()).await;
            }
        })
    }
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
