//! The keyring file (`kinesin server --keyring FILE`): master keys held by the operator, each an
//! AES-256 key with an id, aliases, and optionally the one account that may use it. Re-read when
//! it changes; a missing file is an empty keyring; key material never appears in logs.
//!
//! ```toml
//! [[key]]
//! id = "8d3f0c52-2b4e-4f0e-9a55-0d5d8d9e7b11"
//! material = "base64 of 32 random bytes"   # head -c 32 /dev/urandom | base64
//! aliases = ["alias/orders"]               # optional
//! account = "111111111111"                 # optional: only this account may use the key
//! enabled = true                           # default true; false refuses new writes and reads
//! ```
//!
//! Every node of a cluster needs the same keyring: a record sealed on one node is read on others.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

use super::{KeyProvider, KeyScope, KmsError};
use crate::watched::{FileContents, WatchedFile};

/// The alias of the cluster's default key (AWS's KMS key for Kinesis), created on first use.
pub const DEFAULT_KEY_ALIAS: &str = "alias/aws/kinesis";

/// Why a keyring file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("keyring file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("keyring file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("keyring file {path}: `{key}`: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    key: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    id: String,
    material: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    account: Option<String>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// One master key.
struct MasterKey {
    key: LessSafeKey,
    account: Option<String>,
    enabled: bool,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("account", &self.account)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// The keys of one version of the file.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    by_id: HashMap<String, MasterKey>,
    /// Alias name (`alias/…`) → key id.
    aliases: HashMap<String, String>,
}

impl Keys {
    fn parse(text: &str, path: &Path) -> Result<Keys, KeyringError> {
        let file: FileFormat = toml::from_str(text).map_err(|e| KeyringError::Parse {
            path: path.display().to_string(),
            message: e.message().to_string(),
        })?;
        let mut keys = Keys::default();
        for (i, entry) in file.key.into_iter().enumerate() {
            let invalid = |field: &str, message: String| KeyringError::Invalid {
                path: path.display().to_string(),
                key: format!("key[{i}].{field}"),
                message,
            };
            if entry.id.is_empty() || entry.id.contains(['/', ':']) || entry.id.len() > 256 {
                return Err(invalid(
                    "id",
                    "must be 1 to 256 characters without '/' or ':'".into(),
                ));
            }
            if keys.by_id.contains_key(&entry.id) {
                return Err(invalid("id", format!("{} is used twice", entry.id)));
            }
            let material = base64::engine::general_purpose::STANDARD
                .decode(entry.material.trim())
                .ok()
                .filter(|m| m.len() == 32)
                .ok_or_else(|| invalid("material", "must be 32 bytes in base64".into()))?;
            let key = UnboundKey::new(&AES_256_GCM, &material)
                .map_err(|_| invalid("material", "not an AES-256 key".into()))?;
            if let Some(account) = &entry.account {
                if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid("account", "must be 12 digits".into()));
                }
            }
            for alias in &entry.aliases {
                let name = alias.strip_prefix("alias/").unwrap_or_default();
                if name.is_empty() || name.len() > 250 || alias.contains(':') {
                    return Err(invalid(
                        "aliases",
                        format!("{alias:?} must be alias/ and a name"),
                    ));
                }
                if keys
                    .aliases
                    .insert(alias.clone(), entry.id.clone())
                    .is_some()
                {
                    return Err(invalid("aliases", format!("{alias} names two keys")));
                }
            }
            keys.by_id.insert(
                entry.id,
                MasterKey {
                    key: LessSafeKey::new(key),
                    account: entry.account,
                    enabled: entry.enabled,
                },
            );
        }
        Ok(keys)
    }
}

impl FileContents for Keys {
    type Error = KeyringError;
    const WHAT: &'static str = "keyring";

    fn load(path: &Path) -> Result<Keys, KeyringError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Keys::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Keys::default()),
            Err(source) => Err(KeyringError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    fn entries(&self) -> usize {
        self.by_id.len()
    }
}

/// What a client's KeyId names.
enum Named<'a> {
    Key(&'a str),
    Alias(&'a str),
}

/// A KeyId as KMS reads it: a key id, `alias/NAME`, or the ARN of either (whose account, when
/// given, must be the key's).
fn parse_key_id(key_id: &str) -> Option<(Named<'_>, Option<&str>)> {
    if let Some(rest) = key_id.strip_prefix("arn:") {
        let mut parts = rest.splitn(5, ':');
        let (_partition, service, _region, account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if service != "kms" {
            return None;
        }
        let named = match resource.strip_prefix("key/") {
            Some(id) => Named::Key(id),
            None => Named::Alias(resource.starts_with("alias/").then_some(resource)?),
        };
        return Some((named, Some(account)));
    }
    if key_id.starts_with("alias/") {
        Some((Named::Alias(key_id), None))
    } else {
        Some((Named::Key(key_id), None))
    }
}

/// The master keys of a keyring file, as a [`KeyProvider`].
#[derive(Debug)]
pub struct Keyring {
    file: Arc<WatchedFile<Keys>>,
    /// Serializes creating the default key, so two first uses create one key.
    creating: Mutex<()>,
    random: SystemRandom,
}

fn key_arn(scope: KeyScope<'_>, owner: &str, id: &str) -> String {
    format!("arn:aws:kms:{}:{owner}:key/{id}", scope.region)
}

/// The key id an ARN this keyring made names, and the region and account in it.
fn id_of_arn(key_arn: &str) -> Option<&str> {
    key_arn.rsplit_once(":key/").map(|(_, id)| id)
}

impl Keyring {
    /// The keyring at `path` (a missing file is an empty keyring, created on first use of the
    /// default key); an error names the file and the bad key.
    pub fn open(path: &Path) -> Result<Keyring, KeyringError> {
        Ok(Keyring {
            file: Arc::new(WatchedFile::open(path)?),
            creating: Mutex::new(()),
            random: SystemRandom::new(),
        })
    }

    /// Re-reads the file every `every` when it changed, until `stopped` turns true.
    pub fn spawn_reloader(
        &self,
        every: std::time::Duration,
        stopped: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        self.file.spawn_reloader(every, stopped)
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Appends a new key with [`DEFAULT_KEY_ALIAS`] to the file, unless one appeared meanwhile.
    fn create_default_key(&self) -> Result<(), KmsError> {
        let _creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        self.file.reload_if_changed();
        if self.file.current().aliases.contains_key(DEFAULT_KEY_ALIAS) {
            return Ok(());
        }
        let mut material = [0u8; 32];
        self.random
            .fill(&mut material)
            .map_err(|_| KmsError::InvalidState("no randomness for a new key".into()))?;
        let id = uuid::Uuid::new_v4().to_string();
        let entry = format!(
            "\n# Created by Kinesin on first use of {DEFAULT_KEY_ALIAS}.\n[[key]]\nid = \"{id}\"\naliases = [\"{DEFAULT_KEY_ALIAS}\"]\nmaterial = \"{}\"\n",
            base64::engine::general_purpose::STANDARD.encode(material)
        );
        append_atomically(self.path(), &entry).map_err(|e| {
            KmsError::InvalidState(format!(
                "the default key could not be added to the keyring {}: {e}",
                self.path().display()
            ))
        })?;
        if !self.file.reload_if_changed() {
            return Err(KmsError::InvalidState(format!(
                "the keyring {} did not take the new default key",
                self.path().display()
            )));
        }
        tracing::warn!(keyring = %self.path().display(), key_id = %id, "created the default key {DEFAULT_KEY_ALIAS}; every node of the cluster needs this keyring file to read the records it seals");
        Ok(())
    }

    fn seal_with(
        &self,
        key: &LessSafeKey,
        plain: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| KmsError::InvalidState("no randomness for a nonce".into()))?;
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context),
            &mut sealed,
        )
        .map_err(|_| KmsError::InvalidState("the data key could not be encrypted".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Runs `use_key` with the enabled key `key_arn` names.
    fn with_key<T>(
        &self,
        key_arn: &str,
        use_key: impl FnOnce(&LessSafeKey) -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        let keys = self.file.current();
        let key = id_of_arn(key_arn)
            .and_then(|id| keys.by_id.get(id))
            .ok_or_else(|| KmsError::NotFound(format!("Key '{key_arn}' does not exist")))?;
        if !key.enabled {
            return Err(KmsError::Disabled(format!("{key_arn} is disabled.")));
        }
        use_key(&key.key)
    }
}

/// Writes `path` with `addition` appended, through a new file renamed over it (readable by the
/// owner only), so a crash leaves the old keyring or the new one, never half of one.
fn append_atomically(path: &Path, addition: &str) -> std::io::Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    text.push_str(addition);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    temp.write_all(text.as_bytes())?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(&dir)?.sync_all()
}

impl KeyProvider for Keyring {
    fn resolve(&self, key_id: &str, scope: KeyScope<'_>) -> Result<String, KmsError> {
        if key_id == DEFAULT_KEY_ALIAS && !self.file.current().aliases.contains_key(key_id) {
            self.create_default_key()?;
        }
        let keys = self.file.current();
        let (named, arn_account) = parse_key_id(key_id)
            .ok_or_else(|| KmsError::NotFound(format!("Invalid keyId {key_id}")))?;
        let id = match named {
            Named::Key(id) => id,
            Named::Alias(alias) => {
                keys.aliases.get(alias).map(String::as_str).ok_or_else(|| {
                    KmsError::NotFound(format!(
                        "Alias arn:aws:kms:{}:{}:{alias} is not found.",
                        scope.region,
                        arn_account.unwrap_or(scope.account)
                    ))
                })?
            }
        };
        let not_found = || {
            KmsError::NotFound(format!(
                "Key '{}' does not exist",
                key_arn(scope, arn_account.unwrap_or(scope.account), id)
            ))
        };
        let key = keys.by_id.get(id).ok_or_else(not_found)?;
        let owner = key.account.as_deref().unwrap_or(scope.account);
        if arn_account.is_some_and(|account| account != owner) {
            return Err(not_found());
        }
        let arn = key_arn(scope, owner, id);
        if owner != scope.account {
            return Err(KmsError::AccessDenied(format!(
                "Account {} is not authorized to use {arn}: the key belongs to account {owner}.",
                scope.account
            )));
        }
        if !key.enabled {
            return Err(KmsError::Disabled(format!("{arn} is disabled.")));
        }
        Ok(arn)
    }

    fn wrap(&self, key_arn: &str, data_key: &[u8], context: &[u8]) -> Result<Vec<u8>, KmsError> {
        self.with_key(key_arn, |key| self.seal_with(key, data_key, context))
    }

    fn unwrap(&self, key_arn: &str, wrapped: &[u8], context: &[u8]) -> Result<Vec<u8>, KmsError> {
        self.with_key(key_arn, |key| {
            let wrong = || {
                KmsError::InvalidState(format!(
                    "The data key cannot be decrypted with {key_arn}: its material is not the one that encrypted it."
                ))
            };
            if wrapped.len() < NONCE_LEN {
                return Err(wrong());
            }
            let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
            let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
            let mut sealed = sealed.to_vec();
            let plain = key
                .open_in_place(nonce, Aad::from(context), &mut sealed)
                .map_err(|_| wrong())?;
            Ok(plain.to_vec())
        })
    }

    fn version(&self) -> u64 {
        self.file.version()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: KeyScope<'static> = KeyScope {
        account: "111111111111",
        region: "us-east-1",
    };

    fn material(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    fn keyring(text: &str) -> (tempfile::TempDir, Keyring) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.toml");
        std::fs::write(&path, text).unwrap();
        let keyring = Keyring::open(&path).unwrap();
        (dir, keyring)
    }

    #[test]
    fn key_ids_aliases_and_arns_resolve_to_the_key_arn() {
        let (_dir, keyring) = keyring(&format!(
            "[[key]]\nid = \"k1\"\nmaterial = \"{}\"\naliases = [\"alias/orders\"]\n",
            material(1)
        ));
        let arn = "arn:aws:kms:us-east-1:111111111111:key/k1";
        for key_id in [
            "k1",
            "alias/orders",
            arn,
            "arn:aws:kms:us-east-1:111111111111:alias/orders",
        ] {
            assert_eq!(keyring.resolve(key_id, SCOPE).unwrap(), arn, "{key_id}");
        }
        assert_eq!(
            keyring.resolve("k2", SCOPE),
            Err(KmsError::NotFound(
                "Key 'arn:aws:kms:us-east-1:111111111111:key/k2' does not exist".into()
            ))
        );
        assert_eq!(
            keyring.resolve("alias/nope", SCOPE),
            Err(KmsError::NotFound(
                "Alias arn:aws:kms:us-east-1:111111111111:alias/nope is not found.".into()
            ))
        );
        assert!(matches!(
            keyring.resolve("arn:aws:kms:us-east-1:222222222222:key/k1", SCOPE),
            Err(KmsError::NotFound(_))
        ));
    }

    #[test]
    fn another_accounts_key_is_denied_and_a_disabled_key_refused() {
        let (_dir, keyring) = keyring(&format!(
            "[[key]]\nid = \"theirs\"\nmaterial = \"{}\"\naccount = \"222222222222\"\n\
             [[key]]\nid = \"off\"\nmaterial = \"{}\"\nenabled = false\n",
            material(1),
            material(2)
        ));
        assert!(matches!(
            keyring.resolve("theirs", SCOPE),
            Err(KmsError::AccessDenied(m)) if m.contains("222222222222")
        ));
        assert!(matches!(
            keyring.resolve("off", SCOPE),
            Err(KmsError::Disabled(_))
        ));
        let arn = "arn:aws:kms:us-east-1:111111111111:key/off";
        assert!(matches!(
            keyring.wrap(arn, &[0; 32], b"ctx"),
            Err(KmsError::Disabled(_))
        ));
    }

    #[test]
    fn wrapped_keys_open_only_with_their_key_and_context() {
        let (dir, keyring) = keyring(&format!(
            "[[key]]\nid = \"k\"\nmaterial = \"{}\"\n",
            material(1)
        ));
        let arn = keyring.resolve("k", SCOPE).unwrap();
        let wrapped = keyring.wrap(&arn, &[7; 32], b"stream-a").unwrap();
        assert!(!wrapped.windows(32).any(|w| w == [7; 32]));
        assert_eq!(
            keyring.unwrap(&arn, &wrapped, b"stream-a").unwrap(),
            [7; 32]
        );
        assert!(matches!(
            keyring.unwrap(&arn, &wrapped, b"stream-b"),
            Err(KmsError::InvalidState(_))
        ));
        // The same id with other material (a key replaced in the file) fails closed.
        let version = keyring.version();
        std::fs::write(
            dir.path().join("keyring.toml"),
            format!("[[key]]\nid = \"k\"\nmaterial = \"{}\"\n\n", material(2)),
        )
        .unwrap();
        assert!(keyring.file.reload_if_changed());
        assert_ne!(keyring.version(), version);
        assert!(matches!(
            keyring.unwrap(&arn, &wrapped, b"stream-a"),
            Err(KmsError::InvalidState(_))
        ));
        // A removed key is not found.
        std::fs::write(dir.path().join("keyring.toml"), "").unwrap();
        assert!(keyring.file.reload_if_changed());
        assert!(matches!(
            keyring.unwrap(&arn, &wrapped, b"stream-a"),
            Err(KmsError::NotFound(_))
        ));
    }

    #[test]
    fn the_default_key_is_created_on_first_use_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("keyring.toml");
        let keyring = Keyring::open(&path).unwrap();
        let arn = keyring.resolve(DEFAULT_KEY_ALIAS, SCOPE).unwrap();
        assert!(
            arn.starts_with("arn:aws:kms:us-east-1:111111111111:key/"),
            "{arn}"
        );
        assert_eq!(keyring.resolve(DEFAULT_KEY_ALIAS, SCOPE).unwrap(), arn);
        // Another process reading the file finds the same key.
        let again = Keyring::open(&path).unwrap();
        assert_eq!(again.resolve(DEFAULT_KEY_ALIAS, SCOPE).unwrap(), arn);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn bad_files_name_the_key_and_never_show_material() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.toml");
        let secret = material(9);
        for (text, key) in [
            (
                format!("[[key]]\nid = \"a/b\"\nmaterial = \"{secret}\"\n"),
                "key[0].id",
            ),
            (
                "[[key]]\nid = \"a\"\nmaterial = \"c2hvcnQ=\"\n".to_string(),
                "key[0].material",
            ),
            (
                format!("[[key]]\nid = \"a\"\nmaterial = \"{secret}\"\naccount = \"12\"\n"),
                "key[0].account",
            ),
            (
                format!("[[key]]\nid = \"a\"\nmaterial = \"{secret}\"\naliases = [\"orders\"]\n"),
                "key[0].aliases",
            ),
        ] {
            std::fs::write(&path, &text).unwrap();
            let error = Keyring::open(&path).unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
            assert!(!error.contains(&secret), "{error}");
        }
        let keyring = {
            std::fs::write(
                &path,
                format!("[[key]]\nid = \"a\"\nmaterial = \"{secret}\"\n"),
            )
            .unwrap();
            Keyring::open(&path).unwrap()
        };
        assert!(!format!("{keyring:?}").contains(&secret));
    }
}
