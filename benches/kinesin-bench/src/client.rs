//! The HTTP side of the generator: one place that turns (operation, JSON body) into a Kinesis
//! request over keep-alive HTTP/1.1, HTTP/2 (h2c prior knowledge or ALPN h2) or TLS, signs it
//! when asked, bounds it with a timeout and reduces the answer to what the statistics need.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::sigv4::{sha256_hex, Signer};
use crate::stats::ErrorKind;

const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const TARGET_PREFIX: &str = "Kinesis_20131202.";

type HyperClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Where requests go, parsed once.
#[derive(Debug)]
pub struct Endpoint {
    /// `scheme://host[:port]/`, the port only when it is not the scheme's default, so the
    /// `:authority` HTTP/2 sends equals the `host` that was signed.
    pub uri: Uri,
    /// `host[:port]` as above.
    pub host: String,
    pub tls: bool,
}

impl Endpoint {
    pub fn parse(endpoint: &str) -> anyhow::Result<Endpoint> {
        let uri: Uri = endpoint
            .parse()
            .with_context(|| format!("--endpoint {endpoint:?} is not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => anyhow::bail!("--endpoint must start with http:// or https://"),
        };
        let host = uri.host().context("--endpoint has no host")?;
        let default_port = if tls { 443 } else { 80 };
        let host = match uri.port_u16() {
            Some(port) if port != default_port => format!("{host}:{port}"),
            _ => host.to_string(),
        };
        anyhow::ensure!(
            matches!(uri.path(), "" | "/"),
            "--endpoint must not have a path (Kinesis is served at /)"
        );
        let scheme = if tls { "https" } else { "http" };
        let uri = format!("{scheme}://{host}/").parse()?;
        Ok(Endpoint { uri, host, tls })
    }
}

/// What a call came back with, reduced for the statistics.
pub struct Reply {
    pub status: u16,
    /// `x-amzn-ErrorType`, for error answers that carry it.
    pub error_type: Option<String>,
    pub body: Bytes,
}

/// A pool of connections to one endpoint, all speaking the same protocol.
pub struct Transport {
    clients: Vec<HyperClient>,
    endpoint: Arc<Endpoint>,
    http2: bool,
    host_header: HeaderValue,
    signer: Option<Arc<Signer>>,
    timeout: Duration,
    /// The `server` header of the first answer, for the report's environment.
    server: Arc<OnceLock<String>>,
}

fn transport_error(error: &hyper_util::client::legacy::Error) -> ErrorKind {
    use std::error::Error as _;
    let mut detail = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        detail.push_str(": ");
        detail.push_str(&inner.to_string());
        source = inner.source();
    }
    let kind = if error.is_connect() {
        "connect"
    } else {
        "request"
    };
    ErrorKind::Transport {
        kind: kind.to_string(),
        detail,
    }
}

/// What every transport of a run shares.
pub struct Shared {
    pub endpoint: Arc<Endpoint>,
    pub signer: Option<Arc<Signer>>,
    pub timeout: Duration,
    /// The `server` header of the first answer, for the report's environment.
    pub server: Arc<OnceLock<String>>,
    pub tls: rustls::ClientConfig,
}

/// rustls with the ring provider, Mozilla's roots and the certificates of `ca_file`.
pub fn tls_config(ca_file: Option<&str>) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading --ca-file {path}"))?
        {
            let cert = cert.with_context(|| format!("parsing --ca-file {path}"))?;
            roots
                .add(cert)
                .with_context(|| format!("a certificate of --ca-file {path}"))?;
            added += 1;
        }
        anyhow::ensure!(added > 0, "--ca-file {path} holds no certificate");
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS configuration")?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

impl Transport {
    /// `connections` separate HTTP/2 connections (ignored for HTTP/1.1, which opens one
    /// keep-alive connection per concurrent request, up to `pool` kept idle).
    pub fn new(
        shared: &Shared,
        http2: bool,
        connections: usize,
        pool: usize,
    ) -> anyhow::Result<Transport> {
        let count = if http2 { connections.max(1) } else { 1 };
        let mut clients = Vec::with_capacity(count);
        for _ in 0..count {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            http.set_connect_timeout(Some(Duration::from_secs(10)));
            let builder = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(shared.tls.clone())
                .https_or_http();
            let connector = if http2 {
                builder.enable_http2().wrap_connector(http)
            } else {
                builder.enable_http1().wrap_connector(http)
            };
            let mut client = Client::builder(TokioExecutor::new());
            client.pool_max_idle_per_host(pool.max(1));
            if http2 {
                client
                    .http2_only(true)
                    .http2_adaptive_window(true)
                    .http2_max_frame_size(Some(256 * 1024u32));
            }
            clients.push(client.build(connector));
        }
        Ok(Transport {
            clients,
            endpoint: shared.endpoint.clone(),
            http2,
            host_header: HeaderValue::from_str(&shared.endpoint.host)?,
            signer: shared.signer.clone(),
            timeout: shared.timeout,
            server: shared.server.clone(),
        })
    }

    /// Builds a (signed, when a signer is set) request. `payload_sha256` is the body's hash when
    /// the caller has it precomputed.
    pub fn request(
        &self,
        op: &str,
        body: Bytes,
        payload_sha256: Option<&str>,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let target = format!("{TARGET_PREFIX}{op}");
        let mut builder = Request::post(self.endpoint.uri.clone())
            .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
            .header("x-amz-target", &target)
            .header(
                USER_AGENT,
                concat!("kinesin-bench/", env!("CARGO_PKG_VERSION")),
            );
        if self.http2 {
            builder = builder.version(http::Version::HTTP_2);
        } else {
            builder = builder.header(HOST, self.host_header.clone());
        }
        if let Some(signer) = &self.signer {
            let computed;
            let hash = match payload_sha256 {
                Some(hash) => hash,
                None => {
                    computed = sha256_hex(&body);
                    &computed
                }
            };
            let signed = signer.sign_now(
                "POST",
                &[
                    ("content-type", JSON_CONTENT_TYPE),
                    ("host", &self.endpoint.host),
                    ("x-amz-target", &target),
                ],
                hash,
            );
            builder = builder
                .header("x-amz-date", signed.amz_date)
                .header(AUTHORIZATION, signed.authorization);
            if let Some(token) = signer.session_token() {
                builder = builder.header("x-amz-security-token", token);
            }
        }
        Ok(builder.body(Full::new(body))?)
    }

    /// Sends a request and returns the answer's head with its body still streaming (for
    /// SubscribeToShard). The timeout covers only the wait for the head.
    pub async fn send(
        &self,
        slot: usize,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, ErrorKind> {
        let client = &self.clients[slot % self.clients.len()];
        let response = match tokio::time::timeout(self.timeout, client.request(request)).await {
            Err(_) => return Err(ErrorKind::timeout()),
            Ok(Err(error)) => return Err(transport_error(&error)),
            Ok(Ok(response)) => response,
        };
        if self.server.get().is_none() {
            if let Some(server) = response.headers().get(http::header::SERVER) {
                let _ = self
                    .server
                    .set(String::from_utf8_lossy(server.as_bytes()).into_owned());
            }
        }
        Ok(response)
    }

    /// One whole call: request, answer and its body, under one timeout.
    pub async fn call(
        &self,
        slot: usize,
        op: &str,
        body: Bytes,
        payload_sha256: Option<&str>,
    ) -> Result<Reply, ErrorKind> {
        let request = self
            .request(op, body, payload_sha256)
            .map_err(|e| ErrorKind::Transport {
                kind: "build".into(),
                detail: e.to_string(),
            })?;
        let work = async {
            let response = self.send(slot, request).await?;
            let status = response.status().as_u16();
            let error_type = if status == 200 {
                None
            } else {
                response
                    .headers()
                    .get("x-amzn-errortype")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            };
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ErrorKind::Transport {
                    kind: "body".into(),
                    detail: e.to_string(),
                })?
                .to_bytes();
            Ok::<Reply, ErrorKind>(Reply {
                status,
                error_type,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, work).await {
            Err(_) => Err(ErrorKind::timeout()),
            Ok(result) => result,
        }
    }

    /// A control-plane call with a JSON body: the answer's JSON, or an error naming the
    /// server's error type and message.
    pub async fn json(
        &self,
        op: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let reply = self
            .call(0, op, Bytes::from(body.to_string()), None)
            .await
            .map_err(|kind| ApiError {
                op: op.into(),
                kind,
                message: String::new(),
            })?;
        if reply.status == 200 {
            if reply.body.is_empty() {
                return Ok(serde_json::Value::Object(Default::default()));
            }
            return serde_json::from_slice(&reply.body).map_err(|e| ApiError {
                op: op.into(),
                kind: ErrorKind::Transport {
                    kind: "json".into(),
                    detail: e.to_string(),
                },
                message: String::from_utf8_lossy(&reply.body)
                    .chars()
                    .take(300)
                    .collect(),
            });
        }
        let kind =
            crate::stats::classify_error(reply.status, reply.error_type.as_deref(), &reply.body);
        Err(ApiError {
            op: op.into(),
            kind,
            message: crate::stats::error_message(&reply.body),
        })
    }
}

/// A control-plane call that failed.
#[derive(Debug)]
pub struct ApiError {
    pub op: String,
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    /// The server's error type (without namespace), if it answered with one.
    pub fn api_type(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Api { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.op, self.kind.describe())?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}
