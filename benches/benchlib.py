"""What the cluster benchmarks share: their cluster on loopback (the --bin, --server-arg and --keep
flags, and a cluster started in a temporary directory and stopped after), a client for a node,
/metrics values, waiting, and creating many shards in streams of at most so many (AWS lets 5
streams be CREATING at once)."""

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config

# The cluster on loopback is the Jepsen harness's: one way to start and stop kinesin processes.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "jepsen"))
from kinesin_jepsen.local import LocalCluster  # noqa: E402


def add_cluster_args(parser, bin_help="the kinesin binary (a release build)", keep_help="keep the data directory",
                     server_arg_help="extra flag for every `kinesin server`", server_arg_metavar=None):
    """--bin, --keep and --server-arg (repeated) on `parser`: what local_cluster reads. The help
    texts are each script's own."""
    parser.add_argument("--bin", required=True, help=bin_help)
    parser.add_argument("--keep", action="store_true", help=keep_help)
    parser.add_argument("--server-arg", action="append", default=[], metavar=server_arg_metavar,
                        help=server_arg_help)


@contextlib.contextmanager
def local_cluster(args, nodes, prefix, extra_args=(), timeout=600):
    """A started LocalCluster of `nodes` args.bin servers, each with `extra_args` then every
    --server-arg, in a new temporary directory whose name begins with `prefix` (its .directory),
    healthy within `timeout` seconds. On leaving, the nodes are stopped and the directory removed,
    or with --keep kept and named on stderr."""
    base = tempfile.mkdtemp(prefix=prefix)
    cluster = LocalCluster(args.bin, nodes, base, extra_args=[*extra_args, *args.server_arg])
    try:
        cluster.start_all(timeout=timeout)
        yield cluster
    finally:
        cluster.stop_all()
        if args.keep:
            print(f"data and logs kept in {base}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(base, ignore_errors=True)


def client(endpoint, **config):
    options = dict(retries={"max_attempts": 10, "mode": "standard"})
    options.update(config)
    return boto3.client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x", config=Config(**options),
    )


def metric(endpoint, name):
    """The sum of every series of `name` on the node's /metrics (None if unreachable)."""
    try:
        body = urllib.request.urlopen(f"{endpoint}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    total = None
    for line in body.splitlines():
        # The name alone or with labels: not a longer name it begins (kinesin_raft_groups_quiet).
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def wait(what, condition, timeout=600):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.2)


def create_shards(kinesis, total, per_stream, prefix):
    """Creates `total` shards in streams of `per_stream`; returns the stream names once all are
    ACTIVE."""
    names = []
    remaining = total

    def status(name):
        return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]

    while remaining > 0:
        count = min(per_stream, remaining)
        name = f"{prefix}-{len(names)}"
        kinesis.create_stream(StreamName=name, ShardCount=count)
        names.append(name)
        remaining -= count
        wait("streams to become ACTIVE", lambda: sum(status(n) != "ACTIVE" for n in names) < 5)
    wait("every stream to become ACTIVE", lambda: all(status(n) == "ACTIVE" for n in names))
    return names


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def open_shards(endpoint, stream):
    """(stream, shard id, first hash key, leader as `endpoint`'s node sees it) of each open shard."""
    with urllib.request.urlopen(f"{endpoint}/admin/v1/streams/{stream}/shards", timeout=10) as r:
        view = json.loads(r.read())
    return [(stream, s["shard_id"], s["starting_hash_key"], s["leader"]) for s in view["shards"]
            if s["state"] == "OPEN"]


class Prober(threading.Thread):
    """Writes each of `shards` ({(stream, shard id): hash key}) every `every` seconds, each shard
    from its own coroutine on its own connection, so one shard's stalled write never delays
    another's probe, and a write held while its shard elects is timed by its acknowledgement:
    a shard's gap between acknowledged writes is its stall plus at most `every`. Raw HTTP/1.1 on
    asyncio: a thousand probes a second cost the machine little (boto3 threads cost a core)."""

    def __init__(self, shards, endpoints, stop, every=0.2, timeout=10.0):
        super().__init__(daemon=True)
        self.shards = list(shards.items())
        self.endpoints = [urllib.parse.urlsplit(e) for e in endpoints]
        self.stop = stop
        self.every = every
        self.timeout = timeout
        self.acked = {key: [] for key in shards}  # (stream, shard) -> [monotonic times]

    def run(self):
        asyncio.run(self._probe_all())

    async def _probe_all(self):
        await asyncio.gather(*(self._probe(key, hash_key, self.endpoints[i % len(self.endpoints)])
                               for i, (key, hash_key) in enumerate(self.shards)))

    async def _probe(self, key, hash_key, endpoint):
        body = json.dumps({"StreamName": key[0], "Data": "eA==", "PartitionKey": "p",
                           "ExplicitHashKey": hash_key}).encode()
        request = (f"POST / HTTP/1.1\r\nHost: {endpoint.netloc}\r\n"
                   "Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.PutRecord\r\n"
                   "Authorization: AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/kinesis/aws4_request, "
                   "SignedHeaders=host, Signature=0\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        loop = asyncio.get_running_loop()
        reader = writer = None
        while not self.stop.is_set():
            began = loop.time()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(endpoint.hostname, endpoint.port), 1)
                writer.write(request)
                status, keep_open = await asyncio.wait_for(_read_response(reader), self.timeout)
                if status == 200:
                    self.acked[key].append(time.monotonic())
                if not keep_open:
                    writer.close()
                    writer = None
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                if writer is not None:  # unavailable while the shard elects: the point of the run
                    writer.close()
                writer = None
            await asyncio.sleep(max(0.0, self.every - (loop.time() - began)))
        if writer is not None:
            writer.close()


async def _read_response(reader):
    """(status, whether the connection stays open) of one HTTP/1.1 response, its body read."""
    status = int((await reader.readline()).split(b" ", 2)[1])
    length, keep_open = 0, True
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            keep_open = False
    await reader.readexactly(length)
    return status, keep_open


def start_prober(shards, endpoints, stop, every=0.2):
    """A started Prober writing `shards` (from open_shards) through `endpoints` round robin until
    `stop` is set."""
    prober = Prober({(s[0], s[1]): s[2] for s in shards}, endpoints, stop, every)
    prober.start()
    return prober
