//! AWS Signature Version 4, so the generator can load AWS itself (and any endpoint that checks
//! signatures). Only what a JSON-protocol POST needs: path `/`, no query string, a handful of
//! headers. The derived signing key is cached per day, and callers pass the payload's SHA-256
//! (precomputed once per prebuilt body when the body is sent untouched), so a request costs one
//! canonical request hash and five HMACs.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone, Debug)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl Credentials {
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, when the first two are set.
    pub fn from_env() -> Option<Credentials> {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Some(Credentials {
            access_key: non_empty("AWS_ACCESS_KEY_ID")?,
            secret_key: non_empty("AWS_SECRET_ACCESS_KEY")?,
            session_token: non_empty("AWS_SESSION_TOKEN"),
        })
    }
}

/// The headers a signed request carries besides the caller's own.
pub struct Signed {
    pub authorization: String,
    pub amz_date: String,
}

pub struct Signer {
    credentials: Credentials,
    region: String,
    service: String,
    /// (yyyymmdd, signing key) of the last day signed for.
    key: Mutex<Option<(String, [u8; 32])>>,
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

impl Signer {
    pub fn new(credentials: Credentials, region: &str, service: &str) -> Signer {
        Signer {
            credentials,
            region: region.to_string(),
            service: service.to_string(),
            key: Mutex::new(None),
        }
    }

    pub fn session_token(&self) -> Option<&str> {
        self.credentials.session_token.as_deref()
    }

    fn signing_key(&self, date: &str) -> [u8; 32] {
        let mut cached = self.key.lock().expect("signing key lock");
        if let Some((day, key)) = cached.as_ref() {
            if day == date {
                return *key;
            }
        }
        let secret = format!("AWS4{}", self.credentials.secret_key);
        let k_date = hmac(secret.as_bytes(), date.as_bytes());
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, self.service.as_bytes());
        let key = hmac(&k_service, b"aws4_request");
        *cached = Some((date.to_string(), key));
        key
    }

    /// Signs a request made now. `headers` are the (lower-case name, value) pairs to sign,
    /// without `x-amz-date` and `x-amz-security-token`: this adds them (the caller must send
    /// both: `Signed::amz_date` and the session token, if any).
    pub fn sign_now(
        &self,
        method: &str,
        headers: &[(&str, &str)],
        payload_sha256_hex: &str,
    ) -> Signed {
        let amz_date = amz_date(SystemTime::now());
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 2);
        all.extend_from_slice(headers);
        all.push(("x-amz-date", amz_date.as_str()));
        if let Some(token) = self.credentials.session_token.as_deref() {
            all.push(("x-amz-security-token", token));
        }
        let authorization =
            self.authorization(method, "/", "", &all, payload_sha256_hex, &amz_date);
        Signed {
            authorization,
            amz_date,
        }
    }

    /// The Authorization header value for a request whose signed headers (names lower case,
    /// `x-amz-date` among them) are `headers`.
    pub fn authorization(
        &self,
        method: &str,
        canonical_uri: &str,
        canonical_query: &str,
        headers: &[(&str, &str)],
        payload_sha256_hex: &str,
        amz_date: &str,
    ) -> String {
        let mut sorted: Vec<(&str, &str)> = headers.to_vec();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut canonical = String::with_capacity(512);
        canonical.push_str(method);
        canonical.push('\n');
        canonical.push_str(canonical_uri);
        canonical.push('\n');
        canonical.push_str(canonical_query);
        canonical.push('\n');
        for (name, value) in &sorted {
            canonical.push_str(name);
            canonical.push(':');
            canonical.push_str(value.trim());
            canonical.push('\n');
        }
        canonical.push('\n');
        let signed_headers = sorted
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(";");
        canonical.push_str(&signed_headers);
        canonical.push('\n');
        canonical.push_str(payload_sha256_hex);

        let date = &amz_date[..8];
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let signature = hex::encode(hmac(&self.signing_key(date), string_to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.credentials.access_key
        )
    }
}

/// `yyyymmddThhmmssZ` in UTC.
pub fn amz_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    kinesin_api::sigv4::canonical::format_timestamp(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // AWS's published SigV4 test suite (aws-sig-v4-test-suite): these credentials, date,
    // region and service are shared by all its cases.
    const DATE: &str = "20150830T123600Z";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

    fn suite_signer() -> Signer {
        Signer::new(
            Credentials {
                access_key: "AKIDEXAMPLE".into(),
                secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                session_token: None,
            },
            "us-east-1",
            "service",
        )
    }

    fn expected(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    #[test]
    fn get_vanilla() {
        let headers = [("host", "example.amazonaws.com"), ("x-amz-date", DATE)];
        assert_eq!(
            suite_signer().authorization("GET", "/", "", &headers, EMPTY, DATE),
            expected(
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
    }

    #[test]
    fn post_vanilla() {
        // Headers in any order: the signer sorts them.
        let headers = [("x-amz-date", DATE), ("host", "example.amazonaws.com")];
        assert_eq!(
            suite_signer().authorization("POST", "/", "", &headers, EMPTY, DATE),
            expected(
                "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
    }

    #[test]
    fn post_x_www_form_urlencoded_signs_the_payload_hash() {
        let headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("host", "example.amazonaws.com"),
            ("x-amz-date", DATE),
        ];
        let payload = sha256_hex(b"Param1=value1");
        assert_eq!(
            suite_signer().authorization("POST", "/", "", &headers, &payload, DATE),
            expected(
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            )
        );
    }

    #[test]
    fn post_sts_header_before_signs_the_session_token() {
        let headers = [
            ("host", "example.amazonaws.com"),
            ("x-amz-date", DATE),
            ("x-amz-security-token", TOKEN),
        ];
        assert_eq!(
            suite_signer().authorization("POST", "/", "", &headers, EMPTY, DATE),
            expected(
                "host;x-amz-date;x-amz-security-token",
                "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
            )
        );
    }

    #[test]
    fn a_changed_secret_changes_the_signature() {
        let mut signer = suite_signer();
        signer.credentials.secret_key.push('x');
        let headers = [("host", "example.amazonaws.com"), ("x-amz-date", DATE)];
        assert!(!signer
            .authorization("GET", "/", "", &headers, EMPTY, DATE)
            .ends_with("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
    }

    #[test]
    fn the_signing_key_cache_follows_the_day() {
        let signer = suite_signer();
        let headers = [("host", "example.amazonaws.com"), ("x-amz-date", DATE)];
        let first = signer.authorization("GET", "/", "", &headers, EMPTY, DATE);
        let next_day = "20150831T123600Z";
        let other = [("host", "example.amazonaws.com"), ("x-amz-date", next_day)];
        let _ = signer.authorization("GET", "/", "", &other, EMPTY, next_day);
        // Back to the first day: the cached key was replaced and must be derived again.
        assert_eq!(
            signer.authorization("GET", "/", "", &headers, EMPTY, DATE),
            first
        );
    }

    #[test]
    fn amz_date_formats_utc() {
        let at = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        assert_eq!(amz_date(at), DATE);
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
        // A leap day.
        assert_eq!(
            amz_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229T000000Z"
        );
    }
}
