//! JSON encoding helpers: responses, base64 blobs and epoch-second timestamps.
//!
//! On the JSON wire (`application/x-amz-json-1.1`) blobs are standard base64 with
//! padding and timestamps are epoch seconds as a JSON number with (up to) millisecond
//! precision, e.g. `1700000000.123`.

use serde::Serialize;

/// Encodes a response shape as the JSON response body.
///
/// Operations without an output shape (see [`crate::Operation::has_output`]) are
/// answered by AWS with an empty body rather than `{}`.
pub fn encode_output<T: Serialize>(output: &T) -> Vec<u8> {
    // The model types serialise infallibly (string keys, finite numbers); a failure
    // would be a bug, answered with an empty object rather than a panic.
    serde_json::to_vec(output).unwrap_or_else(|_| b"{}".to_vec())
}

/// Milliseconds since the epoch as the wire's epoch seconds.
pub fn millis_to_epoch_seconds(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

/// Epoch seconds from the wire as whole milliseconds since the epoch (rounded to the
/// nearest millisecond, saturating at the ends of `i64`).
pub fn epoch_seconds_to_millis(seconds: f64) -> i64 {
    let millis = (seconds * 1000.0).round();
    if millis.is_nan() {
        0
    } else {
        // `as` saturates for out-of-range floats.
        millis as i64
    }
}

/// Rounds epoch seconds to millisecond precision, as they are written on the wire.
pub fn round_to_millis(seconds: f64) -> f64 {
    if !seconds.is_finite() {
        return 0.0;
    }
    let rounded = (seconds * 1000.0).round() / 1000.0;
    if rounded.is_finite() {
        rounded
    } else {
        seconds
    }
}

/// Checks a base64 string the way AWS's JSON layer does, with AWS's messages
/// (`'...' can not be converted to a Blob: ...`). `Ok` means
/// [`base64::engine::general_purpose::STANDARD`] decodes it.
pub fn check_base64(text: &str) -> Result<(), String> {
    use base64::Engine as _;
    let bytes = text.as_bytes();
    let length = text.chars().count();
    if !length.is_multiple_of(4) {
        return Err(format!(
            "'{text}' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: {length}"
        ));
    }
    let mut previous_was_pad = false;
    for ch in text.chars() {
        let valid = ch.is_ascii_alphanumeric() || ch == '+' || ch == '/' || ch == '=';
        if !valid || (previous_was_pad && ch != '=') {
            let shown = if valid { '=' } else { ch };
            return Err(format!(
                "'{text}' can not be converted to a Blob: Invalid Base64 character: '{shown}'"
            ));
        }
        previous_was_pad = ch == '=';
    }
    // Too much padding or non-zero bits after the last character.
    let tail_ok = match bytes.len().checked_sub(4) {
        None => true,
        Some(start) => base64::engine::general_purpose::STANDARD
            .decode(&bytes[start..])
            .is_ok(),
    };
    if !tail_ok {
        return Err(format!(
            "'{text}' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"
        ));
    }
    Ok(())
}

/// `#[serde(with = "crate::codec::blob")]`: `Vec<u8>` as standard base64 with padding.
pub mod blob {
    use base64::display::Base64Display;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{de, Deserializer, Serializer};

    /// Writes the bytes as base64 without an intermediate string.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&Base64Display::new(bytes, &STANDARD))
    }

    /// Reads base64 text; invalid base64 is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
                STANDARD
                    .decode(text)
                    .map_err(|e| E::custom(format!("'{text}' can not be converted to a Blob: {e}")))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// `#[serde(with = "crate::codec::timestamp")]`: `f64` epoch seconds, written with
/// millisecond precision; reads integers and decimals.
pub mod timestamp {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the timestamp rounded to milliseconds.
    pub fn serialize<S: Serializer>(seconds: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(super::round_to_millis(*seconds))
    }

    /// Reads a JSON number (integer or decimal) of epoch seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        f64::deserialize(deserializer)
    }
}

/// `#[serde(with = "crate::codec::opt_timestamp", default)]`: `Option<f64>` epoch
/// seconds.
pub mod opt_timestamp {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the timestamp rounded to milliseconds, or null.
    pub fn serialize<S: Serializer>(
        seconds: &Option<f64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match seconds {
            Some(seconds) => serializer.serialize_f64(super::round_to_millis(*seconds)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads an optional JSON number of epoch seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        Option::<f64>::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Shape {
        #[serde(with = "blob")]
        data: Vec<u8>,
        #[serde(with = "timestamp")]
        at: f64,
        #[serde(
            with = "opt_timestamp",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        maybe: Option<f64>,
    }

    #[test]
    fn blobs_and_timestamps_round_trip() {
        let shape: Shape =
            serde_json::from_str(r#"{"data":"aGVsbG8=","at":1700000000,"maybe":1.5}"#).unwrap();
        assert_eq!(shape.data, b"hello");
        assert_eq!(shape.at, 1_700_000_000.0);
        assert_eq!(shape.maybe, Some(1.5));
        let text = String::from_utf8(encode_output(&shape)).unwrap();
        assert_eq!(text, r#"{"data":"aGVsbG8=","at":1700000000.0,"maybe":1.5}"#);
    }

    #[test]
    fn timestamps_are_written_with_millisecond_precision() {
        let shape = Shape {
            data: vec![],
            at: 1_700_000_000.123_456_7,
            maybe: None,
        };
        let text = String::from_utf8(encode_output(&shape)).unwrap();
        assert_eq!(text, r#"{"data":"","at":1700000000.123}"#);
        assert_eq!(
            millis_to_epoch_seconds(1_700_000_000_123),
            1_700_000_000.123
        );
        assert_eq!(
            epoch_seconds_to_millis(1_700_000_000.123),
            1_700_000_000_123
        );
        assert_eq!(epoch_seconds_to_millis(f64::NAN), 0);
        assert_eq!(epoch_seconds_to_millis(1e300), i64::MAX);
        assert_eq!(round_to_millis(f64::INFINITY), 0.0);
        assert_eq!(round_to_millis(1e300), 1e300);
    }

    #[test]
    fn invalid_base64_is_an_error() {
        assert!(serde_json::from_str::<Shape>(r#"{"data":"abc","at":1}"#).is_err());
        assert!(serde_json::from_str::<Shape>(r#"{"data":1,"at":1}"#).is_err());
        assert!(serde_json::from_str::<Shape>(r#"{"data":"","at":"1"}"#).is_err());
    }

    #[test]
    fn base64_check_messages_match_aws() {
        assert_eq!(check_base64(""), Ok(()));
        assert_eq!(check_base64("aGVsbG8="), Ok(()));
        assert_eq!(check_base64("aGVsbA=="), Ok(()));
        assert_eq!(check_base64("aGVs"), Ok(()));
        assert_eq!(
            check_base64("23456").unwrap_err(),
            "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5"
        );
        assert_eq!(
            check_base64("=+/=").unwrap_err(),
            "'=+/=' can not be converted to a Blob: Invalid Base64 character: '='"
        );
        assert_eq!(
            check_base64("ab!d").unwrap_err(),
            "'ab!d' can not be converted to a Blob: Invalid Base64 character: '!'"
        );
        assert_eq!(
            check_base64("+/+=").unwrap_err(),
            "'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"
        );
        assert!(check_base64("a===").is_err());
        assert!(check_base64("====").is_err());
        assert_eq!(
            check_base64("é123").unwrap_err(),
            "'é123' can not be converted to a Blob: Invalid Base64 character: 'é'"
        );
    }
}
