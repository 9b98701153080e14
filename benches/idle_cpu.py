#!/usr/bin/env python3
"""Idle cost of many shards: starts a 3-node cluster on loopback, creates streams with --shards
shards in all (replication factor 3, so every node hosts every shard), waits until they are
ACTIVE and the cluster has settled, then measures the CPU the idle nodes burn (utime + stime from
/proc) and the cluster RPCs they send (from /metrics) over --seconds. With --written K, K of the
shards (an even sample) are written five times a second each through every node meanwhile: a
loaded run, whose elections (term changes) must stay as flat as an idle one's.

    python3 benches/idle_cpu.py --bin $CARGO_TARGET_DIR/release/kinesin --shards 1000
    python3 benches/idle_cpu.py --bin $CARGO_TARGET_DIR/release/kinesin --shards 1000 --seconds 600 --written 100

Needs boto3 (the test venv has it: ~/.cache/kinesin-venv/bin/python).
"""

import argparse
import os
import threading
import time

from benchlib import add_cluster_args, client, create_shards, local_cluster, metric, open_shards, start_prober

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_args(parser, server_arg_help="extra flag for every `kinesin server`, "
                     "e.g. --server-arg=--raft-heartbeat-batch-ms=0")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--shards", type=int, default=1000, help="shards in all")
    parser.add_argument("--per-stream", type=int, default=100, help="shards per stream")
    parser.add_argument("--seconds", type=float, default=30, help="measuring window")
    parser.add_argument("--settle", type=float, default=10, help="wait after ACTIVE before measuring")
    parser.add_argument("--written", type=int, default=0, help="shards written 5 times a second meanwhile")
    args = parser.parse_args()

    with local_cluster(args, args.nodes, "kinesin-idle-", ["--shard-limit", str(args.shards + 10)]) as cluster:
        endpoints = [cluster.endpoint(n) for n in cluster.nodes()]
        procs = [cluster.procs[n] for n in cluster.nodes()]
        kinesis = client(endpoints[0])
        rss_baseline = [rss_bytes(p.pid) for p in procs]
        started = time.monotonic()
        names = create_shards(kinesis, args.shards, args.per_stream, "idle")
        print(f"{args.shards} shards in {len(names)} streams ACTIVE after {time.monotonic() - started:.1f} s", flush=True)
        time.sleep(args.settle)
        stop = threading.Event()
        prober = None
        if args.written:
            shards = [s for name in names for s in open_shards(endpoints[0], name)]
            sample = shards[::max(1, len(shards) // args.written)][:args.written]
            prober = start_prober(sample, endpoints, stop, every=0.2)

        before = [cpu_seconds(p.pid) for p in procs]
        rpcs_before = [metric(e, "kinesin_cluster_rpcs_sent_total") for e in endpoints]
        terms_before = [metric(e, "kinesin_raft_term_changes_total") for e in endpoints]
        t0 = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - t0
        after = [cpu_seconds(p.pid) for p in procs]
        if prober:
            stop.set()
            prober.join()
            writes = sum(len(times) for times in prober.acked.values())
            print(f"{writes:,} writes acknowledged to {args.written} shards meanwhile ({writes / elapsed:,.0f}/s)")
        rpcs_after = [metric(e, "kinesin_cluster_rpcs_sent_total") for e in endpoints]
        terms_after = [metric(e, "kinesin_raft_term_changes_total") for e in endpoints]
        quiet = [metric(e, "kinesin_raft_groups_quiet") for e in endpoints]
        groups = [metric(e, "kinesin_raft_groups") for e in endpoints]
        rss = [rss_bytes(p.pid) for p in procs]

        total = 0.0
        for i, (b, a) in enumerate(zip(before, after)):
            share = (a - b) / elapsed
            total += share
            rpcs = ""
            if rpcs_before[i] is not None and rpcs_after[i] is not None:
                rpcs = f", {(rpcs_after[i] - rpcs_before[i]) / elapsed:,.0f} cluster RPCs/s sent"
            hosted = (groups[i] or 1) - 1  # less the controller group
            per_replica = (rss[i] - rss_baseline[i]) / max(hosted, 1)
            elections = ""
            if terms_before[i] is not None and terms_after[i] is not None:
                elections = f", {terms_after[i] - terms_before[i]:.0f} term changes"
            print(f"node {i + 1}: {share * 100:.1f}% of a core{rpcs}; {quiet[i] or 0:.0f} of {groups[i] or 0:.0f} groups quiet"
                  f"{elections}; RSS {rss[i] / 2**20:.0f} MiB, {per_replica / 1024:.1f} KiB per replica beyond the "
                  f"{rss_baseline[i] / 2**20:.0f} MiB it started with")
        print(f"cluster: {total * 100:.1f}% of a core for {args.shards} {'' if args.written else 'idle '}shards x {args.nodes} replicas "
              f"({total * 100 / args.shards * 1000:.1f}% per 1,000 shards), over {elapsed:.0f} s")


if __name__ == "__main__":
    main()
