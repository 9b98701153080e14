//! The error every Kinesis operation can answer with, and its wire encoding.

use serde_json::Value;

macro_rules! error_kinds {
    ($( $(#[$doc:meta])* $kind:ident => $type_name:literal, $status:literal; )*) => {
        /// The kind of a Kinesis error; each maps to one AWS `__type` and HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $( $(#[$doc])* $kind, )*
        }

        impl ErrorKind {
            /// Every kind.
            pub const ALL: &'static [ErrorKind] = &[ $( ErrorKind::$kind, )* ];

            /// The `__type` AWS puts in the error body (`ResourceNotFoundException`).
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( ErrorKind::$kind => $type_name, )*
                }
            }

            /// The HTTP status AWS answers this error with.
            pub fn http_status(&self) -> u16 {
                match self {
                    $( ErrorKind::$kind => $status, )*
                }
            }

            /// The kind whose `__type` is `type_name`, if any (for clients reading
            /// error bodies). A `com.amazon.coral.service#` style prefix is ignored.
            pub fn from_type_name(type_name: &str) -> Option<ErrorKind> {
                let bare = type_name.rsplit('#').next().unwrap_or(type_name);
                match bare {
                    $( $type_name => Some(ErrorKind::$kind), )*
                    _ => None,
                }
            }
        }
    };
}

// HTTP statuses: every modelled Kinesis exception is a client error (400) except
// InternalFailure (500). The authentication errors are 400 as well: kinesalite's
// connection tests, which were recorded against real AWS, show
// MissingAuthenticationTokenException, IncompleteSignatureException and
// InvalidSignatureException answered `400` with a JSON body whenever the request has a
// JSON/CBOR content type (AWS only answers `403` with an XML body when the content type
// is not one it speaks, which is the gateway's business). AccessDeniedException has no
// `httpStatusCode` in the model, so it is 400 too (the JSON protocol's default).
error_kinds! {
    /// The stream, shard, consumer or policy does not exist.
    ResourceNotFound => "ResourceNotFoundException", 400;
    /// The resource is busy or not in the right state (e.g. not ACTIVE).
    ResourceInUse => "ResourceInUseException", 400;
    /// A parameter's value is invalid beyond what the model can express.
    InvalidArgument => "InvalidArgumentException", 400;
    /// An account or stream limit, or a control-plane rate limit, was exceeded.
    LimitExceeded => "LimitExceededException", 400;
    /// The request failed the model's constraints.
    Validation => "ValidationException", 400;
    /// The request body could not be read as the operation's input.
    Serialization => "SerializationException", 400;
    /// The `X-Amz-Target` names no operation.
    UnknownOperation => "UnknownOperationException", 400;
    /// The shard iterator has expired.
    ExpiredIterator => "ExpiredIteratorException", 400;
    /// The pagination token has expired.
    ExpiredNextToken => "ExpiredNextTokenException", 400;
    /// A shard's read or write throughput was exceeded.
    ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException", 400;
    /// The caller may not perform the operation.
    AccessDenied => "AccessDeniedException", 400;
    /// The KMS key is disabled.
    KmsDisabled => "KMSDisabledException", 400;
    /// The KMS key is not in a valid state.
    KmsInvalidState => "KMSInvalidStateException", 400;
    /// Access to the KMS key was denied.
    KmsAccessDenied => "KMSAccessDeniedException", 400;
    /// The KMS key was not found.
    KmsNotFound => "KMSNotFoundException", 400;
    /// The account is not subscribed to KMS.
    KmsOptInRequired => "KMSOptInRequired", 400;
    /// KMS throttled the request.
    KmsThrottling => "KMSThrottlingException", 400;
    /// A `DryRun` request would have succeeded.
    DryRunOperation => "DryRunOperationException", 400;
    /// The request is not signed.
    MissingAuthenticationToken => "MissingAuthenticationTokenException", 400;
    /// The request's signature is missing parts.
    IncompleteSignature => "IncompleteSignatureException", 400;
    /// The request's signature is invalid (or given twice).
    InvalidSignature => "InvalidSignatureException", 400;
    /// The request is signed with an access key nobody holds.
    UnrecognizedClient => "UnrecognizedClientException", 400;
    /// The server failed; the client may retry.
    InternalFailure => "InternalFailure", 500;
    /// The server is temporarily unavailable; the client may retry.
    ServiceUnavailable => "ServiceUnavailableException", 503;
}

/// An error answered to a Kinesis client: a kind (which fixes the `__type` and HTTP
/// status) and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.type_name())]
pub struct KinesisError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The human-readable message; may be empty (AWS sends none for InternalFailure
    /// and UnknownOperationException).
    pub message: String,
}

impl KinesisError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        KinesisError {
            kind,
            message: message.into(),
        }
    }

    /// The `__type` of the error body (`ResourceNotFoundException`).
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }

    /// Whether the error is the server's fault (5xx) rather than the client's.
    pub fn is_server_error(&self) -> bool {
        self.http_status() >= 500
    }

    /// The JSON error body: `{"__type":"ResourceNotFoundException","message":"..."}`.
    /// SerializationException uses the capitalised `Message` key, as AWS does. An
    /// empty message is left out (`{"__type":"InternalFailure"}`), as AWS does.
    pub fn to_json(&self) -> Vec<u8> {
        // Written by hand so that `__type` comes first whatever serde_json's map order.
        let type_name = Value::String(self.type_name().into());
        let mut body = format!("{{\"__type\":{type_name}");
        if !self.message.is_empty() {
            let key = self.message_key();
            let message = Value::String(self.message.clone());
            body.push_str(&format!(",\"{key}\":{message}"));
        }
        body.push('}');
        body.into_bytes()
    }

    /// The member that carries the message: SerializationException's is capitalised
    /// (`Message`), as AWS sends it; every other error's is `message`.
    pub fn message_key(&self) -> &'static str {
        if self.kind == ErrorKind::Serialization {
            "Message"
        } else {
            "message"
        }
    }

    /// ResourceNotFoundException.
    pub fn resource_not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceNotFound, message)
    }

    /// ResourceInUseException.
    pub fn resource_in_use(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceInUse, message)
    }

    /// InvalidArgumentException.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// LimitExceededException.
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::LimitExceeded, message)
    }

    /// ValidationException with a ready-made message. To build AWS's
    /// `N validation errors detected: ...` message from violations, use
    /// [`crate::validate::validation_error`].
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    /// SerializationException.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Serialization, message)
    }

    /// UnknownOperationException (AWS sends it without a message).
    pub fn unknown_operation() -> Self {
        Self::new(ErrorKind::UnknownOperation, "")
    }

    /// ExpiredIteratorException.
    pub fn expired_iterator(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ExpiredIterator, message)
    }

    /// ExpiredNextTokenException.
    pub fn expired_next_token(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ExpiredNextToken, message)
    }

    /// ProvisionedThroughputExceededException.
    pub fn provisioned_throughput_exceeded(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ProvisionedThroughputExceeded, message)
    }

    /// AccessDeniedException.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AccessDenied, message)
    }

    /// MissingAuthenticationTokenException with AWS's message.
    pub fn missing_authentication_token() -> Self {
        Self::new(
            ErrorKind::MissingAuthenticationToken,
            "Missing Authentication Token",
        )
    }

    /// IncompleteSignatureException.
    pub fn incomplete_signature(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::IncompleteSignature, message)
    }

    /// InvalidSignatureException.
    pub fn invalid_signature(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidSignature, message)
    }

    /// UnrecognizedClientException with AWS's message: the access key is unknown.
    pub fn unrecognized_client() -> Self {
        Self::new(
            ErrorKind::UnrecognizedClient,
            "The security token included in the request is invalid.",
        )
    }

    /// InternalFailure (HTTP 500). AWS sends it without a message; pass `""` to match.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InternalFailure, message)
    }

    /// ServiceUnavailableException (HTTP 503).
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ServiceUnavailable, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(err: &KinesisError) -> Value {
        serde_json::from_slice(&err.to_json()).unwrap()
    }

    #[test]
    fn type_names_and_statuses() {
        let expected: &[(ErrorKind, &str, u16)] = &[
            (
                ErrorKind::ResourceNotFound,
                "ResourceNotFoundException",
                400,
            ),
            (ErrorKind::ResourceInUse, "ResourceInUseException", 400),
            (ErrorKind::InvalidArgument, "InvalidArgumentException", 400),
            (ErrorKind::LimitExceeded, "LimitExceededException", 400),
            (ErrorKind::Validation, "ValidationException", 400),
            (ErrorKind::Serialization, "SerializationException", 400),
            (
                ErrorKind::UnknownOperation,
                "UnknownOperationException",
                400,
            ),
            (ErrorKind::ExpiredIterator, "ExpiredIteratorException", 400),
            (
                ErrorKind::ExpiredNextToken,
                "ExpiredNextTokenException",
                400,
            ),
            (
                ErrorKind::ProvisionedThroughputExceeded,
                "ProvisionedThroughputExceededException",
                400,
            ),
            (ErrorKind::AccessDenied, "AccessDeniedException", 400),
            (ErrorKind::KmsDisabled, "KMSDisabledException", 400),
            (ErrorKind::KmsInvalidState, "KMSInvalidStateException", 400),
            (ErrorKind::KmsAccessDenied, "KMSAccessDeniedException", 400),
            (ErrorKind::KmsNotFound, "KMSNotFoundException", 400),
            (ErrorKind::KmsOptInRequired, "KMSOptInRequired", 400),
            (ErrorKind::KmsThrottling, "KMSThrottlingException", 400),
            (ErrorKind::DryRunOperation, "DryRunOperationException", 400),
            (
                ErrorKind::MissingAuthenticationToken,
                "MissingAuthenticationTokenException",
                400,
            ),
            (
                ErrorKind::UnrecognizedClient,
                "UnrecognizedClientException",
                400,
            ),
            (
                ErrorKind::IncompleteSignature,
                "IncompleteSignatureException",
                400,
            ),
            (
                ErrorKind::InvalidSignature,
                "InvalidSignatureException",
                400,
            ),
            (ErrorKind::InternalFailure, "InternalFailure", 500),
            (
                ErrorKind::ServiceUnavailable,
                "ServiceUnavailableException",
                503,
            ),
        ];
        assert_eq!(expected.len(), ErrorKind::ALL.len());
        for (kind, name, status) in expected {
            let err = KinesisError::new(*kind, "m");
            assert_eq!(err.type_name(), *name);
            assert_eq!(err.http_status(), *status);
            assert_eq!(ErrorKind::from_type_name(name), Some(*kind));
            assert_eq!(
                ErrorKind::from_type_name(&format!("com.amazon.coral.service#{name}")),
                Some(*kind)
            );
            assert_eq!(err.is_server_error(), *status >= 500);
        }
        assert_eq!(ErrorKind::from_type_name("NoSuchThing"), None);
    }

    #[test]
    fn json_bodies() {
        let err = KinesisError::resource_not_found("Stream s under account 1 not found.");
        assert_eq!(
            err.to_json(),
            br#"{"__type":"ResourceNotFoundException","message":"Stream s under account 1 not found."}"#
        );
        assert_eq!(
            body(&KinesisError::serialization("bad")),
            serde_json::json!({"__type": "SerializationException", "Message": "bad"})
        );
        assert_eq!(
            body(&KinesisError::internal("")),
            serde_json::json!({"__type": "InternalFailure"})
        );
        assert_eq!(
            body(&KinesisError::unknown_operation()),
            serde_json::json!({"__type": "UnknownOperationException"})
        );
        assert_eq!(
            body(&KinesisError::missing_authentication_token()),
            serde_json::json!({
                "__type": "MissingAuthenticationTokenException",
                "message": "Missing Authentication Token"
            })
        );
        let quoted = KinesisError::validation("Value 'a\"b\\\n\u{1}' at 'x'");
        assert_eq!(body(&quoted)["message"], "Value 'a\"b\\\n\u{1}' at 'x'");
        assert_eq!(
            KinesisError::serialization("x").to_json(),
            br#"{"__type":"SerializationException","Message":"x"}"#
        );
    }

    #[test]
    fn constructors_pick_their_kind() {
        assert_eq!(
            KinesisError::resource_in_use("").kind,
            ErrorKind::ResourceInUse
        );
        assert_eq!(
            KinesisError::invalid_argument("").kind,
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            KinesisError::limit_exceeded("").kind,
            ErrorKind::LimitExceeded
        );
        assert_eq!(KinesisError::validation("").kind, ErrorKind::Validation);
        assert_eq!(
            KinesisError::expired_iterator("").kind,
            ErrorKind::ExpiredIterator
        );
        assert_eq!(
            KinesisError::expired_next_token("").kind,
            ErrorKind::ExpiredNextToken
        );
        assert_eq!(
            KinesisError::provisioned_throughput_exceeded("").kind,
            ErrorKind::ProvisionedThroughputExceeded
        );
        assert_eq!(
            KinesisError::access_denied("").kind,
            ErrorKind::AccessDenied
        );
        assert_eq!(
            KinesisError::incomplete_signature("").kind,
            ErrorKind::IncompleteSignature
        );
        assert_eq!(
            KinesisError::invalid_signature("").kind,
            ErrorKind::InvalidSignature
        );
        assert_eq!(
            KinesisError::service_unavailable("").kind,
            ErrorKind::ServiceUnavailable
        );
        assert_eq!(
            KinesisError::limit_exceeded("x").to_string(),
            "LimitExceededException: x"
        );
    }
}
