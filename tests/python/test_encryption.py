"""Encryption at rest: StartStreamEncryption seals new records with AES-256-GCM under a data key
wrapped by a master key of the node's keyring (`--keyring`), so the Raft log on every replica holds
ciphertext only. Checked here through boto3 against real nodes: KMS's errors for a missing,
disabled or foreign key; EncryptionType per record; the plaintext nowhere in the data directory;
reads after a restart, after StopStreamEncryption, on a replica built from nothing; and a
removed key failing closed."""

import base64
import os
import pathlib

import botocore.exceptions
import pytest

from conftest import (
    Server,
    create_stream,
    error_code,
    expect_error,
    list_all_shards,
    poll,
    read_shard,
    unique_name,
    wait_active,
)
from test_cluster import everything, put_batch, shard_view, start_cluster
from test_ctl import ctl

ACCOUNT = "000000000000"
KEY = "5d3c0b1e-0f6a-4b8e-9d27-5a1c9e0b7f42"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY}"
OTHER_KEY = "b7e2a9d4-3c15-4f60-8e71-2d9a4c6b0e58"


def key_entry(key_id, byte, aliases=(), account=None, enabled=True):
    material = base64.b64encode(bytes([byte]) * 32).decode()
    lines = ["[[key]]", f'id = "{key_id}"', f'material = "{material}"']
    if aliases:
        lines.append("aliases = [" + ", ".join(f'"{a}"' for a in aliases) + "]")
    if account:
        lines.append(f'account = "{account}"')
    if not enabled:
        lines.append("enabled = false")
    return "\n".join(lines) + "\n"


FULL_KEYRING = (
    key_entry(KEY, 1, aliases=["alias/orders"])
    + key_entry(OTHER_KEY, 2)
    + key_entry("off", 3, enabled=False)
    + key_entry("theirs", 4, account="222222222222")
)


def write_keyring(path, text):
    """Replaces the keyring as an operator would; the node re-reads it within a second."""
    tmp = pathlib.Path(str(path) + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def keyring(tmp_path):
    path = tmp_path / "keyring.toml"
    write_keyring(path, FULL_KEYRING)
    return path


@pytest.fixture
def node(tmp_path, keyring):
    s = Server(tmp_path / "node", extra_args=["--keyring", str(keyring)])
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


def encryption(client, name):
    summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    stream = client.describe_stream(StreamName=name)["StreamDescription"]
    assert summary.get("EncryptionType") == stream.get("EncryptionType")
    assert summary.get("KeyId") == stream.get("KeyId")
    return summary.get("EncryptionType"), summary.get("KeyId")


def data_dir_contains(data_dir, needle):
    """Whether any file under the data directory holds `needle` (RocksDB's WAL, SST and blob
    files, the controller's state: everything)."""
    for path in pathlib.Path(data_dir).rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            return str(path)
    return None


def test_start_and_stop_with_every_form_of_key_id(node):
    client = node.client()
    name = create_stream(client)
    arn = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    assert encryption(client, name) == ("NONE", None)
    for key_id in (KEY, KEY_ARN, "alias/orders", f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/orders", OTHER_KEY):
        client.start_stream_encryption(StreamARN=arn, EncryptionType="KMS", KeyId=key_id)
        # The stream reports the KeyId as it was given, as AWS does.
        assert encryption(client, name) == ("KMS", key_id)
    client.stop_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId=OTHER_KEY)
    assert encryption(client, name) == ("NONE", None)


def test_kms_errors_name_the_key_and_change_nothing(node):
    client = node.client()
    unvalidated = node.client(parameter_validation=False)
    expect_error("ResourceNotFoundException", client.start_stream_encryption, StreamName=unique_name("missing"), EncryptionType="KMS", KeyId=KEY)
    expect_error("ResourceNotFoundException", client.stop_stream_encryption, StreamName=unique_name("missing"), EncryptionType="KMS", KeyId=KEY)
    name = create_stream(client)
    expect_error("InvalidArgumentException", client.start_stream_encryption, StreamName=name, EncryptionType="NONE", KeyId=KEY)
    expect_error("ValidationException", unvalidated.start_stream_encryption, StreamName=name, EncryptionType="KMS", KeyId="")

    e = expect_error("KMSNotFoundException", client.start_stream_encryption, StreamName=name, EncryptionType="KMS", KeyId="no-such-key")
    assert f"arn:aws:kms:us-east-1:{ACCOUNT}:key/no-such-key" in str(e)
    e = expect_error("KMSNotFoundException", client.start_stream_encryption, StreamName=name, EncryptionType="KMS", KeyId="alias/nope")
    assert "alias/nope is not found" in str(e)
    expect_error("KMSDisabledException", client.start_stream_encryption, StreamName=name, EncryptionType="KMS", KeyId="off")
    e = expect_error("KMSAccessDeniedException", client.start_stream_encryption, StreamName=name, EncryptionType="KMS", KeyId="theirs")
    assert "222222222222" in str(e)
    assert encryption(client, name) == ("NONE", None), "a refused start changes nothing"

    client.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId=KEY)
    expect_error("InvalidArgumentException", client.stop_stream_encryption, StreamName=name, EncryptionType="KMS", KeyId="alias/other")
    assert encryption(client, name) == ("KMS", KEY), "a refused stop changes nothing"


def test_each_record_reports_whether_it_was_encrypted_and_all_stay_readable(node):
    client = node.client()
    name = create_stream(client)
    shard = list_all_shards(client, name)[0]["ShardId"]
    plain = client.put_record(StreamName=name, Data=b"plain", PartitionKey="k0")
    assert plain.get("EncryptionType", "NONE") == "NONE"

    client.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId=KEY)
    assert client.put_record(StreamName=name, Data=b"secret", PartitionKey="k1")["EncryptionType"] == "KMS"
    batch = client.put_records(StreamName=name, Records=[{"Data": b"secret-2", "PartitionKey": "k2"}, {"Data": b"", "PartitionKey": "k" * 256}])
    assert batch["FailedRecordCount"] == 0
    assert batch["EncryptionType"] == "KMS"
    # Another key: a second data key; the records of the first stay readable.
    client.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/orders")
    client.put_record(StreamName=name, Data=b"secret-3", PartitionKey="k3")
    client.stop_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/orders")
    after = client.put_record(StreamName=name, Data=b"plain-again", PartitionKey="k4")
    assert after.get("EncryptionType", "NONE") == "NONE"

    records = read_shard(client, name, shard)
    assert [(r["Data"], r["PartitionKey"], r.get("EncryptionType", "NONE")) for r in records] == [
        (b"plain", "k0", "NONE"),
        (b"secret", "k1", "KMS"),
        (b"secret-2", "k2", "KMS"),
        (b"", "k" * 256, "KMS"),
        (b"secret-3", "k3", "KMS"),
        (b"plain-again", "k4", "NONE"),
    ]
    # AT_SEQUENCE_NUMBER into the middle of the sealed records reads them the same.
    middle = client.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
                                       StartingSequenceNumber=records[2]["SequenceNumber"])["ShardIterator"]
    assert [r["Data"] for r in client.get_records(ShardIterator=middle, Limit=2)["Records"]] == [b"secret-2", b""]


def test_the_plaintext_is_nowhere_on_disk_and_reads_survive_a_restart(node):
    client = node.client()
    secret_stream = create_stream(client)
    plain_stream = create_stream(client)
    client.start_stream_encryption(StreamName=secret_stream, EncryptionType="KMS", KeyId="alias/orders")
    secret = b"SECRET-PAYLOAD-" + os.urandom(8).hex().encode()
    secret_key = "SECRET-KEY-" + os.urandom(8).hex()
    control = b"CONTROL-PAYLOAD-" + os.urandom(8).hex().encode()
    # Large records too: those live in RocksDB's blob files once flushed.
    big = secret + b"." * 20_000
    client.put_record(StreamName=secret_stream, Data=secret, PartitionKey=secret_key)
    client.put_records(StreamName=secret_stream, Records=[{"Data": big, "PartitionKey": secret_key}])
    client.put_record(StreamName=plain_stream, Data=control, PartitionKey="control")

    # A clean stop flushes the memtables: WAL, SST and blob files are all on disk to search. (It
    # is clean: the keyring's reloader once kept a node from stopping until it was killed.)
    assert node.stop() == 0
    assert data_dir_contains(node.data_dir, control), "the search finds what is stored in the clear"
    assert data_dir_contains(node.data_dir, secret) is None
    assert data_dir_contains(node.data_dir, secret_key.encode()) is None

    node.start()
    client = node.client()
    shard = list_all_shards(client, secret_stream)[0]["ShardId"]
    records = read_shard(client, secret_stream, shard)
    assert [(r["Data"], r["PartitionKey"]) for r in records] == [(secret, secret_key), (big, secret_key)]


def test_a_removed_or_disabled_key_fails_closed_and_a_restored_one_opens_again(node, keyring):
    client = node.client()
    name = create_stream(client)
    shard = list_all_shards(client, name)[0]["ShardId"]
    client.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId=KEY)
    client.put_record(StreamName=name, Data=b"sealed", PartitionKey="k")
    assert [r["Data"] for r in read_shard(client, name, shard)] == [b"sealed"]
    iterator = client.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    def fails_with(code):
        """Whether the read fails with `code` now (until the reload, it answers as before)."""
        def check():
            try:
                client.get_records(ShardIterator=iterator)
                return False
            except botocore.exceptions.ClientError as e:
                if error_code(e) == "ProvisionedThroughputExceededException":
                    return False  # polled faster than the shard's 5 reads a second
                assert error_code(e).startswith("KMS"), e
                return e if error_code(e) == code else False
        return check

    # Removed from the keyring: reads and writes fail with KMS's error; nothing returns ciphertext.
    write_keyring(keyring, FULL_KEYRING.replace(key_entry(KEY, 1, aliases=["alias/orders"]), ""))
    poll(fails_with("KMSNotFoundException"), timeout=10, interval=0.25, what="the reload of the keyring without the key")
    expect_error("KMSNotFoundException", client.put_record, StreamName=name, Data=b"more", PartitionKey="k")

    # The key's id with other material (a wrong key file) does not open the data key either.
    write_keyring(keyring, FULL_KEYRING.replace(key_entry(KEY, 1, aliases=["alias/orders"]), key_entry(KEY, 9)))
    poll(fails_with("KMSInvalidStateException"), timeout=10, interval=0.25, what="the reload of the keyring with other material")

    # Disabled: KMSDisabledException.
    write_keyring(keyring, FULL_KEYRING.replace(key_entry(KEY, 1, aliases=["alias/orders"]), key_entry(KEY, 1, enabled=False)))
    poll(fails_with("KMSDisabledException"), timeout=10, interval=0.25, what="the reload of the keyring with the key disabled")
    expect_error("KMSDisabledException", client.put_record, StreamName=name, Data=b"more", PartitionKey="k")

    # Restored: the same records open again.
    write_keyring(keyring, FULL_KEYRING)

    def reads_again():
        try:
            return client.get_records(ShardIterator=iterator)["Records"]
        except botocore.exceptions.ClientError as e:
            assert error_code(e).startswith("KMS") or error_code(e) == "ProvisionedThroughputExceededException", e
            return None

    records = poll(reads_again, timeout=10, interval=0.25, what="the reload of the restored keyring")
    assert [r["Data"] for r in records] == [b"sealed"]


def test_the_default_key_is_created_on_first_use(tmp_path):
    """`make run`'s node has no --keyring: alias/aws/kinesis goes into DATA_DIR/keyring.toml on
    first use, and is the same key after a restart."""
    s = Server(tmp_path / "node")
    try:
        s.start()
        client = s.client()
        name = create_stream(client)
        client.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/aws/kinesis")
        client.put_record(StreamName=name, Data=b"under the default key", PartitionKey="k")
        keyring = pathlib.Path(s.data_dir) / "keyring.toml"
        assert "alias/aws/kinesis" in keyring.read_text()
        assert oct(keyring.stat().st_mode & 0o777) == "0o600"
        s.stop()
        s.start()
        client = s.client()
        shard = list_all_shards(client, name)[0]["ShardId"]
        assert [r["Data"] for r in read_shard(client, name, shard)] == [b"under the default key"]
    finally:
        s.cleanup()


def test_a_bad_keyring_is_refused_at_start_naming_the_key(tmp_path):
    keyring = tmp_path / "keyring.toml"
    keyring.write_text('[[key]]\nid = "k"\nmaterial = "c2hvcnQ="\n')
    s = Server(tmp_path / "node", extra_args=["--keyring", str(keyring)])
    try:
        with pytest.raises(RuntimeError, match="exited with code"):
            s.start()
        log = pathlib.Path(s.log_path).read_text()
        assert "keyring" in log and "key[0].material" in log, log[-2000:]
    finally:
        s.cleanup()


def test_a_cluster_shares_the_keyring_and_a_replica_built_from_nothing_stays_sealed(tmp_path, keyring):
    """Records sealed through one node are read through every node; a fourth node that joins (its
    copy of the cluster state, data keys included, from a controller snapshot) and takes a drained
    node's replica catches up from the log, ciphertext and all; no node's data directory holds the
    plaintext."""
    # The controller group snapshots every 10 entries and keeps no log behind: the joining node
    # gets the streams' wrapped data keys from a snapshot, not by replaying the log.
    snapshots = ["--raft-snapshot-every", "10", "--raft-logs-kept", "0"]
    servers = start_cluster(tmp_path, extra_args=["--keyring", str(keyring), *snapshots])
    joined = None
    try:
        clients = [s.client() for s in servers]
        name = unique_name("sealed")
        clients[0].create_stream(StreamName=name, ShardCount=1)
        for c in clients:
            wait_active(c, name)
        clients[1].start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/orders")
        tag = "CLUSTER-SECRET-" + os.urandom(6).hex()
        acked = put_batch(clients[0], name, tag, n=20) + put_batch(clients[2], name, tag, n=20)
        for c in clients:
            found = poll(lambda c=c: (lambda f: f if len(f) == len(acked) else None)(everything(c, name)),
                         timeout=30, what="every record through every node")
            assert sorted(found) == sorted(acked)

        joined = Server(tmp_path / "node4", node_id=4)
        joined.extra_args = ["--join", servers[0].endpoint, "--cluster-advertise", f"127.0.0.1:{joined.cluster_port}",
                             "--keyring", str(keyring), *snapshots]
        joined.start()
        drained = ctl("node", "drain", "3", "--endpoint", servers[0].endpoint, timeout=120)
        assert drained.returncode == 0, f"{drained.stdout}\n{drained.stderr}"
        poll(lambda: 4 in shard_view(servers[0], name)["replicas"], timeout=60, what="node 4 to hold a replica")
        poll(lambda: (shard_view(joined, name).get("applied_index") or 0) >= shard_view(servers[0], name)["applied_index"],
             timeout=60, what="node 4's replica to catch up")
        assert sorted(everything(joined.client(), name)) == sorted(acked)
        acked += put_batch(joined.client(), name, tag, n=5)
        assert sorted(everything(clients[0], name)) == sorted(acked)
    finally:
        for s in [*servers, joined]:
            if s is not None:
                s.cleanup()
    for s in [*servers, joined]:
        assert data_dir_contains(s.data_dir, tag.encode()) is None, f"node {s.node_id} holds the plaintext"
