//! The real `kinesin` binary driven by the official Rust SDK (`aws-sdk-kinesis`), over a real socket.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::{Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;

struct Server {
    child: Child,
    endpoint: String,
    /// The plain HTTP listener's address (health, metrics).
    plain: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over plain HTTP/1.1: the whole response, or None when the node is not answering.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    Some(response)
}

fn healthy(addr: &str) -> bool {
    http_get(addr, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200"))
}

/// The value of the sample `name` (with its labels) in the node's `/metrics`.
fn metric(addr: &str, sample: &str) -> u64 {
    let body = http_get(addr, "/metrics").expect("metrics answer");
    body.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in /metrics"))
}

fn start() -> Server {
    start_with(|_| Vec::new())
}

/// A server with extra flags, made from its data directory's parent (for files they name).
fn start_with(extra: impl FnOnce(&Path) -> Vec<String>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let cluster = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_kinesin"))
        .args(["server", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &api, "--cluster-listen", &cluster])
        .args(extra(dir.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        endpoint: format!("http://{api}"),
        plain: api.clone(),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !healthy(&api) {
        assert!(Instant::now() < deadline, "server did not become healthy");
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "server exited during start-up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn client(endpoint: &str) -> Client {
    Client::from_conf(client_config(endpoint).build())
}

fn client_config(endpoint: &str) -> aws_sdk_kinesis::config::Builder {
    aws_sdk_kinesis::Config::builder()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
}

async fn wait_active(client: &Client, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .unwrap();
        if summary
            .stream_description_summary()
            .unwrap()
            .stream_status()
            == &StreamStatus::Active
        {
            return;
        }
        assert!(Instant::now() < deadline, "stream never became ACTIVE");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_round_trip() {
    let server = start();
    let kinesis = client(&server.endpoint);

    kinesis
        .create_stream()
        .stream_name("sdk")
        .shard_count(3)
        .send()
        .await
        .unwrap();
    wait_active(&kinesis, "sdk").await;

    let shards = kinesis
        .list_shards()
        .stream_name("sdk")
        .send()
        .await
        .unwrap();
    assert_eq!(shards.shards().len(), 3);

    let one = kinesis
        .put_record()
        .stream_name("sdk")
        .partition_key("key-1")
        .data(Blob::new(b"first".to_vec()))
        .send()
        .await
        .unwrap();
    let entries: Vec<PutRecordsRequestEntry> = (0..30)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("key-{i}"))
                .data(Blob::new(format!("record-{i}").into_bytes()))
                .build()
                .unwrap()
        })
        .collect();
    let many = kinesis
        .put_records()
        .stream_name("sdk")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(many.failed_record_count(), Some(0));
    assert_eq!(many.records().len(), 30);

    // Read every shard from the start: 31 records in all, "first" at the sequence number returned.
    let mut seen = Vec::new();
    for shard in shards.shards() {
        let iterator = kinesis
            .get_shard_iterator()
            .stream_name("sdk")
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap();
        let records = kinesis
            .get_records()
            .shard_iterator(iterator.shard_iterator().unwrap())
            .send()
            .await
            .unwrap();
        for record in records.records() {
            seen.push((
                record.sequence_number().to_string(),
                record.data().as_ref().to_vec(),
            ));
        }
    }
    assert_eq!(seen.len(), 31);
    assert!(seen.contains(&(one.sequence_number().to_string(), b"first".to_vec())));

    // Errors come back typed.
    let missing = kinesis
        .describe_stream_summary()
        .stream_name("no-such-stream")
        .send()
        .await
        .unwrap_err();
    assert!(missing
        .into_service_error()
        .is_resource_not_found_exception());

    kinesis
        .delete_stream()
        .stream_name("sdk")
        .send()
        .await
        .unwrap();
}

/// Enhanced fan-out through the Rust SDK's event-stream client: the initial response it awaits,
/// then records in order, pushed as they are written, with a continuation the SDK resubscribes
/// from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_subscribes_to_a_shard() {
    let server = start();
    subscribe_and_resume(&client(&server.endpoint)).await;
    assert_eq!(
        metric(&server.plain, "kinesin_http_requests_total{version=\"2\"}"),
        0
    );
}

/// With `--credentials` (a principal whose policy allows `kinesis:*`), the SDK's signatures
/// verify (SubscribeToShard's too) and the streams are the principal's account's; a wrong secret is refused with InvalidSignatureException.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_signs_for_a_node_with_credentials() {
    let server = start_with(|dir| {
        let path = dir.join("credentials.toml");
        let users = "[[user]]\nname = \"sdk\"\naccount = \"123456789012\"\n\
                     access_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"secret\"\n\
                     policies = ['{\"Statement\": {\"Effect\": \"Allow\", \"Action\": \"kinesis:*\", \"Resource\": \"*\"}}']\n";
        std::fs::write(&path, users).unwrap();
        vec!["--credentials".into(), path.display().to_string()]
    });
    let kinesis = client(&server.endpoint);
    subscribe_and_resume(&kinesis).await;
    let summary = kinesis
        .describe_stream_summary()
        .stream_name("fanout")
        .send()
        .await
        .unwrap();
    let arn = summary.stream_description_summary().unwrap().stream_arn();
    assert!(arn.contains(":123456789012:stream/fanout"), "{arn}");

    let wrong = Client::from_conf(
        client_config(&server.endpoint)
            .credentials_provider(Credentials::new("AKIDEXAMPLE", "wrong", None, None, "test"))
            .build(),
    );
    let err = wrong.list_streams().send().await.unwrap_err();
    let service = err.as_service_error().map(|e| e.meta().code());
    assert_eq!(service, Some(Some("InvalidSignatureException")), "{err:?}");
}

/// Over TLS the SDK's client offers ALPN h2 and http/1.1: every call, SubscribeToShard's event
/// stream included, must go over HTTP/2, as the Java SDK's Netty client sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_subscribes_over_tls_with_alpn_h2() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let node_key = KeyPair::generate().unwrap();
    let node_cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&node_key, &*ca)
        .unwrap();
    let tls = format!("127.0.0.1:{}", free_port());
    let tls_port = tls.rsplit(':').next().unwrap().to_string();
    let server = start_with(|dir| {
        let (cert, key) = (dir.join("node.pem"), dir.join("node.key"));
        std::fs::write(&cert, node_cert.pem()).unwrap();
        std::fs::write(&key, node_key.serialize_pem()).unwrap();
        vec![
            "--tls-listen".into(),
            tls.clone(),
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ]
    });
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            aws_smithy_http_client::tls::TlsContext::builder()
                .with_trust_store(
                    aws_smithy_http_client::tls::TrustStore::empty()
                        .with_pem_certificate(ca.pem().into_bytes()),
                )
                .build()
                .unwrap(),
        )
        .build_https();
    let config = client_config(&format!("https://localhost:{tls_port}"))
        .http_client(http)
        .build();
    subscribe_and_resume(&Client::from_conf(config)).await;
    let http2 = metric(&server.plain, "kinesin_http_requests_total{version=\"2\"}");
    assert!(http2 > 10, "the SDK's calls came over HTTP/2: {http2}");
    assert_eq!(
        metric(&server.plain, "kinesin_http_requests_total{version=\"1\"}"),
        0
    );
}

/// The subscription's next SubscribeToShardEvent, within 30 s.
async fn next_event(
    output: &mut aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardOutput,
) -> aws_sdk_kinesis::types::SubscribeToShardEvent {
    let event = tokio::time::timeout(Duration::from_secs(30), output.event_stream.recv())
        .await
        .expect("an event within 30 s")
        .unwrap()
        .expect("the stream stays open");
    let aws_sdk_kinesis::types::SubscribeToShardEventStream::SubscribeToShardEvent(event) = event
    else {
        panic!("unexpected event {event:?}");
    };
    event
}

/// Registers a consumer, subscribes from TRIM_HORIZON, gets records written before and during
/// the subscription, then resumes from the last continuation number.
async fn subscribe_and_resume(kinesis: &Client) {
    use aws_sdk_kinesis::types::{ConsumerStatus, StartingPosition};

    kinesis
        .create_stream()
        .stream_name("fanout")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    wait_active(kinesis, "fanout").await;
    let stream_arn = kinesis
        .describe_stream_summary()
        .stream_name("fanout")
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_string();
    let consumer_arn = kinesis
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("sdk-consumer")
        .send()
        .await
        .unwrap()
        .consumer()
        .unwrap()
        .consumer_arn()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let described = kinesis
            .describe_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await
            .unwrap();
        if described.consumer_description().unwrap().consumer_status() == &ConsumerStatus::Active {
            break;
        }
        assert!(Instant::now() < deadline, "consumer never became ACTIVE");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..5 {
        kinesis
            .put_record()
            .stream_name("fanout")
            .partition_key("k")
            .data(Blob::new(format!("record-{i}").into_bytes()))
            .send()
            .await
            .unwrap();
    }

    let subscribe = |position: StartingPosition| {
        kinesis
            .subscribe_to_shard()
            .consumer_arn(&consumer_arn)
            .shard_id("shardId-000000000000")
            .starting_position(position)
            .send()
    };
    let mut output = subscribe(
        StartingPosition::builder()
            .r#type(ShardIteratorType::TrimHorizon)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let mut received = Vec::new();
    let mut continuation = String::new();
    let mut pushed_late = false;
    while received.len() < 6 {
        let event = next_event(&mut output).await;
        for record in event.records() {
            received.push(String::from_utf8(record.data().as_ref().to_vec()).unwrap());
        }
        continuation = event.continuation_sequence_number().to_string();
        if received.len() == 5 && !pushed_late {
            // Written after the subscription started: pushed to it.
            pushed_late = true;
            kinesis
                .put_record()
                .stream_name("fanout")
                .partition_key("k")
                .data(Blob::new(b"record-5".to_vec()))
                .send()
                .await
                .unwrap();
        }
    }
    let expected: Vec<String> = (0..6).map(|i| format!("record-{i}")).collect();
    assert_eq!(received, expected);
    drop(output);

    // A new subscription from the continuation starts after record 5. Until the server has seen
    // the old one go it answers ResourceInUse, which a client retries.
    kinesis
        .put_record()
        .stream_name("fanout")
        .partition_key("k")
        .data(Blob::new(b"record-6".to_vec()))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut resumed = loop {
        let position = StartingPosition::builder()
            .r#type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(&continuation)
            .build()
            .unwrap();
        match subscribe(position).await {
            Ok(output) => break output,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                assert!(
                    Instant::now() < deadline,
                    "the old subscription never ended"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("subscribe failed: {e:?}"),
        }
    };
    loop {
        let event = next_event(&mut resumed).await;
        if let Some(first) = event.records().first() {
            assert_eq!(first.data().as_ref(), b"record-6");
            break;
        }
    }
}
