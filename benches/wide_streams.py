#!/usr/bin/env python3
"""The controller while thousands of groups start: what issue 16 tried as a new user would.
Starts a 3-node cluster on loopback and creates --streams streams of --shards shards each (1,000
by default: AWS's CreateStream allows up to 10,000 shards per call given the account limit),
one after the other, each through the next node (so most CreateStreams are forwarded to the
controller's leader), waiting for each to be ACTIVE before the next, while every node is asked
DescribeStreamSummary and ListStreams every 50 ms (a dashboard's pace).

Reports each CreateStream's time to ACTIVE, and every metadata call that failed (its error code)
and the latency of those that succeeded. The clients do not retry: a call that failed is a call
a user's SDK would have had to retry.

    python3 benches/wide_streams.py --bin $CARGO_TARGET_DIR/release/kinesin --streams 10 --shards 1000

Needs boto3 (the test venv has it: ~/.cache/kinesin-venv/bin/python).
"""

import argparse
import collections
import threading
import time

from botocore.exceptions import ClientError

from benchlib import add_cluster_args, client, local_cluster, percentile, wait


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_args(parser)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--shards", type=int, default=1000, help="shards per stream")
    parser.add_argument("--poll-every", type=float, default=0.05, help="seconds between one node's metadata calls")
    args = parser.parse_args()

    with local_cluster(args, 3, "kinesin-wide-", ["--shard-limit", str(args.streams * args.shards + 10)]) as cluster:
        endpoints = [cluster.endpoint(n) for n in cluster.nodes()]
        # No retries, as in the tests: every failure is counted.
        clients = [client(e, retries={"total_max_attempts": 1}, read_timeout=30) for e in endpoints]
        clients[0].create_stream(StreamName="small", ShardCount=1)
        wait("the small stream", lambda: status(clients[0], "small") == "ACTIVE")

        failures = collections.Counter()
        first_failures = []
        latencies = []
        stop = threading.Event()

        def keep_reading(kinesis):
            while not stop.is_set():
                for call in (lambda: kinesis.describe_stream_summary(StreamName="small"), kinesis.list_streams):
                    started = time.monotonic()
                    try:
                        call()
                        latencies.append(time.monotonic() - started)
                    except Exception as e:  # every failure is the finding
                        failures[error_code(e)] += 1
                        if len(first_failures) < 3:
                            first_failures.append(repr(e)[:300])
                stop.wait(args.poll_every)

        readers = [threading.Thread(target=keep_reading, args=(c,), daemon=True) for c in clients]
        for r in readers:
            r.start()
        started_all = time.monotonic()
        creations = []
        try:
            for i in range(args.streams):
                name = f"wide-{i}"
                through = clients[(i + 1) % len(clients)]
                started = time.monotonic()
                try:
                    through.create_stream(StreamName=name, ShardCount=args.shards)
                except Exception as e:
                    failures[f"CreateStream {error_code(e)}"] += 1
                    first_failures.append(repr(e)[:300])
                    print(f"{name}: CreateStream failed: {e}", flush=True)
                    continue
                wait(f"{name} to become ACTIVE", lambda: status(clients[0], name) == "ACTIVE", timeout=1800)
                took = time.monotonic() - started
                creations.append(took)
                print(f"{name}: {args.shards} shards ACTIVE after {took:.1f} s "
                      f"({sum(failures.values())} metadata calls failed so far)", flush=True)
        finally:
            stop.set()
            for r in readers:
                r.join()
        total = time.monotonic() - started_all
        calls = len(latencies) + sum(failures.values())
        print(f"{len(creations)} of {args.streams} streams of {args.shards} shards ACTIVE in {total:.0f} s "
              f"(each: p50 {percentile(creations, 50):.1f} s, max {max(creations, default=float('nan')):.1f} s)")
        print(f"metadata calls through the 3 nodes meanwhile: {calls:,}, failed: {sum(failures.values())}"
              f" {dict(failures) if failures else ''}")
        print(f"latency of those answered: p50 {percentile(latencies, 50) * 1000:.1f} ms, "
              f"p99 {percentile(latencies, 99) * 1000:.1f} ms, max {max(latencies, default=0) * 1000:.0f} ms")
        for f in first_failures:
            print(f"  e.g. {f}")


def status(kinesis, name):
    try:
        return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
    except ClientError:
        return None  # counted by the readers; the creation is judged by its outcome


def error_code(e):
    if isinstance(e, ClientError):
        return e.response.get("Error", {}).get("Code", "?")
    return type(e).__name__


if __name__ == "__main__":
    main()
