//! A Kinesin node: configuration, start-up and shutdown, the clocks it can run on, and test
//! failpoints. It starts the storage engine, the Raft groups, the controller and its procedures,
//! and the gateway, and stops them.
//!
//! This is the only crate that wires the others together. It must never implement storage,
//! consensus, the controller's procedures or the Kinesis API itself: it composes the crates that do.

pub mod clock;
pub mod config;
pub mod failpoints;
mod node;
pub mod rebuild;
pub mod telemetry;
pub mod tls;

pub use config::{ListenAddr, LogFormat, OnDemandScaling, ServerArgs, ServerConfig};
pub use kinesin_controller::ReshardFaults;
pub use node::{Listeners, Node, NodeError};
