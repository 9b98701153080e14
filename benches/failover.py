#!/usr/bin/env python3
"""Failover of many shards: starts a 3-node cluster on loopback, creates --shards shards
(replication factor 3), lets them settle (most go quiet), starts writers on every shard through
the nodes that will survive, then kill -9s the node that leads the most shards and measures, for
each shard it led, the time from the kill until a write to that shard is acknowledged again.
Reports p50 / p90 / p99 / max over those shards, when a surviving node saw each of them led again
(its admin view, polled every 0.1 s: free of the writers' resolution), the longest any shard went
without an acknowledged write, and the elections counted (kinesin_raft_term_changes_total).

    python3 benches/failover.py --bin $CARGO_TARGET_DIR/release/kinesin --shards 1000

Resolution: every shard the victim leads, and --probe-others more, is written every --probe-every
seconds (PutRecord with the shard's first hash key, from its own coroutine on its own connection,
no client retries: a write held inside the cluster while its shard elects is acknowledged when it
has a leader); a recovery is timed by the first write acknowledged after the kill.
Needs boto3 (the test venv has it: ~/.cache/kinesin-venv/bin/python).
"""

import argparse
import threading
import time

from benchlib import (add_cluster_args, client, create_shards, local_cluster, metric, open_shards, percentile,
                      start_prober)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_args(parser, keep_help="keep the data directory and the nodes' logs")
    parser.add_argument("--shards", type=int, default=1000, help="shards in all")
    parser.add_argument("--per-stream", type=int, default=100, help="shards per stream")
    parser.add_argument("--probe-every", type=float, default=0.2, help="seconds between writes to one shard")
    parser.add_argument("--probe-others", type=int, default=100, help="shards not led by the victim also written")
    parser.add_argument("--settle", type=float, default=10, help="wait after ACTIVE before writing")
    parser.add_argument("--before", type=float, default=5, help="seconds of writes before the kill")
    parser.add_argument("--after", type=float, default=30, help="seconds of writes after the kill")
    args = parser.parse_args()

    stop = threading.Event()
    with local_cluster(args, 3, "kinesin-failover-", ["--shard-limit", str(args.shards + 10)]) as cluster:
        try:
            nodes = list(cluster.nodes())
            endpoints = {n: cluster.endpoint(n) for n in nodes}
            started = time.monotonic()
            names = create_shards(client(endpoints[nodes[0]]), args.shards, args.per_stream, "failover")
            print(f"{args.shards} shards ACTIVE after {time.monotonic() - started:.1f} s", flush=True)
            time.sleep(args.settle)

            shards = [s for name in names for s in open_shards(endpoints[nodes[0]], name)]
            led = {n: [s for s in shards if s[3] == n] for n in nodes}
            victim = max(nodes, key=lambda n: len(led[n]))
            survivors = [n for n in nodes if n != victim]
            quiet = sum(metric(endpoints[n], "kinesin_raft_groups_quiet") or 0 for n in nodes)
            print(f"leaders: {({n: len(led[n]) for n in nodes})}; {quiet:.0f} replicas quiet; killing node {victim}",
                  flush=True)

            probed = led[victim] + [s for s in shards if s[3] != victim][:args.probe_others]
            prober = start_prober(probed, [endpoints[n] for n in survivors], stop, args.probe_every)
            time.sleep(args.before)
            terms_before = sum(metric(endpoints[n], "kinesin_raft_term_changes_total") or 0 for n in survivors)
            killed_at = time.monotonic()
            cluster.kill(victim)
            # When each of the victim's shards has another leader, as a surviving node sees it.
            victims = {(s[0], s[1]) for s in led[victim]}
            elected = {}
            while time.monotonic() < killed_at + args.after:
                for name in names:
                    for stream, shard, _, leader in open_shards(endpoints[survivors[0]], name):
                        if (stream, shard) in victims and leader not in (None, victim):
                            elected.setdefault((stream, shard), time.monotonic() - killed_at)
                if len(elected) == len(victims):
                    break
                time.sleep(0.1)
            time.sleep(max(0.0, killed_at + args.after - time.monotonic()))
            stop.set()
            prober.join()
            terms_after = sum(metric(endpoints[n], "kinesin_raft_term_changes_total") or 0 for n in survivors)

            acked = prober.acked
            recovery, never, gaps = [], 0, []
            for key, times in acked.items():
                after = [t for t in times if t >= killed_at]
                if key in victims:
                    if after:
                        recovery.append(after[0] - killed_at)
                    else:
                        never += 1
                around = [t for t in times if t >= killed_at - 1]
                gaps.extend(b - a for a, b in zip(around, around[1:]))
            print(f"{len(victims)} shards led by the killed node: writes acknowledged again after "
                  f"p50 {percentile(recovery, 50):.2f} s, p90 {percentile(recovery, 90):.2f} s, "
                  f"p99 {percentile(recovery, 99):.2f} s, max {max(recovery, default=float('nan')):.2f} s"
                  + (f"; {never} never within {args.after:.0f} s" if never else ""))
            new_leaders = list(elected.values())
            print(f"a new leader seen by node {survivors[0]} (its admin view, polled every 0.1 s) after "
                  f"p50 {percentile(new_leaders, 50):.2f} s, p99 {percentile(new_leaders, 99):.2f} s, "
                  f"max {max(new_leaders, default=float('nan')):.2f} s; {len(victims) - len(elected)} without one")
            print(f"longest gap between acknowledged writes to one shard (any shard, from 1 s before the kill): "
                  f"{max(gaps, default=float('nan')):.2f} s; {terms_after - terms_before:.0f} term changes on the "
                  f"surviving nodes")
        finally:
            stop.set()


if __name__ == "__main__":
    main()
