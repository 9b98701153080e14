#!/usr/bin/env python3
"""The capacity runs of benches/README.md: each scenario starts a fresh cluster of release nodes on
loopback, drives it with kinesin-bench, samples every node's resident memory once a second, and
prints one JSON object per scenario (and a Markdown table row for the README at the end).

    B=$CARGO_TARGET_DIR/release
    python3 benches/capacity.py --bin $B/kinesin --bench $B/kinesin-bench            # all but catch-up
    python3 benches/capacity.py --bin $B/kinesin --bench $B/kinesin-bench put-records --seconds 20
    python3 benches/capacity.py ... put-records --perf 1   # also a flat CPU profile of node 1

Scenarios (the targets of issue 6; 1 KiB records; per-shard limits off unless said):
  put-records    3 nodes RF 3: PutRecords, closed loop, as fast as the cluster goes
  half-load      3 nodes RF 3: PutRecords open loop at --rate records/s (default: half the
                 put-records figure of this run, or 50,000): the latency at a sustainable load
  put-record     3 nodes RF 3: PutRecord on one connection: the latency of one record
  put-get        3 nodes RF 3: open-loop PutRecords with GetRecords consumers: put -> get latency
  single-node    1 node: PutRecords, closed loop
  overload       1 node with its default limits (per-shard limits on) and --max-inflight-request-bytes
                 64 MiB, far more load than it takes: memory must stay flat, the excess refused
  catch-up       3 nodes RF 3: PutRecords open loop at --rate records/s (default 20,000) through
                 node 1; node 3 is killed (-9) for --down seconds (default 300) of that load, then
                 restarted while the load goes on. Reports the write latency before, while node 3
                 is down and while it catches up, and how long it took to apply everything that
                 was committed when it restarted.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

from benchlib import add_cluster_args, local_cluster

# Capacity is measured without AWS's per-shard limits (writes 1,000 records and 1 MiB per second,
# reads 5 GetRecords calls and 2 MiB per second): they would cap the load, not the server.
UNLIMITED = ["--shard-write-records-per-sec", "0", "--shard-write-bytes-per-sec", "0",
             "--shard-read-calls-per-sec", "0", "--shard-read-bytes-per-sec", "0"]

# name -> (nodes, server args, kinesin-bench args)
SCENARIOS = {
    "put-records": (3, UNLIMITED, ["--shards", "8", "--connections", "32", "--batch", "500"]),
    "half-load": (3, UNLIMITED, ["--shards", "8", "--connections", "64", "--batch", "500"]),
    "put-record": (3, UNLIMITED, ["--shards", "4", "--connections", "1", "--batch", "0"]),
    "put-get": (3, UNLIMITED, ["--shards", "4", "--connections", "16", "--batch", "100",
                               "--consumers", "getrecords"]),
    "put-subscribe": (3, UNLIMITED, ["--shards", "4", "--connections", "16", "--batch", "100",
                                     "--consumers", "subscribe"]),
    "single-node": (1, UNLIMITED, ["--shards", "8", "--connections", "32", "--batch", "500"]),
    "overload": (1, ["--max-inflight-request-bytes", str(64 << 20)],
                 ["--shards", "4", "--connections", "256", "--batch", "500"]),
    "catch-up": (3, UNLIMITED, ["--shards", "8", "--connections", "64", "--batch", "500"]),
}


class NodeSampler(threading.Thread):
    """Resident memory and disk writes of every node, once a second."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.samples = []  # (seconds since start, {node: MiB})
        self.written = []  # (monotonic seconds, {node: bytes written to disk})
        self.stopped = threading.Event()

    def run(self):
        started = time.monotonic()
        while not self.stopped.wait(1.0):
            rss = {node: kib / 1024 for node, kib in self.proc_field("status", "VmRSS:").items()}
            self.samples.append((round(time.monotonic() - started, 1), rss))
            self.written.append((time.monotonic(), self.proc_field("io", "write_bytes:")))

    def proc_field(self, file, name):
        """{node: the number after `name` in /proc/PID/<file>} for every running node: VmRSS in
        `status` (KiB), write_bytes in `io` (bytes the process caused to be written to disk)."""
        values = {}
        for node, proc in self.cluster.procs.items():
            try:
                with open(f"/proc/{proc.pid}/{file}") as f:
                    for line in f:
                        if line.startswith(name):
                            values[node] = int(line.split()[1])
            except OSError:
                pass
        return values

    def disk_mb_per_sec(self, skip_secs):
        """Each node's disk writes in MB/s, leaving out the first `skip_secs` (the warm-up)."""
        if len(self.written) < 2:
            return {}
        start = next((w for w in self.written if w[0] - self.written[0][0] >= skip_secs), self.written[0])
        (t0, first), (t1, last) = start, self.written[-1]
        if t1 <= t0:
            return {}
        return {f"node{n}": round((last[n] - first.get(n, 0)) / (t1 - t0) / 1e6, 1) for n in last}

    def summary(self):
        if not self.samples:
            return {}
        nodes = sorted({n for _, rss in self.samples for n in rss})
        quarter = self.samples[len(self.samples) // 4][1]
        last = self.samples[-1][1]
        return {
            f"node{n}": {
                "max_mib": round(max(rss.get(n, 0) for _, rss in self.samples), 1),
                "at_quarter_mib": round(quarter.get(n, 0), 1),
                "at_end_mib": round(last.get(n, 0), 1),
            }
            for n in nodes
        }


def scenario_cluster(args, name):
    """A fresh cluster for scenario `name` (benchlib.local_cluster): its nodes, each started with
    the scenario's flags and every --server-arg (the cluster's extra_args)."""
    nodes, server_args, _ = SCENARIOS[name]
    if server_args is UNLIMITED and args.no_limit_flags:
        server_args = []
    return local_cluster(args, nodes, f"kinesin-capacity-{name}-", server_args, timeout=120)


def run_scenario(args, name, rate=None):
    nodes, _, bench_args = SCENARIOS[name]
    perf = None
    with scenario_cluster(args, name) as cluster:
        directory = cluster.directory
        report_path = os.path.join(directory, "bench.json")
        try:
            endpoints = [cluster.endpoint(n) for n in range(1, nodes + 1)] if args.via_all else [cluster.endpoint(1)]
            command = [args.bench, "--endpoint", ",".join(endpoints), "--stream", f"cap-{name}",
                       "--seconds", str(args.seconds), "--warmup-secs", str(args.warmup),
                       "--json", report_path, *bench_args]
            if rate:
                command += ["--rate", str(rate)]
            sampler = NodeSampler(cluster)
            sampler.start()
            if args.perf:
                perf_data = os.path.join(directory, "perf.data")
                perf = subprocess.Popen(["perf", "record", "-F", "499", "-o", perf_data, "-p",
                                         str(cluster.procs[args.perf].pid)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"== {name}: {' '.join(command)}", file=sys.stderr)
            subprocess.run(command, check=True)
            sampler.stopped.set()
            with open(report_path) as f:
                report = json.load(f)
            report["scenario"] = name
            report["nodes"] = nodes
            report["server_args"] = cluster.extra_args
            report["memory"] = sampler.summary()
            report["disk_write_mb_per_sec"] = sampler.disk_mb_per_sec(args.warmup)
            if perf:
                perf.send_signal(2)
                perf.wait()
                profile = subprocess.run(
                    ["perf", "report", "-i", perf_data, "--no-children", "--percent-limit", "0.7",
                     "--stdio", "--sort", "symbol"], capture_output=True, text=True).stdout
                profile_path = os.path.join(args.out_dir, f"profile-{name}-node{args.perf}.txt")
                with open(profile_path, "w") as f:
                    f.write(profile)
                report["profile"] = profile_path
            return report
        finally:
            if perf and perf.poll() is None:
                perf.kill()


def applied_indexes(cluster, node, stream):
    """{shard id: (applied index of node's replica, the leader that node knows)} from node's admin
    view; {} while node does not answer."""
    url = f"{cluster.endpoint(node)}/admin/v1/streams/{stream}/shards"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            shards = json.load(response)["shards"]
    except (OSError, ValueError, KeyError):
        return {}
    return {s["shard_id"]: (s["applied_index"], s["leader"]) for s in shards}


def leaders_applied(cluster, stream):
    """{shard id: applied index on its leader}, asking each shard's leader about itself."""
    known = applied_indexes(cluster, 1, stream)
    result = {}
    for shard, (_, leader) in known.items():
        if leader is None:
            continue
        at_leader = applied_indexes(cluster, leader, stream).get(shard)
        if at_leader and at_leader[0] is not None:
            result[shard] = at_leader[0]
    return result


def run_catch_up(args):
    """The catch-up scenario: three phases of one open-loop load, each its own kinesin-bench run on
    the same stream, while node 3 is up, down, and catching up."""
    name = "catch-up"
    nodes, _, bench_args = SCENARIOS[name]
    rate = max(1, int((args.rate or 20_000) / 500))
    stream = "cap-catch-up"
    behind = 3

    def bench(phase, seconds):
        report_path = os.path.join(cluster.directory, f"bench-{phase}.json")
        command = [args.bench, "--endpoint", cluster.endpoint(1), "--stream", stream,
                   "--seconds", str(seconds), "--warmup-secs", "2", "--rate", str(rate),
                   "--json", report_path, *bench_args]
        print(f"== {name} ({phase}): {' '.join(command)}", file=sys.stderr)
        subprocess.run(command, check=True)
        with open(report_path) as f:
            producer = json.load(f)["producer"]
        return {key: producer[key] for key in ("records_per_sec", "latency_ms", "errors",
                                               "failed_records")}

    with scenario_cluster(args, name) as cluster:
        report = {"scenario": name, "nodes": nodes, "server_args": cluster.extra_args,
                  "rate_records_per_sec": rate * 500, "down_secs": args.down}
        report["all_up"] = bench("all up", 30)
        applied_at_kill = {shard: applied or 0
                           for shard, (applied, _) in applied_indexes(cluster, behind, stream).items()}
        cluster.kill(behind)
        report["node3_down"] = bench("node 3 down", args.down)
        backlog = leaders_applied(cluster, stream)
        restarted = time.monotonic()
        cluster.restart(behind)
        caught_up = {}

        def watch():
            while len(caught_up) < len(backlog) and time.monotonic() - restarted < 3600:
                for shard, (applied, _) in applied_indexes(cluster, behind, stream).items():
                    if shard in backlog and shard not in caught_up and (applied or 0) >= backlog[shard]:
                        caught_up[shard] = round(time.monotonic() - restarted, 1)
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        report["catching_up"] = bench("catching up", args.catch_up_window)
        watcher.join(timeout=600)
        report["entries_behind_at_restart"] = {
            shard: index - applied_at_kill.get(shard, 0) for shard, index in backlog.items()}
        report["catch_up_secs_per_shard"] = caught_up
        report["catch_up_secs"] = max(caught_up.values()) if len(caught_up) == len(backlog) else None
        return report


def records_per_sec(report):
    return report.get("producer", {}).get("records_per_sec", 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_args(parser, keep_help="keep the nodes' data and logs", server_arg_metavar="ARG",
                     server_arg_help="one more argument for every node (repeat: --server-arg=--flag --server-arg=value)")
    parser.add_argument("--bench", required=True, help="the kinesin-bench binary")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5, help="seconds left out of the figures")
    parser.add_argument("--rate", type=int, help="records/s of the half-load scenario")
    parser.add_argument("--perf", type=int, metavar="NODE",
                        help="record a flat CPU profile of this node (perf)")
    parser.add_argument("--out-dir", default=".", help="where profiles go")
    parser.add_argument("--no-limit-flags", action="store_true",
                        help="do not pass the per-shard limit flags (for builds that predate them)")
    parser.add_argument("--down", type=int, default=300,
                        help="catch-up: seconds of load while node 3 is down")
    parser.add_argument("--catch-up-window", type=int, default=120,
                        help="catch-up: seconds of load measured after node 3 restarts")
    parser.add_argument("--via-all", action="store_true",
                        help="spread the load over every node's gateway (default: node 1's only)")
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        default=[s for s in SCENARIOS if s != "catch-up"],
                        help="default: every scenario but catch-up (which takes 30 s + --down + --catch-up-window)")
    args = parser.parse_args()
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    reports = {}
    for name in args.scenarios:
        if name == "catch-up":
            reports[name] = run_catch_up(args)
            print(json.dumps(reports[name]), flush=True)
            continue
        rate = None
        if name == "half-load":
            full = records_per_sec(reports["put-records"]) if "put-records" in reports else 0
            records = args.rate or (full / 2 if full else 50_000)
            rate = max(1, int(records / 500))  # requests/s of 500 records
        elif name in ("put-get", "put-subscribe"):
            rate = max(1, int((args.rate or 20_000) / 100))
        reports[name] = run_scenario(args, name, rate)
        print(json.dumps(reports[name]), flush=True)


if __name__ == "__main__":
    main()
