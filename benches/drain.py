#!/usr/bin/env python3
"""Drain under writes: starts a 4-node cluster on loopback, creates --shards shards (replication
factor 3: each node holds about three quarters of them), lets them settle, starts writers on every
shard through the nodes that stay, then drains node 4 (POST /admin/v1/nodes/4/drain, what
`kinesin ctl node drain 4` does) and measures how long until it holds no replica, and the longest
any shard went without an acknowledged write meanwhile.

    python3 benches/drain.py --bin $CARGO_TARGET_DIR/release/kinesin --shards 1334

Resolution as in failover.py: --probe-shards shards (every shard with a replica on node 4 is as
likely) are each written every --probe-every seconds from their own coroutine, so a shard's gap
between acknowledged writes is its stall plus at most that interval.
Needs boto3 (the test venv has it: ~/.cache/kinesin-venv/bin/python).
"""

import argparse
import json
import threading
import time
import urllib.request

from benchlib import (add_cluster_args, client, create_shards, local_cluster, metric, open_shards, percentile,
                      start_prober, wait)

DRAINED = 4


def held_replicas(endpoint, node):
    with urllib.request.urlopen(f"{endpoint}/admin/v1/cluster", timeout=10) as r:
        view = json.loads(r.read())
    listed = next(n for n in view["nodes"] if n["id"] == node)
    return listed["replicas"], listed.get("replicas_moving_off", 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_args(parser)
    parser.add_argument("--shards", type=int, default=1334, help="shards in all (node 4 holds about 3/4)")
    parser.add_argument("--per-stream", type=int, default=100, help="shards per stream")
    parser.add_argument("--probe-every", type=float, default=0.2, help="seconds between writes to one shard")
    parser.add_argument("--probe-shards", type=int, default=300, help="shards written (an even sample)")
    parser.add_argument("--settle", type=float, default=10, help="wait after ACTIVE before writing")
    parser.add_argument("--timeout", type=float, default=600, help="give up on the drain after this long")
    args = parser.parse_args()

    stop = threading.Event()
    with local_cluster(args, DRAINED, "kinesin-drain-", ["--shard-limit", str(args.shards + 10)]) as cluster:
        try:
            nodes = list(cluster.nodes())
            endpoints = {n: cluster.endpoint(n) for n in nodes}
            staying = [n for n in nodes if n != DRAINED]
            started = time.monotonic()
            names = create_shards(client(endpoints[staying[0]]), args.shards, args.per_stream, "drain")
            print(f"{args.shards} shards ACTIVE after {time.monotonic() - started:.1f} s", flush=True)
            time.sleep(args.settle)
            shards = [s for name in names for s in open_shards(endpoints[staying[0]], name)]
            held, _ = held_replicas(endpoints[staying[0]], DRAINED)

            sample = shards[::max(1, len(shards) // args.probe_shards)][:args.probe_shards]
            prober = start_prober(sample, [endpoints[n] for n in staying], stop, args.probe_every)
            time.sleep(2)
            terms_before = sum(metric(endpoints[n], "kinesin_raft_term_changes_total") or 0 for n in nodes)
            request = urllib.request.Request(f"{endpoints[staying[0]]}/admin/v1/nodes/{DRAINED}/drain", method="POST")
            urllib.request.urlopen(request, timeout=30).read()
            drain_started = time.monotonic()
            most_moving = 0
            shown = None

            def drained():
                nonlocal most_moving, shown
                left, moving = held_replicas(endpoints[staying[0]], DRAINED)
                most_moving = max(most_moving, moving)
                if (left, moving) != shown:
                    print(f"  {time.monotonic() - drain_started:6.1f} s: {left} left, {moving} moving", flush=True)
                    shown = (left, moving)
                return left == 0

            wait("the drain", drained, timeout=args.timeout)
            drain_secs = time.monotonic() - drain_started
            time.sleep(2)
            stop.set()
            prober.join()
            terms_after = sum(metric(endpoints[n], "kinesin_raft_term_changes_total") or 0 for n in nodes)

            gaps = []
            for times in prober.acked.values():
                during = [t for t in times if t >= drain_started - 1]
                gaps.extend(b - a for a, b in zip(during, during[1:]))
            print(f"node {DRAINED} held {held} replicas; drained in {drain_secs:.1f} s with at most {most_moving} "
                  f"moving at once; gaps between acknowledged writes to one shard: p99 {percentile(gaps, 99):.2f} s, "
                  f"longest {max(gaps, default=float('nan')):.2f} s; {terms_after - terms_before:.0f} term changes")
        finally:
            stop.set()


if __name__ == "__main__":
    main()
