"""Shared fixtures and helpers for Kinesin's black-box client tests.

The tests start the real `kinesin server` binary (found through $KINESIN_BIN) on free loopback
ports with a temporary data directory, and talk to it the way users do: boto3, the AWS CLI and,
for malformed requests, raw SigV4-signed HTTP.
"""

import base64
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import namedtuple

import boto3
import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
MAX_HASH_KEY = 2**128 - 1
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "Kinesis_20131202."

STARTUP_DEADLINE_SECS = 60.0
STOP_DEADLINE_SECS = 30.0


# --------------------------------------------------------------------------------------------
# Ports, names, small utilities
# --------------------------------------------------------------------------------------------


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n):
    """n distinct free ports (the sockets are held open together so they cannot coincide)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def unique_name(prefix="t"):
    """A stream name nobody else uses: tests on a shared server must never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def md5_hash_key(partition_key):
    """The 128-bit hash key Kinesis derives from a partition key: MD5 of its UTF-8 bytes."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def shard_for_hash(shards, hash_key):
    """The ShardId whose HashKeyRange contains hash_key (among the given shards)."""
    matches = [
        s["ShardId"]
        for s in shards
        if int(s["HashKeyRange"]["StartingHashKey"]) <= hash_key <= int(s["HashKeyRange"]["EndingHashKey"])
    ]
    assert len(matches) == 1, f"hash key {hash_key} is in {len(matches)} shards: {shards}"
    return matches[0]


def error_code(exc):
    """The error code of a botocore ClientError (`__type` with any `namespace#` prefix removed)."""
    return exc.response["Error"]["Code"].split("#")[-1]



def expect_error(code, fn, *args, **kwargs):
    """Call fn and assert it fails with the given error code (or one of a tuple of codes), HTTP 400."""
    codes = (code,) if isinstance(code, str) else tuple(code)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        fn(*args, **kwargs)
    got = error_code(ei.value)
    assert got in codes, f"expected {codes}, got {got}: {ei.value.response.get('Error')}"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400, ei.value.response
    return ei.value

def poll(predicate, timeout=30.0, interval=0.05, what="condition"):
    """Call predicate until it returns something truthy, or fail after `timeout` seconds.

    Polls with a growing interval (capped at 0.5 s). Returns the truthy value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def backoff_delay(attempt):
    """Seconds to wait before retry `attempt` (0, 1, ...): exponential with full jitter, as the AWS
    SDKs do (50 ms doubling, capped at 1 s), so clients refused together do not retry together."""
    return random.uniform(0, min(1.0, 0.05 * 2**attempt))


def retry_throttled(fn, *args, attempts=50, **kwargs):
    """Call a boto3 operation, retrying (bounded) only on AWS's documented throttling errors.

    Kinesis limits reads per shard (GetRecords: 5 calls and 2 MiB per second, which Kinesin
    enforces) and several control-plane calls; a well-behaved client backs off and retries."""
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except botocore.exceptions.ClientError as e:
            if error_code(e) not in ("ProvisionedThroughputExceededException", "LimitExceededException") or i == attempts - 1:
                raise
        time.sleep(backoff_delay(i))



def put_records_retrying(client, timeout=10.0, **kwargs):
    """PutRecords, resending only the records refused for throttling until all are in.

    Returns the per-record results in request order (as PutRecords' `Records`). A failure other
    than ProvisionedThroughputExceeded fails the test at once: only throttling is worth waiting out,
    as a Kinesis producer would (the shard's default write limit is AWS's 1 MiB/s)."""
    records = list(kwargs.pop("Records"))
    results = [None] * len(records)
    pending = list(range(len(records)))
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        resp = client.put_records(Records=[records[i] for i in pending], **kwargs)
        still = []
        for i, r in zip(pending, resp["Records"]):
            if "ErrorCode" not in r:
                results[i] = r
            elif r["ErrorCode"] == "ProvisionedThroughputExceededException":
                still.append(i)
            else:
                raise AssertionError(f"record {i} refused: {r}")
        pending = still
        if not pending:
            return results
        if time.monotonic() >= deadline:
            raise AssertionError(f"{len(pending)} record(s) still throttled after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)

# --------------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------------

_LIVE_SERVERS = []  # every Server started and not yet cleaned up (for logs on failure)
_LIVE_LOCK = threading.Lock()


def kinesin_bin(variable="KINESIN_BIN"):
    """The binary $variable names: KINESIN_BIN the one under test, KINESIN_FAILPOINTS_BIN its build
    with failpoints (`make failpoints-bin`)."""
    path = os.environ.get(variable)
    if not path:
        pytest.fail(
            f"{variable} is not set: point it at the kinesin binary, e.g. "
            f"{variable}=/root/.cache/kinesin-target/debug/kinesin (`make test` sets it)",
            pytrace=False,
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{variable}={path!r} is not an executable file", pytrace=False)
    return path


# A server certificate and its key (--tls-cert, --tls-key), and the CA file clients trust.
TlsFiles = namedtuple("TlsFiles", "cert key ca")


class Server:
    """One `kinesin server` process on its own data dir and ports.

    With `tls` (TlsFiles) it also serves over TLS on a port of its own; `plain=False` switches the
    plain-HTTP port off (`--listen off`), and `endpoint` is then the TLS one.
    `restart()` reuses the same data dir and ports, so what was written must still be there.
    `failpoints` (the FAILPOINTS value) runs the build with failpoints instead."""

    def __init__(self, base_dir, extra_args=(), account_id=None, node_id=1, tls=None, plain=True,
                 failpoints=None):
        assert plain or tls, "a server needs the plain port, TLS, or both"
        self.base_dir = str(base_dir)
        self.data_dir = os.path.join(self.base_dir, "data")
        self.log_path = os.path.join(self.base_dir, "server.log")
        os.makedirs(self.base_dir, exist_ok=True)
        self.port, self.cluster_port, self.tls_port = free_ports(3)
        self.node_id = node_id
        self.account_id = account_id
        self.tls = tls
        self.plain = plain
        self.extra_args = list(extra_args)
        self.failpoints = failpoints
        self.proc = None
        self.starts = 0

    # -- addresses -----------------------------------------------------------------------------
    @property
    def plain_endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_endpoint(self):
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def endpoint(self):
        return self.plain_endpoint if self.plain else self.tls_endpoint

    @property
    def ca_bundle(self):
        """The CA file that verifies this server's TLS certificate (None without TLS)."""
        return self.tls.ca if self.tls else None

    def command(self):
        cmd = [
            kinesin_bin("KINESIN_FAILPOINTS_BIN" if self.failpoints else "KINESIN_BIN"),
            "server",
            "--node-id", str(self.node_id),
            "--data-dir", self.data_dir,
            "--listen", f"127.0.0.1:{self.port}" if self.plain else "off",
            "--cluster-listen", f"127.0.0.1:{self.cluster_port}",
        ]
        if self.tls:
            cmd += [
                "--tls-listen", f"127.0.0.1:{self.tls_port}",
                "--tls-cert", self.tls.cert,
                "--tls-key", self.tls.key,
            ]
        if self.account_id is not None:
            cmd += ["--account-id", self.account_id]
        return cmd + self.extra_args

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        # Settings must come only from the flags above: drop any KINESIN_* from the environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KINESIN_")}
        env.setdefault("RUST_BACKTRACE", "1")
        if self.failpoints:
            env["FAILPOINTS"] = self.failpoints
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.base_dir,
            )
        with _LIVE_LOCK:
            if self not in _LIVE_SERVERS:
                _LIVE_SERVERS.append(self)
        self.wait_healthy()
        return self

    def healthy(self):
        context = ssl.create_default_context(cafile=self.ca_bundle) if self.endpoint.startswith("https:") else None
        try:
            with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=2, context=context) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, OSError, http.client.HTTPException):
            return False

    def wait_healthy(self, timeout=STARTUP_DEADLINE_SECS):
        deadline = time.monotonic() + timeout
        interval = 0.02
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"kinesin exited with code {self.proc.returncode} before serving /healthz\n"
                    f"--- server log tail ---\n{self.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(interval)
            interval = min(interval * 1.5, 0.25)
        raise RuntimeError(
            f"kinesin did not answer /healthz within {timeout}s\n--- server log tail ---\n{self.log_tail()}"
        )

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_DEADLINE_SECS):
        """Graceful stop: SIGTERM, then wait. Returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
                return None
        return self.proc.returncode

    def kill9(self):
        """Crash stop: SIGKILL, no chance to flush anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_DEADLINE_SECS)

    def restart(self):
        """Start again on the same data dir and ports (stopping gracefully first if running)."""
        if self.running:
            self.stop()
        return self.start()

    def cleanup(self):
        try:
            if self.running:
                self.stop()
        finally:
            with _LIVE_LOCK:
                if self in _LIVE_SERVERS:
                    _LIVE_SERVERS.remove(self)

    # -- diagnostics ---------------------------------------------------------------------------
    def log_tail(self, lines=60):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(text.splitlines()[-lines:])

    # -- clients -------------------------------------------------------------------------------
    def client(self, region=REGION, **config_overrides):
        return make_client(self.endpoint, region=region, verify=self.ca_bundle, **config_overrides)

    def tls_client(self, region=REGION, **config_overrides):
        """A boto3 client on the TLS port, trusting the server's CA."""
        return make_client(self.tls_endpoint, region=region, verify=self.ca_bundle, **config_overrides)

    def __repr__(self):
        return f"Server({self.endpoint}, data={self.data_dir})"


def make_client(endpoint, region=REGION, verify=None, **config_overrides):
    """A boto3 Kinesis client; `verify` is the CA file for an https:// endpoint."""
    # No retries: botocore's `max_attempts` counts retries (1 would mean two tries, and a retried
    # write could be stored twice); `total_max_attempts` counts tries.
    cfg = dict(retries={"total_max_attempts": 1}, read_timeout=30, connect_timeout=10)
    cfg.update(config_overrides)
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        verify=verify,
        config=Config(**cfg),
    )


# Attach the server log tail to the report of any failing test, so the failure shows what the
# server was saying at the time.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        with _LIVE_LOCK:
            servers = list(_LIVE_SERVERS)
        for s in servers:
            report.sections.append((f"kinesin server log tail ({s.endpoint}, {s.log_path})", s.log_tail()))


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server per test module. Tests sharing it must use unique stream names."""
    s = Server(tmp_path_factory.mktemp("kinesin"))
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def fresh_server(tmp_path):
    """A server of this test's own, for tests that stop, kill or restart it."""
    s = Server(tmp_path / "kinesin")
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def server_factory(tmp_path):
    """Start extra servers with their own flags: server_factory(extra_args=[...], account_id=...,
    tls=TlsFiles(...), plain=False); see Server."""
    started = []

    def make(extra_args=(), account_id=None, **server_kwargs):
        s = Server(tmp_path / f"kinesin-{len(started)}", extra_args=extra_args, account_id=account_id, **server_kwargs)
        started.append(s)
        s.start()
        return s

    try:
        yield make
    finally:
        for s in started:
            s.cleanup()


@pytest.fixture(scope="module")
def kinesis(server):
    """A boto3 Kinesis client for the module's server (us-east-1, dummy credentials, no retries)."""
    return server.client()


@pytest.fixture(scope="module")
def kinesis_unvalidated(server):
    """Like `kinesis`, but botocore does not validate parameters client-side, so the request
    reaches the server and the server's own validation is what is tested."""
    return server.client(parameter_validation=False)


# --------------------------------------------------------------------------------------------
# Stream helpers
# --------------------------------------------------------------------------------------------


def wait_active(client, name=None, arn=None, timeout=30.0):
    """Poll DescribeStreamSummary until the stream is ACTIVE; returns the summary."""
    kwargs = {"StreamName": name} if name is not None else {"StreamARN": arn}

    def check():
        try:
            d = client.describe_stream_summary(**kwargs)["StreamDescriptionSummary"]
        except botocore.exceptions.ClientError as e:
            # A freshly created stream may not be visible yet on every path; keep polling.
            if error_code(e) in ("ResourceNotFoundException", "LimitExceededException"):
                return None
            raise
        return d if d["StreamStatus"] == "ACTIVE" else None

    return poll(check, timeout=timeout, what=f"stream {kwargs} to become ACTIVE")


def wait_deleted(client, name, timeout=30.0):
    def gone():
        try:
            client.describe_stream_summary(StreamName=name)
        except botocore.exceptions.ClientError as e:
            if error_code(e) == "ResourceNotFoundException":
                return True
            raise
        return False

    poll(gone, timeout=timeout, what=f"stream {name} to be deleted")


def create_stream(client, shards=1, name=None, **kwargs):
    """Create a stream, wait until ACTIVE, return its name."""
    name = name or unique_name()
    if shards is not None:
        kwargs["ShardCount"] = shards
    client.create_stream(StreamName=name, **kwargs)
    wait_active(client, name)
    return name


def list_all_shards(client, name):
    """All shards of a stream via ListShards (following NextToken, bounded)."""
    shards = []
    resp = retry_throttled(client.list_shards, StreamName=name)
    for _ in range(10_000):
        shards += resp["Shards"]
        token = resp.get("NextToken")
        if not token:
            return shards
        resp = retry_throttled(client.list_shards, NextToken=token)
    raise AssertionError("ListShards never stopped returning NextToken")


def read_shard(client, name, shard_id, iterator_type="TRIM_HORIZON", limit=None, max_calls=2000, **it_kwargs):
    """Read one shard from the given position until caught up; returns the list of records.

    Caught up = a call returned no records and MillisBehindLatest == 0 (or the shard ended)."""
    it = retry_throttled(
        client.get_shard_iterator, StreamName=name, ShardId=shard_id, ShardIteratorType=iterator_type, **it_kwargs
    )["ShardIterator"]
    records = []
    for _ in range(max_calls):
        kw = {"ShardIterator": it}
        if limit is not None:
            kw["Limit"] = limit
        resp = retry_throttled(client.get_records, **kw)
        records += resp["Records"]
        it = resp.get("NextShardIterator")
        if it is None:
            return records
        if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
            return records
    raise AssertionError(f"shard {shard_id} of {name} not drained after {max_calls} GetRecords calls")


# --------------------------------------------------------------------------------------------
# Raw (signed) HTTP
# --------------------------------------------------------------------------------------------


def sign_headers(endpoint, target, body, region=REGION, content_type=JSON_CONTENT_TYPE, extra_headers=None):
    """SigV4 headers for a POST / with the given X-Amz-Target and body (bytes)."""
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    if extra_headers:
        headers.update(extra_headers)
    req = AWSRequest(method="POST", url=endpoint + "/", data=body, headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesis", region).add_auth(req)
    return dict(req.headers.items())


class RawResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def error_type(self):
        return self.json().get("__type", "").split("#")[-1]

    @property
    def error_message(self):
        j = self.json()
        return j.get("message", j.get("Message"))

    def __repr__(self):
        return f"RawResponse({self.status}, {self.body[:500]!r})"


def raw_request(server, op_or_target, body, region=REGION, sign=True, content_type=JSON_CONTENT_TYPE, timeout=60):
    """POST / to the server. `op_or_target` is an operation name (prefixed with Kinesis_20131202.)
    or a full target (containing a '.'), or None for no X-Amz-Target. `body` is bytes, str or a
    JSON-serialisable object."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    target = op_or_target
    if target is not None and "." not in target:
        target = TARGET_PREFIX + target
    if sign:
        headers = sign_headers(server.endpoint, target, body, region=region, content_type=content_type)
    else:
        headers = {"Content-Type": content_type}
        if target is not None:
            headers["X-Amz-Target"] = target
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request("POST", "/", body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        return RawResponse(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# The AWS CLI
# --------------------------------------------------------------------------------------------


def aws_cli_path():
    candidates = [
        os.path.join(os.path.dirname(sys.executable), "aws"),
        "/root/.cache/kinesin-venv/bin/aws",
        shutil.which("aws"),
    ]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    pytest.fail("the AWS CLI (`aws`) was not found next to the Python running the tests", pytrace=False)


def aws_cli_major_version():
    out = subprocess.run([aws_cli_path(), "--version"], capture_output=True, text=True, timeout=60)
    text = (out.stdout + out.stderr).strip()
    # "aws-cli/1.46.3 Python/3.11.7 ..." or "aws-cli/2.x.y ..."
    try:
        return int(text.split("/")[1].split(".")[0])
    except (IndexError, ValueError):
        pytest.fail(f"cannot parse `aws --version` output: {text!r}")


class CliResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def json(self):
        return json.loads(self.stdout) if self.stdout.strip() else None


def aws_cli(server, *args, region=REGION, check=True, timeout=240, endpoint=None,
            access_key=ACCESS_KEY, secret_key=SECRET_KEY):
    """Run `aws <args> --endpoint-url ... --region ... --output json` against the server, signing
    with `access_key`/`secret_key`.

    `endpoint` defaults to server.endpoint; an https:// one is verified with `--ca-bundle
    server.ca_bundle`. With check=True (default) a non-zero exit fails the test and the parsed JSON
    output is returned; with check=False a CliResult (returncode, stdout, stderr, .json) is
    returned."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=access_key,
        AWS_SECRET_ACCESS_KEY=secret_key,
        AWS_DEFAULT_REGION=region,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_PAGER="",
        AWS_MAX_ATTEMPTS="1",
        AWS_RETRY_MODE="standard",
    )
    endpoint = endpoint or server.endpoint
    cmd = [aws_cli_path(), *args, "--endpoint-url", endpoint, "--region", region, "--output", "json"]
    if endpoint.startswith("https:") and getattr(server, "ca_bundle", None):
        cmd += ["--ca-bundle", server.ca_bundle]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    res = CliResult(out.returncode, out.stdout, out.stderr)
    if not check:
        return res
    assert out.returncode == 0, f"{' '.join(cmd)} exited {out.returncode}\nstderr: {out.stderr}\nstdout: {out.stdout}"
    return res.json


def b64(data):
    return base64.b64encode(data).decode()
