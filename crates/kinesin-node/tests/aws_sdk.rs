//! The real `kinesin` binary driven by the official Rust SDK (`aws-sdk-kinesis`), over a real socket.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::{Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;

struct Server {
    child: Child,
    endpoint: String,
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

fn healthy(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let cluster = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_kinesin"))
        .args(["server", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &api, "--cluster-listen", &cluster])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        endpoint: format!("http://{api}"),
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
    let config = aws_sdk_kinesis::Config::builder()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .build();
    Client::from_conf(config)
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
