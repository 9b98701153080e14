"""Mutual TLS between nodes (--cluster-tls-cert, --cluster-tls-key, --cluster-tls-ca): cluster
traffic (Raft, forwarded requests, pings, joins) flows only between nodes holding certificates of
the cluster's CA.

Each test makes its own CAs and node certificates (the `cryptography` package, through test_tls's
Ca), starts real `kinesin` processes with them, and checks what a node of another CA, or a client
without a certificate, gets: refused, while the cluster goes on serving.
"""

import os
import socket
import ssl
import subprocess
import threading
import uuid

import pytest
from cryptography import x509

from conftest import Server, TlsFiles, poll, wait_active
from test_cluster import admin, check, everything, put_batch, start_all
from test_tls import Ca, replace_files

# What an HTTP/2 client sends first; a cluster port that accepted the connection answers it.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def tls_args(files):
    return ["--cluster-tls-cert", files.cert, "--cluster-tls-key", files.key, "--cluster-tls-ca", files.ca]


def start_mtls_cluster(tmp_path, ca, size=3, reload_secs=1):
    servers = [Server(tmp_path / f"node{i}", node_id=i) for i in range(1, size + 1)]
    peers = ",".join(f"{s.node_id}@127.0.0.1:{s.cluster_port}" for s in servers)
    files = {}
    for s in servers:
        files[s.node_id] = ca.server_files(f"node{s.node_id}", client_auth=True)
        s.extra_args = ["--peers", peers, "--tls-reload-secs", str(reload_secs), *tls_args(files[s.node_id])]
    start_all(servers)
    return servers, files


def cluster_session(server, cert=None, ca=None):
    """A TLS connection to `server`'s cluster port, presenting `cert` (TlsFiles; None: no client
    certificate) and verifying the server against `ca` (None: not verified). Sends the HTTP/2
    preface and returns (the server's certificate, what it answered: bytes, or the exception)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        context.load_verify_locations(ca)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert.cert, cert.key)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", server.cluster_port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
                # TLS 1.3: the server judges the client's certificate after the client's side of
                # the handshake is done; a refusal arrives as an alert on the first read.
                tls.sendall(H2_PREFACE)
                try:
                    return served, tls.recv(64)
                except (ssl.SSLError, ConnectionError, OSError) as e:
                    return served, e
        except (ssl.SSLError, ConnectionError, OSError) as e:
            return None, e


def refused(answer):
    return isinstance(answer, Exception) or answer == b""


def written_through_every_node(servers, prefix, shards, n):
    """A new stream, records put through every node (each forwards writes to shard leaders on
    other nodes, over the cluster transport) and read back from every node: (stream, acked)."""
    stream = f"{prefix}-{uuid.uuid4().hex[:8]}"
    servers[0].client().create_stream(StreamName=stream, ShardCount=shards)
    for s in servers:
        wait_active(s.client(), stream)
    acked = []
    for s in servers:
        acked += put_batch(s.client(), stream, f"n{s.node_id}", n=n)
    for s in servers:
        check(acked, everything(s.client(), stream))
    return stream, acked


def members(server):
    return [n["id"] for n in admin(server, "/admin/v1/cluster")["nodes"]]


class Writer(threading.Thread):
    """Puts records through every node in turn until stopped; any failure is kept."""

    def __init__(self, servers, stream):
        super().__init__(daemon=True)
        self.clients = [s.client() for s in servers]
        self.stream = stream
        self.stop = threading.Event()
        self.acked = []
        self.errors = []

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                self.acked += put_batch(self.clients[i % len(self.clients)], self.stream, f"bg{i}", n=5)
            except Exception as e:  # reported by the test
                self.errors.append(e)
            i += 1

    def finish(self):
        self.stop.set()
        self.join(timeout=60)
        assert not self.errors, self.errors[:3]
        assert len(self.acked) > 0
        return self.acked


def test_nodes_of_the_cluster_ca_serve_and_others_are_refused(tmp_path):
    ca = Ca(tmp_path / "ca")
    other_ca = Ca(tmp_path / "other-ca")
    servers, files = start_mtls_cluster(tmp_path, ca)
    intruder = None
    try:
        stream, acked = written_through_every_node(servers, "mtls", shards=3, n=30)

        writer = Writer(servers, stream)
        writer.start()

        # A fourth node with a certificate of another CA asks to join: refused, with a clear
        # error, and it stops asking.
        intruder = Server(tmp_path / "node4", node_id=4)
        intruder_files = other_ca.server_files("node4", client_auth=True)
        intruder.extra_args = [
            "--join", servers[0].endpoint,
            "--cluster-advertise", f"127.0.0.1:{intruder.cluster_port}",
            *tls_args(intruder_files),
        ]
        with pytest.raises(RuntimeError, match="exited with code"):
            intruder.start()
        assert intruder.proc.returncode != 0
        with open(intruder.log_path, encoding="utf-8", errors="replace") as log:
            text = log.read()
        assert "node 4 at 127.0.0.1:" in text and "is refused: mutual TLS between the nodes failed" in text, text[-3000:]
        assert "needs a certificate issued by the cluster's CA" in text
        for s in servers:
            assert members(s) == [1, 2, 3]

        # Raw connections to the cluster port: without a client certificate, or with one of
        # another CA, refused at the handshake; a node's own certificate gets an HTTP/2 answer.
        for s in servers:
            served, answer = cluster_session(s, cert=None, ca=ca.path)
            assert served is None or refused(answer), answer
            served, answer = cluster_session(s, cert=intruder_files, ca=None)
            assert refused(answer), answer
            served, answer = cluster_session(s, cert=files[1], ca=ca.path)
            assert not refused(answer), answer
            assert served is not None and "node" in served.subject.rfc4514_string()

        # Refusals are logged once per peer, not for every attempt.
        for s in servers:
            with open(s.log_path, encoding="utf-8", errors="replace") as log:
                lines = [line for line in log if "cluster connection refused" in line]
            assert len(lines) <= 1, lines

        # The cluster served throughout.
        acked += writer.finish()
        acked += put_batch(servers[2].client(), stream, "after", n=30)
        for s in servers:
            check(acked, everything(s.client(), stream))
            assert members(s) == [1, 2, 3]
    finally:
        for s in servers + ([intruder] if intruder else []):
            s.stop()


def test_a_replaced_node_certificate_is_used_by_new_connections(tmp_path):
    ca = Ca(tmp_path / "ca")
    servers, files = start_mtls_cluster(tmp_path, ca)
    try:
        node1 = servers[0]
        first, answer = cluster_session(node1, cert=files[2], ca=ca.path)
        assert not refused(answer), answer

        # A new certificate of the same CA, renamed over the old files.
        cert_pem, key_pem = ca.issue("node1-renewed", client_auth=True)
        replace_files(files[1], cert_pem, key_pem)
        renewed = x509.load_pem_x509_certificate(cert_pem)
        assert renewed.serial_number != first.serial_number

        def serves_the_new_one():
            served, answer = cluster_session(node1, cert=files[2], ca=ca.path)
            return served is not None and not refused(answer) and served.serial_number == renewed.serial_number

        poll(serves_the_new_one, timeout=20, what="node 1 serving its renewed cluster certificate")

        # The cluster works on it: node 1 dials its peers with it too (writes through node 1
        # are forwarded to leaders elsewhere, reads everywhere).
        stream = f"mtls-reload-{uuid.uuid4().hex[:8]}"
        node1.client().create_stream(StreamName=stream, ShardCount=3)
        for s in servers:
            wait_active(s.client(), stream)
        acked = put_batch(node1.client(), stream, "renewed", n=30)
        for s in servers:
            check(acked, everything(s.client(), stream))

        # A broken file keeps the certificate in use, and says so in the log.
        with open(files[1].cert + ".new", "w") as f:
            f.write("not a certificate\n")
        os.replace(files[1].cert + ".new", files[1].cert)

        def logged_failure():
            with open(node1.log_path, encoding="utf-8", errors="replace") as log:
                return "TLS certificate reload failed" in log.read()

        poll(logged_failure, timeout=20, what="the failed reload in node 1's log")
        served, answer = cluster_session(node1, cert=files[2], ca=ca.path)
        assert served.serial_number == renewed.serial_number and not refused(answer)
        acked += put_batch(node1.client(), stream, "after-bad-file", n=10)
        for s in servers:
            check(acked, everything(s.client(), stream))
    finally:
        for s in servers:
            s.stop()


DEPLOY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy")


def test_the_certificates_of_deploy_gen_cluster_certs_form_a_cluster(tmp_path):
    """deploy/gen-cluster-certs.sh's CA and node certificates (openssl) are accepted by the nodes'
    verifiers (rustls/webpki) as server and client certificates, under 127.0.0.1."""
    certs = tmp_path / "cluster-certs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINESIN_")}
    subprocess.run([os.path.join(DEPLOY, "gen-cluster-certs.sh"), "--dir", str(certs), "3"],
                   check=True, env=env, capture_output=True, timeout=120)
    servers = [Server(tmp_path / f"node{i}", node_id=i) for i in (1, 2, 3)]
    peers = ",".join(f"{s.node_id}@127.0.0.1:{s.cluster_port}" for s in servers)
    files = {}
    for s in servers:
        node = certs / f"node{s.node_id}"
        files[s.node_id] = TlsFiles(cert=str(node / "cert.pem"), key=str(node / "key.pem"), ca=str(node / "ca.pem"))
        s.extra_args = ["--peers", peers, *tls_args(files[s.node_id])]
    start_all(servers)
    try:
        written_through_every_node(servers, "mtls-deploy", shards=2, n=10)
        served, answer = cluster_session(servers[1], cert=files[3], ca=files[3].ca)
        assert not refused(answer) and "node2" in served.subject.rfc4514_string()
        _, answer = cluster_session(servers[1], cert=None, ca=files[3].ca)
        assert refused(answer)
    finally:
        for s in servers:
            s.stop()
