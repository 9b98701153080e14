//! AWS Signature Version 4: reading the credential scope of a request and rejecting malformed
//! authentication the way AWS does (here), the canonical request, string to sign and signing
//! key ([`canonical`]), and verifying a request's signature and date ([`verify`]).

use crate::KinesisError;

pub mod canonical;
pub mod verify;

/// The authentication parameters of a signed request, from its `Authorization` header or its
/// query string, checked for completeness but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthParams {
    pub scope: CredentialScope,
    /// `SignedHeaders` / `X-Amz-SignedHeaders`, as sent (`host;x-amz-date`).
    pub signed_headers: String,
    /// `Signature` / `X-Amz-Signature`, as sent (hex).
    pub signature: String,
    /// Query authentication: `X-Amz-Date` and `X-Amz-Expires` (absent: `None`).
    pub query_date: Option<String>,
    pub expires: Option<String>,
}

/// The credential scope of a SigV4-signed request:
/// `Credential=<access_key>/<date>/<region>/<service>/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialScope {
    /// The access key id (`AKIDEXAMPLE`).
    pub access_key: String,
    /// The scope date, `YYYYMMDD` as the client sent it (not checked).
    pub date: String,
    /// The region the request was signed for (`us-east-1`).
    pub region: String,
    /// The service the request was signed for (`kinesis`).
    pub service: String,
}

impl CredentialScope {
    /// Parses `keyid/date/region/service/aws4_request`.
    ///
    /// Anything but five non-empty slash-delimited elements, or a terminator other than
    /// `aws4_request`, is an IncompleteSignatureException with AWS's message.
    pub fn parse(credential: &str) -> Result<CredentialScope, KinesisError> {
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key, date, region, service, terminator] = parts.as_slice() else {
            return Err(malformed_credential(credential));
        };
        if [access_key, date, region, service, terminator]
            .iter()
            .any(|part| part.is_empty())
        {
            return Err(malformed_credential(credential));
        }
        if *terminator != "aws4_request" {
            return Err(KinesisError::incomplete_signature(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
            )));
        }
        Ok(CredentialScope {
            access_key: access_key.to_string(),
            date: date.to_string(),
            region: region.to_string(),
            service: service.to_string(),
        })
    }

    /// AWS's check that the request was signed for `expected` (normally
    /// [`crate::SIGNING_SERVICE`]): otherwise an InvalidSignatureException
    /// `Credential should be scoped to correct service: 'kinesis'. `. Not applied by
    /// [`credential_scope`]; the gateway decides whether to be this strict.
    pub fn check_service(&self, expected: &str) -> Result<(), KinesisError> {
        if self.service == expected {
            Ok(())
        } else {
            Err(KinesisError::invalid_signature(format!(
                "Credential should be scoped to correct service: '{expected}'. "
            )))
        }
    }
}

fn malformed_credential(credential: &str) -> KinesisError {
    KinesisError::incomplete_signature(format!(
        "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
    ))
}

/// Reads the SigV4 credential from the `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/kinesis/aws4_request,
/// SignedHeaders=..., Signature=...`) or from the query string (`X-Amz-Algorithm`,
/// `X-Amz-Credential`, `X-Amz-Signature`, ...; `query` is the raw, percent-encoded
/// query string without the `?`).
///
/// - `Ok(None)` when the request is unsigned: no (or an empty) `Authorization` header
///   and no `X-Amz-Algorithm` query parameter. AWS answers that with
///   [`KinesisError::missing_authentication_token`]; whether to require signatures is
///   the gateway's choice.
/// - Both an `Authorization` header and an `X-Amz-Algorithm` query parameter:
///   InvalidSignatureException, as AWS.
/// - A header without `Credential`, `Signature` or `SignedHeaders`, query
///   authentication without all of its five parameters, or a malformed credential:
///   IncompleteSignatureException with AWS's message.
///
/// AWS also requires an `X-Amz-Date` or `Date` header with header authentication;
/// use [`credential_scope_with_date`] to apply that rule too.
pub fn credential_scope(
    authorization: Option<&str>,
    query: Option<&str>,
) -> Result<Option<CredentialScope>, KinesisError> {
    credential_scope_with_date(authorization, query, true)
}

/// The parameters of a signed request (see [`credential_scope_with_date`] for the rules).
pub(crate) fn auth_params(
    authorization: Option<&str>,
    query: Option<&str>,
    has_date_header: bool,
) -> Result<Option<AuthParams>, KinesisError> {
    let header = authorization.filter(|value| !value.trim().is_empty());
    let params = query.map(parse_query).unwrap_or_default();
    let query_auth = params.iter().any(|(key, _)| key == "X-Amz-Algorithm");

    match (header, query_auth) {
        (Some(_), true) => Err(KinesisError::invalid_signature(
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
        )),
        (None, false) => Ok(None),
        (Some(header), false) => from_header(header, has_date_header).map(Some),
        (None, true) => from_query(&params).map(Some),
    }
}

/// [`credential_scope`], also applying AWS's rule that header authentication needs an
/// `X-Amz-Date` or `Date` header (`has_date_header` tells whether one was sent).
pub fn credential_scope_with_date(
    authorization: Option<&str>,
    query: Option<&str>,
    has_date_header: bool,
) -> Result<Option<CredentialScope>, KinesisError> {
    Ok(auth_params(authorization, query, has_date_header)?.map(|params| params.scope))
}

fn from_header(header: &str, has_date_header: bool) -> Result<AuthParams, KinesisError> {
    // `<algorithm> Key=Value, Key=Value ...`: split on commas and spaces, skip the
    // algorithm, the last of repeated keys wins.
    let mut params: Vec<(&str, &str)> = Vec::new();
    for token in header
        .split([',', ' '])
        .skip(1)
        .map(str::trim)
        .filter(|token| !token.is_empty())
    {
        let (key, value) = token.split_once('=').unwrap_or((token, ""));
        params.push((key, value));
    }
    let get = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
            .filter(|value| !value.is_empty())
    };
    let mut message = String::new();
    for required in ["Credential", "Signature", "SignedHeaders"] {
        if get(required).is_none() {
            message.push_str(&format!(
                "Authorization header requires '{required}' parameter. "
            ));
        }
    }
    if !has_date_header {
        message.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    if !message.is_empty() {
        message.push_str(&format!("Authorization={header}"));
        return Err(KinesisError::incomplete_signature(message));
    }
    Ok(AuthParams {
        scope: CredentialScope::parse(get("Credential").unwrap_or_default())?,
        signed_headers: get("SignedHeaders").unwrap_or_default().to_string(),
        signature: get("Signature").unwrap_or_default().to_string(),
        query_date: None,
        expires: None,
    })
}

fn from_query(params: &[(String, String)]) -> Result<AuthParams, KinesisError> {
    let get = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    };
    let mut message = String::new();
    for required in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-SignedHeaders",
        "X-Amz-Date",
    ] {
        if get(required).is_none() {
            message.push_str(&format!(
                "AWS query-string parameters must include '{required}'. "
            ));
        }
    }
    if !message.is_empty() {
        message.push_str("Re-examine the query-string parameters.");
        return Err(KinesisError::incomplete_signature(message));
    }
    let owned = |name: &str| get(name).map(str::to_string);
    Ok(AuthParams {
        scope: CredentialScope::parse(get("X-Amz-Credential").unwrap_or_default())?,
        signed_headers: owned("X-Amz-SignedHeaders").unwrap_or_default(),
        signature: owned("X-Amz-Signature").unwrap_or_default(),
        query_date: owned("X-Amz-Date"),
        expires: owned("X-Amz-Expires"),
    })
}

/// Splits a raw query string into decoded `(key, value)` pairs.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding: `%XX` escapes and `+` for space;
/// malformed escapes are kept as they are.
fn percent_decode(text: &str) -> String {
    fn hex(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            b'A'..=b'F' => Some(byte - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let high = bytes.get(i + 1).copied().and_then(hex);
                let low = bytes.get(i + 2).copied().and_then(hex);
                if let (Some(high), Some(low)) = (high, low) {
                    out.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    const HEADER: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20130524/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

    fn scope(region: &str) -> CredentialScope {
        CredentialScope {
            access_key: "AKIDEXAMPLE".into(),
            date: "20130524".into(),
            region: region.into(),
            service: "kinesis".into(),
        }
    }

    fn incomplete(result: Result<Option<CredentialScope>, KinesisError>) -> String {
        let err = result.unwrap_err();
        assert_eq!(err.kind, ErrorKind::IncompleteSignature, "{err}");
        err.message
    }

    #[test]
    fn header_credentials_are_read() {
        assert_eq!(
            credential_scope(Some(HEADER), None).unwrap(),
            Some(scope("us-east-1"))
        );
        // Commas without spaces, other regions, unrelated query parameters.
        let compact = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20130524/eu-west-2/kinesis/aws4_request,SignedHeaders=host,Signature=abc";
        assert_eq!(
            credential_scope(Some(compact), Some("foo=bar")).unwrap(),
            Some(scope("eu-west-2"))
        );
    }

    #[test]
    fn unsigned_requests_are_none() {
        assert_eq!(credential_scope(None, None).unwrap(), None);
        assert_eq!(credential_scope(Some(""), Some("")).unwrap(), None);
        assert_eq!(credential_scope(Some("   "), None).unwrap(), None);
        // Every query parameter but X-Amz-Algorithm: still unsigned (as AWS).
        assert_eq!(
            credential_scope(
                None,
                Some("X-Amz-Credential=a&X-Amz-Signature=b&X-Amz-SignedHeaders=c&X-Amz-Date=d")
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn query_credentials_are_read() {
        let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20130524%2Fap-south-1%2Fkinesis%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        assert_eq!(
            credential_scope(None, Some(query)).unwrap(),
            Some(scope("ap-south-1"))
        );
        assert_eq!(
            credential_scope(None, Some(&format!("?{query}"))).unwrap(),
            Some(scope("ap-south-1"))
        );
    }

    #[test]
    fn header_and_query_together_are_invalid() {
        let err = credential_scope(Some("X"), Some("X-Amz-Algorithm")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidSignature);
        assert_eq!(
            err.message,
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."
        );
    }

    #[test]
    fn incomplete_headers_use_aws_messages() {
        assert_eq!(
            incomplete(credential_scope_with_date(Some("X"), None, false)),
            "Authorization header requires 'Credential' parameter. \
             Authorization header requires 'Signature' parameter. \
             Authorization header requires 'SignedHeaders' parameter. \
             Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. \
             Authorization=X"
        );
        // A misspelt query key is not query authentication.
        assert_eq!(
            incomplete(credential_scope(Some("X"), Some("X-Amz-Algorith"))),
            "Authorization header requires 'Credential' parameter. \
             Authorization header requires 'Signature' parameter. \
             Authorization header requires 'SignedHeaders' parameter. \
             Authorization=X"
        );
        for header in [
            "AWS4- Signature=b Credential=a",
            "AWS4- Signature=b,Credential=a",
            "AWS4- Signature=b, Credential=a",
        ] {
            assert_eq!(
                incomplete(credential_scope(Some(header), None)),
                format!("Authorization header requires 'SignedHeaders' parameter. Authorization={header}")
            );
        }
        assert_eq!(
            incomplete(credential_scope(
                Some("AWS4-HMAC-SHA256 Credential=, SignedHeaders=host, Signature=x"),
                None
            )),
            "Authorization header requires 'Credential' parameter. \
             Authorization=AWS4-HMAC-SHA256 Credential=, SignedHeaders=host, Signature=x"
        );
    }

    #[test]
    fn incomplete_queries_use_aws_messages() {
        assert_eq!(
            incomplete(credential_scope(None, Some("X-Amz-Algorithm"))),
            "AWS query-string parameters must include 'X-Amz-Algorithm'. \
             AWS query-string parameters must include 'X-Amz-Credential'. \
             AWS query-string parameters must include 'X-Amz-Signature'. \
             AWS query-string parameters must include 'X-Amz-SignedHeaders'. \
             AWS query-string parameters must include 'X-Amz-Date'. \
             Re-examine the query-string parameters."
        );
        assert_eq!(
            incomplete(credential_scope(
                None,
                Some("X-Amz-Algorithm=a&X-Amz-Credential=b&X-Amz-Signature=c&X-Amz-Date=d")
            )),
            "AWS query-string parameters must include 'X-Amz-SignedHeaders'. \
             Re-examine the query-string parameters."
        );
    }

    #[test]
    fn malformed_credentials_are_incomplete() {
        for credential in [
            "a",
            "AKID/20130524/us-east-1/kinesis",
            "AKID/20130524/us-east-1/kinesis/aws4_request/extra",
            "/20130524/us-east-1/kinesis/aws4_request",
            "AKID/20130524//kinesis/aws4_request",
        ] {
            let header = format!(
                "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=x"
            );
            assert_eq!(
                incomplete(credential_scope(Some(&header), None)),
                format!("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'")
            );
        }
        assert_eq!(
            incomplete(credential_scope(
                Some("AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/kinesis/aws5_request, SignedHeaders=host, Signature=x"),
                None
            )),
            "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'."
        );
        let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2Fx&X-Amz-Date=d&X-Amz-SignedHeaders=host&X-Amz-Signature=s";
        assert_eq!(
            incomplete(credential_scope(None, Some(query))),
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'AKID/x'"
        );
    }

    #[test]
    fn service_check() {
        assert!(scope("us-east-1").check_service("kinesis").is_ok());
        let err = scope("us-east-1").check_service("dynamodb").unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidSignature);
        assert_eq!(
            err.message,
            "Credential should be scoped to correct service: 'dynamodb'. "
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%2fc+d"), "a/b/c d");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%E2%82%AC"), "€");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn junk_never_panics() {
        for header in [
            "=",
            ",,,",
            "A =,= =",
            "Credential",
            "é Credential=é/é/é/é/aws4_request SignedHeaders=é Signature=é",
        ] {
            let _ = credential_scope(Some(header), None);
        }
        for query in [
            "&&&",
            "=&=",
            "X-Amz-Algorithm=%",
            "%%%%",
            "X-Amz-Algorithm&X-Amz-Algorithm=x",
        ] {
            let _ = credential_scope(None, Some(query));
        }
    }
}
