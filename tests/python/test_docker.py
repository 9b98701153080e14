"""The Docker deployment (deploy/): the image built by deploy/build-image.sh from $KINESIN_BIN, and
the three-node cluster of deploy/docker-compose.yml started by deploy/cluster.sh, driven from the
host through the published ports with the AWS CLI and boto3.

The cluster is the secure default of `cluster.sh up`: authentication with the credentials file
deploy/gen-secrets.sh makes (clients sign as its admin; unsigned and wrongly signed requests get
AWS's errors), the same keyring on every node (a stream encrypted with alias/aws/kinesis through one
node reads back in the clear through the others, and its records are nowhere in the data
directories in the clear), and mutual TLS on the cluster port.

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
import stat
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.x509.oid import NameOID

from conftest import (
    REGION,
    aws_cli_major_version,
    free_ports,
    kinesin_bin,
    list_all_shards,
    poll,
    raw_request,
    read_shard,
    wait_active,
)
from conftest import aws_cli as conftest_aws_cli

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


class AdminKeys:
    """The admin's keys deploy/gen-secrets.sh made: read from admin.env, and checked to be an admin
    principal of the credentials file the nodes mount."""

    def __init__(self, secrets_dir):
        env = {}
        for line in (Path(secrets_dir) / "admin.env").read_text().splitlines():
            if line.startswith("export "):
                name, _, value = line[len("export "):].partition("=")
                env[name] = value
        self.key_id = env["AWS_ACCESS_KEY_ID"]
        self.secret = env["AWS_SECRET_ACCESS_KEY"]
        with open(Path(secrets_dir) / "nodes" / "credentials.toml", "rb") as f:
            users = tomllib.load(f)["user"]
        [user] = [u for u in users if u["access_key_id"] == self.key_id]
        assert user["secret_access_key"] == self.secret and user["admin"] is True, user["name"]


class Endpoint:
    """A node as seen from the host: its endpoint URLs, the CA of its TLS port, and the keys its
    clients sign with (the generated admin's)."""

    def __init__(self, name, port, tls_port, ca_bundle, keys):
        self.name = name
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.tls_port = tls_port
        self.tls_endpoint = f"https://127.0.0.1:{tls_port}"
        self.ca_bundle = ca_bundle
        self.keys = keys

    def healthy(self):
        try:
            with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, OSError, http.client.HTTPException):
            return False

    def admin(self, path):
        """GET an admin API path, signed by the admin (the admin API needs an admin principal)."""
        request = AWSRequest(method="GET", url=f"{self.endpoint}{path}")
        SigV4Auth(Credentials(self.keys.key_id, self.keys.secret), "kinesis", REGION).add_auth(request)
        req = urllib.request.Request(request.url, headers=dict(request.headers.items()))
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def client(self, key_id=None, secret=None):
        # Bounded timeouts: a write that waits on a stopped leader must come back as a failure.
        return self._client(self.endpoint, None, key_id, secret)

    def tls_client(self):
        return self._client(self.tls_endpoint, self.ca_bundle)

    def _client(self, endpoint, verify, key_id=None, secret=None):
        # No retries (`total_max_attempts` counts tries): a retried write could be stored twice.
        return boto3.session.Session().client(
            "kinesis",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=key_id or self.keys.key_id,
            aws_secret_access_key=secret or self.keys.secret,
            verify=verify,
            config=Config(retries={"total_max_attempts": 1}, read_timeout=15, connect_timeout=5),
        )


def aws_cli(node, *args, endpoint=None, secret=None, check=True, timeout=240):
    """`aws <args>` against the node (conftest's aws_cli), signing with the node's generated
    admin keys, or `secret` instead of its secret."""
    return conftest_aws_cli(node, *args, endpoint=endpoint, check=check, timeout=timeout,
                            access_key=node.keys.key_id, secret_key=secret or node.keys.secret)


class Cluster:
    def __init__(self, tag, project, ports, tls_ports, files_dir):
        self.tag = tag
        self.project = project
        self.certs_dir = str(files_dir / "certs")
        self.cluster_certs_dir = str(files_dir / "cluster-certs")
        self.secrets_dir = str(files_dir / "secrets")
        self.ports, self.tls_ports = ports, tls_ports
        self.nodes = []
        self.up_output = None
        # The secure default: nothing that would switch a part of it off.
        self.env = {k: v for k, v in os.environ.items() if k not in ("KINESIN_INSECURE", "KINESIN_CLUSTER_TLS")}
        self.env.update(
            KINESIN_IMAGE=tag,
            KINESIN_COMPOSE_PROJECT=project,
            KINESIN_PUBLISH_ADDR="127.0.0.1",
            KINESIN_UP_TIMEOUT=str(int(HEALTHY_TIMEOUT)),
            # `cluster.sh up` makes the certificates and the secrets there (deploy/make-certs.sh,
            # deploy/gen-cluster-certs.sh, deploy/gen-secrets.sh).
            KINESIN_CERTS_DIR=self.certs_dir,
            KINESIN_CLUSTER_CERTS_DIR=self.cluster_certs_dir,
            KINESIN_SECRETS_DIR=self.secrets_dir,
            **{f"KINESIN_NODE{i}_PORT": str(p) for i, p in enumerate(ports, start=1)},
            **{f"KINESIN_NODE{i}_TLS_PORT": str(p) for i, p in enumerate(tls_ports, start=1)},
        )
        self.containers = {}

    def script(self, *args, check=True, timeout=300):
        return run([str(DEPLOY / "cluster.sh"), *args], env=self.env, timeout=timeout, check=check)

    def up(self):
        out = self.script("up")
        self.up_output = out.stdout + out.stderr
        keys = AdminKeys(self.secrets_dir)
        ca = os.path.join(self.certs_dir, "ca.pem")
        self.nodes = [Endpoint(n, p, t, ca, keys) for n, p, t in zip(NODES, self.ports, self.tls_ports)]
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

    def node_log(self, name):
        """A node's whole log (stdout and stderr of its container)."""
        out = run(["docker", "logs", self.containers[name]], timeout=60)
        return out.stdout + out.stderr

    def exec(self, name, *cmd, check=False, timeout=60):
        """Runs cmd in a node's container as the server's unprivileged user."""
        return run(["docker", "exec", self.containers[name], *cmd], check=check, timeout=timeout)

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
    c = Cluster(tag, f"kinesin-test-{run_id}", ports[:3], ports[3:], tmp_path_factory.mktemp("deploy-files"))
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
# The secure default: authentication, one keyring on every node, mutual TLS between the nodes
# --------------------------------------------------------------------------------------------


def error_code_of(call):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call()
    return info.value.response["Error"]["Code"]


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_requests_must_be_signed_by_a_principal_of_the_generated_credentials(cluster, logs_on_failure):
    with logs_on_failure:
        keys = cluster.nodes[0].keys
        for node in cluster.nodes:
            unsigned = raw_request(node, "ListStreams", {}, sign=False, timeout=10)
            assert (unsigned.status, unsigned.error_type, unsigned.error_message) == (
                400, "MissingAuthenticationTokenException", "Missing Authentication Token"), unsigned
            wrong_secret = node.client(secret=keys.secret[:-1] + ("A" if keys.secret[-1] != "A" else "B"))
            assert error_code_of(wrong_secret.list_streams) == "InvalidSignatureException"
            unknown_key = node.client(key_id="AKIANOBODYKNOWS00000")
            assert error_code_of(unknown_key.list_streams) == "UnrecognizedClientException"
        wrong = aws_cli(cluster.nodes[1], "kinesis", "list-streams", secret="not-the-secret", check=False)
        assert wrong.returncode != 0 and "InvalidSignatureException" in wrong.stderr, wrong.stderr

        # The admin API wants the admin's signature; /healthz stays open (the health checks use it).
        conn = http.client.HTTPConnection("127.0.0.1", cluster.nodes[2].port, timeout=10)
        try:
            conn.request("GET", "/admin/v1/cluster")
            response = conn.getresponse()
            assert b"MissingAuthenticationTokenException" in response.read(), response.status
        finally:
            conn.close()
        assert cluster.nodes[2].admin("/admin/v1/cluster")["controller_leader"] in (1, 2, 3)

        # What `cluster.sh up` printed works: its export lines, then `kinesin ctl` signs with them.
        exports = [line.strip() for line in cluster.up_output.splitlines() if line.strip().startswith("export AWS_")]
        assert exports and f"export AWS_ACCESS_KEY_ID={keys.key_id} AWS_DEFAULT_REGION=us-east-1" in exports, cluster.up_output
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KINESIN_"))}
        env.update(CTL_BIN=kinesin_bin(), CTL_ENDPOINT=cluster.nodes[0].endpoint)
        script = "\n".join([*exports, 'exec "$CTL_BIN" ctl cluster --json --endpoint "$CTL_ENDPOINT"'])
        ctl = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
        assert ctl.returncode == 0, ctl.stderr
        assert json.loads(ctl.stdout)["node_id"] == 1

        # The secret is in no log, nor in what `cluster.sh up` printed.
        assert keys.secret not in cluster.up_output
        for name in NODES:
            assert keys.secret not in cluster.node_log(name), f"{name}'s log holds the secret"

        # Private to their owner on the host (0700 directories); what the nodes mount is readable
        # by the server's user in the container (the cluster would not have started otherwise).
        secrets = Path(cluster.secrets_dir)
        for private in (secrets, Path(cluster.cluster_certs_dir), Path(cluster.certs_dir)):
            assert mode_of(private) == 0o700, private
        assert mode_of(secrets / "admin.env") == 0o600
        assert mode_of(secrets / "nodes") == 0o755
        for name in ("credentials.toml", "keyring.toml"):
            assert mode_of(secrets / "nodes" / name) == 0o644, name


def test_a_stream_sealed_through_one_node_reads_in_the_clear_through_the_others(cluster, logs_on_failure):
    with logs_on_failure:
        writer, readers = cluster.nodes[0], cluster.nodes[1:]
        c = writer.client()
        stream = f"sealed-{uuid.uuid4().hex[:8]}"
        c.create_stream(StreamName=stream, ShardCount=1)
        wait_active(c, stream)
        # One record before encryption (stored as sent: the control of the data-directory check),
        # one after (sealed with a data key of the stream, wrapped by the keyring's default key).
        plain, sealed = (f"{what}-{uuid.uuid4().hex}".encode() for what in ("plain", "sealed"))
        first = c.put_record(StreamName=stream, Data=plain, PartitionKey="pk")
        c.start_stream_encryption(StreamName=stream, EncryptionType="KMS", KeyId="alias/aws/kinesis")
        summary = wait_active(c, stream)
        assert (summary["EncryptionType"], summary["KeyId"]) == ("KMS", "alias/aws/kinesis")
        second = c.put_record(StreamName=stream, Data=sealed, PartitionKey="pk")
        assert second["EncryptionType"] == "KMS"

        expected = [(plain, first["SequenceNumber"], None), (sealed, second["SequenceNumber"], "KMS")]
        for node in readers:
            reader = node.client()

            def both(reader=reader):
                records = read_shard(reader, stream, first["ShardId"])
                return records if len(records) >= 2 else None

            records = poll(both, timeout=30, what=f"both records through {node.name}")
            got = [(r["Data"], r["SequenceNumber"], r.get("EncryptionType")) for r in records]
            assert got == expected, f"{node.name}: {got}"

        # The sealed record is in no node's data directory in the clear; the plain one is (so the
        # search would have found it).
        found = {}
        for name in NODES:
            for data in (plain, sealed):
                out = cluster.exec(name, "grep", "-rlaFs", "-e", data.decode(), "/var/lib/kinesin")
                if out.stdout.strip():
                    found.setdefault(data, []).append(name)
        assert sealed not in found, f"the sealed record is in the clear on {found[sealed]}"
        assert plain in found, "the plain record was not found in any data directory: the search is broken"


# curl's exit codes for a host not resolved, a connection refused, a timeout.
CURL_NO_CONNECTION = (6, 7, 28)


def test_the_cluster_port_speaks_mutual_tls_only(cluster, logs_on_failure):
    with logs_on_failure:
        for name in NODES:
            assert "cluster transport in mutual TLS" in cluster.node_log(name), name
        tls = "/etc/kinesin/cluster-tls"
        for src, dst in zip(NODES, NODES[1:] + NODES[:1]):
            url = f"https://{dst}:7000/"
            curl = ["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_version}", "--cacert", f"{tls}/ca.pem"]
            # With a certificate of the cluster's CA (the node's own) the handshake succeeds.
            ok = cluster.exec(src, *curl, "--cert", f"{tls}/cert.pem", "--key", f"{tls}/key.pem", url)
            assert ok.returncode == 0 and ok.stdout == "2", f"{src} -> {dst}: {ok}"
            # Without one the node ends the handshake (TLS alert "certificate required"; curl reports
            # it in several ways depending on when it notices), and plain HTTP gets no HTTP answer.
            # Either fails, and not for want of a connection (the call above just had one).
            no_cert = cluster.exec(src, *curl, url)
            plain = cluster.exec(src, "curl", "-sS", "--max-time", "10", "-o", "/dev/null", f"http://{dst}:7000/")
            for out in (no_cert, plain):
                assert out.returncode not in (0, *CURL_NO_CONNECTION), f"{src} -> {dst}: {out}"


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
