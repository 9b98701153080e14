//! Records sealed and opened with their stream's data keys.
//!
//! A sealed record's stored data is `1 · nonce (12) · AES-256-GCM(varint(key length) · partition
//! key · data) · tag (16)`, authenticated with the stream's ARN, creation time and the data key's
//! generation, so a record copied into another stream, or another generation, does not open.
//! Nonces are a random per-process prefix and a counter: unique for every record this process
//! seals, where random 96-bit nonces would risk a repeat after some 2^32 records under one key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use kinesin_controller::{NewDataKey, StreamMeta};
use kinesin_raft::{NewRecord, StoredRecord};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use super::{KeyProvider, KeyScope, KmsError};

const ENVELOPE_VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const DATA_KEY_LEN: usize = 32;

/// The stream a data key belongs to, as wrapping binds it.
fn stream_context(stream: &StreamMeta) -> Vec<u8> {
    let mut context = stream.arn.as_bytes().to_vec();
    context.push(0);
    context.extend_from_slice(&stream.created_ms.to_be_bytes());
    context
}

/// What a sealed record is authenticated with.
fn record_context(stream: &StreamMeta, generation: u32) -> Vec<u8> {
    let mut context = stream_context(stream);
    context.extend_from_slice(&generation.to_be_bytes());
    context
}

/// A nonce never used before by this process.
fn next_nonce() -> [u8; NONCE_LEN] {
    static STATE: OnceLock<(u32, AtomicU64)> = OnceLock::new();
    let (prefix, counter) = STATE.get_or_init(|| {
        let mut seed = [0u8; 12];
        // Without randomness the prefix is fixed; the counter still never repeats in a process.
        let _ = SystemRandom::new().fill(&mut seed);
        let (prefix, start) = seed.split_at(4);
        (
            u32::from_be_bytes(prefix.try_into().unwrap_or_default()),
            AtomicU64::new(u64::from_be_bytes(start.try_into().unwrap_or_default())),
        )
    });
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..4].copy_from_slice(&prefix.to_be_bytes());
    nonce[4..].copy_from_slice(&counter.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    nonce
}

fn varint(mut value: usize, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, byte) in bytes.iter().enumerate().take(3) {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Seals one request's records of one stream.
pub struct RecordSealer {
    key: Arc<LessSafeKey>,
    generation: u32,
    context: Vec<u8>,
}

impl RecordSealer {
    /// The record as it is stored: the envelope, with no partition key in the clear.
    pub fn seal(&self, partition_key: &str, data: &[u8]) -> Result<NewRecord, KmsError> {
        let nonce = next_nonce();
        let mut sealed =
            Vec::with_capacity(1 + NONCE_LEN + 2 + partition_key.len() + data.len() + TAG_LEN);
        sealed.push(ENVELOPE_VERSION);
        sealed.extend_from_slice(&nonce);
        varint(partition_key.len(), &mut sealed);
        sealed.extend_from_slice(partition_key.as_bytes());
        sealed.extend_from_slice(data);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&self.context),
                &mut sealed[1 + NONCE_LEN..],
            )
            .map_err(|_| KmsError::InvalidState("the record could not be encrypted".into()))?;
        sealed.extend_from_slice(tag.as_ref());
        Ok(NewRecord {
            partition_key: String::new(),
            data: sealed.into(),
            data_key: self.generation,
            sealed_len: (partition_key.len() + data.len()) as u32,
        })
    }
}

/// The stream's data keys, unwrapped by the key provider once and kept while its keys stay as
/// they were.
#[derive(Debug)]
pub struct DataKeys {
    provider: Arc<dyn KeyProvider>,
    random: SystemRandom,
    cache: Mutex<Cache>,
}

/// Unwrapped keys by stream ARN, creation time and generation, valid for one provider version.
#[derive(Default)]
struct Cache {
    version: u64,
    keys: HashMap<(String, u64, u32), Arc<LessSafeKey>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cache({} keys)", self.keys.len())
    }
}

impl DataKeys {
    pub fn new(provider: Arc<dyn KeyProvider>) -> DataKeys {
        DataKeys {
            provider,
            random: SystemRandom::new(),
            cache: Mutex::new(Cache::default()),
        }
    }

    /// A new data key for `stream` under the master key `key_id` names (StartStreamEncryption),
    /// wrapped: what the controller stores.
    pub fn new_data_key(
        &self,
        stream: &StreamMeta,
        key_id: &str,
        scope: KeyScope<'_>,
    ) -> Result<NewDataKey, KmsError> {
        let key_arn = self.provider.resolve(key_id, scope)?;
        let mut data_key = [0u8; DATA_KEY_LEN];
        self.random
            .fill(&mut data_key)
            .map_err(|_| KmsError::InvalidState("no randomness for a data key".into()))?;
        let wrapped = self
            .provider
            .wrap(&key_arn, &data_key, &stream_context(stream))?;
        Ok(NewDataKey { key_arn, wrapped })
    }

    /// The unwrapped data key of `generation`, from the cache or the provider.
    fn key(&self, stream: &StreamMeta, generation: u32) -> Result<Arc<LessSafeKey>, KmsError> {
        let version = self.provider.version();
        let cache_key = (stream.arn.clone(), stream.created_ms, generation);
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.version != version {
                cache.version = version;
                cache.keys.clear();
            }
            if let Some(key) = cache.keys.get(&cache_key) {
                return Ok(key.clone());
            }
        }
        let stored = stream.data_key(generation).ok_or_else(|| {
            KmsError::InvalidState(format!(
                "Stream {} has no data key {generation} to decrypt its records with.",
                stream.key.name
            ))
        })?;
        let plain =
            self.provider
                .unwrap(&stored.key_arn, &stored.wrapped, &stream_context(stream))?;
        let key = UnboundKey::new(&AES_256_GCM, &plain)
            .map(|k| Arc::new(LessSafeKey::new(k)))
            .map_err(|_| KmsError::InvalidState("the data key is not an AES-256 key".into()))?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.version == version {
            cache.keys.insert(cache_key, key.clone());
        }
        Ok(key)
    }

    /// What seals new records of `stream`, `None` when they are stored as sent.
    pub fn sealer(&self, stream: &StreamMeta) -> Result<Option<RecordSealer>, KmsError> {
        let Some(data_key) = stream.sealing_key() else {
            return Ok(None);
        };
        Ok(Some(RecordSealer {
            key: self.key(stream, data_key.generation)?,
            generation: data_key.generation,
            context: record_context(stream, data_key.generation),
        }))
    }

    /// Opens the sealed records among `records` in place (their `data_key` stays, telling that
    /// they were sealed). Fails as a whole: no ciphertext is ever answered as data.
    pub fn open(&self, stream: &StreamMeta, records: &mut [StoredRecord]) -> Result<(), KmsError> {
        let mut keys: Vec<(u32, Arc<LessSafeKey>, Vec<u8>)> = Vec::new();
        for record in records.iter_mut().filter(|r| r.data_key != 0) {
            let generation = record.data_key;
            let index = match keys.iter().position(|(g, ..)| *g == generation) {
                Some(index) => index,
                None => {
                    let key = self.key(stream, generation)?;
                    keys.push((generation, key, record_context(stream, generation)));
                    keys.len() - 1
                }
            };
            let (_, key, context) = &keys[index];
            open_record(key, context, record).ok_or_else(|| {
                KmsError::InvalidState(format!(
                    "A record of stream {} at position {} does not decrypt with its data key.",
                    stream.key.name, record.position
                ))
            })?;
        }
        Ok(())
    }
}

/// Replaces a sealed record's envelope by its partition key and data; `None` if it does not
/// open (tampered, or another key's).
fn open_record(key: &LessSafeKey, context: &[u8], record: &mut StoredRecord) -> Option<()> {
    let envelope = &mut record.data;
    if envelope.len() < 1 + NONCE_LEN + TAG_LEN || envelope[0] != ENVELOPE_VERSION {
        return None;
    }
    let nonce = Nonce::try_assume_unique_for_key(&envelope[1..1 + NONCE_LEN]).ok()?;
    let plain_len = key
        .open_in_place(nonce, Aad::from(context), &mut envelope[1 + NONCE_LEN..])
        .ok()?
        .len();
    let plain = &envelope[1 + NONCE_LEN..1 + NONCE_LEN + plain_len];
    let (key_len, prefix) = read_varint(plain)?;
    let partition_key = plain.get(prefix..prefix + key_len)?;
    record.partition_key = String::from_utf8(partition_key.to_vec()).ok()?;
    let data_start = 1 + NONCE_LEN + prefix + key_len;
    let data_end = 1 + NONCE_LEN + plain_len;
    envelope.truncate(data_end);
    envelope.drain(..data_start);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::Keyring;
    use base64::Engine as _;
    use kinesin_controller::{DataKey, EncryptionType};

    fn stream(arn: &str) -> StreamMeta {
        let key = kinesin_controller::StreamKey {
            account: "111111111111".into(),
            region: "us-east-1".into(),
            name: "s".into(),
        };
        StreamMeta::new(key, arn.into(), 1_700_000_000_000)
    }

    fn setup() -> (tempfile::TempDir, DataKeys, StreamMeta) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.toml");
        let material = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        std::fs::write(
            &path,
            format!("[[key]]\nid = \"k\"\nmaterial = \"{material}\"\n"),
        )
        .unwrap();
        let keys = DataKeys::new(Arc::new(Keyring::open(&path).unwrap()));
        let mut stream = stream("arn:aws:kinesis:us-east-1:111111111111:stream/s");
        let scope = KeyScope {
            account: "111111111111",
            region: "us-east-1",
        };
        let NewDataKey { key_arn, wrapped } = keys.new_data_key(&stream, "k", scope).unwrap();
        stream.encryption = EncryptionType::Kms { key_id: "k".into() };
        stream.data_keys.push(DataKey {
            generation: 1,
            key_arn,
            wrapped,
        });
        (dir, keys, stream)
    }

    fn stored(record: NewRecord, position: u64) -> StoredRecord {
        StoredRecord {
            position,
            arrival_ms: 1,
            partition_key: record.partition_key,
            data: record.data.to_vec(),
            data_key: record.data_key,
        }
    }

    #[test]
    fn a_sealed_record_shows_nothing_and_opens_to_what_was_sealed() {
        let (_dir, keys, stream) = setup();
        let sealer = keys.sealer(&stream).unwrap().unwrap();
        let long_key = "p".repeat(256);
        let mut records = vec![
            stored(sealer.seal("user-42", b"secret payload").unwrap(), 1),
            stored(sealer.seal(&long_key, b"").unwrap(), 2),
            stored(NewRecord::plain("plain", &b"as sent"[..]), 3),
        ];
        assert_eq!(records[0].partition_key, "");
        assert_eq!(records[0].data_key, 1);
        assert!(!records[0].data.windows(6).any(|w| w == b"secret"));
        let one = sealer.seal("user-42", b"secret payload").unwrap();
        assert_ne!(
            one.data.to_vec(),
            records[0].data,
            "a nonce is never reused"
        );
        assert_eq!(one.sealed_len, 21);
        keys.open(&stream, &mut records).unwrap();
        let opened: Vec<(&str, &[u8], u32)> = records
            .iter()
            .map(|r| (r.partition_key.as_str(), r.data.as_slice(), r.data_key))
            .collect();
        assert_eq!(
            opened,
            [
                ("user-42", &b"secret payload"[..], 1),
                (long_key.as_str(), &b""[..], 1),
                ("plain", &b"as sent"[..], 0)
            ]
        );
    }

    #[test]
    fn a_tampered_or_moved_record_fails_closed() {
        let (_dir, keys, stream) = setup();
        let sealer = keys.sealer(&stream).unwrap().unwrap();
        let mut tampered = stored(sealer.seal("k", b"data").unwrap(), 1);
        let last = tampered.data.len() - 1;
        tampered.data[last] ^= 1;
        assert!(matches!(
            keys.open(&stream, std::slice::from_mut(&mut tampered)),
            Err(KmsError::InvalidState(_))
        ));
        // The same wrapped key and record under another stream's name do not open.
        let mut other = stream.clone();
        other.arn = "arn:aws:kinesis:us-east-1:111111111111:stream/other".into();
        let mut moved = stored(sealer.seal("k", b"data").unwrap(), 1);
        assert!(keys.open(&other, std::slice::from_mut(&mut moved)).is_err());
        // A generation the stream never had.
        let mut unknown = stored(sealer.seal("k", b"data").unwrap(), 1);
        unknown.data_key = 9;
        assert!(keys
            .open(&stream, std::slice::from_mut(&mut unknown))
            .is_err());
    }
}
