//! `kinesin-bench`: a closed-loop load generator for a Kinesis endpoint.
//!
//! Each connection keeps one request in flight: a prebuilt PutRecords (or PutRecord) body, so the
//! generator spends its time on the network, not on encoding. Requests are unsigned, which
//! Kinesin accepts; signing for AWS itself is future work (issue 6).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Parser, Debug, Clone)]
#[command(about = "Closed-loop PutRecords/PutRecord load against a Kinesis endpoint")]
struct Args {
    /// Endpoint URL, e.g. http://127.0.0.1:4567
    #[arg(long, default_value = "http://127.0.0.1:4567")]
    endpoint: String,
    /// Stream to write to (created with --shards if missing).
    #[arg(long, default_value = "bench")]
    stream: String,
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Records per PutRecords request; 0 means single-record PutRecord.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Bytes of data per record.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn call(
    client: &HttpClient,
    endpoint: &str,
    op: &str,
    body: Bytes,
) -> anyhow::Result<(u16, Bytes)> {
    let request = hyper::Request::post(endpoint)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("Kinesis_20131202.{op}"))
        .body(Full::new(body))?;
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

async fn ensure_stream(client: &HttpClient, args: &Args) -> anyhow::Result<()> {
    let create = serde_json::json!({"StreamName": args.stream, "ShardCount": args.shards});
    let (status, body) = call(
        client,
        &args.endpoint,
        "CreateStream",
        create.to_string().into(),
    )
    .await?;
    if status != 200 && !String::from_utf8_lossy(&body).contains("ResourceInUseException") {
        bail!(
            "CreateStream failed: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let describe = Bytes::from(serde_json::json!({"StreamName": args.stream}).to_string());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = call(
            client,
            &args.endpoint,
            "DescribeStreamSummary",
            describe.clone(),
        )
        .await?;
        if String::from_utf8_lossy(&body).contains("\"ACTIVE\"") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("stream {} did not become ACTIVE", args.stream);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A PutRecord answer, or a PutRecords answer with no failed record.
fn all_written(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("FailedRecordCount")
                .map(|n| n.as_u64() == Some(0))
                .or(Some(true))
        })
        .unwrap_or(false)
}

/// Prebuilt bodies, with partition keys spread over the hash space.
fn bodies(args: &Args, count: usize) -> Vec<Bytes> {
    let data = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; args.record_size]);
    (0..count)
        .map(|n| {
            let body = if args.batch == 0 {
                serde_json::json!({"StreamName": args.stream, "PartitionKey": format!("pk-{n}"), "Data": data})
            } else {
                let records: Vec<_> = (0..args.batch)
                    .map(|i| serde_json::json!({"PartitionKey": format!("pk-{n}-{i}"), "Data": data}))
                    .collect();
                serde_json::json!({"StreamName": args.stream, "Records": records})
            };
            Bytes::from(body.to_string())
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.connections)
        .build_http();
    ensure_stream(&client, &args)
        .await
        .context("preparing the stream")?;
    let (op, per_request) = if args.batch == 0 {
        ("PutRecord", 1)
    } else {
        ("PutRecords", args.batch)
    };
    let bodies = Arc::new(bodies(&args, 64));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for worker in 0..args.connections {
        let (client, bodies, stop, errors, endpoint) = (
            client.clone(),
            bodies.clone(),
            stop.clone(),
            errors.clone(),
            args.endpoint.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                let body = bodies[n % bodies.len()].clone();
                n += 1;
                let sent = Instant::now();
                match call(&client, &endpoint, op, body).await {
                    Ok((200, body)) if all_written(&body) => {
                        let _ = histogram.record(sent.elapsed().as_micros() as u64);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            histogram
        }));
    }
    while started.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        eprint!(
            "\r{:>4}s of {} s",
            started.elapsed().as_secs(),
            args.seconds
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    for task in tasks {
        total.add(task.await?)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests = total.len();
    let records = requests as f64 * per_request as f64;
    println!(
        "\n{op} x{per_request}, {} B records, {} connections, {:.1} s: {:.0} records/s, {:.1} MB/s, {} requests, {} errors",
        args.record_size,
        args.connections,
        elapsed,
        records / elapsed,
        records * args.record_size as f64 / elapsed / 1e6,
        requests,
        errors.load(Ordering::Relaxed)
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        total.value_at_quantile(0.5) as f64 / 1000.0,
        total.value_at_quantile(0.9) as f64 / 1000.0,
        total.value_at_quantile(0.99) as f64 / 1000.0,
        total.value_at_quantile(0.999) as f64 / 1000.0,
        total.max() as f64 / 1000.0
    );
    Ok(())
}
