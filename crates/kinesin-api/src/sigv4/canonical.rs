//! The SigV4 canonical request, string to sign, signing key and signature, as AWS defines them
//! ("Create a signed AWS API request" in the IAM user guide), for services other than S3: the
//! path is normalised and URI-encoded once more. Shared by verification ([`super::verify`]) and
//! by clients that sign (`kinesin ctl`, tests).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The only algorithm SigV4 knows.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The `x-amz-content-sha256` value of a request whose body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

type HmacSha256 = Hmac<Sha256>;

/// The parts of an HTTP request a signature covers.
#[derive(Debug, Clone)]
pub struct HttpRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as sent on the request line (percent-encoded), without the query.
    pub path: &'a str,
    /// The raw query string, without the `?` (empty for none).
    pub query: &'a str,
    /// Header names (any case) and values, repeated names in the order received. Over HTTP/2,
    /// the `:authority` goes in as `host`.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: &'a [u8],
}

impl HttpRequest<'_> {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Lower-case hex of the SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// AWS's URI encoding: the unreserved characters (`A-Za-z0-9-_.~`) as they are, every other byte
/// as `%XX` (upper-case hex); `/` kept when `keep_slash`.
pub fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && byte == b'/')
        {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `%XX` decoding, bytes in, bytes out; a malformed escape stays as it is, `+` stays `+`.
fn percent_decode_bytes(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The canonical URI: the path with `.` and `..` segments resolved and empty segments dropped
/// (a trailing `/` kept), each segment URI-encoded as sent (so an encoded path is encoded twice,
/// as AWS does for every service but S3).
pub fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = String::from("/");
    out.push_str(
        &segments
            .iter()
            .map(|segment| uri_encode(segment.as_bytes(), false))
            .collect::<Vec<_>>()
            .join("/"),
    );
    if !segments.is_empty() && path.ends_with('/') {
        out.push('/');
    }
    out
}

/// The canonical query string: every parameter decoded and encoded again, sorted by name then
/// value, `name=value` joined with `&`. A presigned request's `X-Amz-Signature` is left out.
pub fn canonical_query(query: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode_bytes(key), false),
                uri_encode(&percent_decode_bytes(value), false),
            )
        })
        .filter(|(key, _)| !(presigned && key == "X-Amz-Signature"))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header value as it is signed: trimmed, runs of spaces collapsed to one.
fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `name:value\n` for each signed header (lower-case names, in the order given), repeated
/// headers' values joined with `,`. `None` when a signed header is missing from the request.
pub fn canonical_headers(request: &HttpRequest<'_>, signed: &[&str]) -> Option<String> {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| canonical_value(value))
            .collect();
        if values.is_empty() {
            return None;
        }
        out.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Some(out)
}

/// The canonical request of `request` over the headers named in `signed_headers`
/// (`host;x-amz-date`, lower-case and sorted by the signer), with `payload_hash` as its last
/// line. `None` when a signed header is missing.
pub fn canonical_request(
    request: &HttpRequest<'_>,
    signed_headers: &str,
    payload_hash: &str,
    presigned: bool,
) -> Option<String> {
    let signed: Vec<&str> = signed_headers.split(';').collect();
    Some(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query, presigned),
        canonical_headers(request, &signed)?,
        signed_headers,
        payload_hash
    ))
}

/// `date/region/service/aws4_request`.
pub fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// The string to sign: the algorithm, the request's timestamp (`20150830T123600Z`), its scope
/// and the hash of its canonical request.
pub fn string_to_sign(timestamp: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

fn hmac(key: &[u8], data: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac
}

/// The signing key: HMAC-SHA256 chained over the date, region, service and `aws4_request`,
/// starting from `AWS4` + the secret access key.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes()).finalize().into_bytes().to_vec();
    }
    key
}

/// The signature (lower-case hex) of `string_to_sign` under `key`.
pub fn signature(key: &[u8], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()).finalize().into_bytes())
}

/// Whether `provided` (hex, as the client sent it) is the signature of `string_to_sign` under
/// `key`, compared in constant time (hmac's `verify_slice`).
pub fn signature_matches(key: &[u8], string_to_sign: &str, provided: &str) -> bool {
    let Ok(provided) = hex::decode(provided) else {
        return false;
    };
    hmac(key, string_to_sign.as_bytes())
        .verify_slice(&provided)
        .is_ok()
}

/// What a signer needs: the key pair and the scope's region and service.
#[derive(Clone)]
pub struct SigningCredentials<'a> {
    pub access_key: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl std::fmt::Debug for SigningCredentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCredentials")
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish()
    }
}

/// The `Authorization` header of `request` signed at `timestamp` (which its `x-amz-date`
/// header must carry) over all its headers, and the payload hash of its body.
pub fn authorization(
    request: &HttpRequest<'_>,
    credentials: &SigningCredentials<'_>,
    timestamp: &str,
) -> String {
    let mut names: Vec<String> = request
        .headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let signed_headers = names.join(";");
    let payload_hash = sha256_hex(request.body);
    // Every name comes from the request itself: the canonical request always exists.
    let canonical =
        canonical_request(request, &signed_headers, &payload_hash, false).unwrap_or_default();
    let date = timestamp.get(..8).unwrap_or(timestamp);
    let scope = scope(date, credentials.region, credentials.service);
    let key = signing_key(
        credentials.secret,
        date,
        credentials.region,
        credentials.service,
    );
    format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={}",
        credentials.access_key,
        signature(&key, &string_to_sign(timestamp, &scope, &canonical))
    )
}

/// Seconds since the Unix epoch as a SigV4 timestamp, `20150830T123600Z` (UTC).
pub fn format_timestamp(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rest = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// A SigV4 timestamp (`20150830T123600Z`) as seconds since the Unix epoch; `None` if malformed.
pub fn parse_timestamp(timestamp: &str) -> Option<u64> {
    let bytes = timestamp.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = timestamp.get(range)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year as i64, month as u32, day as u32);
    u64::try_from(days)
        .ok()
        .map(|days| days * 86_400 + hour * 3600 + minute * 60 + second)
}

// Howard Hinnant's algorithms between days since 1970-01-01 and the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[path = "canonical_tests.rs"]
mod tests;
