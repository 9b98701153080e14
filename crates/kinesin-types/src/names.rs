use crate::error::{excerpt, TypesError};

/// Longest stream or consumer name the Kinesis API accepts.
pub const MAX_NAME_LEN: usize = 128;

/// Stream and consumer names: botocore pattern `[a-zA-Z0-9_.-]+`, length 1..=128.
///
/// The restricted alphabet is what lets ARNs be split on `/` and `:` unambiguously.
pub fn validate_stream_name(name: &str) -> Result<(), TypesError> {
    let reject = |reason| {
        Err(TypesError::InvalidName {
            name: excerpt(name),
            reason,
        })
    };
    if name.is_empty() {
        return reject("must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return reject("must be at most 128 characters long");
    }
    if !name.bytes().all(is_name_byte) {
        return reject("must match [a-zA-Z0-9_.-]+");
    }
    Ok(())
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_full_alphabet_and_boundary_lengths() {
        validate_stream_name("a").unwrap();
        validate_stream_name("My_stream.v2-prod").unwrap();
        validate_stream_name("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.-")
            .unwrap();
        validate_stream_name(&"x".repeat(128)).unwrap();
    }

    #[test]
    fn rejects_empty_and_too_long() {
        assert!(validate_stream_name("").is_err());
        assert!(validate_stream_name(&"x".repeat(129)).is_err());
    }

    #[test]
    fn rejects_characters_outside_the_pattern() {
        for bad in [
            "a b", "a/b", "a:b", "a*", "é", "stream\n", "\0", "a+b", "тест",
        ] {
            let err = validate_stream_name(bad).unwrap_err();
            assert!(
                matches!(err, TypesError::InvalidName { .. }),
                "{bad:?} -> {err:?}"
            );
        }
    }

    #[test]
    fn multibyte_names_are_measured_but_rejected_by_alphabet_not_length() {
        // 64 two-byte chars = 128 bytes: the alphabet check is what must fire.
        let err = validate_stream_name(&"é".repeat(64)).unwrap_err();
        assert_eq!(
            err,
            TypesError::InvalidName {
                name: "é".repeat(64),
                reason: "must match [a-zA-Z0-9_.-]+"
            }
        );
    }
}
