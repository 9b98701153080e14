//! Serialization of what the Raft layer sends between nodes (the cluster transport's payloads and
//! snapshots in flight). bincode: compact, and byte blobs are copied as one slice rather than
//! element by element. What is stored on disk is `disk_format`'s, which can evolve; these bytes
//! live only as long as one call, but nodes of different versions do not understand each other.

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, io::Error> {
    bincode::serialize(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, io::Error> {
    bincode::deserialize(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
