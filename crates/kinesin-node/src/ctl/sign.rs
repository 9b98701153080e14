//! Signing `kinesin ctl`'s requests (and `kinesin server --join`'s) with AWS Signature Version 4,
//! service `kinesis`, when AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set: a node with
//! `--credentials` serves its admin API only to an admin principal's signed requests.

use kinesin_api::sigv4::canonical::{self, HttpRequest, SigningCredentials};

/// The key pair and region requests are signed with.
pub(super) struct Signer {
    access_key: String,
    secret: String,
    region: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .field("region", &self.region)
            .finish()
    }
}

impl Signer {
    /// From AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (both set and not empty), the region
    /// from AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1; `None`: requests go unsigned.
    pub(super) fn from_env() -> Option<Signer> {
        Signer::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Signer> {
        let set = |name: &str| var(name).filter(|value| !value.is_empty());
        Some(Signer {
            access_key: set("AWS_ACCESS_KEY_ID")?,
            secret: set("AWS_SECRET_ACCESS_KEY")?,
            region: set("AWS_REGION")
                .or_else(|| set("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
        })
    }

    /// The `X-Amz-Date` and `Authorization` headers of a request signed at `now` (seconds
    /// since the Unix epoch) over its `host`, `x-amz-date` and (with a body) `content-type`.
    pub(super) fn headers(
        &self,
        method: &str,
        authority: &str,
        target: &str,
        content_type: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Vec<(&'static str, String)> {
        let timestamp = canonical::format_timestamp(now);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers = vec![
            ("host".to_string(), authority.to_string()),
            ("x-amz-date".to_string(), timestamp.clone()),
        ];
        if let Some(content_type) = content_type {
            headers.push(("content-type".to_string(), content_type.to_string()));
        }
        let request = HttpRequest {
            method,
            path,
            query,
            headers,
            body,
        };
        let credentials = SigningCredentials {
            access_key: &self.access_key,
            secret: &self.secret,
            region: &self.region,
            service: kinesin_api::SIGNING_SERVICE,
        };
        let authorization = canonical::authorization(&request, &credentials, &timestamp);
        vec![("X-Amz-Date", timestamp), ("Authorization", authorization)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinesin_api::{Authentication, HttpRequest};

    fn signer(vars: &[(&str, &str)]) -> Option<Signer> {
        Signer::from_vars(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn keys_and_region_come_from_the_aws_variables() {
        assert!(signer(&[("AWS_ACCESS_KEY_ID", "AKID")]).is_none());
        assert!(signer(&[("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", "")]).is_none());
        let keys = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
        ];
        assert_eq!(signer(&keys).unwrap().region, "us-east-1");
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = keys.to_vec();
            vars.extend_from_slice(extra);
            signer(&vars).unwrap().region
        };
        assert_eq!(with(&[("AWS_DEFAULT_REGION", "eu-west-1")]), "eu-west-1");
        assert_eq!(
            with(&[
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_REGION", "ap-south-1")
            ]),
            "ap-south-1"
        );
        assert!(!format!("{:?}", signer(&keys).unwrap()).contains("s3cr3t"));
    }

    #[test]
    fn signed_requests_verify_as_the_server_verifies_them() {
        let keys = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
        ];
        let signer = signer(&keys).unwrap();
        let now = 1_767_225_600;
        let target = "/admin/v1/streams/a%20b/shards?region=eu-west-1&account=111111111111";
        let body = br#"{"node_id":4}"#;
        let signed = signer.headers(
            "POST",
            "127.0.0.1:4567",
            target,
            Some("application/json"),
            body,
            now,
        );
        let (path, query) = target.split_once('?').unwrap();
        let mut headers = vec![
            ("Host".to_string(), "127.0.0.1:4567".to_string()),
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Accept".to_string(), "application/json".to_string()),
        ];
        headers.extend(signed.into_iter().map(|(k, v)| (k.to_string(), v)));
        let request = HttpRequest {
            method: "POST",
            path,
            query,
            headers,
            body,
        };
        let auth = Authentication::read(&request).unwrap().unwrap();
        assert_eq!(auth.scope.access_key, "AKID");
        auth.verify(&request, "s3cr3t", now).unwrap();
        assert!(auth.verify(&request, "other", now).is_err());
    }
}
