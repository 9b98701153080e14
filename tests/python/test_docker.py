"""The Docker deployment (deploy/): the image built by deploy/build-image.sh from $KINESIN_BIN, and
the three-node cluster of deploy/docker-compose.yml started by deploy/cluster.sh, driven from the
host through the published ports with the AWS CLI and boto3.

A node's container is stopped while writes continue through the other two, then started again:
every acknowledged record must be read back exactly once, in order per shard, with the sequence
number it was acknowledged with, through every node including the restarted one.

The module uses its own image tag and compose project and free host ports, so it does not touch a
cluster started with `make docker-up`; everything (containers, volumes, image tag) is removed at
the end. Docker is required: without a usable Docker engine the test fails.
"""

import base64
import http.client
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import botocore.exceptions
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from conftest import (
    aws_cli,
    aws_cli_major_version,
    free_ports,
    kinesin_bin,
    list_all_shards,
    make_client,
    poll,
    read_shard,
    wait_active,
)

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NODES = ("node1", "node2", "node3")
HEALTHY_TIMEOUT = 120.0
ELECTION_TIMEOUT = 30.0  # bound on the wait for a write to succeed after a node stops

pytestmark = pytest.mark.timeout(600)  # includes building the image (and, once, its base)


def run(cmd, env=None, timeout=600, check=True):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}")
    return out


class Endpoint:
    """What conftest's aws_cli needs from a server: its endpoint URL (and the CA of its TLS port)."""

    def __init__(self, name, port, tls_port, ca_bundle):
        self.name = name
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.tls_port = tls_port
        self.tls_endpoint = f"https://127.0.0.1:{tls_port}"
        self.ca_bundle = ca_bundle

    def healthy(self):
        try:
            with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, OSError, http.client.HTTPException):
            return False

    def admin(self, path):
        with urllib.request.urlopen(f"{self.endpoint}{path}", timeout=10) as r:
            return json.loads(r.read())

    def client(self):
        # Bounded timeouts: a write that waits on a stopped leader must come back as a failure.
        return make_client(self.endpoint, read_timeout=15, connect_timeout=5)

    def tls_client(self):
        return make_client(self.tls_endpoint, verify=self.ca_bundle, read_timeout=15, connect_timeout=5)


class Cluster:
    def __init__(self, tag, project, ports, tls_ports, certs_dir):
        self.tag = tag
        self.project = project
        self.certs_dir = str(certs_dir)
        ca = os.path.join(self.certs_dir, "ca.pem")
        self.nodes = [Endpoint(n, p, t, ca) for n, p, t in zip(NODES, ports, tls_ports)]
        self.env = dict(os.environ)
        self.env.update(
            KINESIN_IMAGE=tag,
            KINESIN_COMPOSE_PROJECT=project,
            KINESIN_PUBLISH_ADDR="127.0.0.1",
            KINESIN_UP_TIMEOUT=str(int(HEALTHY_TIMEOUT)),
            # `cluster.sh up` makes the certificates there (deploy/make-certs.sh).
            KINESIN_CERTS_DIR=self.certs_dir,
            **{f"KINESIN_NODE{i}_PORT": str(p) for i, p in enumerate(ports, start=1)},
            **{f"KINESIN_NODE{i}_TLS_PORT": str(p) for i, p in enumerate(tls_ports, start=1)},
        )
        self.containers = {}

    def script(self, *args, check=True, timeout=300):
        return run([str(DEPLOY / "cluster.sh"), *args], env=self.env, timeout=timeout, check=check)

    def up(self):
        out = self.script("up")
        for n in NODES:
            cid = self.script("compose", "ps", "-q", n).stdout.strip()
            assert cid, f"no container for {n}"
            self.containers[n] = cid
        for node in self.nodes:
            for endpoint in (node.endpoint, node.tls_endpoint):
                assert endpoint in out.stdout, f"`cluster.sh up` did not print {endpoint}:\n{out.stdout}"
            poll(node.healthy, timeout=30, what=f"{node.endpoint}/healthz from the host")
        return out

    def state(self, name):
        out = run(
            ["docker", "inspect", "-f", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", self.containers[name]]
        )
        return out.stdout.strip()

    def stop(self, name):
        run(["docker", "stop", self.containers[name]], timeout=120)
        assert self.state(name).startswith("exited"), self.state(name)

    def start(self, name):
        run(["docker", "start", self.containers[name]], timeout=120)
        node = self.nodes[NODES.index(name)]

        def healthy():
            state = self.state(name)
            assert state.startswith("running"), f"{name} is {state} after `docker start`"
            return state == "running healthy" and node.healthy()

        poll(healthy, timeout=HEALTHY_TIMEOUT, what=f"{name} to be healthy again")

    def logs(self):
        return self.script("logs", "--no-color", "--tail", "80", check=False, timeout=60).stdout

    def down(self):
        return self.script("down", "--volumes", check=False, timeout=300)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    out = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        pytest.fail(f"Docker is not usable here (`docker info` exited {out.returncode}): {out.stderr}", pytrace=False)

    run_id = uuid.uuid4().hex[:10]
    tag = f"kinesin-test:{run_id}"
    started = time.monotonic()
    run([str(DEPLOY / "build-image.sh"), "--binary", kinesin_bin(), "--tag", tag], timeout=900)
    built = time.monotonic()
    ports = free_ports(6)
    c = Cluster(tag, f"kinesin-test-{run_id}", ports[:3], ports[3:], tmp_path_factory.mktemp("certs"))
    try:
        c.up()
        print(f"image built in {built - started:.1f}s, cluster healthy in {time.monotonic() - built:.1f}s")
        yield c
    finally:
        down = c.down()
        run(["docker", "image", "rm", "-f", tag], check=False)
        assert down.returncode == 0, f"`cluster.sh down --volumes` failed: {down.stderr}"


@pytest.fixture
def logs_on_failure(cluster):
    """Yields; if the test body raises, the containers' last log lines go to its report."""

    class Guard:
        def __enter__(self):
            return self

        def __exit__(self, exc_type, exc, tb):
            if exc_type is not None:
                print(f"--- container logs ({cluster.project}) ---\n{cluster.logs()}", file=sys.stderr)
            return False

    return Guard()


# --------------------------------------------------------------------------------------------
# The AWS CLI walkthrough against every node
# --------------------------------------------------------------------------------------------


def binary_args():
    # CLI v2 expects blob arguments in base64 unless told otherwise; v1 sends the text's bytes.
    return ["--cli-binary-format", "raw-in-base64-out"] if aws_cli_major_version() >= 2 else []


def cli_summary(node, stream):
    return aws_cli(node, "kinesis", "describe-stream-summary", "--stream-name", stream)["StreamDescriptionSummary"]


def cli_read(node, stream, shard_id):
    it = aws_cli(
        node, "kinesis", "get-shard-iterator",
        "--stream-name", stream, "--shard-id", shard_id, "--shard-iterator-type", "TRIM_HORIZON",
    )["ShardIterator"]
    return aws_cli(node, "kinesis", "get-records", "--shard-iterator", it)["Records"]


def test_aws_cli_walkthrough_on_every_node(cluster, logs_on_failure):
    with logs_on_failure:
        blob = binary_args()
        for i, node in enumerate(cluster.nodes):
            stream = f"walk-{node.name}-{uuid.uuid4().hex[:8]}"
            assert aws_cli(node, "kinesis", "create-stream", "--stream-name", stream, "--shard-count", "2") is None
            poll(lambda: cli_summary(node, stream)["StreamStatus"] == "ACTIVE", timeout=30, what=f"{stream} ACTIVE")

            data = f"hello from the host via {node.name}"
            put = aws_cli(
                node, "kinesis", "put-record",
                "--stream-name", stream, "--partition-key", f"user-{i}", "--data", data, *blob,
            )
            assert put["ShardId"] in ("shardId-000000000000", "shardId-000000000001")

            # Every node's gateway answers for the stream and reads the record from its replica.
            for other in cluster.nodes:
                summary = cli_summary(other, stream)
                assert summary["StreamName"] == stream and summary["StreamStatus"] == "ACTIVE"
                assert summary["OpenShardCount"] == 2

                def replicated(other=other):
                    records = cli_read(other, stream, put["ShardId"])
                    return records if records else None

                records = poll(replicated, timeout=30, what=f"the record on {other.name}")
                assert [base64.b64decode(r["Data"]).decode() for r in records] == [data]
                assert records[0]["SequenceNumber"] == put["SequenceNumber"]
                assert records[0]["PartitionKey"] == f"user-{i}"

        listed = aws_cli(cluster.nodes[2], "kinesis", "list-streams")["StreamNames"]
        assert sum(name.startswith("walk-") for name in listed) == 3

        # The containers are ready for fault injection: iptables works inside them (as root).
        for n in NODES:
            run(["docker", "exec", "-u", "0", cluster.containers[n], "iptables", "-S"])


# --------------------------------------------------------------------------------------------
# TLS on every node, with the certificates deploy/make-certs.sh made
# --------------------------------------------------------------------------------------------


def test_every_node_serves_tls_with_its_own_certificate(cluster, logs_on_failure):
    with logs_on_failure:
        stream = f"tls-{uuid.uuid4().hex[:8]}"
        first = cluster.nodes[0].tls_client()
        first.create_stream(StreamName=stream, ShardCount=1)
        wait_active(first, stream)
        put = first.put_record(StreamName=stream, Data=b"over tls", PartitionKey="pk")
        for node in cluster.nodes:
            # Each node's certificate is its own (CN = its compose host name) and verifies
            # against the CA for 127.0.0.1.
            pem = ssl.get_server_certificate(("127.0.0.1", node.tls_port), ca_certs=node.ca_bundle, timeout=10)
            subject = x509.load_pem_x509_certificate(pem.encode()).subject
            assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == node.name, subject

            def replicated(node=node):
                return read_shard(node.tls_client(), stream, put["ShardId"]) or None

            records = poll(replicated, timeout=30, what=f"the record over TLS on {node.name}")
            assert [(r["Data"], r["SequenceNumber"]) for r in records] == [(b"over tls", put["SequenceNumber"])]

        # The AWS CLI with --ca-bundle.
        summary = aws_cli(
            cluster.nodes[1], "kinesis", "describe-stream-summary", "--stream-name", stream,
            endpoint=cluster.nodes[1].tls_endpoint,
        )["StreamDescriptionSummary"]
        assert summary["StreamStatus"] == "ACTIVE"


# --------------------------------------------------------------------------------------------
# A stopped container: writes go on through the others, and it catches up when it returns
# --------------------------------------------------------------------------------------------


class Writer:
    """Writes records with unique data and keeps what happened to each: acknowledged (with its
    shard and sequence number), or uncertain (the call failed, so it may or may not be stored)."""

    def __init__(self, stream):
        self.stream = stream
        self.acked = {}  # data -> (shard id, sequence number)
        self.uncertain = set()
        self.n = 0

    def put_records(self, client, tag, count=10):
        records = []
        for _ in range(count):
            self.n += 1
            records.append({"Data": f"{tag}-{self.n}-{uuid.uuid4().hex[:8]}".encode(), "PartitionKey": f"pk-{self.n}"})
        try:
            out = client.put_records(StreamName=self.stream, Records=records)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
            self.uncertain.update(r["Data"] for r in records)
            raise
        for rec, res in zip(records, out["Records"]):
            if "ErrorCode" in res:
                self.uncertain.add(rec["Data"])
            else:
                self.acked[rec["Data"]] = (res["ShardId"], res["SequenceNumber"])
        return out["FailedRecordCount"]

    def put_record(self, client, tag):
        self.n += 1
        data = f"{tag}-{self.n}-{uuid.uuid4().hex[:8]}".encode()
        try:
            out = client.put_record(StreamName=self.stream, Data=data, PartitionKey=f"pk-{self.n}")
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
            self.uncertain.add(data)
            raise
        self.acked[data] = (out["ShardId"], out["SequenceNumber"])

    def must_write(self, client, tag, batches=3):
        """Writes that must all be acknowledged."""
        for b in range(batches):
            assert self.put_records(client, f"{tag}-b{b}") == 0, "a PutRecords entry was not acknowledged"
            self.put_record(client, f"{tag}-single{b}")

    def first_success(self, client, tag, timeout=ELECTION_TIMEOUT):
        """Write until one PutRecords is wholly acknowledged (a leader may be being elected)."""
        deadline = time.monotonic() + timeout
        errors = []
        while True:
            try:
                if self.put_records(client, tag, count=5) == 0:
                    return errors
                errors.append("partial failure")
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                errors.append(repr(e))
            if time.monotonic() >= deadline:
                raise AssertionError(f"no write acknowledged within {timeout}s; errors: {errors[-5:]}")
            time.sleep(0.2)


def read_everything(client, stream):
    """[(shard id, sequence number, data)] of every record, in each shard's read order."""
    found = []
    for shard in list_all_shards(client, stream):
        for record in read_shard(client, stream, shard["ShardId"]):
            found.append((shard["ShardId"], record["SequenceNumber"], record["Data"]))
    return found


def check_reads(writer, found, node_name):
    datas = [d for _, _, d in found]
    assert len(datas) == len(set(datas)), f"{node_name}: a record is read twice"
    unknown = set(datas) - set(writer.acked) - writer.uncertain
    assert not unknown, f"{node_name}: records read that were never written: {sorted(unknown)[:3]}"
    per_shard = {}
    for shard, seq, _ in found:
        per_shard.setdefault(shard, []).append(int(seq))
    for shard, seqs in per_shard.items():
        assert all(a < b for a, b in zip(seqs, seqs[1:])), f"{node_name}: {shard} is not in sequence order"
    position = {d: (shard, seq) for shard, seq, d in found}
    missing = [d for d in writer.acked if d not in position]
    assert not missing, f"{node_name}: {len(missing)} acknowledged records missing, e.g. {missing[:3]}"
    moved = [d for d, where in writer.acked.items() if position[d] != where]
    assert not moved, f"{node_name}: records read at another position than acknowledged: {moved[:3]}"


def test_stopped_node_misses_nothing_and_catches_up(cluster, logs_on_failure):
    with logs_on_failure:
        clients = {n.name: n.client() for n in cluster.nodes}
        stream = f"failover-{uuid.uuid4().hex[:8]}"
        clients["node1"].create_stream(StreamName=stream, ShardCount=3)
        for c in clients.values():
            wait_active(c, stream)
        writer = Writer(stream)
        for name, c in clients.items():
            writer.must_write(c, f"before-{name}")

        # Stop the controller leader's container (it leads some shards too, most likely).
        leader = cluster.nodes[0].admin("/admin/v1/cluster")["controller_leader"]
        assert leader in (1, 2, 3), leader
        victim = NODES[leader - 1]
        cluster.stop(victim)
        survivors = [n for n in NODES if n != victim]

        for name in survivors:
            waited = writer.first_success(clients[name], f"election-{name}")
            print(f"{name}: first write after stopping {victim} after {len(waited)} failed attempts")
        for name in survivors:
            writer.must_write(clients[name], f"without-{victim}-{name}")
        for name in survivors:
            check_reads(writer, read_everything(clients[name], stream), name)

        cluster.start(victim)
        clients[victim] = cluster.nodes[NODES.index(victim)].client()
        writer.must_write(clients[victim], f"after-restart-{victim}")
        for name in survivors:
            writer.must_write(clients[name], f"after-restart-{name}")

        for name, c in clients.items():

            def caught_up(c=c):
                found = read_everything(c, stream)
                return found if set(writer.acked) <= {data for _, _, data in found} else None

            check_reads(writer, poll(caught_up, timeout=60, what=f"{name} to have every acknowledged record"), name)
        print(f"{len(writer.acked)} records acknowledged, {len(writer.uncertain)} uncertain; stopped {victim}")
