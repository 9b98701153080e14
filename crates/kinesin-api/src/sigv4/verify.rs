//! Verifying a request's SigV4 authentication: its date against the caller's clock (AWS's five
//! minutes of skew, a presigned URL's `X-Amz-Expires`), the date in its credential scope, its
//! payload hash and, in constant time, its signature. The caller finds the secret of the access
//! key in between ([`Authentication::read`], then [`Authentication::verify`]).

use super::canonical::{self, HttpRequest, UNSIGNED_PAYLOAD};
use super::{auth_params, CredentialScope};
use crate::KinesisError;

/// How far a request's date may be from the server's clock, either way (AWS: 5 minutes).
pub const MAX_SKEW_SECS: u64 = 300;

/// The longest a presigned URL may be valid for (AWS: a week).
pub const MAX_EXPIRES_SECS: u64 = 604_800;

/// AWS's message for a signature that does not match.
pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// A signed request's authentication: complete, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// Who signed and for what: the access key, date, region and service.
    pub scope: CredentialScope,
    /// The signed header names, `;`-separated, as the client sent them.
    pub signed_headers: String,
    signature: String,
    /// When it was signed, `20150830T123600Z`: `X-Amz-Date` (query or header), else `Date`.
    pub timestamp: String,
    /// `timestamp` in seconds since the Unix epoch.
    pub signed_at: u64,
    /// A presigned URL (query authentication): how many seconds it is valid for, if it says.
    pub presigned: Option<Option<u64>>,
}

fn bad_date(value: &str) -> KinesisError {
    KinesisError::incomplete_signature(format!(
        "Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
    ))
}

impl Authentication {
    /// The authentication of `request`: `Ok(None)` when it is not signed at all (AWS answers
    /// that with MissingAuthenticationTokenException when signatures are required); an
    /// IncompleteSignatureException or InvalidSignatureException with AWS's message when it is
    /// malformed (see [`super::credential_scope_with_date`]).
    pub fn read(request: &HttpRequest<'_>) -> Result<Option<Authentication>, KinesisError> {
        let amz_date = request.header("x-amz-date");
        let http_date = request.header("date");
        let has_date = amz_date.is_some() || http_date.is_some();
        let Some(params) = auth_params(
            request.header("authorization"),
            Some(request.query),
            has_date,
        )?
        else {
            return Ok(None);
        };
        let timestamp = match (&params.query_date, amz_date, http_date) {
            (Some(date), _, _) => date.clone(),
            (None, Some(date), _) => date.to_string(),
            (None, None, Some(date)) => httpdate::parse_http_date(date)
                .ok()
                .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|since| canonical::format_timestamp(since.as_secs()))
                .ok_or_else(|| bad_date(date))?,
            // auth_params refuses header authentication without a date.
            (None, None, None) => return Err(bad_date("")),
        };
        let signed_at =
            canonical::parse_timestamp(&timestamp).ok_or_else(|| bad_date(&timestamp))?;
        let day = timestamp.get(..8).unwrap_or_default();
        if params.scope.date != day {
            return Err(KinesisError::invalid_signature(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{day}', from '{timestamp}'.",
                params.scope.date
            )));
        }
        let presigned = match (&params.query_date, &params.expires) {
            (None, _) => None,
            (Some(_), None) => Some(None),
            (Some(_), Some(expires)) => {
                let secs = expires.parse::<u64>().map_err(|_| {
                    KinesisError::incomplete_signature(format!(
                        "X-Amz-Expires must be a non-negative integer number of seconds, got '{expires}'."
                    ))
                })?;
                if secs > MAX_EXPIRES_SECS {
                    return Err(KinesisError::incomplete_signature(format!(
                        "X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES_SECS}"
                    )));
                }
                Some(Some(secs))
            }
        };
        Ok(Some(Authentication {
            scope: params.scope,
            signed_headers: params.signed_headers,
            signature: params.signature,
            timestamp,
            signed_at,
            presigned,
        }))
    }

    /// AWS's date checks at `now` (seconds since the Unix epoch): a signature more than five
    /// minutes old (or a presigned URL past its `X-Amz-Expires`) has expired, one more than five
    /// minutes ahead is not yet current; both InvalidSignatureException.
    pub fn check_time(&self, now: u64) -> Result<(), KinesisError> {
        let at = canonical::format_timestamp;
        if self.signed_at > now.saturating_add(MAX_SKEW_SECS) {
            return Err(KinesisError::invalid_signature(format!(
                "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                self.timestamp,
                at(now.saturating_add(MAX_SKEW_SECS)),
                at(now)
            )));
        }
        match self.presigned {
            Some(Some(expires)) if self.signed_at.saturating_add(expires) < now => {
                Err(KinesisError::invalid_signature(format!(
                    "Signature expired: {} is now earlier than {} ({} - {expires} sec.)",
                    self.timestamp,
                    at(now.saturating_sub(expires)),
                    at(now)
                )))
            }
            Some(Some(_)) => Ok(()),
            _ if self.signed_at.saturating_add(MAX_SKEW_SECS) < now => {
                Err(KinesisError::invalid_signature(format!(
                    "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                    self.timestamp,
                    at(now.saturating_sub(MAX_SKEW_SECS)),
                    at(now)
                )))
            }
            _ => Ok(()),
        }
    }

    /// Verifies the request at `now` with the secret of [`CredentialScope::access_key`]: the
    /// date ([`Self::check_time`]), that `host` is signed, the payload hash (an
    /// `x-amz-content-sha256` header must be `UNSIGNED-PAYLOAD` or the body's hash) and the
    /// signature, compared in constant time.
    pub fn verify(
        &self,
        request: &HttpRequest<'_>,
        secret: &str,
        now: u64,
    ) -> Result<(), KinesisError> {
        self.check_time(now)?;
        if !self.signed_headers.split(';').any(|name| name == "host") {
            return Err(KinesisError::invalid_signature(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        let mismatch = || KinesisError::invalid_signature(SIGNATURE_MISMATCH);
        let body_hash = canonical::sha256_hex(request.body);
        let payload_hash = match request.header("x-amz-content-sha256") {
            None => body_hash,
            Some(UNSIGNED_PAYLOAD) => UNSIGNED_PAYLOAD.to_string(),
            Some(claimed) if claimed == body_hash => body_hash,
            Some(_) => return Err(mismatch()),
        };
        let canonical_request = canonical::canonical_request(
            request,
            &self.signed_headers,
            &payload_hash,
            self.presigned.is_some(),
        )
        .ok_or_else(mismatch)?;
        let scope = canonical::scope(&self.scope.date, &self.scope.region, &self.scope.service);
        let string_to_sign = canonical::string_to_sign(&self.timestamp, &scope, &canonical_request);
        let key = canonical::signing_key(
            secret,
            &self.scope.date,
            &self.scope.region,
            &self.scope.service,
        );
        if canonical::signature_matches(&key, &string_to_sign, &self.signature) {
            Ok(())
        } else {
            Err(mismatch())
        }
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
