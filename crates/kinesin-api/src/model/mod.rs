//! Typed request (`XxxInput`) and response (`XxxOutput`) shapes of the 39 stream
//! operations, with the member names, nesting and types of botocore's model.
//!
//! Conventions:
//! - Field names are the model's member names in snake_case; serde maps them back
//!   exactly (`StreamARN`, `WarmThroughputMiBps`, `MaxRecordSizeInKiB`, ...).
//! - Members the model marks `required` are plain fields; the others are `Option`s,
//!   left out of the JSON when `None`.
//! - Blobs (`Data`) are `Vec<u8>`, standard base64 on the wire ([`crate::codec::blob`]).
//! - Timestamps are `f64` epoch seconds, written with millisecond precision
//!   ([`crate::codec::timestamp`]).
//! - Enumerations are `String`s in request-only structures (validation has already
//!   checked the value; parse with e.g. [`ShardIteratorType::from_wire`]) and Rust enums
//!   in response structures. [`StreamModeDetails`], shared by requests and responses,
//!   uses [`StreamMode`].
//! - Maps (`Tags`) are `BTreeMap<String, String>`.
//! - Every shape derives both `Serialize` and `Deserialize`, so clients and tests can
//!   use them too. Operations without an output shape get an empty `XxxOutput {}`
//!   (AWS answers them with an empty body, see [`crate::Operation::has_output`]).
//!   EnableEnhancedMonitoring and DisableEnhancedMonitoring share the model's
//!   [`EnhancedMonitoringOutput`]. SubscribeToShard's response is an event stream: its
//!   [`SubscribeToShardOutput`] is the (empty) initial response and each event's payload
//!   is a [`SubscribeToShardEvent`].

/// Defines a model enumeration with its wire spellings.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $( $variant:ident => $wire:literal, )* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(
                #[doc = concat!("`", $wire, "`")]
                #[serde(rename = $wire)]
                $variant,
            )*
        }

        impl $name {
            /// Every value, in model order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )* ];

            /// The wire spelling.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )*
                }
            }

            /// Parses the wire spelling (exact, case-sensitive).
            pub fn from_wire(text: &str) -> Option<$name> {
                match text {
                    $( $wire => Some($name::$variant), )*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

mod account;
mod common;
mod consumer;
mod data;
mod policy;
mod stream;
mod tags;

pub use account::*;
pub use common::*;
pub use consumer::*;
pub use data::*;
pub use policy::*;
pub use stream::*;
pub use tags::*;

#[cfg(test)]
mod tests;
