#!/usr/bin/env python3
"""What waking costs a write: starts a 3-node cluster on loopback, creates --shards shards
(replication factor 3) and lets every one go quiet, then, shard by shard, times a PutRecord to the
quiet shard and at once a second one to the same shard (awake now). Reports p50 / p90 / p99 of both
and how many shards were quiet when written. Each write goes through the node that leads the shard
(no forwarding hop) unless --through-any.

    python3 benches/quiet_write.py --bin $CARGO_TARGET_DIR/release/kinesin --shards 200

Needs boto3 (the test venv has it: ~/.cache/kinesin-venv/bin/python).
"""

import argparse
import json
import time
import urllib.request

from benchlib import add_cluster_args, client, create_shards, local_cluster, metric, open_shards, percentile, wait


def is_quiet(endpoint, stream, shard):
    with urllib.request.urlopen(f"{endpoint}/admin/v1/streams/{stream}/shards", timeout=10) as r:
        view = json.loads(r.read())
    return next(s["quiet"] for s in view["shards"] if s["shard_id"] == shard)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_args(parser)
    parser.add_argument("--shards", type=int, default=200)
    parser.add_argument("--per-stream", type=int, default=100)
    parser.add_argument("--through-any", action="store_true", help="write through node 1 whoever leads")
    args = parser.parse_args()

    with local_cluster(args, 3, "kinesin-quiet-write-", ["--shard-limit", str(args.shards + 10)]) as cluster:
        nodes = list(cluster.nodes())
        endpoints = {n: cluster.endpoint(n) for n in nodes}
        names = create_shards(client(endpoints[nodes[0]]), args.shards, args.per_stream, "quiet")
        replicas = 3 * args.shards
        wait("every replica to go quiet", lambda: sum(
            metric(endpoints[n], "kinesin_raft_groups_quiet") or 0 for n in nodes) >= replicas, timeout=300)
        clients = {n: client(e, retries={"total_max_attempts": 1}) for n, e in endpoints.items()}
        quiet_ms, awake_ms, were_quiet = [], [], 0
        for stream, shard, hash_key, leader in (s for name in names for s in open_shards(endpoints[nodes[0]], name)):
            node = nodes[0] if args.through_any or leader is None else leader
            were_quiet += bool(is_quiet(endpoints[node], stream, shard))
            for sample in (quiet_ms, awake_ms):
                t0 = time.perf_counter()
                clients[node].put_record(StreamName=stream, Data=b"x", PartitionKey="p", ExplicitHashKey=hash_key)
                sample.append((time.perf_counter() - t0) * 1000)
        for label, sample in (("a quiet", quiet_ms), ("an awake", awake_ms)):
            print(f"PutRecord to {label} shard: p50 {percentile(sample, 50):.2f} ms, "
                  f"p90 {percentile(sample, 90):.2f} ms, p99 {percentile(sample, 99):.2f} ms")
        print(f"{were_quiet} of {len(quiet_ms)} shards were quiet when written")


if __name__ == "__main__":
    main()
