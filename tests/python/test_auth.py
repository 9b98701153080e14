"""Authentication (`kinesin server --credentials FILE`): every request must carry a valid SigV4
signature of a principal in the file and acts in that principal's account. boto3, the AWS CLI,
CBOR and presigned URLs with the right keys work; each fault gets AWS's error; the file is
re-read when it changes; the admin API is for admin principals only (`kinesin ctl` signs with the
AWS_* variables); /healthz and /metrics stay open.

alice uses conftest's ACCESS_KEY/SECRET_KEY, so the shared helpers (raw_request, aws_cli,
CborKinesis) sign as her."""

import datetime
import hashlib
import http.client
import json
import os
import subprocess
import time
import urllib.request

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import (
    ACCESS_KEY,
    JSON_CONTENT_TYPE,
    REGION,
    SECRET_KEY,
    TARGET_PREFIX,
    RawResponse,
    Server,
    aws_cli,
    create_stream,
    kinesin_bin,
    poll,
    raw_request,
    unique_name,
)
from kinesis_cbor import CborKinesis, KinesisCborError

ALICE = dict(name="alice", account="111111111111", key=ACCESS_KEY, secret=SECRET_KEY, admin=True)
BOB = dict(name="bob", account="222222222222", key="AKIABOBEXAMPLE000002", secret="bob-secret-key", admin=False)
CAROL = dict(name="carol", account="222222222222", key="AKIACAROLEXAMPLE0003", secret="carol-secret", admin=False)

MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)


# Everything in the Kinesis API, for users without `policies` of their own (policies themselves
# are test_policies.py's).
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}


def credentials_toml(*users):
    tables = []
    for u in users:
        # A JSON string is a valid TOML basic string.
        policies = ", ".join(json.dumps(json.dumps(p)) for p in u.get("policies", [ALLOW_ALL]))
        tables.append(
            "[[user]]\n"
            f'name = "{u["name"]}"\naccount = "{u["account"]}"\n'
            f'access_key_id = "{u["key"]}"\nsecret_access_key = "{u["secret"]}"\n'
            f"admin = {'true' if u['admin'] else 'false'}\npolicies = [{policies}]\n"
        )
    return "\n".join(tables)


@pytest.fixture(scope="module")
def creds_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("creds") / "credentials.toml"
    path.write_text(credentials_toml(ALICE, BOB))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, creds_path):
    s = Server(tmp_path_factory.mktemp("kinesin-auth"), extra_args=["--credentials", str(creds_path)])
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


def client(server, user, secret=None, region=REGION):
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=server.endpoint,
        region_name=region,
        aws_access_key_id=user["key"],
        aws_secret_access_key=secret or user["secret"],
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30, connect_timeout=10),
    )


def error_of(call):
    with pytest.raises(ClientError) as info:
        call()
    err = info.value.response["Error"]
    return err["Code"], err["Message"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def sign(server, op, body, user=ALICE, region=REGION, service="kinesis", headers=None):
    """SigV4 headers (botocore's signer) for POST / with `op` and `body` (bytes)."""
    all_headers = {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": TARGET_PREFIX + op, **(headers or {})}
    request = AWSRequest(method="POST", url=server.endpoint + "/", data=body, headers=all_headers)
    SigV4Auth(Credentials(user["key"], user["secret"]), service, region).add_auth(request)
    return dict(request.headers.items())


def send(server, body, headers, method="POST", path="/"):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return RawResponse(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def assert_error(response, error_type, message=None, status=400):
    assert (response.status, response.error_type) == (status, error_type), response
    if message is not None:
        assert response.error_message == message, response


def test_boto3_and_the_cli_with_the_right_keys(server):
    alice = client(server, ALICE)
    name = create_stream(alice, shards=1)
    summary = alice.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert f":{ALICE['account']}:stream/{name}" in summary["StreamARN"]
    shard = alice.put_record(StreamName=name, Data=b"signed", PartitionKey="k")["ShardId"]
    iterator = alice.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = alice.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    assert [r["Data"] for r in records] == [b"signed"]
    # The AWS CLI signs as alice (conftest's keys).
    out = aws_cli(server, "kinesis", "describe-stream-summary", "--stream-name", name)
    assert out["StreamDescriptionSummary"]["StreamARN"] == summary["StreamARN"]


def test_accounts_do_not_see_each_others_streams(server):
    alice, bob = client(server, ALICE), client(server, BOB)
    name = create_stream(alice, shards=1)
    assert name not in bob.list_streams()["StreamNames"]
    code, message, _ = error_of(lambda: bob.describe_stream_summary(StreamName=name))
    assert (code, message) == ("ResourceNotFoundException", f"Stream {name} under account {BOB['account']} not found.")
    # The same name in bob's account is another stream.
    create_stream(bob, shards=1, name=name)
    arn = bob.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    assert f":{BOB['account']}:stream/{name}" in arn
    assert name in alice.list_streams()["StreamNames"]


def test_wrong_secret_and_unknown_key(server):
    wrong = client(server, ALICE, secret="not-the-secret")
    assert error_of(wrong.list_streams) == ("InvalidSignatureException", MISMATCH, 400)
    stranger = dict(BOB, key="AKIANOBODYEXAMPLE009")
    assert error_of(client(server, stranger).list_streams) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
        400,
    )


def test_unsigned_requests_are_refused(server):
    # AWS answers 400 with a JSON body when the content type is one it speaks (kinesalite's
    # connection tests, recorded against AWS); see kinesin-api's error.rs.
    response = raw_request(server, "ListStreams", {}, sign=False)
    assert_error(response, "MissingAuthenticationTokenException", "Missing Authentication Token")


def test_an_unsigned_or_unknown_request_is_refused_before_its_body_arrives(server):
    """The headers alone decide these: the node answers without waiting for (or reading) a body
    it would only throw away. Before, it waited up to 30 s for the 10 MB announced here and then
    answered that the body could not be read."""
    import socket

    def headers_only(extra):
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            sock.sendall(
                (
                    "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/x-amz-json-1.1\r\n"
                    "X-Amz-Target: Kinesis_20131202.ListStreams\r\n"
                    f"{extra}Content-Length: 10000000\r\n\r\n"
                ).encode()
            )
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return reply.decode(errors="replace")

    assert "MissingAuthenticationTokenException" in headers_only("")
    unknown = (
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIANOBODY/20260101/us-east-1/kinesis/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64 + "\r\nX-Amz-Date: 20260101T000000Z\r\n"
    )
    assert "UnrecognizedClientException" in headers_only(unknown)


def test_a_tampered_body_or_signed_header_is_refused(server):
    body = json.dumps({"Limit": 5}).encode()
    headers = sign(server, "ListStreams", body)
    assert send(server, body, headers).status == 200
    assert_error(send(server, json.dumps({"Limit": 6}).encode(), headers), "InvalidSignatureException", MISMATCH)
    tampered = dict(headers, **{"X-Amz-Target": TARGET_PREFIX + "DescribeLimits"})
    assert_error(send(server, body, tampered), "InvalidSignatureException", MISMATCH)
    # A claimed payload hash that is not the body's.
    claimed = sign(server, "ListStreams", body, headers={"X-Amz-Content-SHA256": hashlib.sha256(b"x").hexdigest()})
    assert_error(send(server, body, claimed), "InvalidSignatureException", MISMATCH)


def test_wrong_region_or_service_in_the_scope(server):
    body = b"{}"
    headers = sign(server, "ListStreams", body)
    moved = dict(headers, Authorization=headers["Authorization"].replace(f"/{REGION}/", "/eu-west-1/"))
    assert_error(send(server, body, moved), "InvalidSignatureException", MISMATCH)
    other_service = sign(server, "ListStreams", body, service="dynamodb")
    assert_error(
        send(server, body, other_service),
        "InvalidSignatureException",
        "Credential should be scoped to correct service: 'kinesis'. ",
    )
    # Signed for another region, the request acts in that region.
    eu = client(server, ALICE, region="eu-west-1")
    assert eu.list_streams()["StreamNames"] == []


@pytest.mark.parametrize("minutes", [-10, 10])
def test_dates_ten_minutes_off_are_refused(server, monkeypatch, minutes):
    then = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: then)
    body = b"{}"
    headers = sign(server, "ListStreams", body)
    monkeypatch.undo()
    response = send(server, body, headers)
    assert_error(response, "InvalidSignatureException")
    stamp = then.strftime("%Y%m%dT%H%M%SZ")
    if minutes < 0:
        assert response.error_message.startswith(f"Signature expired: {stamp} is now earlier than "), response
        assert response.error_message.endswith(" - 5 min.)"), response
    else:
        assert response.error_message.startswith(f"Signature not yet current: {stamp} is still later than "), response
        assert response.error_message.endswith(" + 5 min.)"), response


def test_a_presigned_url_works_until_it_expires(server):
    body = b"{}"
    headers = {
        "Content-Type": JSON_CONTENT_TYPE,
        "X-Amz-Target": TARGET_PREFIX + "ListStreams",
        # The body is not in a presigned request's query: its hash is signed as this header.
        "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest(),
    }
    request = AWSRequest(method="POST", url=server.endpoint + "/", headers=headers)
    SigV4QueryAuth(Credentials(ALICE["key"], ALICE["secret"]), "kinesis", REGION, expires=1).add_auth(request)
    path = request.url[len(server.endpoint):]
    assert "X-Amz-Signature=" in path and "X-Amz-Expires=1" in path
    sent = dict(request.headers.items())
    first = send(server, body, sent, path=path)
    assert first.status == 200, first
    assert "StreamNames" in first.json()
    expired = poll(
        lambda: (r := send(server, body, sent, path=path)).status != 200 and r,
        timeout=10,
        what="the presigned URL to expire",
    )
    assert_error(expired, "InvalidSignatureException")
    assert expired.error_message.startswith("Signature expired: "), expired
    # A presigned URL and an Authorization header at once.
    both = dict(sent, Authorization=sign(server, "ListStreams", body)["Authorization"])
    assert_error(
        send(server, body, both, path=path),
        "InvalidSignatureException",
        "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
    )


@pytest.mark.parametrize("transport", ["http1", "h2c"])
def test_cbor_requests_signed_by_botocore(server, transport):
    # Over h2c there is no Host header: the :authority is what was signed.
    cbor = CborKinesis(server.endpoint, transport=transport)
    try:
        assert "StreamNames" in cbor.call("ListStreams")
    finally:
        cbor.close()
    raw = cbor.signed_headers("ListStreams", b"\xbf\xff")
    authorization = raw["Authorization"]
    flipped = authorization[:-1] + ("1" if authorization.endswith("0") else "0")
    response = send(server, b"\xbf\xff", dict(raw, Authorization=flipped))
    assert response.status == 400 and b"InvalidSignatureException" in response.body, response


def test_a_changed_credentials_file_is_picked_up(server, creds_path):
    carol = client(server, CAROL)
    assert error_of(carol.list_streams)[0] == "UnrecognizedClientException"
    creds_path.write_text(credentials_toml(ALICE, BOB, CAROL))
    poll(lambda: _works(carol.list_streams), timeout=15, what="carol's key to be accepted")
    # A bad file is logged and the previous credentials stay.
    creds_path.write_text("[[user]]\nname = 'x'\n")
    poll(lambda: "cannot be used" in log_of(server), timeout=15, what="the bad file to be reported")
    assert _works(carol.list_streams)
    creds_path.write_text(credentials_toml(ALICE, BOB))
    poll(lambda: not _works(carol.list_streams), timeout=15, what="carol's key to be dropped")


def log_of(server):
    with open(server.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _works(call):
    try:
        call()
        return True
    except ClientError:
        return False


def signed_get(server, path, user):
    request = AWSRequest(method="GET", url=server.endpoint + path)
    SigV4Auth(Credentials(user["key"], user["secret"]), "kinesis", REGION).add_auth(request)
    return send(server, None, dict(request.headers.items()), method="GET", path=path)


def ctl(server, *args, user=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KINESIN_", "AWS_"))}
    if user:
        env.update(AWS_ACCESS_KEY_ID=user["key"], AWS_SECRET_ACCESS_KEY=user["secret"], AWS_REGION=REGION)
    cmd = [kinesin_bin(), "ctl", "--endpoint", server.endpoint, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def test_the_admin_api_is_for_admins(server):
    assert signed_get(server, "/admin/v1/cluster", ALICE).status == 200
    refused = signed_get(server, "/admin/v1/cluster", BOB)
    assert_error(
        refused,
        "AccessDeniedException",
        f"User: arn:aws:iam::{BOB['account']}:user/bob is not authorized to perform: kinesin:Admin "
        "on resource: /admin/v1/cluster",
    )
    unsigned = send(server, None, {}, method="GET", path="/admin/v1/cluster")
    assert_error(unsigned, "MissingAuthenticationTokenException", "Missing Authentication Token")
    # /healthz and /metrics stay open.
    for path in ("/healthz", "/metrics"):
        with urllib.request.urlopen(server.endpoint + path, timeout=10) as r:
            assert r.status == 200

    out = ctl(server, "cluster", "--json", user=ALICE)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["node_id"] == 1
    # Without --account, a stream of the signing admin's account.
    name = create_stream(client(server, ALICE), shards=2)
    out = ctl(server, "shards", name, user=ALICE)
    assert out.returncode == 0, out.stderr
    assert "shardId-000000000001" in out.stdout, out.stdout
    for user in (BOB, None):
        out = ctl(server, "cluster", user=user)
        assert out.returncode != 0, out.stdout
        expected = "AccessDeniedException" if user else "MissingAuthenticationTokenException"
        assert expected in out.stderr, out.stderr


def test_without_credentials_nothing_is_checked_and_a_warning_is_printed(server_factory):
    s = server_factory()
    assert "requests are NOT authenticated" in log_of(s)
    stranger = dict(BOB, key="AKIAANYONEEXAMPLE000", secret="anything")
    assert "StreamNames" in client(s, stranger).list_streams()
    assert raw_request(s, "ListStreams", {}, sign=False).status == 200
    assert signed_get(s, "/admin/v1/cluster", stranger).status == 200


def test_secrets_are_never_logged(server):
    log = log_of(server)
    for user in (ALICE, BOB, CAROL):
        assert user["secret"] not in log
