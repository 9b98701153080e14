"""One harness run: a cluster, producers and consumers speaking the public Kinesis API (no client
retries), a seeded nemesis, then heal, read everything, and check the whole history.

    python -m kinesin_jepsen.run --bin target/debug/kinesin --time-limit 60 --seed 7

Writes jepsen/store/<run-id>/ (history.jsonl, results.json, node logs) and exits 1 when the
history is invalid. This first slice runs the cluster as processes on loopback with kill -9 and
pause nemeses; the docker compose cluster and its network nemeses come next (issue 4).
"""

import argparse
import json
import os
import random
import sys
import threading
import time

import boto3
import botocore.exceptions
from botocore.config import Config

from .checker import check
from .history import History
from .local import LocalCluster

# No retries at all: every outcome in the history is what one request got.
CLIENT_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=5)
# Definite failures: the cluster answered that the write was not done.
DEFINITE = {"ServiceUnavailableException", "ResourceNotFoundException", "ValidationException",
            "InvalidArgumentException", "ResourceInUseException"}


def client(endpoint):
    return boto3.session.Session().client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="jepsen", aws_secret_access_key="jepsen", config=CLIENT_CONFIG)


def error_type(exc):
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code", "ClientError")
    return type(exc).__name__


class Run:
    def __init__(self, args, store):
        self.args = args
        self.rng = random.Random(args.seed)
        self.cluster = LocalCluster(args.bin, args.nodes, store)
        self.history = History(os.path.join(store, "history.jsonl"))
        self.stop = threading.Event()
        self.stream = "jepsen"

    # -- clients ---------------------------------------------------------------------------------
    def producer(self, process, node):
        kinesis = client(self.cluster.endpoint(node))
        rng = random.Random(self.args.seed * 1000 + process)
        i = 0
        while not self.stop.is_set():
            i += 1
            if i % 3:
                self.put_one(kinesis, process, f"p{process}-{i}", f"key-{rng.randrange(64)}")
            else:
                batch = [(f"p{process}-{i}-{j}", f"key-{rng.randrange(64)}") for j in range(5)]
                self.put_many(kinesis, process, batch)

    def put_one(self, kinesis, process, data, key):
        self.history.record(process, "invoke", "put", {"key": key, "data": data})
        try:
            out = kinesis.put_record(StreamName=self.stream, Data=data.encode(), PartitionKey=key)
            self.history.record(process, "ok", "put", {"key": key, "data": data, "shard": out["ShardId"], "seq": out["SequenceNumber"]})
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is fatal
            kind = "fail" if error_type(exc) in DEFINITE else "info"
            self.history.record(process, kind, "put", {"key": key, "data": data, "error": error_type(exc)})
            time.sleep(0.05)

    def put_many(self, kinesis, process, batch):
        for data, key in batch:
            self.history.record(process, "invoke", "put", {"key": key, "data": data})
        try:
            out = kinesis.put_records(StreamName=self.stream, Records=[{"Data": d.encode(), "PartitionKey": k} for d, k in batch])
            for (data, key), result in zip(batch, out["Records"]):
                if "SequenceNumber" in result:
                    self.history.record(process, "ok", "put", {"key": key, "data": data, "shard": result["ShardId"], "seq": result["SequenceNumber"]})
                else:
                    self.history.record(process, "info", "put", {"key": key, "data": data, "error": result.get("ErrorCode")})
        except Exception as exc:  # noqa: BLE001
            kind = "fail" if error_type(exc) in DEFINITE else "info"
            for data, key in batch:
                self.history.record(process, kind, "put", {"key": key, "data": data, "error": error_type(exc)})
            time.sleep(0.05)

    def consumer(self, process, node, shard):
        kinesis = client(self.cluster.endpoint(node))
        iterator, last = None, None
        while not self.stop.is_set():
            try:
                if iterator is None:
                    kind = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": last} if last else {"ShardIteratorType": "TRIM_HORIZON"}
                    iterator = kinesis.get_shard_iterator(StreamName=self.stream, ShardId=shard, **kind)["ShardIterator"]
                self.history.record(process, "invoke", "read", {"shard": shard})
                out = kinesis.get_records(ShardIterator=iterator, Limit=1000)
                records = [{"seq": r["SequenceNumber"], "data": r["Data"].decode(), "key": r["PartitionKey"]} for r in out["Records"]]
                self.history.record(process, "ok", "read", {"shard": shard, "records": records})
                if records:
                    last = records[-1]["seq"]
                iterator = out.get("NextShardIterator")
                if not records:
                    time.sleep(0.05)
            except Exception as exc:  # noqa: BLE001
                self.history.record(process, "info", "read", {"shard": shard, "error": error_type(exc)})
                iterator = None
                time.sleep(0.1)

    def list_shards(self, kinesis, process="lister"):
        out = kinesis.list_shards(StreamName=self.stream)
        listing = [{
            "shard": s["ShardId"],
            "start": s["HashKeyRange"]["StartingHashKey"],
            "end": s["HashKeyRange"]["EndingHashKey"],
            "open": "EndingSequenceNumber" not in s.get("SequenceNumberRange", {}),
            "parent": s.get("ParentShardId"),
            "adjacent_parent": s.get("AdjacentParentShardId"),
        } for s in out["Shards"]]
        self.history.record(process, "ok", "shards", listing)
        return listing

    # -- nemesis ---------------------------------------------------------------------------------
    def nemesis(self):
        faults = self.args.nemesis
        while not self.stop.wait(self.rng.uniform(1, 3)):
            fault = self.rng.choice(faults)
            node = self.rng.choice(self.cluster.nodes())
            name = f"{fault} n{node}"
            self.history.record("nemesis", "info", "start", name)
            if fault == "kill":
                self.cluster.kill(node)
            else:
                self.cluster.pause(node)
            self.stop.wait(self.rng.uniform(2, 5))
            if fault == "kill":
                self.cluster.restart(node)
            else:
                self.cluster.resume(node)
            self.history.record("nemesis", "info", "stop", name)

    # -- the run ---------------------------------------------------------------------------------
    def final_read(self):
        """Reads every shard through every node until all agree, then records node 1's answer."""
        deadline = time.monotonic() + 60
        while True:
            views = []
            for node in self.cluster.nodes():
                kinesis = client(self.cluster.endpoint(node))
                view = {}
                for shard in [s["ShardId"] for s in kinesis.list_shards(StreamName=self.stream)["Shards"]]:
                    iterator = kinesis.get_shard_iterator(StreamName=self.stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                    records = []
                    while iterator:
                        out = kinesis.get_records(ShardIterator=iterator, Limit=10000)
                        if not out["Records"]:
                            break
                        records += [{"seq": r["SequenceNumber"], "data": r["Data"].decode(), "key": r["PartitionKey"]} for r in out["Records"]]
                        iterator = out.get("NextShardIterator")
                    view[shard] = records
                views.append(view)
            if all(v == views[0] for v in views) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for shard, records in views[0].items():
            self.history.record("final", "ok", "final-read", {"shard": shard, "records": records})
        return all(v == views[0] for v in views)

    def go(self):
        self.cluster.start_all()
        admin = client(self.cluster.endpoint(1))
        admin.create_stream(StreamName=self.stream, ShardCount=self.args.shards)
        admin.get_waiter("stream_exists").wait(StreamName=self.stream, WaiterConfig={"Delay": 1})
        shards = [s["shard"] for s in self.list_shards(admin)]
        nodes = self.cluster.nodes()
        threads = [threading.Thread(target=self.producer, args=(p, nodes[p % len(nodes)]), daemon=True)
                   for p in range(self.args.producers)]
        threads += [threading.Thread(target=self.consumer, args=(100 + i, nodes[i % len(nodes)], shard), daemon=True)
                    for i, shard in enumerate(shards)]
        threads.append(threading.Thread(target=self.nemesis, daemon=True))
        for t in threads:
            t.start()
        self.stop.wait(self.args.time_limit)
        self.stop.set()
        for t in threads:
            t.join(timeout=60)
        # Heal: everything running again.
        for node in list(self.cluster.paused):
            self.cluster.resume(node)
        for node in nodes:
            if self.cluster.procs[node].poll() is not None:
                self.cluster.restart(node)
        self.cluster.wait_healthy(nodes)
        self.list_shards(admin)
        agreed = self.final_read()
        result = check(self.history.ops)
        result["nodes_agree"] = agreed
        result["valid"] = result["valid"] and agreed
        return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="the kinesin binary")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--producers", type=int, default=6)
    parser.add_argument("--time-limit", type=float, default=60, help="seconds of load and faults")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--nemesis", default="kill,pause", help="comma-separated: kill, pause")
    parser.add_argument("--store", default=os.path.join(os.path.dirname(__file__), "..", "store"))
    args = parser.parse_args(argv)
    args.nemesis = [n for n in args.nemesis.split(",") if n]
    run_id = time.strftime("%Y%m%dT%H%M%S") + f"-seed{args.seed}"
    store = os.path.abspath(os.path.join(args.store, run_id))
    os.makedirs(store)
    print(f"jepsen run {run_id}: {args.nodes} nodes, nemeses {args.nemesis}, {args.time_limit:.0f} s, store {store}", flush=True)
    run = Run(args, store)
    try:
        result = run.go()
    finally:
        run.stop.set()
        run.cluster.stop_all()
        run.history.close()
    result["seed"] = args.seed
    with open(os.path.join(store, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    summary = {k: v for k, v in result.items() if k != "errors"}
    print(json.dumps(summary, indent=2))
    for e in result["errors"][:20]:
        print("VIOLATION", json.dumps(e))
    print("VALID" if result["valid"] else "INVALID", flush=True)
    return 0 if result["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
