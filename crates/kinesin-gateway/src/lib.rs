//! The Kinesis API front door of a node: HTTP/1.1 and cleartext HTTP/2 (axum/hyper), the Kinesis
//! JSON 1.1 protocol, request routing to shard groups by hash key, and the mapping of every
//! internal error to the Kinesis error a client expects — done once, here; and who is asking:
//! SigV4 verification against the credentials file, when the node has one. Records of encrypted
//! streams are sealed here, before they are routed, and opened here when read (`encryption`).
//!
//! It must never write to storage directly or decide cluster metadata: records go through shard
//! groups' Raft logs, metadata changes through the controller.

mod admin;
mod admission;
mod auth;
mod authorize;
mod console;
mod context;
pub mod credentials;
pub mod encryption;
mod error;
mod limits;
mod metrics;
mod ops;
pub mod policy;
mod read_quota;
mod server;
mod stream_metrics;
mod tokens;
mod watched;

pub use admin::JOIN_REFUSED;
pub use credentials::{CredentialStore, CredentialsError};
pub use limits::{Limits, ReadQuota};
pub use policy::{Policy, PolicyError, PolicyKind};
pub use server::{Gateway, GatewaySettings};
pub use watched::{FileContents, WatchedFile};
