"""A rolling upgrade: a three-node cluster started from the previous release's binary (built by the
test from PREVIOUS_RELEASE, scripts/build-previous-release.sh) takes writes while each node in turn
is stopped (SIGTERM), its binary replaced by this build, and started again on its data. Nothing
acknowledged is lost, the cluster runs both versions for a while, and at the end every node runs
this build and the controller has raised the cluster version. A node of the previous release
started after that is refused by the others, with an error that says why."""

import json
import os
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import Server, poll, wait_active
from test_cluster import check, everything, start_all

# The last release before cluster protocol numbers (kinesin 0.1, protocol 1): what a cluster that
# upgrades to this build runs today.
PREVIOUS_RELEASE = "7645d0365ea7ac18fdd0f915d613beaf013b164d"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def previous_binary():
    built = subprocess.run(
        [str(REPO / "scripts" / "build-previous-release.sh"), PREVIOUS_RELEASE],
        capture_output=True, text=True, timeout=1800,
    )
    assert built.returncode == 0, f"building {PREVIOUS_RELEASE} failed:\n{built.stderr[-4000:]}"
    return built.stdout.strip().splitlines()[-1]


class VersionedServer(Server):
    """A node whose binary can be swapped between restarts."""

    def __init__(self, base_dir, binary, **kwargs):
        super().__init__(base_dir, **kwargs)
        self.binary = binary
        self.expect_healthy = True

    def command(self):
        return [self.binary, *super().command()[1:]]

    def wait_healthy(self, *args, **kwargs):
        if self.expect_healthy:
            super().wait_healthy(*args, **kwargs)


def admin(server, path):
    with urllib.request.urlopen(f"{server.endpoint}{path}", timeout=10) as r:
        return json.loads(r.read())


def metric(server, name):
    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


class Writer(threading.Thread):
    """Puts batches through every node in turn until stopped, retrying what fails (as producers
    do); keeps (shard, sequence number, data) of every acknowledged record."""

    def __init__(self, servers, stream):
        super().__init__(daemon=True)
        self.servers, self.stream = servers, stream
        self.acked, self.errors = [], 0
        self.stopping = threading.Event()

    def run(self):
        batch = 0
        while not self.stopping.is_set():
            server = self.servers[batch % len(self.servers)]
            batch += 1
            records = [{"Data": f"b{batch}-{i}-{uuid.uuid4().hex}".encode(), "PartitionKey": f"k{batch}-{i}"}
                       for i in range(10)]
            try:
                out = server.client(retries={"max_attempts": 1}).put_records(StreamName=self.stream, Records=records)
            except Exception:  # the node is restarting: the next batch goes to another
                self.errors += 1
                time.sleep(0.05)
                continue
            for result, record in zip(out["Records"], records):
                if "ErrorCode" in result:
                    self.errors += 1
                else:
                    self.acked.append((result["ShardId"], result["SequenceNumber"], record["Data"]))

    def acked_count(self):
        return len(self.acked)


def caught_up(server):
    """The node elects and replicates: no group without a leader, no shard short of a replica."""
    return metric(server, "kinesin_shards_leaderless") == 0 and metric(server, "kinesin_shards_under_replicated") == 0


def test_a_rolling_upgrade_from_the_previous_release_loses_nothing(tmp_path, previous_binary):
    new_binary = os.environ["KINESIN_BIN"]
    servers = [VersionedServer(tmp_path / f"node{i}", previous_binary, node_id=i) for i in (1, 2, 3)]
    peers = ",".join(f"{s.node_id}@127.0.0.1:{s.cluster_port}" for s in servers)
    for s in servers:
        s.extra_args = ["--peers", peers]
    start_all(servers)
    writer = None
    try:
        client = servers[0].client()
        stream = f"up-{uuid.uuid4().hex[:8]}"
        client.create_stream(StreamName=stream, ShardCount=4)
        wait_active(client, stream)
        assert "cluster_version" not in admin(servers[0], "/admin/v1/cluster"), "the previous release predates versions"

        writer = Writer(servers, stream)
        writer.start()
        poll(lambda: writer.acked_count() >= 100, timeout=60, what="writes on the previous release")

        for upgraded, server in enumerate(servers, start=1):
            assert server.stop() == 0, server.log_tail()
            server.binary = new_binary
            server.start()
            poll(lambda: caught_up(server), timeout=60, what=f"node {server.node_id} to catch up after its upgrade")
            before = writer.acked_count()
            poll(lambda: writer.acked_count() >= before + 50, timeout=60,
                 what=f"writes with {upgraded} of 3 nodes upgraded")
            view = admin(server, "/admin/v1/cluster")
            builds = {n["id"]: (n["protocol"], n["build"]) for n in view["nodes"]}
            assert builds[server.node_id] == (2, "0.2.0")
            if upgraded < 3:
                # Mixed: the others still speak protocol 1, so the cluster version stays 1.
                assert view["cluster_version"] == 1, view
                old = servers[upgraded]
                poll(lambda: admin(server, "/admin/v1/cluster")["nodes"][old.node_id - 1]["protocol"] == 1,
                     what="the upgraded node to hear a node of the previous release")

        # Every node on this build: the controller raises the cluster version, seen by all.
        for server in servers:
            poll(lambda s=server: admin(s, "/admin/v1/cluster")["cluster_version"] == 2, timeout=30,
                 what=f"node {server.node_id} to see cluster version 2")
            nodes = admin(server, "/admin/v1/cluster")["nodes"]
            poll(lambda s=server: all(n["protocol"] == 2 and n["build"] == "0.2.0"
                                      for n in admin(s, "/admin/v1/cluster")["nodes"]),
                 what=f"node {server.node_id} to hear every node on this build")
            assert metric(server, "kinesin_cluster_version") == 2, nodes

        before = writer.acked_count()
        poll(lambda: writer.acked_count() >= before + 50, timeout=60, what="writes after the upgrade")
        writer.stopping.set()
        writer.join(timeout=60)
        assert len(writer.acked) >= 300
        for server in servers:
            client = server.client()
            poll(lambda c=client: len(set(everything(c, stream)) & set(writer.acked)) == len(set(writer.acked)),
                 timeout=60, what=f"every acknowledged record readable through node {server.node_id}")
            check(writer.acked, everything(client, stream))

        # A node of the previous release cannot take part any more: the others refuse it.
        servers[2].stop()
        servers[2].binary = previous_binary
        servers[2].expect_healthy = False  # it cannot reach the controller: it may never be
        servers[2].start()
        refused = "every node of this cluster was upgraded to protocol 2"
        poll(lambda: any(refused in Path(s.log_path).read_text() for s in servers[:2]), timeout=30,
             what="the upgraded nodes to refuse a node of the previous release")
    finally:
        if writer is not None:
            writer.stopping.set()
        for s in servers:
            s.cleanup()
