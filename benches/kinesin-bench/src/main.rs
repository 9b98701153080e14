//! `kinesin-bench`: a load generator for any Kinesis Data Streams endpoint (Kinesin,
//! kinesalite, AWS). This file only sequences a run: stream set-up, consumers ready before the
//! first record, producers for the warm-up and the measured window, the consumers' drain, the
//! clean-up, the report. See `--help` for what each flag does.

mod args;
mod client;
mod consumer;
mod eventstream;
mod producer;
mod progress;
mod report;
mod setup;
mod sigv4;
mod stats;
mod workload;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser as _;

use crate::args::{Args, Consumers, Sign};
use crate::client::{Endpoint, Shared, Transport};
use crate::consumer::{Pollers, Settings, Subscribers, Tasks};
use crate::producer::{wall_nanos, Producer, Run, Schedule};
use crate::report::{ConsumerOutcome, Environment, Outcome};
use crate::sigv4::{Credentials, Signer};
use crate::stats::Recorder;

/// How many lock-protected statistics shards tasks spread over.
const STATS_SHARDS: usize = 16;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kinesin-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

enum Prepared {
    Poll(Pollers),
    Subscribe(Subscribers),
}

async fn run() -> anyhow::Result<()> {
    let mut args = Args::parse();
    args.validate()?;
    let started_at_unix = wall_nanos() as f64 / 1e9;
    let endpoints = args
        .endpoints
        .iter()
        .map(|url| Endpoint::parse(url).map(Arc::new))
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!endpoints.is_empty(), "--endpoint is required");
    // Creating, describing and deleting the stream, consumer registration: the first endpoint.
    // The load (producer slots, consumers' reads) goes to all of them.
    let first = &endpoints[..1];
    let signer = match (args.sign, Credentials::from_env()) {
        (Sign::Never, _) => None,
        (_, Some(credentials)) => Some(Arc::new(Signer::new(credentials, &args.region, "kinesis"))),
        (Sign::Always, None) => anyhow::bail!(
            "--sign always needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
        ),
        (Sign::Auto, None) => None,
    };
    let server = Arc::new(OnceLock::new());
    let shared = Shared {
        signer: signer.clone(),
        timeout: Duration::from_millis(args.timeout_ms),
        server: server.clone(),
        tls: client::tls_config(args.ca_file.as_deref())?,
    };
    let transport = |endpoints: &[Arc<Endpoint>], http2: bool, connections: usize, pool: usize| {
        Transport::new(&shared, endpoints, http2, connections, pool).map(Arc::new)
    };
    let control = transport(first, args.http2, 1, 2)?;

    let stream = setup::ensure_stream(&control, &args).await?;

    let consumer_name = args.consumer_name();
    let prepared = match args.consumers {
        Consumers::None => None,
        Consumers::Getrecords => {
            let polling = transport(&endpoints, args.http2, 1, 1024)?;
            let settings = Settings {
                stream: args.stream.clone(),
                poll_wait: Duration::from_millis(args.poll_wait_ms),
                limit: args.get_limit,
            };
            Some(Prepared::Poll(
                consumer::prepare_pollers(polling, settings).await?,
            ))
        }
        Consumers::Subscribe => {
            // SubscribeToShard is HTTP/2 only; about 50 subscriptions per connection, the
            // shards spread over the endpoints.
            let per_endpoint = (stream.open_shards.unwrap_or(1) as usize).div_ceil(endpoints.len());
            let h2 = transport(&endpoints, true, per_endpoint.div_ceil(50).max(1), 1)?;
            let arn = stream
                .arn
                .clone()
                .ok_or_else(|| anyhow::anyhow!("DescribeStreamSummary gave no StreamARN"))?;
            Some(Prepared::Subscribe(
                consumer::prepare_subscribers(
                    control.clone(),
                    h2,
                    &args.stream,
                    &arn,
                    &consumer_name,
                )
                .await?,
            ))
        }
    };

    let workload = Arc::new(workload::build(
        &args.stream,
        args.batch,
        args.record_size,
        args.bodies,
        !args.no_tag,
    ));
    let producers = transport(
        &endpoints,
        args.http2,
        args.h2_connection_count(),
        args.connections,
    )?;

    // The clock starts: consumers first, so they are reading before the first record lands.
    let run = Arc::new(Run::new(
        Duration::from_secs(args.warmup_secs),
        Duration::from_secs(args.seconds),
    ));
    let consumer_recorder = Recorder::new(STATS_SHARDS);
    let consumer_tasks: Option<Tasks> = prepared.as_ref().map(|prepared| match prepared {
        Prepared::Poll(pollers) => pollers.start(consumer_recorder.clone(), run.clone()),
        Prepared::Subscribe(subscribers) => {
            subscribers.start(consumer_recorder.clone(), run.clone())
        }
    });
    let producer_recorder = Recorder::new(STATS_SHARDS);
    let producer = Arc::new(Producer {
        transport: producers,
        workload: workload.clone(),
        recorder: producer_recorder.clone(),
        run: run.clone(),
        record_size: args.record_size as u64,
        schedule: args
            .rate
            .map(|rate| Arc::new(Schedule::new(rate, args.max_backlog))),
        late: Duration::from_secs_f64(args.late_ms / 1000.0),
    });
    let progress = progress::Progress::spawn(
        producer_recorder.clone(),
        consumer_tasks.as_ref().map(|_| consumer_recorder.clone()),
        run.clone(),
        args.progress_secs,
    );
    // Ctrl-C ends the run early but still drains, cleans up and reports.
    let interrupt = {
        let run = run.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: stopping the producers (Ctrl-C again to abort)");
                run.stopped.store(true, Ordering::Relaxed);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        })
    };
    for task in producer.spawn(args.connections) {
        task.await?;
    }
    let measured_secs = Instant::now()
        .min(run.end)
        .saturating_duration_since(run.measure_from)
        .as_secs_f64();

    // Let consumers catch up with what was written in the window.
    let drain_started = Instant::now();
    if consumer_tasks.is_some() {
        let deadline = drain_started + Duration::from_secs(args.drain_secs);
        let mut last = (
            run.received_in_window.load(Ordering::Relaxed),
            Instant::now(),
        );
        loop {
            let received = run.received_in_window.load(Ordering::Relaxed);
            let expected = run.produced_in_window.load(Ordering::Relaxed);
            if received >= expected || Instant::now() >= deadline {
                break;
            }
            if received != last.0 {
                last = (received, Instant::now());
            } else if args.no_tag && last.1.elapsed() > Duration::from_secs(2) {
                // Untagged records are never counted as received: nothing to wait for.
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    if let Some(tasks) = &consumer_tasks {
        tasks.stop();
    }
    if let Some(progress) = progress {
        progress.stop();
    }

    let mut deregister_error = None;
    if let Some(Prepared::Subscribe(subscribers)) = &prepared {
        if let Err(error) = consumer::deregister(&control, &subscribers.consumer_arn).await {
            eprintln!("warning: {error}");
            deregister_error = Some(error.to_string());
        }
    }
    if args.delete_after {
        match setup::delete_stream(&control, &args.stream).await {
            Ok(()) => eprintln!("deleted stream {}", args.stream),
            Err(error) => eprintln!("warning: deleting stream {}: {error:#}", args.stream),
        }
    }

    let consumer = consumer_tasks.as_ref().map(|tasks| ConsumerOutcome {
        figures: consumer_recorder.measured(),
        shards: tasks.shard_count(),
        expected: run.produced_in_window.load(Ordering::Relaxed),
        received_in_window: run.received_in_window.load(Ordering::Relaxed),
        drain_secs,
        deregister_error,
    });
    let outcome = Outcome {
        args: &args,
        env: Environment {
            endpoints: args
                .endpoints
                .iter()
                .cloned()
                .zip(endpoints.iter().cloned())
                .collect(),
            signed: signer.is_some(),
            server: server.get().cloned(),
            started_at_unix,
            stream_arn: stream.arn.clone(),
            open_shards: stream.open_shards,
            stream_created: stream.created,
        },
        op: workload.op,
        measured_secs,
        producer: producer_recorder.measured(),
        consumer,
    };
    interrupt.abort();
    if args.json.as_deref() == Some("-") {
        // stdout carries the JSON document alone.
        eprint!("{}", outcome.summary());
    } else {
        print!("{}", outcome.summary());
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&outcome.to_json())?;
        if path == "-" {
            println!("{text}");
        } else {
            std::fs::write(path, text + "\n")
                .map_err(|e| anyhow::anyhow!("writing {path}: {e}"))?;
        }
    }
    Ok(())
}
