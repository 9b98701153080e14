"""The Kinesis API over TLS (--tls-listen): what production clients need (the KPL and Fluent Bit
connect only over TLS; the Java async client speaks HTTP/2 chosen by ALPN).

Every test makes its own private CA and server certificates (the `cryptography` package), starts
the real binary with them, and talks to it with boto3 (`verify=` the CA file), the AWS CLI
(`--ca-bundle`), httpx over HTTP/2 and HTTP/1.1, and raw sockets. Certificates replaced on disk, or
announced with SIGHUP, must be served to new connections without a restart.
"""

import datetime
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import time
import types

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import (
    Server,
    TlsFiles,
    aws_cli,
    aws_cli_major_version,
    create_stream,
    poll,
    read_shard,
    sign_headers,
    unique_name,
)

RELOAD_DEADLINE_SECS = 20.0

# --------------------------------------------------------------------------------------------
# A private CA and its server certificates
# --------------------------------------------------------------------------------------------

_PEM = serialization.Encoding.PEM
# The key formats a deployment may hand the server: PKCS#8, and the traditional PKCS#1 (RSA) and
# SEC1 (EC) that `openssl genrsa` / `openssl ecparam -genkey` write.
PKCS8 = serialization.PrivateFormat.PKCS8
TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder):
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))


class Ca:
    """A private certificate authority in `directory` (its certificate: `ca.pem`)."""

    def __init__(self, directory):
        self.directory = str(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            _validity(x509.CertificateBuilder())
            .subject_name(_name("kinesin test CA"))
            .issuer_name(_name("kinesin test CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.path = os.path.join(self.directory, "ca.pem")
        with open(self.path, "wb") as f:
            f.write(self.cert.public_bytes(_PEM))

    def issue(self, common_name, key_type="ec", key_format=PKCS8, client_auth=False):
        """A server certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM) bytes.
        `client_auth`: usable as a client's too (a node's on the cluster port, test_cluster_mtls)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if key_type == "rsa" else ec.generate_private_key(ec.SECP256R1())
        cert = (
            _validity(x509.CertificateBuilder())
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else [])
                ),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(_PEM, key_format, serialization.NoEncryption())
        return cert.public_bytes(_PEM), key_pem

    def server_files(self, common_name, **kwargs):
        """Issues a certificate and writes it: TlsFiles for Server(tls=...)."""
        files = TlsFiles(
            cert=os.path.join(self.directory, f"{common_name}.cert.pem"),
            key=os.path.join(self.directory, f"{common_name}.key.pem"),
            ca=self.path,
        )
        replace_files(files, *self.issue(common_name, **kwargs))
        return files


def replace_files(files, cert_pem, key_pem):
    """Puts a new pair in place the way deployment tools do: written aside, renamed over the old
    files (key first, so a node may briefly see the new key with the old certificate)."""
    for path, data in ((files.key, key_pem), (files.cert, cert_pem)):
        with open(path + ".new", "wb") as f:
            f.write(data)
        os.replace(path + ".new", path)


def served_cert(server):
    """The certificate the TLS port presents now to a new connection (verified against the CA)."""
    pem = ssl.get_server_certificate(("127.0.0.1", server.tls_port), ca_certs=server.ca_bundle, timeout=10)
    return x509.load_pem_x509_certificate(pem.encode())


def common_name(cert):
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def await_served(server, name):
    """Polls new handshakes until the server presents the certificate named `name`."""
    poll(
        lambda: common_name(served_cert(server)) == name,
        timeout=RELOAD_DEADLINE_SECS,
        what=f"the TLS port to present the certificate {name!r}",
    )


def verifying_context(server):
    return ssl.create_default_context(cafile=server.ca_bundle)


def signed_post(client, endpoint, operation, payload):
    body = json.dumps(payload).encode()
    headers = sign_headers(endpoint, f"Kinesis_20131202.{operation}", body)
    return client.post(endpoint + "/", content=body, headers=headers)


def log_text(server):
    with open(server.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return Ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, ca):
    """Both ports: plain HTTP and TLS, with an RSA key in PKCS#1 (`BEGIN RSA PRIVATE KEY`)."""
    files = ca.server_files("module-server", key_type="rsa", key_format=TRADITIONAL)
    s = Server(tmp_path_factory.mktemp("kinesin-tls"), tls=files)
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


# --------------------------------------------------------------------------------------------
# Clients over TLS
# --------------------------------------------------------------------------------------------


def test_boto3_writes_and_reads_over_tls(tls_server):
    client = tls_server.tls_client()
    stream = create_stream(client, shards=1)
    put = client.put_record(StreamName=stream, Data=b"over tls", PartitionKey="pk")
    records = read_shard(client, stream, put["ShardId"])
    assert [(r["Data"], r["SequenceNumber"]) for r in records] == [(b"over tls", put["SequenceNumber"])]
    # The plain port serves the same node beside it.
    assert stream in tls_server.client().list_streams()["StreamNames"]


def test_aws_cli_writes_and_reads_with_a_ca_bundle(tls_server):
    endpoint = tls_server.tls_endpoint
    stream = unique_name("cli-tls")
    assert aws_cli(tls_server, "kinesis", "create-stream", "--stream-name", stream, "--shard-count", "1", endpoint=endpoint) is None
    poll(
        lambda: aws_cli(tls_server, "kinesis", "describe-stream-summary", "--stream-name", stream, endpoint=endpoint)[
            "StreamDescriptionSummary"
        ]["StreamStatus"] == "ACTIVE",
        what=f"{stream} ACTIVE",
    )
    blob = ["--cli-binary-format", "raw-in-base64-out"] if aws_cli_major_version() >= 2 else []
    put = aws_cli(
        tls_server, "kinesis", "put-record", "--stream-name", stream, "--partition-key", "pk", "--data", "aGVsbG8=", *blob,
        endpoint=endpoint,
    )
    iterator = aws_cli(
        tls_server, "kinesis", "get-shard-iterator", "--stream-name", stream, "--shard-id", put["ShardId"],
        "--shard-iterator-type", "TRIM_HORIZON", endpoint=endpoint,
    )["ShardIterator"]
    records = aws_cli(tls_server, "kinesis", "get-records", "--shard-iterator", iterator, endpoint=endpoint)["Records"]
    assert [r["SequenceNumber"] for r in records] == [put["SequenceNumber"]]

    # Without the CA the CLI refuses the certificate: the TLS is real, not skipped.
    untrusted = types.SimpleNamespace(endpoint=endpoint, ca_bundle=None)
    refused = aws_cli(untrusted, "kinesis", "list-streams", check=False)
    assert refused.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr, refused.stderr


@pytest.mark.parametrize("http2", [True, False], ids=["h2-by-alpn", "http1.1"])
def test_httpx_over_tls_speaks_the_version_alpn_chose(tls_server, http2):
    endpoint = tls_server.tls_endpoint
    with httpx.Client(http2=http2, verify=verifying_context(tls_server), timeout=30) as c:
        r = signed_post(c, endpoint, "ListStreams", {})
        assert r.status_code == 200, r.text
        assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        assert isinstance(r.json()["StreamNames"], list)
        r = signed_post(c, endpoint, "DescribeStreamSummary", {"StreamName": unique_name("missing")})
        assert r.status_code == 400
        assert r.json()["__type"].split("#")[-1] == "ResourceNotFoundException"
        health = c.get(endpoint + "/healthz")
        assert health.status_code == 200 and health.http_version == r.http_version


def test_h2c_prior_knowledge_still_works_on_the_plain_port_beside_tls(tls_server):
    with httpx.Client(http1=False, http2=True, timeout=30) as c:
        r = signed_post(c, tls_server.plain_endpoint, "ListStreams", {})
    assert r.status_code == 200, r.text
    assert r.http_version == "HTTP/2"


def test_plain_http_to_the_tls_port_fails_fast_and_the_port_keeps_serving(tls_server):
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", tls_server.tls_port, timeout=10)
    with pytest.raises((http.client.HTTPException, OSError)):
        try:
            conn.request("GET", "/healthz")
            conn.getresponse().read()
        finally:
            conn.close()
    assert time.monotonic() - started < 5, "the server must close the connection, not leave the client waiting"
    assert tls_server.running
    assert tls_server.tls_client().list_streams()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_client_that_never_handshakes_is_disconnected(tls_server):
    with socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=30) as s:
        started = time.monotonic()
        assert s.recv(1) == b"", "the server closes a connection that sends no ClientHello"
        # The handshake timeout is 10 s.
        assert 5 < time.monotonic() - started < 25
    assert tls_server.tls_client().list_streams()["ResponseMetadata"]["HTTPStatusCode"] == 200


# --------------------------------------------------------------------------------------------
# Certificates replaced without a restart
# --------------------------------------------------------------------------------------------


def test_replaced_files_are_served_to_new_connections_without_a_restart(server_factory, ca):
    files = ca.server_files("first", key_format=PKCS8)
    server = server_factory(tls=files, extra_args=["--tls-reload-secs", "1"])
    assert common_name(served_cert(server)) == "first"
    pid = server.proc.pid

    # An open HTTP/2 connection goes on serving across the change.
    with httpx.Client(http2=True, verify=verifying_context(server), timeout=30) as open_conn:
        assert signed_post(open_conn, server.tls_endpoint, "ListStreams", {}).status_code == 200
        first = served_cert(server)

        replace_files(files, *ca.issue("second", key_format=TRADITIONAL))  # EC key in SEC1
        await_served(server, "second")
        assert served_cert(server).serial_number != first.serial_number

        r = signed_post(open_conn, server.tls_endpoint, "ListStreams", {})
        assert r.status_code == 200 and r.http_version == "HTTP/2"

    assert server.proc.pid == pid and server.running
    assert server.tls_client().list_streams()["ResponseMetadata"]["HTTPStatusCode"] == 200

    # A broken replacement is refused with an error naming the file; the last good one stays.
    with open(files.cert, "w") as f:
        f.write("not a certificate\n")
    poll(lambda: "reload failed" in log_text(server) and files.cert in log_text(server), timeout=RELOAD_DEADLINE_SECS,
         what="the failed reload to be logged")
    assert common_name(served_cert(server)) == "second"
    assert server.stop() == 0, "graceful shutdown with the TLS port open"


def test_sighup_reloads_the_certificate(server_factory, ca):
    files = ca.server_files("before-hup")
    # No polling of the files: only SIGHUP can make the server take the new pair.
    server = server_factory(tls=files, extra_args=["--tls-reload-secs", "0"])
    replace_files(files, *ca.issue("after-hup"))
    assert common_name(served_cert(server)) == "before-hup"

    server.proc.send_signal(signal.SIGHUP)
    await_served(server, "after-hup")
    assert server.running

    # A SIGHUP over a key that does not belong to the certificate keeps the old pair.
    _, other_key = ca.issue("stranger")
    with open(files.key, "wb") as f:
        f.write(other_key)
    server.proc.send_signal(signal.SIGHUP)
    poll(lambda: "does not belong to the certificate" in log_text(server), timeout=RELOAD_DEADLINE_SECS,
         what="the mismatched key to be logged")
    assert common_name(served_cert(server)) == "after-hup"
    assert server.running


# --------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------


def test_tls_only_with_the_plain_port_off(server_factory, ca):
    server = server_factory(tls=ca.server_files("tls-only"), plain=False)
    assert "--listen" in server.command() and "off" in server.command()
    client = server.client()
    stream = create_stream(client, shards=1)
    put = client.put_record(StreamName=stream, Data=b"x", PartitionKey="k")
    assert read_shard(client, stream, put["ShardId"])[0]["Data"] == b"x"
    # Nothing listens on the plain port.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    assert f"https://127.0.0.1:{server.tls_port}" in log_text(server)
    assert server.stop() == 0


def refused_start(server):
    """Starts `server`, which must exit before serving; returns its log."""
    try:
        with pytest.raises(RuntimeError, match="exited with code"):
            server.start()
        assert server.proc.returncode != 0
        return log_text(server)
    finally:
        server.cleanup()


def test_start_up_with_a_bad_certificate_fails_naming_the_file(tmp_path, ca):
    files = ca.server_files("bad-start")
    with open(files.cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n")
    log = refused_start(Server(tmp_path / "kinesin", tls=files))
    assert f"Error: TLS: {files.cert}: malformed PEM" in log, log[-3000:]


def test_start_up_with_a_key_of_another_certificate_fails_naming_both_files(tmp_path, ca):
    files = ca.server_files("mismatch")
    _, other_key = ca.issue("other")
    with open(files.key, "wb") as f:
        f.write(other_key)
    log = refused_start(Server(tmp_path / "kinesin", tls=files))
    assert f"the private key in {files.key} does not belong to the certificate in {files.cert}" in log, log[-3000:]


def test_tls_listen_without_a_key_is_refused_by_name(tmp_path, ca):
    files = ca.server_files("no-key")
    server = Server(tmp_path / "kinesin", extra_args=["--tls-listen", "127.0.0.1:0", "--tls-cert", files.cert])
    log = refused_start(server)
    assert "invalid value for `tls_listen`: needs both tls_cert" in log and "tls_key" in log, log[-3000:]
