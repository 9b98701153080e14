"""One harness run: a cluster, producers and consumers speaking the public Kinesis API (no client
retries), optional stream-metadata races and resharding, seeded nemeses, then heal, read
everything, and check the whole history.

    python -m kinesin_jepsen.run --bin target/debug/kinesin --time-limit 120 --seed 7 --cluster docker \
        --nodes 5 --nemesis kill,pause,partition,clock,disk,membership --workload produce,metadata,resharding

Writes jepsen/store/<run-id>/ (history.jsonl, results.json, timeline.svg, each node's log, the
generated compose file) and exits 1 when the history is invalid.

Clusters: `docker` (default) is the compose deployment of deploy/ with N nodes and every nemesis;
`local` runs N processes on loopback (kill, pause, membership and corrupt; and, over a file system
that forgets what was not fsynced, lose-unsynced, slow-fsync and fill-disk), for quick runs without
Docker.

`--failpoints SPEC` sets FAILPOINTS on every node: with a binary built with failpoints (`make
failpoints-bin`) it switches on a fault, e.g. `storage::wal-fsync=return` (no fsync) or
`raft::ack-on-append=return` (acknowledge before a majority); such runs use `--expect-invalid`.
"""

import argparse
import base64
import json
import os
import random
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from .checker import check
from .clients import backoff, client, error_code, get_records, is_definite_failure, is_throttled, list_shards
from .docker import DockerCluster, build_image
from .fanout import FanOut
from .history import History
from .local import LocalCluster
from .metadata import MetadataWorkload, check_metadata, record_final_state
from .nemesis import DOCKER_ONLY, FORGETFUL_DISKS, KINDS, LOCAL_ONLY, PARTITIONS, Nemesis
from .resharding import ReshardingWorkload, check_resharding, wait_active, write_stall
from .slowdisk import slow_fsync_latency
from .timeline import latency_summary, render

WORKLOADS = ("produce", "metadata", "resharding")
RESHARDER = 300  # the resharder's process; consumers are 100.., their children's 1000..
# Subscribers (enhanced fan-out) are 400.., their children's 2000.. (kinesin_jepsen.fanout).
# How long after healing the final read may keep meeting errors (ServiceUnavailable while the
# controller elects, say) before the run fails with nothing read back.
FINAL_READ_WITHIN = 180
# How long a set of --hot-keys is written before the next set takes over.
HOT_WINDOW = 10
QUIET_SAMPLE_EVERY = 3


class Run:
    def __init__(self, args, store, cluster):
        self.args = args
        self.cluster = cluster
        self.history = History(os.path.join(store, "history.jsonl"))
        self.stop = threading.Event()
        self.stream = "jepsen"
        self.started = time.monotonic()
        self.threads = []
        self.followed = set()  # shards a consumer reads (or has read)
        self.lock = threading.RLock()
        self.nemesis = Nemesis(args.nemesis, cluster, self.history, args.seed, self.stop,
                               leader_of_most=self.leader_of_most, shard_leaders=self.shard_leaders,
                               shapes=args.partition_shapes,
                               concurrent=args.concurrent_faults)

    # -- clients ---------------------------------------------------------------------------------
    def producer(self, process, node):
        kinesis = client(self.cluster.endpoint(node))
        rng = random.Random(self.args.seed * 1000 + process)
        i = 0
        while not self.stop.is_set():
            i += 1
            if i % 3:
                self.put_one(kinesis, process, f"p{process}-{i}", self.partition_key(rng))
            else:
                batch = [(f"p{process}-{i}-{j}", self.partition_key(rng)) for j in range(5)]
                self.put_many(kinesis, process, batch)

    def partition_key(self, rng):
        """One of 64 keys; with --hot-keys N, one of N keys that change every HOT_WINDOW seconds,
        so that most shards of a wide stream sit idle (quiet) while faults hit them, and the
        shards written move."""
        if not self.args.hot_keys:
            return f"key-{rng.randrange(64)}"
        window = int((time.monotonic() - self.started) / HOT_WINDOW)
        return f"key-{window * self.args.hot_keys + rng.randrange(self.args.hot_keys)}"

    def put_one(self, kinesis, process, data, key):
        self.history.record(process, "invoke", "put", {"key": key, "data": data})
        try:
            out = kinesis.put_record(StreamName=self.stream, Data=data.encode(), PartitionKey=key)
            self.history.record(process, "ok", "put", {"key": key, "data": data, "shard": out["ShardId"], "seq": out["SequenceNumber"],
                                                       "sealed": out.get("EncryptionType") == "KMS"})
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is fatal
            kind = "fail" if is_definite_failure(exc) else "info"
            self.history.record(process, kind, "put", {"key": key, "data": data, "error": error_code(exc)})
            time.sleep(0.05)

    def put_many(self, kinesis, process, batch):
        for data, key in batch:
            self.history.record(process, "invoke", "put", {"key": key, "data": data})
        try:
            out = kinesis.put_records(StreamName=self.stream, Records=[{"Data": d.encode(), "PartitionKey": k} for d, k in batch])
            for (data, key), result in zip(batch, out["Records"]):
                if "SequenceNumber" in result:
                    self.history.record(process, "ok", "put", {"key": key, "data": data, "shard": result["ShardId"], "seq": result["SequenceNumber"],
                                                               "sealed": out.get("EncryptionType") == "KMS"})
                else:
                    self.history.record(process, "info", "put", {"key": key, "data": data, "error": result.get("ErrorCode")})
        except Exception as exc:  # noqa: BLE001
            kind = "fail" if is_definite_failure(exc) else "info"
            for data, key in batch:
                self.history.record(process, kind, "put", {"key": key, "data": data, "error": error_code(exc)})
            time.sleep(0.05)

    def consumer(self, process, node, shard):
        """Follows one shard's iterators; at the end of a CLOSED shard hands over to its children.

        Polls at most about 4 times a second when idle, and backs off (jittered) when the shard's
        read limits (5 calls/s, as on AWS) refuse a call, keeping its iterator."""
        kinesis = client(self.cluster.endpoint(node))
        iterator, last, throttled = None, None, 0
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
                if iterator is None:  # read to its end
                    self.follow(node, [c["ShardId"] for c in out.get("ChildShards", [])])
                    return
                throttled = 0
                if not records:
                    time.sleep(0.25)
            except Exception as exc:  # noqa: BLE001
                if is_throttled(exc):
                    # Refused before reading anything: the iterator is still good.
                    self.history.record(process, "fail", "read", {"shard": shard, "error": error_code(exc)})
                    time.sleep(backoff(throttled))
                    throttled += 1
                    continue
                self.history.record(process, "info", "read", {"shard": shard, "error": error_code(exc)})
                iterator = None
                time.sleep(0.1)

    def watch_quiet(self):
        """Records every few seconds how many groups each node has quiet (idle, not ticking):
        shows that the faults of a run with mostly idle shards hit quiet ones."""
        while not self.stop.wait(QUIET_SAMPLE_EVERY):
            counts = {}
            for node in self.cluster.nodes():
                try:
                    with urllib.request.urlopen(f"{self.cluster.endpoint(node)}/metrics", timeout=2) as r:
                        text = r.read().decode()
                except OSError:
                    continue
                for line in text.splitlines():
                    if line.startswith("kinesin_raft_groups_quiet "):
                        counts[node] = int(float(line.split()[1]))
            self.history.record("monitor", "info", "quiet-groups", counts)

    def follow(self, node, shards):
        """A consumer (from TRIM_HORIZON, through `node`) for each shard nobody reads yet."""
        with self.lock:
            for shard in shards:
                if shard not in self.followed:
                    self.followed.add(shard)
                    self.spawn(self.consumer, 1000 + len(self.followed), node, shard)

    def spawn(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self.lock:
            self.threads.append(thread)
        thread.start()

    def list_shards(self, kinesis, process="lister"):
        listing = list_shards(kinesis, self.stream)
        self.history.record(process, "ok", "shards", listing)
        return listing

    def shard_leaders(self):
        """`{shard: leading node}` of the stream, as the nodes that answer report it."""
        leaders = {}
        for node in self.cluster.nodes():
            try:
                view = self.cluster.admin(node, f"/admin/v1/streams/{self.stream}/shards")
            except OSError:
                continue
            for shard in view["shards"]:
                if shard.get("leader"):
                    leaders.setdefault(shard["shard_id"], shard["leader"])
        return leaders

    def leader_of_most(self):
        """The node leading the most shards of the stream, as the nodes that answer report it."""
        counts = {}
        for leader in self.shard_leaders().values():
            counts[leader] = counts.get(leader, 0) + 1
        return max(counts, key=counts.get) if counts else None

    # -- the run ---------------------------------------------------------------------------------
    def read_shard(self, kinesis, shard):
        """Everything in `shard`, from TRIM_HORIZON to its end (or to the latest record)."""
        iterator = kinesis.get_shard_iterator(StreamName=self.stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = []
        while iterator:
            out = get_records(kinesis, ShardIterator=iterator, Limit=10000)
            if not out["Records"]:
                break
            records += [{"seq": r["SequenceNumber"], "data": r["Data"].decode(), "key": r["PartitionKey"]} for r in out["Records"]]
            iterator = out.get("NextShardIterator")
        return records

    def read_view(self, node):
        """`{shard: records}` of every shard (OPEN and CLOSED) as `node` answers, shards read in parallel."""
        kinesis = client(self.cluster.endpoint(node))
        shards = [s["shard"] for s in list_shards(kinesis, self.stream)]
        with ThreadPoolExecutor(8) as pool:
            return dict(zip(shards, pool.map(lambda shard: self.read_shard(kinesis, shard), shards)))

    def after_recovery(self, read, timeout=FINAL_READ_WITHIN):
        """`read()`, tried again while the healed cluster still answers errors (a controller that
        is electing, a leader catching up) for up to `timeout` seconds; each failure is recorded.
        A cluster still unreadable then fails the run: nothing it acknowledged can be shown."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return read()
            except Exception as exc:  # noqa: BLE001 - any error: the last one is raised below
                if time.monotonic() > deadline:
                    raise
                self.history.record("final", "info", "final-read", f"not readable yet: {exc}")
                time.sleep(2)

    def read_back(self, admin):
        """The final listing and the final read; whether every node answered the same."""
        self.list_shards(admin, process="final")
        return self.final_read()

    def serving_nodes(self):
        """The nodes running now: after a healing that failed, one may still be down (a soak's final
        read once went through node 1 while it was, and read nothing)."""
        return [node for node in self.cluster.nodes() if self.cluster.running(node)] or self.cluster.nodes()

    def final_read(self):
        """Reads every shard through every running node until all agree, then records the first
        one's answer."""
        deadline = time.monotonic() + 60
        nodes = self.serving_nodes()
        with ThreadPoolExecutor(len(nodes)) as pool:
            while True:
                views = list(pool.map(self.read_view, nodes))
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
        # Not botocore's waiter: it gives up on the first error, and a cluster opening hundreds
        # of groups at once may answer ServiceUnavailable for a moment.
        wait_active(admin, self.stream)
        if self.args.encrypt:
            self.start_encryption(admin)
        shards = [s["shard"] for s in self.list_shards(admin)]
        if self.args.followed_shards:
            # The rest are read only at the end: a consumer keeps its shard busy.
            shards = shards[: self.args.followed_shards]
        nodes = self.cluster.nodes()
        if "produce" in self.args.workload:
            for p in range(self.args.producers):
                self.spawn(self.producer, p, nodes[p % len(nodes)])
            self.followed.update(shards)
            for i, shard in enumerate(shards):
                self.spawn(self.consumer, 100 + i, nodes[i % len(nodes)], shard)
            # Enhanced fan-out beside polling: a subscriber per shard, through other nodes.
            fanout = FanOut(self)
            fanout.register(nodes[0])
            fanout.start(nodes[1:] + nodes[:1], shards)
        metadata = MetadataWorkload(self.history, self.client_for_node, nodes, self.args.seed)
        if "metadata" in self.args.workload:
            for i in range(3):
                self.spawn(metadata.run, 200 + i, self.stop)
        if "resharding" in self.args.workload:
            resharder = ReshardingWorkload(self.history, self.client_for_node, nodes, self.args.seed, self.stream)
            self.spawn(resharder.run, RESHARDER, self.stop)
        self.spawn(self.watch_quiet)
        self.nemesis.start()
        self.stop.wait(self.args.time_limit)
        self.stop.set()
        print("jepsen: load stopped; healing", flush=True)
        self.nemesis.join()
        for t in list(self.threads):
            t.join(timeout=60)
        try:
            self.heal()
            healed = True
        except Exception as exc:  # noqa: BLE001 - a cluster that does not recover is a finding, not a crash
            # Reported like any other finding, and the history is still checked: whatever did
            # recover must hold every acknowledged record.
            print(f"jepsen: the cluster did not recover: {exc}", flush=True)
            self.history.record("nemesis", "info", "heal-failed", str(exc))
            healed = False
        admin = client(self.cluster.endpoint(self.serving_nodes()[0]))
        try:
            wait_active(admin, self.stream)
            agreed = self.after_recovery(lambda: self.read_back(admin))
        except Exception as exc:  # noqa: BLE001 - a cluster that lost its stream is a finding, not a crash
            # Nothing can be read back (the stream is gone or unreadable after healing): no
            # final read is recorded, so the checker counts every acknowledged record as lost.
            print(f"jepsen: the final read failed: {exc}", flush=True)
            self.history.record("final", "fail", "final-read", str(exc))
            agreed = False
        result = check(self.history.ops)
        result["nodes_agree"] = agreed
        result["healed"] = healed
        result["valid"] = result["valid"] and agreed and healed
        parts = {"metadata": check_metadata, "resharding": check_resharding}
        if "metadata" in self.args.workload:
            record_final_state(self.history, self.client_for_node, nodes)
        for name in self.args.workload:
            if name in parts:
                result[name] = parts[name](self.history.ops)
                result["valid"] = result["valid"] and result[name]["valid"]
                result["errors"] = result["errors"] + result[name].pop("errors")
        result["write_stall"] = write_stall(self.history.ops)
        if "slow-fsync" in self.args.nemesis:
            result["slow_fsync"] = slow_fsync_latency(self.history.ops)
        result["faults"] = self.nemesis.counts
        samples = [op["value"] for op in self.history.ops if op.get("f") == "quiet-groups"]
        result["quiet_groups_max"] = max((sum(c.values()) for c in samples), default=0)
        result["latency_ms"] = latency_summary(self.history.ops)
        if self.args.encrypt:
            acks = [op["value"] for op in self.history.ops if op.get("f") == "put" and op.get("type") == "ok"]
            result["encryption"] = {"sealed_acks": sum(1 for a in acks if a.get("sealed")),
                                    "plain_acks": sum(1 for a in acks if not a.get("sealed"))}
        return result

    def start_encryption(self, admin):
        """Encrypts the stream before any write, and waits until every node's gateway knows it
        (a node seals what it takes by its own copy of the stream's settings)."""
        admin.start_stream_encryption(StreamName=self.stream, EncryptionType="KMS", KeyId=JEPSEN_KEY_ALIAS)
        deadline = time.monotonic() + 30
        for node in self.cluster.nodes():
            kinesis = client(self.cluster.endpoint(node))
            while kinesis.describe_stream_summary(StreamName=self.stream)["StreamDescriptionSummary"].get("EncryptionType") != "KMS":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {node} does not show the stream encrypted after 30 s")
                time.sleep(0.1)

    def client_for_node(self, node):
        return client(self.cluster.endpoint(node))

    def heal(self):
        """Everything running and connected again, clocks true, disks free; then wait for health."""
        for node in list(self.cluster.paused):
            self.cluster.resume(node)
        if isinstance(self.cluster, DockerCluster):
            self.cluster.heal_network()
            for node in self.cluster.nodes():
                self.cluster.set_clock_offset(node, 0)
            if self.cluster.disk_node:
                self.cluster.free_disk()
        else:
            self.cluster.heal_disks()
        for node in self.cluster.nodes():
            if not self.cluster.running(node) and node not in self.nemesis.membership.leaving:
                self.cluster.restart(node)
        if "membership" in self.args.nemesis:
            self.nemesis.membership.heal()  # a node cut short in leaving or rejoining finishes it
        self.cluster.wait_healthy(self.cluster.nodes())


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="the kinesin binary (put in an image for --cluster docker)")
    parser.add_argument("--cluster", choices=("docker", "local"), default="docker")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--producers", type=int, default=6)
    parser.add_argument("--hot-keys", type=int, default=0,
                        help="write only this many partition keys at a time, moving every "
                             f"{HOT_WINDOW} s (0: always the same 64): with many --shards, most sit idle")
    parser.add_argument("--followed-shards", type=int, default=0,
                        help="consumers and subscribers on only this many of the first shards (0: all)")
    parser.add_argument("--time-limit", type=float, default=60, help="seconds of load and faults")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--nemesis", default="kill,pause,partition,clock,disk,membership",
                        help=f"comma-separated, any of: {', '.join(KINDS)} (empty: no faults)")
    parser.add_argument("--partition-shapes", default=",".join(PARTITIONS),
                        help=f"the partitions the partition nemesis picks from: {', '.join(PARTITIONS)}")
    parser.add_argument("--concurrent-faults", type=int, default=1,
                        help="fault schedules running at once (1: one fault at a time, with quiet periods)")
    parser.add_argument("--workload", default="produce,metadata,resharding", help=f"comma-separated: {', '.join(WORKLOADS)}")
    parser.add_argument("--store", default=os.path.join(os.path.dirname(__file__), "..", "store"))
    parser.add_argument("--failpoints", default="",
                        help="FAILPOINTS for every node (a binary built with failpoints), e.g. storage::wal-fsync=return")
    parser.add_argument("--encrypt", action="store_true",
                        help="encrypt the stream at rest (a keyring every node reads; --cluster local): "
                             "every acknowledged record must be read back and none found in the clear on disk")
    parser.add_argument("--expect-invalid", action="store_true",
                        help="exit 0 only when the run is INVALID (for a binary built with a fault switch)")
    args = parser.parse_args(argv)
    args.nemesis = [n for n in args.nemesis.split(",") if n]
    args.workload = [w for w in args.workload.split(",") if w]
    args.partition_shapes = [p for p in args.partition_shapes.split(",") if p]
    bad = [k for k in args.nemesis if k not in KINDS] + [w for w in args.workload if w not in WORKLOADS]
    bad += [p for p in args.partition_shapes if p not in PARTITIONS]
    if bad:
        parser.error(f"unknown nemesis or workload: {', '.join(bad)}")
    if args.cluster == "local" and DOCKER_ONLY & set(args.nemesis):
        parser.error(f"--cluster local does not support {', '.join(sorted(DOCKER_ONLY & set(args.nemesis)))}")
    if args.encrypt and args.cluster != "local":
        parser.error("--encrypt needs --cluster local")
    if args.cluster == "docker" and LOCAL_ONLY & set(args.nemesis):
        parser.error(f"{', '.join(sorted(LOCAL_ONLY & set(args.nemesis)))} need --cluster local")
    return args


JEPSEN_KEY_ALIAS = "alias/jepsen"


def write_keyring(store):
    """A keyring every node of a local cluster reads (outside the nodes' data directories)."""
    path = os.path.join(store, "keyring.toml")
    material = base64.b64encode(os.urandom(32)).decode()
    with open(path, "w") as f:
        f.write(f'[[key]]\nid = "{uuid.uuid4()}"\naliases = ["{JEPSEN_KEY_ALIAS}"]\nmaterial = "{material}"\n')
    return path


def plaintext_on_disk(cluster, history_ops, samples=200):
    """The data of sealed acknowledged records found in the clear in any node's files (the
    longest values: a short one could occur in ciphertext by chance)."""
    sealed = sorted({op["value"]["data"] for op in history_ops
                     if op.get("f") == "put" and op.get("type") == "ok" and op["value"].get("sealed")}, key=len)[-samples:]
    needles = [d.encode() for d in sealed]
    found = []
    for node in cluster.nodes():
        for root in (cluster.data_dir(node), os.path.join(cluster.directory, f"node{node}-disk")):
            for dirpath, _, files in os.walk(root):
                for name in files:
                    try:
                        with open(os.path.join(dirpath, name), "rb") as f:
                            content = f.read()
                    except OSError:
                        continue
                    found += [f"node {node} {name}: {n.decode()}" for n in needles if n in content]
    return found


def make_cluster(args, store, run_id):
    env = {"FAILPOINTS": args.failpoints} if args.failpoints else {}
    if args.cluster == "local":
        # Small memtables under `corrupt`: table and blob files to damage, not only the WAL.
        node_args = ["--storage-rocksdb-options", "write_buffer_size=1048576"] if "corrupt" in args.nemesis else []
        if args.encrypt:
            node_args += ["--keyring", write_keyring(store)]
        return LocalCluster(args.bin, args.nodes, store, extra_args=node_args, extra_env=env,
                            forgetful=bool(FORGETFUL_DISKS & set(args.nemesis)), seed=args.seed)
    tag = f"kinesin-jepsen:{run_id.lower()}"
    print(f"jepsen: building image {tag} from {args.bin}", flush=True)
    build_image(args.bin, tag)
    disk_node = args.nodes if "disk" in args.nemesis else None
    return DockerCluster(tag, args.nodes, store, project=f"jepsen{run_id.lower().replace('-', '')}",
                         disk_node=disk_node, extra_env=env)


def report(result, store):
    with open(os.path.join(store, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    summary = {k: v for k, v in result.items() if k != "errors"}
    print(json.dumps(summary, indent=2))
    for e in result["errors"][:20]:
        print("VIOLATION", json.dumps(e))
    print(f"store: {store}")
    print("VALID" if result["valid"] else "INVALID", flush=True)


def main(argv=None):
    args = parse_args(argv)
    run_id = time.strftime("%Y%m%dT%H%M%S") + f"-seed{args.seed}"
    store = os.path.abspath(os.path.join(args.store, run_id))
    os.makedirs(store)
    print(f"jepsen run {run_id}: {args.cluster} cluster of {args.nodes} nodes, nemeses {args.nemesis or 'none'}, "
          f"workloads {args.workload}, {args.time_limit:.0f} s, store {store}", flush=True)
    cluster = make_cluster(args, store, run_id)
    run = Run(args, store, cluster)
    try:
        result = run.go()
    finally:
        run.stop.set()
        cluster.stop_all()
        run.history.close()
        if isinstance(cluster, DockerCluster):
            cluster.remove_image()
    if args.encrypt:
        found = plaintext_on_disk(cluster, run.history.ops)
        result["encryption"]["plaintext_on_disk"] = found[:10]
        result["valid"] = result["valid"] and not found and result["encryption"]["sealed_acks"] > 0
    result["seed"] = args.seed
    result["cluster"] = {"kind": args.cluster, "nodes": args.nodes, "shards": args.shards}
    result["nemesis"] = args.nemesis
    result["failpoints"] = args.failpoints
    result["workload"] = args.workload
    render(run.history.ops, os.path.join(store, "timeline.svg"),
           title=f"{run_id}: {args.nodes} nodes, nemeses {','.join(args.nemesis) or 'none'}")
    report(result, store)
    if args.expect_invalid:
        return 0 if not result["valid"] else 1
    return 0 if result["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
