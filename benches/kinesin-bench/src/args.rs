//! Command-line flags. They live apart from `main` because the report writes them back out
//! (`--json`), so every figure can be traced to the exact run that produced it.

use clap::{Parser, ValueEnum};
use serde::Serialize;

/// Load generator for any Kinesis Data Streams endpoint (Kinesin, kinesalite, AWS).
///
/// Producers send prebuilt PutRecords (or PutRecord) bodies, closed loop by default or open loop
/// at a fixed rate (--rate); consumers (GetRecords polling or SubscribeToShard) read the records
/// back and measure put→get latency from a send-time tag in each record's first 12 bytes.
#[derive(Parser, Debug, Clone, Serialize)]
#[command(name = "kinesin-bench", version)]
pub struct Args {
    /// Endpoint URL: http://host:port (HTTP/1.1 or h2c) or https://host (TLS; e.g.
    /// https://kinesis.us-east-1.amazonaws.com). Several (repeat the flag, or separate them with
    /// commas) load the gateways of one cluster together: producer slot i talks to endpoint
    /// i mod N, the consumers' per-shard readers are spread the same way, and every request is
    /// signed for the host it goes to. The control plane (creating, describing and deleting the
    /// stream, ListShards, GetShardIterator, registering the stream consumer) uses the first.
    #[arg(
        long = "endpoint",
        value_name = "URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:4567"
    )]
    pub endpoints: Vec<String>,

    /// PEM file of extra CA certificates to trust for https:// endpoints (besides the built-in
    /// Mozilla roots), e.g. for a local endpoint with a self-signed certificate.
    #[arg(long)]
    pub ca_file: Option<String>,

    /// Region in the SigV4 credential scope.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,

    /// SigV4 signing: `auto` signs when AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set
    /// (AWS_SESSION_TOKEN is added when present), `always` fails without them, `never` sends
    /// unsigned requests (Kinesin and kinesalite accept those).
    #[arg(long, value_enum, default_value_t = Sign::Auto)]
    pub sign: Sign,

    /// Stream to write to and read from.
    #[arg(long, default_value = "bench")]
    pub stream: String,

    /// Shard count used when the stream has to be created.
    #[arg(long, default_value_t = 4)]
    pub shards: u32,

    /// Create the stream when it does not exist (the default).
    #[arg(long, overrides_with = "no_create")]
    pub create: bool,

    /// Never create the stream: fail when it does not exist.
    #[arg(long, overrides_with = "create")]
    pub no_create: bool,

    /// Delete the stream when the run ends.
    #[arg(long)]
    pub delete_after: bool,

    /// Concurrent in-flight request slots of the producers. With HTTP/1.1 each slot has its own
    /// keep-alive connection; with --http2 the slots share --h2-connections connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,

    /// Speak HTTP/2: prior knowledge (h2c) for http:// endpoints, ALPN h2 for https://.
    #[arg(long)]
    pub http2: bool,

    /// HTTP/2 connections per endpoint the producer slots are spread over (default: one per 64
    /// of the endpoint's slots, at most 4).
    #[arg(long)]
    pub h2_connections: Option<usize>,

    /// Records per PutRecords request (1..=500); 0 sends single-record PutRecord requests.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,

    /// Bytes of data per record (the first 12 carry the send-time tag; see --no-tag).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,

    /// Distinct prebuilt request bodies the producers cycle through. Every record of every body
    /// has its own partition key, so keys spread over the whole hash space.
    #[arg(long, default_value_t = 64)]
    pub bodies: usize,

    /// Send the prebuilt bodies untouched: no send-time tag in the records' first 12 bytes, so
    /// no put→get latency, and with signing the payload hash is computed once per body instead
    /// of once per request. By default every record is tagged (a 16-character patch of the
    /// body per record).
    #[arg(long)]
    pub no_tag: bool,

    /// Open loop: send this many requests per second in total on a fixed schedule, latency
    /// counted from each request's intended send time. Without it the loop is closed (each slot
    /// sends its next request when the previous one is answered).
    #[arg(long)]
    pub rate: Option<f64>,

    /// Open loop: most requests allowed to be overdue at once. When the generator falls further
    /// behind, the oldest overdue sends are skipped (and reported) instead of queued.
    #[arg(long, default_value_t = 10_000)]
    pub max_backlog: u64,

    /// Open loop: a send is counted late when it starts this much after its intended time.
    #[arg(long, default_value_t = 1.0)]
    pub late_ms: f64,

    /// Measured duration in seconds (after the warm-up). Ctrl-C ends the run early; it still
    /// drains, cleans up and reports.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,

    /// Seconds of load before measuring; they are left out of every figure.
    #[arg(long, default_value_t = 0)]
    pub warmup_secs: u64,

    /// Per-request timeout in milliseconds; a request that takes longer counts as a transport
    /// error (`transport:timeout`).
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,

    /// Consumers reading the stream while producers write: `getrecords` (one polling task per
    /// shard), `subscribe` (enhanced fan-out: SubscribeToShard over HTTP/2) or `none`.
    #[arg(long, value_enum, default_value_t = Consumers::None)]
    pub consumers: Consumers,

    /// GetRecords: pause after an empty response, in milliseconds (no pause after records).
    #[arg(long, default_value_t = 0)]
    pub poll_wait_ms: u64,

    /// GetRecords: most records per call (Limit, 1..=10000).
    #[arg(long, default_value_t = 10_000)]
    pub get_limit: u32,

    /// SubscribeToShard: the stream consumer's name (registered at start, deregistered at the
    /// end). Default: kinesin-bench-<pid>.
    #[arg(long)]
    pub consumer_name: Option<String>,

    /// After producers stop, keep consuming up to this many seconds until every record written
    /// in the measured window has been read back.
    #[arg(long, default_value_t = 10)]
    pub drain_secs: u64,

    /// Write the full report as one JSON document to this path; `-` writes it to stdout (the
    /// human summary then goes to stderr).
    #[arg(long)]
    pub json: Option<String>,

    /// Seconds between progress lines on stderr (when stderr is a terminal the line is
    /// redrawn in place every second instead). 0 turns progress off.
    #[arg(long, default_value_t = 1)]
    pub progress_secs: u64,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sign {
    Auto,
    Always,
    Never,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Consumers {
    None,
    Getrecords,
    Subscribe,
}

impl Args {
    /// Checks the combinations clap cannot.
    pub fn validate(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.connections > 0, "--connections must be at least 1");
        anyhow::ensure!(
            self.batch <= 500,
            "--batch is at most 500 (PutRecords' limit)"
        );
        anyhow::ensure!(self.record_size > 0, "--record-size must be at least 1");
        anyhow::ensure!(self.bodies > 0, "--bodies must be at least 1");
        anyhow::ensure!(self.seconds > 0, "--seconds must be at least 1");
        anyhow::ensure!(
            (1..=10_000).contains(&self.get_limit),
            "--get-limit is 1..=10000"
        );
        if let Some(rate) = self.rate {
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0,
                "--rate must be a positive number"
            );
        }
        if self.h2_connections == Some(0) {
            anyhow::bail!("--h2-connections must be at least 1");
        }
        if !self.no_tag && self.record_size < crate::workload::TAG_BYTES {
            eprintln!(
                "note: --record-size {} is below the {}-byte send-time tag: records are not tagged, \
                 so there is no put→get latency",
                self.record_size,
                crate::workload::TAG_BYTES
            );
            self.no_tag = true;
        }
        // "a, b" and "a/" mean what they look like.
        for endpoint in &mut self.endpoints {
            *endpoint = endpoint.trim().trim_end_matches('/').to_string();
        }
        anyhow::ensure!(
            !self.endpoints.is_empty() && self.endpoints.iter().all(|e| !e.is_empty()),
            "--endpoint has an empty URL (a stray comma?)"
        );
        Ok(())
    }

    pub fn create_stream(&self) -> bool {
        !self.no_create
    }

    /// HTTP/2 connections for the producers, to each endpoint.
    pub fn h2_connection_count(&self) -> usize {
        self.h2_connections.unwrap_or_else(|| {
            let slots_per_endpoint = self.connections.div_ceil(self.endpoints.len().max(1));
            slots_per_endpoint.div_ceil(64).clamp(1, 4)
        })
    }

    pub fn consumer_name(&self) -> String {
        self.consumer_name
            .clone()
            .unwrap_or_else(|| format!("kinesin-bench-{}", std::process::id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(flags: &[&str]) -> anyhow::Result<Args> {
        let mut args = Args::try_parse_from([&["kinesin-bench"][..], flags].concat())?;
        args.validate()?;
        Ok(args)
    }

    #[test]
    fn one_endpoint_by_default() {
        assert_eq!(parse(&[]).unwrap().endpoints, ["http://127.0.0.1:4567"]);
        assert_eq!(
            parse(&["--endpoint", "https://kinesis.eu-west-1.amazonaws.com/"])
                .unwrap()
                .endpoints,
            ["https://kinesis.eu-west-1.amazonaws.com"]
        );
    }

    #[test]
    fn endpoints_repeat_and_split_on_commas_in_order() {
        let args = parse(&[
            "--endpoint",
            "http://10.0.0.1:4567,http://10.0.0.2:4567/",
            "--endpoint",
            " http://10.0.0.3:4567 ",
        ])
        .unwrap();
        assert_eq!(
            args.endpoints,
            [
                "http://10.0.0.1:4567",
                "http://10.0.0.2:4567",
                "http://10.0.0.3:4567"
            ]
        );
        let spaced = parse(&["--endpoint", "http://a:1, http://b:2"]).unwrap();
        assert_eq!(spaced.endpoints, ["http://a:1", "http://b:2"]);
    }

    #[test]
    fn an_empty_endpoint_is_refused() {
        assert!(parse(&["--endpoint", "http://a:1,"]).is_err());
        assert!(parse(&["--endpoint", "http://a:1,,http://b:2"]).is_err());
        assert!(parse(&["--endpoint", ""]).is_err());
    }

    #[test]
    fn default_h2_connections_count_each_endpoints_slots() {
        let one = parse(&["--connections", "256"]).unwrap();
        assert_eq!(one.h2_connection_count(), 4);
        // 256 slots over 3 endpoints: 86 each, two connections per endpoint.
        let three = parse(&[
            "--connections",
            "256",
            "--endpoint",
            "http://a:1,http://b:1,http://c:1",
        ])
        .unwrap();
        assert_eq!(three.h2_connection_count(), 2);
        let set = parse(&[
            "--h2-connections",
            "3",
            "--endpoint",
            "http://a:1,http://b:1",
        ])
        .unwrap();
        assert_eq!(set.h2_connection_count(), 3);
    }
}
