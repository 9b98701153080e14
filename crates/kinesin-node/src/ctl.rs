//! `kinesin ctl`: reads a running cluster's state from any node's HTTP admin API (`/admin/v1/…`)
//! and prints it as aligned tables, or as the node's raw JSON with `--json`.
//!
//! The admin API is plain HTTP on the node's `--listen` address, so the client here is a minimal
//! HTTP/1.1 GET over a TCP connection (`Connection: close`, read to the end) rather than an HTTP
//! client stack. Rendering is pure (JSON in, text out) and unit-tested below. Requests are
//! signed (SigV4) when AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set ([`sign`]).

mod sign;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Larger answers are refused rather than buffered without bound.
const MAX_RESPONSE_BYTES: u64 = 64 << 20;

/// Arguments of `kinesin ctl`.
#[derive(Args, Debug)]
pub struct CtlArgs {
    /// Base URL of any node's API listener (its --listen address). Plain http:// only.
    #[arg(
        long,
        env = "KINESIN_ENDPOINT",
        default_value = "http://127.0.0.1:4567",
        value_name = "URL",
        global = true
    )]
    pub endpoint: String,

    /// Print the JSON the node answered, unchanged, instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: CtlCommand,
}

/// What `kinesin ctl` shows.
#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// Show the nodes and the controller leader (GET /admin/v1/cluster).
    ///
    /// As the answering node sees them: per node its cluster address, its state and last
    /// heartbeat (where the node reports them), whether it leads the controller, and how many
    /// shard replicas it hosts.
    Cluster,
    /// Show a stream's status and its shards (GET /admin/v1/streams/STREAM/shards).
    ///
    /// Per shard: state, replicas, Raft leader, hash key range and parent shards. A node knows
    /// the leader only of the shards it hosts a replica of.
    Shards(ShardsArgs),
    /// Change the cluster's membership: drain a node, or remove a drained one.
    #[command(subcommand)]
    Node(NodeCommand),
}

/// `kinesin ctl node …`
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Move every shard replica and leadership off node N, showing progress until it holds none.
    ///
    /// The node takes no new replicas from then on. Each replica moves as Raft does it: the new
    /// node copies the shard as a learner, then the group's membership changes; writes continue
    /// throughout. Interrupting the command does not stop the drain.
    Drain {
        /// The node's id.
        node: u64,
        /// Give up waiting after this many seconds (the drain goes on).
        #[arg(long, default_value_t = 3600, value_name = "SECS")]
        timeout: u64,
    },
    /// Forget node N, once drained (it must hold no replicas). Then stop its process.
    Remove {
        /// The node's id.
        node: u64,
    },
}

/// Arguments of `kinesin ctl shards`.
#[derive(Args, Debug)]
pub struct ShardsArgs {
    /// Name of the stream.
    pub stream: String,

    /// Account the stream belongs to [default: the node's --account-id].
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,

    /// Region the stream lives in [default: the node's --default-region].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

/// Runs `kinesin ctl`: prints the view on stdout, or a one-line error on stderr and fails.
pub async fn run(args: CtlArgs) -> ExitCode {
    match execute(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kinesin ctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

type Renderer = fn(&Value) -> anyhow::Result<String>;

async fn execute(args: &CtlArgs) -> anyhow::Result<()> {
    let endpoint = Endpoint::parse(&args.endpoint)?;
    let (path, render): (String, Renderer) = match &args.command {
        CtlCommand::Cluster => ("/admin/v1/cluster".to_owned(), render_cluster),
        CtlCommand::Shards(shards) => (shards_path(shards), render_shards),
        CtlCommand::Node(NodeCommand::Drain { node, timeout }) => {
            return drain(&endpoint, *node, Duration::from_secs(*timeout)).await
        }
        CtlCommand::Node(NodeCommand::Remove { node }) => {
            change(
                &endpoint,
                "DELETE",
                &format!("/admin/v1/nodes/{node}"),
                None,
            )
            .await?;
            println!("node {node} removed from the cluster; its process can be stopped");
            return Ok(());
        }
    };
    let response = endpoint.get(&path).await?;
    let json: Option<Value> = serde_json::from_slice(&response.body).ok();

    if args.json && json.is_some() {
        let mut raw = response.body.clone();
        if !raw.ends_with(b"\n") {
            raw.push(b'\n');
        }
        write_stdout(&raw)?;
    }
    if !(200..300).contains(&response.status) {
        return Err(refusal(&endpoint, "GET", &path, &response, json.as_ref()));
    }
    let Some(json) = json else {
        bail!(
            "{endpoint} answered GET {path} with something that is not JSON (is it a kinesin node?){}",
            snippet(&response.body)
        );
    };
    if !args.json {
        let text = render(&json).with_context(|| format!("unexpected answer to GET {path}"))?;
        write_stdout(text.as_bytes())?;
    }
    Ok(())
}

/// The error a node answered with: its `error` message, or the status and the start of the body.
fn refusal(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    response: &HttpResponse,
    json: Option<&Value>,
) -> anyhow::Error {
    match json.and_then(|j| j.get("error")).and_then(Value::as_str) {
        Some(message) => anyhow!("{message}"),
        None => anyhow!(
            "{endpoint} answered {method} {path} with HTTP {}{}",
            response.status,
            snippet(&response.body)
        ),
    }
}

/// Sends a membership change and returns the node's answer, or its error as the failure.
async fn change(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let response = endpoint.request(method, path, body).await?;
    let json: Option<Value> = serde_json::from_slice(&response.body).ok();
    if !(200..300).contains(&response.status) {
        return Err(refusal(endpoint, method, path, &response, json.as_ref()));
    }
    json.ok_or_else(|| {
        anyhow!("{endpoint} answered {method} {path} with something that is not JSON")
    })
}

/// How often `ctl node drain` looks at the progress.
const DRAIN_POLL: Duration = Duration::from_millis(500);

/// Starts draining `node` and shows how many replicas it still holds until none.
async fn drain(endpoint: &Endpoint, node: u64, timeout: Duration) -> anyhow::Result<()> {
    let path = format!("/admin/v1/nodes/{node}/drain");
    let answer = change(endpoint, "POST", &path, None).await?;
    let total = answer.get("replicas").and_then(Value::as_u64).unwrap_or(0);
    let at_once = match answer.get("moves_at_once").and_then(Value::as_u64) {
        Some(0) | None => String::new(),
        Some(n) => format!(", at most {n} at a time"),
    };
    println!("draining node {node}: {total} shard replicas to move{at_once}");
    let started = tokio::time::Instant::now();
    let mut shown = (total, 0);
    loop {
        let cluster = endpoint.get("/admin/v1/cluster").await?;
        let json: Value = serde_json::from_slice(&cluster.body)
            .with_context(|| format!("{endpoint} answered GET /admin/v1/cluster with no JSON"))?;
        let listed = json
            .get("nodes")
            .and_then(Value::as_array)
            .and_then(|nodes| {
                nodes
                    .iter()
                    .find(|n| n.get("id").and_then(Value::as_u64) == Some(node))
            })
            .ok_or_else(|| anyhow!("node {node} is no longer listed by {endpoint}"))?;
        let count = |key| listed.get(key).and_then(Value::as_u64);
        let left = count("replicas")
            .ok_or_else(|| anyhow!("{endpoint} lists node {node} without its replicas"))?;
        let moving = count("replicas_moving_off").unwrap_or(0);
        if (left, moving) != shown {
            let moved = total.saturating_sub(left);
            println!(
                "node {node}: {moved}/{total} moved, {moving} moving, {left} left ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            shown = (left, moving);
        }
        if left == 0 {
            println!(
                "node {node} drained in {:.1} s; remove it with `kinesin ctl node remove {node}`",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if started.elapsed() >= timeout {
            bail!(
                "node {node} still holds {left} replicas after {} s; the drain goes on",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// `kinesin server --join`: asks the node at `url` to add this node to its cluster. Retried
/// until `timeout`, as the cluster may be electing.
pub async fn join(
    url: &str,
    node: u64,
    cluster_addr: &str,
    life: Option<u64>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let endpoint = Endpoint::parse(url)?;
    let body = serde_json::json!({"node_id": node, "cluster_addr": cluster_addr, "life": life});
    let started = tokio::time::Instant::now();
    loop {
        match change(&endpoint, "POST", "/admin/v1/nodes", Some(&body)).await {
            Ok(_) => return Ok(()),
            // A member already, or refused for its certificates: asking again changes nothing.
            Err(e)
                if started.elapsed() < timeout
                    && !e.to_string().contains("already a member")
                    && !e.to_string().contains(kinesin_gateway::JOIN_REFUSED) =>
            {
                tracing::warn!(error = %e, %endpoint, "could not join yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.context(format!("joining the cluster through {endpoint}"))),
        }
    }
}

/// Writes to stdout; a closed pipe (`kinesin ctl … | head`) is not an error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}

/// ": <the start of the body>" for error messages, on one line; empty for an empty body.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return String::new();
    }
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!(": {}…", &line[..cut]),
        None => format!(": {line}"),
    }
}

fn shards_path(args: &ShardsArgs) -> String {
    let mut path = format!(
        "/admin/v1/streams/{}/shards",
        encode_component(&args.stream)
    );
    let query: Vec<String> = [("account", &args.account), ("region", &args.region)]
        .into_iter()
        .filter_map(|(key, value)| {
            value
                .as_ref()
                .map(|v| format!("{key}={}", encode_component(v)))
        })
        .collect();
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    path
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// HTTP
// ------------------------------------------------------------------------------------------------

/// A parsed `http://host[:port][/prefix]` endpoint.
#[derive(Debug, PartialEq, Eq)]
struct Endpoint {
    /// For connecting: a name or an IP address (IPv6 without brackets).
    host: String,
    port: u16,
    /// `host:port` as it goes into the Host header and messages (IPv6 in brackets).
    authority: String,
    /// Prefix of every request path, without a trailing slash ("" for none).
    base_path: String,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.base_path)
    }
}

impl Endpoint {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &url["http://".len()..]
        } else if lower.starts_with("https://") {
            bail!(
                "endpoint {url}: https is not supported; nodes serve the admin API over plain \
                 HTTP on their --listen address (use http://HOST:PORT)"
            );
        } else if let Some((scheme, _)) = url.split_once("://") {
            bail!("endpoint {url}: unsupported scheme {scheme:?}; use http://HOST:PORT");
        } else {
            url // a bare host:port
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            bail!("endpoint {url}: a query or fragment has no place in an endpoint; use http://HOST:PORT");
        }
        if authority.contains('@') {
            bail!("endpoint {url}: credentials in the URL are not supported");
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| anyhow!("endpoint {url}: unclosed '[' in the address"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => bail!("endpoint {url}: expected ':PORT' after ']'"),
                },
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            bail!("endpoint {url}: no host; use http://HOST:PORT");
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| anyhow!("endpoint {url}: bad port {p:?}"))?,
        };
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            authority,
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// `GET base_path + path`, the whole answer read and decoded.
    async fn get(&self, path: &str) -> anyhow::Result<HttpResponse> {
        self.request("GET", path, None).await
    }

    /// `method base_path + path` with an optional JSON body, the whole answer read and decoded.
    async fn request(
        &self,
        method: &str,
        path: &str,
        json: Option<&Value>,
    ) -> anyhow::Result<HttpResponse> {
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                bail!("cannot connect to {self}: {e} (is a kinesin node listening there?)")
            }
            Err(_) => bail!(
                "cannot connect to {self}: no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
        };
        let body = json.map(Value::to_string).unwrap_or_default();
        let mut content = if json.is_some() {
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            )
        } else {
            String::new()
        };
        if let Some(signer) = sign::Signer::from_env() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            let target = format!("{}{path}", self.base_path);
            let content_type = json.map(|_| "application/json");
            for (name, value) in signer.headers(
                method,
                &self.authority,
                &target,
                content_type,
                body.as_bytes(),
                now,
            ) {
                content.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        let request = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\
             User-Agent: kinesin-ctl/{}\r\n{content}Connection: close\r\n\r\n{body}",
            self.base_path,
            self.authority,
            env!("CARGO_PKG_VERSION"),
        );
        let exchange = async {
            stream.write_all(request.as_bytes()).await?;
            let mut raw = Vec::new();
            (&mut stream)
                .take(MAX_RESPONSE_BYTES + 1)
                .read_to_end(&mut raw)
                .await?;
            Ok::<_, std::io::Error>(raw)
        };
        let raw = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(raw)) => raw,
            Ok(Err(e)) => bail!("{method} {path} from {self} failed: {e}"),
            Err(_) => bail!(
                "{method} {path} from {self}: no complete answer within {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        };
        if raw.len() as u64 > MAX_RESPONSE_BYTES {
            bail!(
                "{method} {path} from {self}: the answer is larger than {MAX_RESPONSE_BYTES} bytes"
            );
        }
        parse_response(&raw)
            .with_context(|| format!("{method} {path} from {self}: not a valid HTTP answer"))
    }
}

#[derive(Debug, PartialEq, Eq)]
struct HttpResponse {
    status: u16,
    body: Vec<u8>,
}

/// Parses a complete HTTP/1.x response (the connection was read to its end).
fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    if raw.is_empty() {
        bail!("the connection closed without an answer");
    }
    let head_end = find(raw, b"\r\n\r\n").ok_or_else(|| anyhow!("no end of the headers"))?;
    let head =
        std::str::from_utf8(&raw[..head_end]).map_err(|_| anyhow!("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let status = match status {
        Some(status) if version.starts_with("HTTP/1.") => status,
        _ => bail!("bad status line {status_line:?}"),
    };
    let mut chunked = false;
    let mut content_length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            bail!("bad header line {line:?}");
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse::<usize>()
                .map_err(|_| anyhow!("bad Content-Length {value:?}"))?;
            content_length = Some(length);
        }
    }
    let rest = &raw[head_end + 4..];
    let body = if chunked {
        decode_chunked(rest)?
    } else if let Some(length) = content_length {
        match rest.get(..length) {
            Some(body) => body.to_vec(),
            None => bail!("body truncated: {} of {length} bytes", rest.len()),
        }
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse { status, body })
}

/// Decodes a `Transfer-Encoding: chunked` body (trailers are ignored).
fn decode_chunked(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or_else(|| anyhow!("chunked body truncated"))?;
        let size_line = std::str::from_utf8(&data[..line_end]).unwrap_or("");
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| anyhow!("bad chunk size {size_line:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk_end = size
            .checked_add(2)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| anyhow!("chunked body truncated"))?;
        if &data[size..chunk_end] != b"\r\n" {
            bail!("chunk of {size} bytes not followed by CRLF");
        }
        body.extend_from_slice(&data[..size]);
        data = &data[chunk_end..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ------------------------------------------------------------------------------------------------
// Rendering
// ------------------------------------------------------------------------------------------------

/// Lays rows out in left-aligned columns two spaces apart (widths counted in characters), one
/// line each, without trailing spaces. Rows may be ragged.
fn align(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A table: a header line, then the rows, aligned.
fn render_table(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut all = Vec::with_capacity(rows.len() + 1);
    all.push(headers.to_vec());
    all.extend(rows.iter().cloned());
    align(&all)
}

/// One cell: "-" for absent or null, yes/no for booleans, lists joined with commas.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(object @ Value::Object(_)) => object.to_string(),
    }
}

/// A column of a table of JSON objects.
struct Column {
    header: &'static str,
    /// The fields this column shows (so they are not shown again as extra columns).
    keys: &'static [&'static str],
    /// Shown only if some object has one of `keys` (fields that older nodes do not send).
    optional: bool,
    cell: fn(&Map<String, Value>) -> String,
}

/// A table of JSON objects: the known columns, then one per unknown field in order of appearance.
fn render_objects(objects: &[&Map<String, Value>], columns: &[Column]) -> String {
    let present = |key: &str| objects.iter().any(|o| o.contains_key(key));
    let shown: Vec<&Column> = columns
        .iter()
        .filter(|c| !c.optional || c.keys.iter().any(|k| present(k)))
        .collect();
    let mut extras: Vec<&str> = Vec::new();
    for object in objects {
        for key in object.keys() {
            let known = columns.iter().any(|c| c.keys.contains(&key.as_str()));
            if !known && !extras.contains(&key.as_str()) {
                extras.push(key);
            }
        }
    }
    let mut headers: Vec<String> = shown.iter().map(|c| c.header.to_owned()).collect();
    headers.extend(extras.iter().map(|k| k.to_uppercase().replace('_', " ")));
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|object| {
            let mut row: Vec<String> = shown.iter().map(|c| (c.cell)(object)).collect();
            row.extend(extras.iter().map(|k| cell(object.get(*k))));
            row
        })
        .collect();
    render_table(&headers, &rows)
}

/// `label:  value` lines for the top-level fields, known ones first under their labels, then any
/// other scalar field.
fn render_fields(top: &Map<String, Value>, labels: &[(&str, &str)], skip: &[&str]) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (key, label) in labels {
        if let Some(value) = top.get(*key) {
            rows.push(vec![format!("{label}:"), cell(Some(value))]);
        }
    }
    for (key, value) in top {
        let known = labels.iter().any(|(k, _)| k == key) || skip.contains(&key.as_str());
        if !known && !value.is_array() && !value.is_object() {
            rows.push(vec![
                format!("{}:", key.replace('_', " ")),
                cell(Some(value)),
            ]);
        }
    }
    align(&rows)
}

fn objects<'a>(
    top: &'a Map<String, Value>,
    key: &str,
) -> anyhow::Result<Vec<&'a Map<String, Value>>> {
    let list = top
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("no {key:?} list"))?;
    list.iter()
        .map(|item| {
            item.as_object()
                .ok_or_else(|| anyhow!("an entry of {key:?} is not an object"))
        })
        .collect()
}

const NODE_COLUMNS: &[Column] = &[
    Column {
        header: "ID",
        keys: &["id"],
        optional: false,
        cell: |o| cell(o.get("id")),
    },
    Column {
        header: "CLUSTER ADDRESS",
        keys: &["cluster_addr"],
        optional: false,
        cell: |o| cell(o.get("cluster_addr")),
    },
    Column {
        header: "STATE",
        keys: &["state"],
        optional: true,
        cell: |o| cell(o.get("state")),
    },
    Column {
        header: "LAST HEARTBEAT",
        keys: &["last_heartbeat_ms_ago"],
        optional: true,
        cell: |o| match o.get("last_heartbeat_ms_ago") {
            Some(Value::Number(ms)) => format!("{ms} ms ago"),
            other => cell(other),
        },
    },
    Column {
        header: "CONTROLLER LEADER",
        keys: &["controller_leader"],
        optional: false,
        cell: |o| cell(o.get("controller_leader")),
    },
    Column {
        header: "REPLICAS",
        keys: &["replicas"],
        optional: false,
        cell: |o| cell(o.get("replicas")),
    },
];

/// `GET /admin/v1/cluster` as text.
fn render_cluster(json: &Value) -> anyhow::Result<String> {
    let top = json
        .as_object()
        .ok_or_else(|| anyhow!("not a JSON object"))?;
    let nodes = objects(top, "nodes")?;
    let mut fields = top.clone();
    if fields.get("controller_leader").is_some_and(Value::is_null) {
        fields.insert("controller_leader".into(), "none elected".into());
    }
    let mut out = render_fields(
        &fields,
        &[
            ("node_id", "answering node"),
            ("controller_leader", "controller leader"),
            ("streams", "streams"),
        ],
        &["nodes"],
    );
    out.push('\n');
    if nodes.is_empty() {
        out.push_str("(no nodes)\n");
    } else {
        out.push_str(&render_objects(&nodes, NODE_COLUMNS));
    }
    Ok(out)
}

const SHARD_COLUMNS: &[Column] = &[
    Column {
        header: "SHARD ID",
        keys: &["shard_id"],
        optional: false,
        cell: |o| cell(o.get("shard_id")),
    },
    Column {
        header: "STATE",
        keys: &["state"],
        optional: false,
        cell: |o| cell(o.get("state")),
    },
    Column {
        header: "REPLICAS",
        keys: &["replicas"],
        optional: false,
        cell: |o| cell(o.get("replicas")),
    },
    Column {
        header: "LEADER",
        keys: &["leader"],
        optional: false,
        cell: |o| cell(o.get("leader")),
    },
    Column {
        header: "GROUP",
        keys: &["group"],
        optional: true,
        cell: |o| cell(o.get("group")),
    },
    Column {
        header: "STARTING HASH KEY",
        keys: &["starting_hash_key"],
        optional: false,
        cell: |o| cell(o.get("starting_hash_key")),
    },
    Column {
        header: "ENDING HASH KEY",
        keys: &["ending_hash_key"],
        optional: false,
        cell: |o| cell(o.get("ending_hash_key")),
    },
    Column {
        header: "PARENTS",
        keys: &["parent_shard_id", "adjacent_parent_shard_id"],
        optional: false,
        cell: |o| {
            let parents: Vec<&str> = ["parent_shard_id", "adjacent_parent_shard_id"]
                .iter()
                .filter_map(|k| o.get(*k).and_then(Value::as_str))
                .collect();
            if parents.is_empty() {
                "-".to_owned()
            } else {
                parents.join(",")
            }
        },
    },
];

/// `GET /admin/v1/streams/{name}/shards` as text.
fn render_shards(json: &Value) -> anyhow::Result<String> {
    let top = json
        .as_object()
        .ok_or_else(|| anyhow!("not a JSON object"))?;
    let shards = objects(top, "shards")?;
    let mut out = render_fields(
        top,
        &[("stream", "stream"), ("status", "status"), ("arn", "arn")],
        &["shards"],
    );
    out.push('\n');
    if shards.is_empty() {
        out.push_str("(no shards)\n");
        return Ok(out);
    }
    out.push_str(&render_objects(&shards, SHARD_COLUMNS));
    if shards
        .iter()
        .any(|s| s.get("leader").is_none_or(Value::is_null))
    {
        out.push_str(
            "\nLEADER \"-\": not known to the answering node (it hosts no replica of the shard, \
             or no leader is elected yet).\n",
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ctl_table_aligns_columns_and_trims_trailing_spaces() {
        let text = render_table(
            &strings(&["ID", "ADDRESS", "STATE"]),
            &[
                strings(&["1", "127.0.0.1:4667", "up"]),
                strings(&["12", "h:1", ""]),
            ],
        );
        assert_eq!(
            text,
            "ID  ADDRESS         STATE\n\
             1   127.0.0.1:4667  up\n\
             12  h:1\n"
        );
    }

    #[test]
    fn ctl_table_counts_characters_not_bytes_and_tolerates_ragged_rows() {
        let text = align(&[
            strings(&["é", "x"]),
            strings(&["ab", "y", "extra"]),
            strings(&["c"]),
        ]);
        assert_eq!(text, "é   x\nab  y  extra\nc\n");
        assert_eq!(render_table(&strings(&["A", "B"]), &[]), "A  B\n");
    }

    #[test]
    fn ctl_cluster_today_without_state_columns() {
        let json = json!({
            "node_id": 2, "controller_leader": 1, "streams": 3,
            "nodes": [
                {"id": 1, "cluster_addr": "127.0.0.1:4667", "controller_leader": true, "replicas": 6},
                {"id": 2, "cluster_addr": "127.0.0.1:4668", "controller_leader": false, "replicas": 6},
            ],
        });
        let text = render_cluster(&json).unwrap();
        assert_eq!(
            text,
            "answering node:     2\n\
             controller leader:  1\n\
             streams:            3\n\
             \n\
             ID  CLUSTER ADDRESS  CONTROLLER LEADER  REPLICAS\n\
             1   127.0.0.1:4667   yes                6\n\
             2   127.0.0.1:4668   no                 6\n"
        );
    }

    #[test]
    fn ctl_cluster_shows_state_heartbeat_and_unknown_fields_when_present() {
        let json = json!({
            "node_id": 1, "controller_leader": null,
            "nodes": [
                {"id": 1, "cluster_addr": "a:1", "state": "up", "last_heartbeat_ms_ago": null,
                 "controller_leader": false, "replicas": 0, "zone": "z1"},
                {"id": 2, "cluster_addr": "b:1", "state": "down", "last_heartbeat_ms_ago": 15200,
                 "controller_leader": false, "replicas": 4},
            ],
        });
        let text = render_cluster(&json).unwrap();
        assert!(
            text.contains("controller leader:  none elected\n"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[3..],
            [
                "ID  CLUSTER ADDRESS  STATE  LAST HEARTBEAT  CONTROLLER LEADER  REPLICAS  ZONE",
                "1   a:1              up     -               no                 0         z1",
                "2   b:1              down   15200 ms ago    no                 4         -",
            ]
        );
    }

    #[test]
    fn ctl_shards_table_has_ranges_parents_and_a_note_for_unknown_leaders() {
        let json = json!({
            "stream": "s", "arn": "arn:aws:kinesis:us-east-1:000000000000:stream/s", "status": "ACTIVE",
            "shards": [
                {"shard_id": "shardId-000000000000", "group": 7, "state": "CLOSED", "replicas": [1, 2, 3],
                 "leader": 2, "starting_hash_key": "0",
                 "ending_hash_key": "340282366920938463463374607431768211455",
                 "parent_shard_id": null, "adjacent_parent_shard_id": null},
                {"shard_id": "shardId-000000000001", "group": 8, "state": "OPEN", "replicas": [3],
                 "leader": null, "starting_hash_key": "0", "ending_hash_key": "9",
                 "parent_shard_id": "shardId-000000000000",
                 "adjacent_parent_shard_id": "shardId-000000000002"},
            ],
        });
        let text = render_shards(&json).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "stream:  s");
        assert_eq!(lines[1], "status:  ACTIVE");
        assert_eq!(
            lines[2],
            "arn:     arn:aws:kinesis:us-east-1:000000000000:stream/s"
        );
        assert_eq!(
            lines[4..7],
            [
                "SHARD ID              STATE   REPLICAS  LEADER  GROUP  STARTING HASH KEY  ENDING HASH KEY                          PARENTS",
                "shardId-000000000000  CLOSED  1,2,3     2       7      0                  340282366920938463463374607431768211455  -",
                "shardId-000000000001  OPEN    3         -       8      0                  9                                        shardId-000000000000,shardId-000000000002",
            ]
        );
        assert!(text.contains("LEADER \"-\": not known"), "{text}");
    }

    #[test]
    fn ctl_rejects_answers_of_the_wrong_shape() {
        assert!(render_cluster(&json!({"node_id": 1})).is_err());
        assert!(render_shards(&json!([1, 2])).is_err());
        assert!(render_shards(&json!({"shards": [1]})).is_err());
        let empty = render_shards(&json!({"stream": "s", "shards": []})).unwrap();
        assert!(empty.ends_with("(no shards)\n"), "{empty}");
    }

    #[test]
    fn ctl_endpoint_parsing() {
        let e = Endpoint::parse("http://127.0.0.1:4567").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.base_path.as_str()),
            ("127.0.0.1", 4567, "")
        );
        assert_eq!(e.to_string(), "http://127.0.0.1:4567");
        let e = Endpoint::parse(" HTTP://node-2.internal:80/kinesin/ ").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.base_path.as_str()),
            ("node-2.internal", 80, "/kinesin")
        );
        let e = Endpoint::parse("http://[::1]:4567/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.authority.as_str()),
            ("::1", "[::1]:4567")
        );
        let e = Endpoint::parse("localhost:9").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("localhost", 9));
        assert_eq!(Endpoint::parse("http://h").unwrap().port, 80);

        let https = Endpoint::parse("https://h:443").unwrap_err().to_string();
        assert!(https.contains("https is not supported"), "{https}");
        for bad in [
            "ftp://h:1",
            "http://h:notaport",
            "http://h:70000",
            "http://:1",
            "http://[::1",
            "http://h:1/?x",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn ctl_shards_path_encodes_name_and_query() {
        let args = ShardsArgs {
            stream: "a b/c".into(),
            account: None,
            region: None,
        };
        assert_eq!(shards_path(&args), "/admin/v1/streams/a%20b%2Fc/shards");
        let args = ShardsArgs {
            stream: "s-1.x_y".into(),
            account: Some("123456789012".into()),
            region: Some("eu-west-1".into()),
        };
        assert_eq!(
            shards_path(&args),
            "/admin/v1/streams/s-1.x_y/shards?account=123456789012&region=eu-west-1"
        );
    }

    #[test]
    fn ctl_parses_content_length_and_chunked_responses() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}extra";
        assert_eq!(
            parse_response(raw).unwrap(),
            HttpResponse {
                status: 200,
                body: b"{}".to_vec()
            }
        );

        let raw = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(raw).unwrap(),
            HttpResponse {
                status: 404,
                body: b"{\"a\":1}".to_vec()
            }
        );

        let raw = b"HTTP/1.0 200 OK\r\n\r\nto the end";
        assert_eq!(parse_response(raw).unwrap().body, b"to the end");
    }

    #[test]
    fn ctl_rejects_broken_responses_without_panicking() {
        let broken: [&[u8]; 8] = [
            b"",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        ];
        for raw in broken {
            assert!(
                parse_response(raw).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn ctl_error_snippets_are_one_short_line() {
        assert_eq!(snippet(b""), "");
        assert_eq!(snippet(b"  not\n found "), ": not found");
        let long = "x".repeat(500);
        assert_eq!(snippet(long.as_bytes()).chars().count(), 2 + 200 + 1);
    }
}
