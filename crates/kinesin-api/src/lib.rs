//! The Kinesis Data Streams wire layer of Kinesin: operation names, typed request and
//! response shapes, request validation exactly as AWS performs it (driven by botocore's
//! model of the service, embedded in the crate), the error type with AWS's `__type`s,
//! and SigV4 (credential scopes, canonical requests, signing and verification; the caller
//! passes the time); JSON and CBOR ([`Protocol`]) on the wire.
//!
//! This crate must never do I/O, hold state, know about storage or the cluster, spawn
//! tasks or read a clock: it turns bytes into typed requests (or AWS-shaped errors) and
//! typed responses into bytes. Anything a client sends is answered with a
//! [`KinesisError`], never a panic.

#![forbid(unsafe_code)]
// Input from the wire must be answered with an error, never a panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod cbor;
pub mod codec;
mod error;
pub mod event_stream;
mod fast_path;
pub mod model;
mod operation;
mod protocol;
mod request;
mod service_model;
pub mod sigv4;
pub mod validate;

pub use codec::encode_output;
pub use error::{ErrorKind, KinesisError};
pub use operation::Operation;
pub use protocol::Protocol;
/// [`decode_request`] without the write path's shortcut, for the fuzzers' differential check.
#[doc(hidden)]
pub use request::decode_slowly;
pub use request::{decode_request, Request};
pub use sigv4::canonical::HttpRequest;
pub use sigv4::verify::Authentication;
pub use sigv4::{credential_scope, credential_scope_with_date, CredentialScope};

/// The `X-Amz-Target` prefix of every Kinesis operation (`Kinesis_20131202.PutRecord`).
pub const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// The JSON content type AWS SDKs send and expect.
pub const CONTENT_TYPE_JSON: &str = "application/x-amz-json-1.1";

/// The CBOR content type (the Java SDK's default).
pub const CONTENT_TYPE_CBOR: &str = "application/x-amz-cbor-1.1";

/// The SigV4 service name Kinesis requests are signed for.
pub const SIGNING_SERVICE: &str = "kinesis";
