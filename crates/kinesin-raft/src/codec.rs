//! Serialization of what the Raft layer stores. bincode: compact, and byte blobs (record data via
//! serde_bytes) are copied as one slice rather than element by element.

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, io::Error> {
    bincode::serialize(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, io::Error> {
    bincode::deserialize(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
