"""What the cluster benchmarks share: a client for a node, /metrics values, waiting, and
creating many shards in streams of at most so many (AWS lets 5 streams be CREATING at once)."""

import json
import sys
import threading
import time
import urllib.request

import boto3
from botocore.config import Config


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
    """Writes to its shards in turn, remembering each acknowledged write's time."""

    def __init__(self, endpoint, shards, stop):
        super().__init__(daemon=True)
        self.kinesis = client(endpoint, retries={"total_max_attempts": 1}, read_timeout=2, connect_timeout=1)
        self.shards = shards
        self.stop = stop
        self.acked = {key: [] for key in shards}  # (stream, shard) -> [monotonic times]

    def run(self):
        while not self.stop.is_set():
            for (stream, shard), hash_key in self.shards.items():
                try:
                    self.kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="p",
                                            ExplicitHashKey=hash_key)
                    self.acked[(stream, shard)].append(time.monotonic())
                except Exception:  # unavailable while the shard elects: the point of the run
                    pass


def start_probers(shards, endpoints, count, stop):
    """`count` started Probers sharing `shards` (from open_shards) round robin, each talking to
    one of `endpoints` in turn."""
    probers = [
        Prober(endpoints[i % len(endpoints)], {(s[0], s[1]): s[2] for s in shards[i::count]}, stop)
        for i in range(count)
    ]
    for p in probers:
        p.start()
    return probers
