#!/usr/bin/env python3
"""Resharding and drain timings under load: starts a cluster on loopback (4 nodes, replication
factor 3), keeps writers putting records through every node, and measures

- split and merge: from the request to the first record acknowledged by a child shard;
- the longest write stall a writer saw during them (its slowest PutRecord), and its errors;
- a drain of the node holding --drain-shards shard replicas: `kinesin ctl node drain` until done.

    python3 benches/reshard.py --bin $CARGO_TARGET_DIR/release/kinesin --drain-shards 100

Prints one JSON object with the figures. Needs boto3 (~/.cache/kinesin-venv/bin/python has it).
"""

import argparse
import json
import subprocess
import sys
import threading
import time

import boto3
from botocore.config import Config

from benchlib import add_cluster_args, local_cluster, wait

MAX_HASH_KEY = 2**128 - 1


def client(endpoint, retries=1):
    return boto3.client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"max_attempts": retries, "mode": "standard"},
                      connect_timeout=5, read_timeout=30),
    )


def active(kinesis, name):
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    return summary["StreamStatus"] == "ACTIVE"


class Writer(threading.Thread):
    """PutRecord in a loop through one node; keeps the slowest call and the errors."""

    def __init__(self, endpoint, stream, tag):
        super().__init__(daemon=True)
        self.kinesis = client(endpoint)
        self.stream, self.tag = stream, tag
        self.stop = threading.Event()
        self.acked = 0
        self.errors = []
        self.slowest = 0.0

    def reset(self):
        self.slowest, self.errors = 0.0, []

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            started = time.monotonic()
            try:
                self.kinesis.put_record(StreamName=self.stream, Data=f"{self.tag}-{i}".encode(),
                                        PartitionKey=f"k{i % 64}")
                self.acked += 1
            except Exception as e:  # noqa: BLE001 - every failure is a figure here
                self.errors.append(f"{type(e).__name__}: {str(e)[:300]}")
            self.slowest = max(self.slowest, time.monotonic() - started)


def until_child_acknowledges(kinesis, stream, children, hash_key):
    """Seconds until a record with `hash_key` is acknowledged by one of `children`."""
    while True:
        out = kinesis.put_record(StreamName=stream, Data=b"probe", PartitionKey="p",
                                 ExplicitHashKey=str(hash_key))
        if out["ShardId"] in children:
            return
        time.sleep(0.005)


def timed_reshard(kinesis, writers, stream, request, children, hash_key):
    for w in writers:
        w.reset()
    started = time.monotonic()
    request()
    until_child_acknowledges(kinesis, stream, children, hash_key)
    took = time.monotonic() - started
    wait("ACTIVE", lambda: active(kinesis, stream))
    # The stall of a write in flight at the switch ends after the child took the probe.
    time.sleep(0.5)
    return {
        "seconds_to_children_accepting_writes": round(took, 3),
        "longest_write_stall_seconds": round(max(w.slowest for w in writers), 3),
        "write_errors": sum(len(w.errors) for w in writers),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_args(parser, bin_help="the kinesin binary")
    parser.add_argument("--drain-shards", type=int, default=100,
                        help="shard replicas the drained node holds (0: no drain)")
    args = parser.parse_args()

    nodes = 4
    # Each of 4 nodes holds 3/4 of the shards at replication factor 3.
    drain_stream_shards = (args.drain_shards * 4 + 2) // 3
    figures = {"binary": args.bin, "nodes": nodes, "replication_factor": 3}
    writers = []
    with local_cluster(args, nodes, "kinesin-reshard-", ["--shard-limit", str(drain_stream_shards + 50)]) as cluster:
        try:
            kinesis = client(cluster.endpoint(1), retries=10)
            kinesis.create_stream(StreamName="load", ShardCount=2)
            wait("load ACTIVE", lambda: active(kinesis, "load"))
            writers = [Writer(cluster.endpoint(n), "load", f"w{n}") for n in cluster.nodes()]
            for w in writers:
                w.start()
            wait("writes", lambda: all(w.acked > 20 for w in writers))

            middle = MAX_HASH_KEY // 4
            figures["split"] = timed_reshard(
                kinesis, writers, "load",
                lambda: kinesis.split_shard(StreamName="load", ShardToSplit="shardId-000000000000",
                                            NewStartingHashKey=str(middle)),
                {"shardId-000000000002", "shardId-000000000003"}, 10)
            figures["merge"] = timed_reshard(
                kinesis, writers, "load",
                lambda: kinesis.merge_shards(StreamName="load", ShardToMerge="shardId-000000000002",
                                             AdjacentShardToMerge="shardId-000000000003"),
                {"shardId-000000000004"}, 10)

            if args.drain_shards:
                kinesis.create_stream(StreamName="many", ShardCount=drain_stream_shards)
                wait("many ACTIVE", lambda: active(kinesis, "many"), timeout=600)
                for w in writers:
                    w.reset()
                started = time.monotonic()
                drained = subprocess.run(
                    [args.bin, "ctl", "--endpoint", cluster.endpoint(1), "node", "drain", "4"],
                    capture_output=True, text=True, timeout=1800)
                took = time.monotonic() - started
                if drained.returncode != 0:
                    sys.exit(f"drain failed: {drained.stderr}")
                lines = drained.stdout.strip().splitlines()
                figures["drain"] = {
                    "replicas_moved": int(lines[0].split(": ")[1].split()[0]) if lines else None,
                    "seconds": round(took, 1),
                    "longest_write_stall_seconds": round(max(w.slowest for w in writers), 3),
                    "write_errors": sum(len(w.errors) for w in writers),
                    "errors": [e for w in writers for e in w.errors][:5],
                    "progress": lines,
                }
        finally:
            for w in writers:
                w.stop.set()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
