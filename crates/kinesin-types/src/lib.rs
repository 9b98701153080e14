//! The pure value types of Kinesin: stream and consumer names, shard ids, hash keys and
//! hash ranges, sequence numbers, shard iterators and ARNs, together with their wire
//! encodings and validation.
//!
//! This crate must never do I/O, spawn tasks or read a clock: anything time-dependent
//! (iterator expiry, sequence-number timestamps) takes the time as an argument, so every
//! function here is deterministic and every replica computes the same answer. It defines the
//! [`Clock`] seam the other crates read time through.

#![forbid(unsafe_code)]
// Input from the wire must be answered with an error, never a panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod arn;
mod clock;
mod error;
mod hash;
mod iterator;
mod names;
mod sequence;
mod shard_id;

pub use arn::*;
pub use clock::*;
pub use error::*;
pub use hash::*;
pub use iterator::*;
pub use names::*;
pub use sequence::*;
pub use shard_id::*;
