//! The HTTP side of the generator: one place that turns (operation, JSON body) into a Kinesis
//! request over keep-alive HTTP/1.1, HTTP/2 (h2c prior knowledge or ALPN h2) or TLS, signs it
//! when asked, bounds it with a timeout and reduces the answer to what the statistics need.
//!
//! A transport may span several endpoints (the gateways of one cluster): every call names its
//! slot, and the slot decides the endpoint, round robin (see [`assign`]), so each request is
//! addressed and signed for the host of the connection it goes out on.

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
            _ => anyhow::bail!("--endpoint {endpoint:?} must start with http:// or https://"),
        };
        let host = uri
            .host()
            .with_context(|| format!("--endpoint {endpoint:?} has no host"))?;
        let default_port = if tls { 443 } else { 80 };
        let host = match uri.port_u16() {
            Some(port) if port != default_port => format!("{host}:{port}"),
            _ => host.to_string(),
        };
        anyhow::ensure!(
            matches!(uri.path(), "" | "/"),
            "--endpoint {endpoint:?} must not have a path (Kinesis is served at /)"
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

/// Which endpoint, and which of that endpoint's clients, slot `slot` uses. Endpoints take the
/// slots in turn (slot i goes to endpoint i mod `endpoints`), then each endpoint hands its own
/// slots to its clients in turn, so with 3 endpoints and 2 HTTP/2 connections each, slots 0..6
/// land on 6 different connections. With one endpoint this is `slot % clients`, what a
/// single-endpoint run has always done.
pub fn assign(slot: usize, endpoints: usize, clients: usize) -> (usize, usize) {
    let endpoints = endpoints.max(1);
    (slot % endpoints, (slot / endpoints) % clients.max(1))
}

/// The connections to one endpoint.
struct Target {
    endpoint: Arc<Endpoint>,
    /// `Host` for HTTP/1.1 (HTTP/2 carries it as `:authority`, from the URI).
    host_header: HeaderValue,
    clients: Vec<HyperClient>,
}

/// A pool of connections to one or more endpoints, all speaking the same protocol. Slots are
/// spread over the endpoints by [`assign`]; control-plane calls ([`Transport::json`]) use slot 0,
/// the first endpoint.
pub struct Transport {
    targets: Vec<Target>,
    http2: bool,
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
    /// `connections` separate HTTP/2 connections to each of `endpoints` (ignored for HTTP/1.1,
    /// which opens one keep-alive connection per concurrent request, up to `pool` kept idle per
    /// endpoint). Connections open on first use, so an endpoint's clients that no slot reaches
    /// cost nothing.
    pub fn new(
        shared: &Shared,
        endpoints: &[Arc<Endpoint>],
        http2: bool,
        connections: usize,
        pool: usize,
    ) -> anyhow::Result<Transport> {
        anyhow::ensure!(!endpoints.is_empty(), "a transport needs an endpoint");
        let targets = endpoints
            .iter()
            .map(|endpoint| {
                Ok(Target {
                    endpoint: endpoint.clone(),
                    host_header: HeaderValue::from_str(&endpoint.host)?,
                    clients: Transport::clients(shared, http2, connections, pool),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Transport {
            targets,
            http2,
            signer: shared.signer.clone(),
            timeout: shared.timeout,
            server: shared.server.clone(),
        })
    }

    /// One endpoint's clients: one per HTTP/2 connection (a client multiplexes everything on one
    /// connection per host), or for HTTP/1.1 a single client whose pool holds a connection per
    /// concurrent request.
    fn clients(shared: &Shared, http2: bool, connections: usize, pool: usize) -> Vec<HyperClient> {
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
        clients
    }

    /// The endpoint and the client slot `slot` uses.
    fn route(&self, slot: usize) -> (&Target, &HyperClient) {
        let clients = self.targets[0].clients.len();
        let (endpoint, client) = assign(slot, self.targets.len(), clients);
        let target = &self.targets[endpoint];
        (target, &target.clients[client])
    }

    /// Builds a (signed, when a signer is set) request for the endpoint of `slot`; send it with
    /// [`Transport::send`] on the same slot. `payload_sha256` is the body's hash when the caller
    /// has it precomputed.
    pub fn request(
        &self,
        slot: usize,
        op: &str,
        body: Bytes,
        payload_sha256: Option<&str>,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let (dest, _) = self.route(slot);
        let target = format!("{TARGET_PREFIX}{op}");
        let mut builder = Request::post(dest.endpoint.uri.clone())
            .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
            .header("x-amz-target", &target)
            .header(
                USER_AGENT,
                concat!("kinesin-bench/", env!("CARGO_PKG_VERSION")),
            );
        if self.http2 {
            builder = builder.version(http::Version::HTTP_2);
        } else {
            builder = builder.header(HOST, dest.host_header.clone());
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
                    ("host", &dest.endpoint.host),
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

    /// Sends a request built for `slot` and returns the answer's head with its body still
    /// streaming (for SubscribeToShard). The timeout covers only the wait for the head.
    pub async fn send(
        &self,
        slot: usize,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, ErrorKind> {
        let (_, client) = self.route(slot);
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
        let request =
            self.request(slot, op, body, payload_sha256)
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

    /// A control-plane call with a JSON body, to the first endpoint: the answer's JSON, or an
    /// error naming the server's error type and message.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::Credentials;

    fn shared(signer: Option<Arc<Signer>>) -> Shared {
        Shared {
            signer,
            timeout: Duration::from_secs(5),
            server: Default::default(),
            tls: tls_config(None).unwrap(),
        }
    }

    fn endpoints(urls: &[&str]) -> Vec<Arc<Endpoint>> {
        urls.iter()
            .map(|url| Arc::new(Endpoint::parse(url).unwrap()))
            .collect()
    }

    #[test]
    fn slots_take_the_endpoints_in_turn_then_their_clients() {
        // 32 slots over 3 endpoints: 11, 11 and 10, and slot i on endpoint i mod 3.
        let mut per_endpoint = [0; 3];
        for slot in 0..32 {
            let (endpoint, client) = assign(slot, 3, 1);
            assert_eq!((endpoint, client), (slot % 3, 0));
            per_endpoint[endpoint] += 1;
        }
        assert_eq!(per_endpoint, [11, 11, 10]);
        // 3 endpoints with 2 connections each: the first 6 slots use 6 different connections,
        // and every connection serves as many slots.
        let mut per_connection = std::collections::BTreeMap::new();
        for slot in 0..12 {
            *per_connection.entry(assign(slot, 3, 2)).or_insert(0) += 1;
        }
        assert_eq!(per_connection.len(), 6);
        assert!(per_connection.values().all(|&n| n == 2));
        let first_six: std::collections::BTreeSet<_> = (0..6).map(|s| assign(s, 3, 2)).collect();
        assert_eq!(first_six.len(), 6);
        // One endpoint: slot mod connections, as before there could be several.
        for slot in 0..10 {
            assert_eq!(assign(slot, 1, 4), (0, slot % 4));
        }
    }

    /// Each slot's request goes to its endpoint's URI, carries that endpoint's host (HTTP/1.1
    /// `Host`, HTTP/2 `:authority` from the URI) and is signed for that host.
    #[test]
    fn requests_are_addressed_and_signed_for_their_slots_endpoint() {
        let credentials = Credentials {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let signer = Arc::new(Signer::new(credentials, "us-east-1", "kinesis"));
        let shared = shared(Some(signer.clone()));
        let urls = [
            "http://10.0.0.1:4567",
            "http://10.0.0.2:4568",
            "https://kinesis.example.com",
        ];
        let hosts = ["10.0.0.1:4567", "10.0.0.2:4568", "kinesis.example.com"];
        for http2 in [false, true] {
            let transport = Transport::new(&shared, &endpoints(&urls), http2, 2, 8).unwrap();
            for slot in 0..7 {
                let host = hosts[slot % 3];
                let body = Bytes::from_static(b"{}");
                let request = transport.request(slot, "PutRecords", body, None).unwrap();
                assert_eq!(request.uri().authority().unwrap().as_str(), host);
                assert_eq!(request.uri().scheme_str() == Some("https"), slot % 3 == 2);
                let header = |name: &str| request.headers()[name].to_str().unwrap().to_string();
                if http2 {
                    assert!(request.headers().get(HOST).is_none());
                } else {
                    assert_eq!(header("host"), host);
                }
                let amz_date = header("x-amz-date");
                let expected = signer.authorization(
                    "POST",
                    "/",
                    "",
                    &[
                        ("content-type", JSON_CONTENT_TYPE),
                        ("host", host),
                        ("x-amz-date", &amz_date),
                        ("x-amz-target", "Kinesis_20131202.PutRecords"),
                    ],
                    &sha256_hex(b"{}"),
                    &amz_date,
                );
                assert_eq!(header("authorization"), expected, "slot {slot}");
            }
        }
    }

    #[test]
    fn a_transport_needs_an_endpoint() {
        assert!(Transport::new(&shared(None), &[], false, 1, 1).is_err());
    }

    /// Serves HTTP/1.1 on an ephemeral port, answering every request with 200 and keeping each
    /// request's `Host` header; returns the endpoint.
    async fn recording_server(hosts: Arc<std::sync::Mutex<Vec<String>>>) -> String {
        use hyper_util::rt::TokioIo;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let hosts = hosts.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let host = request.headers()[HOST].to_str().unwrap().to_string();
                        hosts.lock().unwrap().push(host);
                        async {
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from_static(b"{}"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        format!("http://{address}")
    }

    /// Calls on different slots reach different servers, each with its own host.
    #[tokio::test]
    async fn calls_reach_the_endpoint_of_their_slot() {
        let seen: Vec<Arc<std::sync::Mutex<Vec<String>>>> =
            (0..2).map(|_| Default::default()).collect();
        let mut urls = Vec::new();
        for hosts in &seen {
            urls.push(recording_server(hosts.clone()).await);
        }
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let transport = Transport::new(&shared(None), &endpoints(&urls), false, 1, 4).unwrap();
        for slot in 0..5 {
            let reply = transport
                .call(slot, "PutRecords", Bytes::from_static(b"{}"), None)
                .await
                .unwrap_or_else(|kind| panic!("slot {slot}: {}", kind.describe()));
            assert_eq!(reply.status, 200);
        }
        transport
            .json("DescribeStreamSummary", &serde_json::json!({}))
            .await
            .unwrap();
        let host = |url: &str| url.trim_start_matches("http://").to_string();
        // Slots 0, 2, 4 and the control-plane call on the first, slots 1 and 3 on the second.
        assert_eq!(*seen[0].lock().unwrap(), vec![host(urls[0]); 4]);
        assert_eq!(*seen[1].lock().unwrap(), vec![host(urls[1]); 2]);
    }
}
