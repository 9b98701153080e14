//! A Kinesin node: configuration, start-up and shutdown, and the loops that make this node's groups
//! match the controller's state (the reconciler) and enforce retention.
//!
//! This is the only crate that wires the others together. It must never implement storage,
//! consensus or the Kinesis API itself: it composes the crates that do.

mod autoscale;
pub mod clock;
pub mod config;
pub mod failpoints;
mod liveness;
mod node;
mod reconciler;
mod resharder;
mod retention;
pub mod tls;

pub use config::{ListenAddr, OnDemandScaling, ServerArgs, ServerConfig};
pub use node::{Listeners, Node, NodeError};
pub use resharder::ReshardFaults;
