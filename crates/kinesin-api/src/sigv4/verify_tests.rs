//! Sign-then-verify round trips, each fault rejected with AWS's error, dates and expiry.

use super::*;
use crate::sigv4::canonical::{authorization, format_timestamp, SigningCredentials};
use crate::ErrorKind;

const SECRET: &str = "kinesin-test-secret";
/// 2026-01-01T00:10:00Z.
const NOW: u64 = 1_767_226_200;
const BODY: &[u8] = br#"{"StreamName":"s"}"#;

fn credentials() -> SigningCredentials<'static> {
    SigningCredentials {
        access_key: "AKIDTEST",
        secret: SECRET,
        region: "eu-west-1",
        service: "kinesis",
    }
}

/// `POST /` with `headers` and `body`, signed at `at` over all of them.
fn post_signed(headers: &[(&str, String)], body: &'static [u8], at: u64) -> HttpRequest<'static> {
    let mut request = HttpRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect(),
        body,
    };
    let header = authorization(&request, &credentials(), &format_timestamp(at));
    request.headers.push(("Authorization".into(), header));
    request
}

/// A Kinesis request signed at `at` with its Authorization header in place (header 4).
fn signed(at: u64) -> HttpRequest<'static> {
    let headers = [
        ("Host", "localhost:4567".to_string()),
        ("Content-Type", "application/x-amz-json-1.1".to_string()),
        (
            "X-Amz-Target",
            "Kinesis_20131202.DescribeStream".to_string(),
        ),
        ("X-Amz-Date", format_timestamp(at)),
    ];
    post_signed(&headers, BODY, at)
}

fn verify(request: &HttpRequest<'_>, secret: &str, now: u64) -> Result<(), KinesisError> {
    let auth = Authentication::read(request)?.expect("signed");
    auth.verify(request, secret, now)
}

fn error(result: Result<(), KinesisError>) -> (ErrorKind, String) {
    let err = result.unwrap_err();
    (err.kind, err.message)
}

/// What [`Authentication::read`] refuses `request` with.
fn read_error(request: &HttpRequest<'_>) -> (ErrorKind, String) {
    let err = Authentication::read(request).unwrap_err();
    (err.kind, err.message)
}

fn mismatch() -> (ErrorKind, String) {
    (ErrorKind::InvalidSignature, SIGNATURE_MISMATCH.to_string())
}

#[test]
fn a_signed_request_verifies() {
    let request = signed(NOW);
    let auth = Authentication::read(&request).unwrap().unwrap();
    assert_eq!(auth.scope.access_key, "AKIDTEST");
    assert_eq!(auth.scope.region, "eu-west-1");
    assert_eq!(auth.timestamp, "20260101T001000Z");
    verify(&request, SECRET, NOW).unwrap();
    // Within the skew either way.
    verify(&request, SECRET, NOW + MAX_SKEW_SECS).unwrap();
    verify(&request, SECRET, NOW - MAX_SKEW_SECS).unwrap();
}

#[test]
fn unsigned_requests_are_none() {
    let mut request = signed(NOW);
    request.headers.retain(|(name, _)| name != "Authorization");
    assert_eq!(Authentication::read(&request).unwrap(), None);
}

#[test]
fn each_fault_is_a_mismatch() {
    assert_eq!(error(verify(&signed(NOW), "wrong", NOW)), mismatch());

    let mut body = signed(NOW);
    body.body = br#"{"StreamName":"t"}"#;
    assert_eq!(error(verify(&body, SECRET, NOW)), mismatch());

    let mut header = signed(NOW);
    header.headers[2].1 = "Kinesis_20131202.DeleteStream".into();
    assert_eq!(error(verify(&header, SECRET, NOW)), mismatch());

    let mut method = signed(NOW);
    method.method = "PUT";
    assert_eq!(error(verify(&method, SECRET, NOW)), mismatch());

    let mut query = signed(NOW);
    query.query = "a=b";
    assert_eq!(error(verify(&query, SECRET, NOW)), mismatch());

    // A signed header the request no longer has.
    let mut missing = signed(NOW);
    missing.headers.retain(|(name, _)| name != "X-Amz-Target");
    assert_eq!(error(verify(&missing, SECRET, NOW)), mismatch());

    // Another region in the scope than the one signed for.
    let mut region = signed(NOW);
    let authz = region.headers[4].1.replace("eu-west-1", "us-east-1");
    region.headers[4].1 = authz;
    assert_eq!(error(verify(&region, SECRET, NOW)), mismatch());

    // A date changed by a second: the string to sign changes.
    let mut date = signed(NOW);
    date.headers[3].1 = format_timestamp(NOW + 1);
    assert_eq!(error(verify(&date, SECRET, NOW)), mismatch());
}

#[test]
fn the_payload_hash_header_must_be_the_body_s_or_unsigned() {
    // The signer hashes the body; a claimed hash must then be the body's to verify.
    let with_hash = |value: &str| {
        let headers = [
            ("host", "h".to_string()),
            ("x-amz-content-sha256", value.to_string()),
            ("x-amz-date", format_timestamp(NOW)),
        ];
        post_signed(&headers, BODY, NOW)
    };
    let hash = canonical::sha256_hex(BODY);
    verify(&with_hash(&hash), SECRET, NOW).unwrap();
    let other = canonical::sha256_hex(b"other");
    assert_eq!(error(verify(&with_hash(&other), SECRET, NOW)), mismatch());
    // UNSIGNED-PAYLOAD is taken as the payload hash (the signer above hashed the body: no match).
    assert_eq!(
        error(verify(&with_hash(UNSIGNED_PAYLOAD), SECRET, NOW)),
        mismatch()
    );
}

#[test]
fn host_must_be_signed() {
    let mut request = signed(NOW);
    let authz = request.headers[4].1.replace(
        "SignedHeaders=content-type;host;",
        "SignedHeaders=content-type;",
    );
    request.headers[4].1 = authz;
    assert_eq!(
        error(verify(&request, SECRET, NOW)),
        (
            ErrorKind::InvalidSignature,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into()
        )
    );
}

#[test]
fn old_and_future_dates_use_aws_messages() {
    // 2026-01-01T00:00:00Z seen at 00:10:00Z.
    let then = NOW - 600;
    assert_eq!(
        error(verify(&signed(then), SECRET, NOW)),
        (
            ErrorKind::InvalidSignature,
            "Signature expired: 20260101T000000Z is now earlier than 20260101T000500Z (20260101T001000Z - 5 min.)".into()
        )
    );
    assert_eq!(
        error(verify(&signed(NOW + 600), SECRET, NOW)),
        (
            ErrorKind::InvalidSignature,
            "Signature not yet current: 20260101T002000Z is still later than 20260101T001500Z (20260101T001000Z + 5 min.)".into()
        )
    );
    // The date is checked before the signature: an old request with a wrong secret is expired.
    assert!(error(verify(&signed(then), "wrong", NOW))
        .1
        .starts_with("Signature expired"));
}

#[test]
fn the_scope_date_must_be_the_request_s() {
    let mut request = signed(NOW);
    let authz = request.headers[4].1.replace("/20260101/", "/20251231/");
    request.headers[4].1 = authz;
    assert_eq!(
        read_error(&request),
        (
            ErrorKind::InvalidSignature,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20251231' != '20260101', from '20260101T001000Z'.".into()
        )
    );
}

#[test]
fn malformed_dates_are_incomplete() {
    let mut request = signed(NOW);
    request.headers[3].1 = "2026-01-01T00:10:00Z".into();
    assert_eq!(
        read_error(&request),
        (
            ErrorKind::IncompleteSignature,
            "Date must be in ISO-8601 'basic format'. Got '2026-01-01T00:10:00Z'. See http://en.wikipedia.org/wiki/ISO_8601".into()
        )
    );
}

#[test]
fn an_http_date_header_stands_in_for_x_amz_date() {
    let headers = [
        ("host", "h".to_string()),
        ("date", "Thu, 01 Jan 2026 00:10:00 GMT".to_string()),
    ];
    let request = post_signed(&headers, b"", NOW);
    verify(&request, SECRET, NOW).unwrap();
}

/// A presigned request: the signature and its parameters in the query string.
fn presign(at: u64, expires: &str) -> (String, HttpRequest<'static>) {
    let timestamp = format_timestamp(at);
    let unsigned = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDTEST%2F{}%2Feu-west-1%2Fkinesis%2Faws4_request&X-Amz-Date={timestamp}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host",
        &timestamp[..8]
    );
    let query: &'static str = Box::leak(unsigned.clone().into_boxed_str());
    let request = HttpRequest {
        method: "POST",
        path: "/",
        query,
        headers: vec![("Host".into(), "localhost".into())],
        body: BODY,
    };
    let canonical =
        canonical::canonical_request(&request, "host", &canonical::sha256_hex(BODY), true).unwrap();
    let scope = canonical::scope(&timestamp[..8], "eu-west-1", "kinesis");
    let key = canonical::signing_key(SECRET, &timestamp[..8], "eu-west-1", "kinesis");
    let signature = canonical::signature(
        &key,
        &canonical::string_to_sign(&timestamp, &scope, &canonical),
    );
    (format!("{unsigned}&X-Amz-Signature={signature}"), request)
}

fn with_query(request: &HttpRequest<'static>, query: String) -> HttpRequest<'static> {
    HttpRequest {
        query: Box::leak(query.into_boxed_str()),
        ..request.clone()
    }
}

#[test]
fn presigned_urls_verify_until_they_expire() {
    let (query, request) = presign(NOW, "60");
    let request = with_query(&request, query);
    let auth = Authentication::read(&request).unwrap().unwrap();
    assert_eq!(auth.presigned, Some(Some(60)));
    auth.verify(&request, SECRET, NOW).unwrap();
    auth.verify(&request, SECRET, NOW + 60).unwrap();
    assert_eq!(
        error(auth.verify(&request, SECRET, NOW + 61)),
        (
            ErrorKind::InvalidSignature,
            "Signature expired: 20260101T001000Z is now earlier than 20260101T001001Z (20260101T001101Z - 60 sec.)".into()
        )
    );
    assert_eq!(error(auth.verify(&request, "wrong", NOW)), mismatch());
    // A presigned URL may be valid for longer than the skew, but not start in the future.
    let (query, request) = presign(NOW, "3600");
    let request = with_query(&request, query);
    verify(&request, SECRET, NOW + 3000).unwrap();
    assert!(error(verify(&request, SECRET, NOW - 600))
        .1
        .starts_with("Signature not yet current"));
    // A tampered parameter.
    let (query, request) = presign(NOW, "60");
    let request = with_query(
        &request,
        query.replace("X-Amz-Expires=60", "X-Amz-Expires=600"),
    );
    assert_eq!(error(verify(&request, SECRET, NOW)), mismatch());
}

#[test]
fn presigned_expiry_is_bounded() {
    for (expires, message) in [
        (
            "604801",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        ),
        (
            "-1",
            "X-Amz-Expires must be a non-negative integer number of seconds, got '-1'.",
        ),
    ] {
        let (query, request) = presign(NOW, expires);
        assert_eq!(
            read_error(&with_query(&request, query)),
            (ErrorKind::IncompleteSignature, message.to_string())
        );
    }
}
