"""CloudWatch's Kinesis metrics on /metrics, under AWS's names (`kinesis_` + the name with `.` as `_`),
per stream, and per shard for what enhanced monitoring enables: they move exactly with a known load."""

import botocore.exceptions
import pytest

from conftest import Server, create_stream, error_code, list_all_shards, poll
from test_observability import metrics, value

ACCOUNT = "000000000000"
REGION = "us-east-1"


def stream_value(server, name, stream, **extra):
    return value(metrics(server), name, account=ACCOUNT, region=REGION, stream=stream, **extra)


@pytest.fixture
def node(tmp_path):
    # Two records a second per shard, five reads: throttling is easy to reach on purpose.
    s = Server(tmp_path / "node", extra_args=["--shard-write-records-per-sec", "2", "--shard-read-calls-per-sec", "5"])
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


def test_writes_and_throttled_writes_are_counted_exactly(node):
    client = node.client()
    stream = create_stream(client, shards=1)
    stored = throttled = put_record_ok = 0
    stored_bytes = 0
    records_sent = 0
    # Until some writes are refused: the shard takes two records a second.
    for i in range(8):
        data, key = f"record-{i}".encode(), f"k{i}"
        try:
            client.put_record(StreamName=stream, Data=data, PartitionKey=key)
            put_record_ok += 1
            stored += 1
            stored_bytes += len(data) + len(key)
        except botocore.exceptions.ClientError as e:
            assert error_code(e) == "ProvisionedThroughputExceededException", e
            throttled += 1
    batch = [{"Data": b"batch-%d" % i, "PartitionKey": f"b{i}"} for i in range(6)]
    out = client.put_records(StreamName=stream, Records=batch)
    records_sent += len(batch)
    batch_ok = [r for r in zip(out["Records"], batch) if "SequenceNumber" in r[0]]
    batch_throttled = [r for r in out["Records"] if r.get("ErrorCode") == "ProvisionedThroughputExceededException"]
    assert throttled > 0 and batch_throttled, "the load must hit the write limit"
    batch_bytes = sum(len(rec["Data"]) + len(rec["PartitionKey"]) for _, rec in batch_ok)

    text = metrics(node)
    labels = dict(account=ACCOUNT, region=REGION, stream=stream)
    assert value(text, "kinesis_IncomingRecords_total", **labels) == stored + len(batch_ok)
    assert value(text, "kinesis_IncomingBytes_total", **labels) == stored_bytes + batch_bytes
    assert value(text, "kinesis_PutRecord_Success_total", **labels) == put_record_ok
    assert value(text, "kinesis_PutRecord_Bytes_total", **labels) == stored_bytes
    assert value(text, "kinesis_PutRecords_TotalRecords_total", **labels) == records_sent
    assert value(text, "kinesis_PutRecords_Records_total", **labels) == len(batch_ok)
    assert value(text, "kinesis_PutRecords_Bytes_total", **labels) == batch_bytes
    assert value(text, "kinesis_PutRecords_ThrottledRecords_total", **labels) == len(batch_throttled)
    assert value(text, "kinesis_PutRecords_FailedRecords_total", **labels) == 0
    assert value(text, "kinesis_PutRecords_Success_total", **labels) == (1 if batch_ok else 0)
    assert value(text, "kinesis_WriteProvisionedThroughputExceeded_total", **labels) == throttled + len(batch_throttled)
    # Every PutRecord is timed, refused or not.
    assert value(text, "kinesis_PutRecord_Latency_count", **labels) == 8
    assert value(text, "kinesis_PutRecord_Latency_sum", **labels) > 0


def test_reads_throttled_reads_and_the_iterator_age(node):
    client = node.client()
    stream = create_stream(client, shards=1)
    shard = list_all_shards(client, stream)[0]["ShardId"]
    client.put_records(StreamName=stream, Records=[{"Data": b"r%d" % i, "PartitionKey": "k"} for i in range(2)])
    iterator = client.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    # One record at a time: the reader lags behind records that only get older.
    first = client.get_records(ShardIterator=iterator, Limit=1)
    age = stream_value(node, "kinesis_GetRecords_IteratorAgeMilliseconds", stream)
    assert age > 0
    iterator = first["NextShardIterator"]
    ok_reads, returned, refused = 1, 1, 0

    def older():
        nonlocal iterator, ok_reads, returned, refused
        try:
            out = client.get_records(ShardIterator=iterator, Limit=1)
        except botocore.exceptions.ClientError as e:
            assert error_code(e) == "ProvisionedThroughputExceededException", e
            refused += 1
            return False
        ok_reads += 1
        returned += len(out["Records"])
        if out["Records"]:
            iterator = out["NextShardIterator"]
            return stream_value(node, "kinesis_GetRecords_IteratorAgeMilliseconds", stream) > age
        return False

    poll(older, timeout=10, interval=0.25, what="a later read of an older-by-now record")
    # At the tip: nothing returned, the age is back to 0.

    def at_tip():
        nonlocal iterator, ok_reads, refused
        try:
            out = client.get_records(ShardIterator=iterator)
        except botocore.exceptions.ClientError as e:
            assert error_code(e) == "ProvisionedThroughputExceededException", e
            refused += 1
            return False
        ok_reads += 1
        iterator = out["NextShardIterator"]
        return not out["Records"] and stream_value(node, "kinesis_GetRecords_IteratorAgeMilliseconds", stream) == 0

    poll(at_tip, timeout=10, interval=0.25, what="the age back to 0 at the tip")

    # More reads at once than the shard's five a second: each refusal is counted.
    for _ in range(8):
        try:
            client.get_records(ShardIterator=iterator)
            ok_reads += 1
        except botocore.exceptions.ClientError as e:
            assert error_code(e) == "ProvisionedThroughputExceededException", e
            refused += 1
    assert refused > 0
    text = metrics(node)
    labels = dict(account=ACCOUNT, region=REGION, stream=stream)
    assert value(text, "kinesis_GetRecords_Success_total", **labels) == ok_reads
    assert value(text, "kinesis_GetRecords_Records_total", **labels) == returned == 2
    assert value(text, "kinesis_GetRecords_Bytes_total", **labels) == 2 * (len(b"r0") + 1)
    assert value(text, "kinesis_ReadProvisionedThroughputExceeded_total", **labels) == refused
    assert value(text, "kinesis_GetRecords_Latency_count", **labels) == ok_reads + refused


def test_enhanced_monitoring_turns_shard_series_on_and_off(node):
    client = node.client()
    stream = create_stream(client, shards=2)
    shards = [s["ShardId"] for s in list_all_shards(client, stream)]
    client.put_record(StreamName=stream, Data=b"x", PartitionKey="a")

    def shard_lines(name):
        prefix = f'{name}{{account="{ACCOUNT}",region="{REGION}",stream="{stream}",shard="'
        return [line for line in metrics(node).splitlines() if line.startswith(prefix)]

    assert shard_lines("kinesis_shard_IncomingRecords_total") == []
    client.enable_enhanced_monitoring(StreamName=stream, ShardLevelMetrics=["IncomingRecords", "IncomingBytes"])
    lines = shard_lines("kinesis_shard_IncomingRecords_total")
    assert len(lines) == 1 and lines[0].endswith(" 1") and any(s in lines[0] for s in shards), lines
    assert shard_lines("kinesis_shard_IncomingBytes_total")
    assert shard_lines("kinesis_shard_OutgoingRecords_total") == [], "only what was enabled"
    client.disable_enhanced_monitoring(StreamName=stream, ShardLevelMetrics=["IncomingRecords", "IncomingBytes"])
    assert shard_lines("kinesis_shard_IncomingRecords_total") == []
    # The stream-level series stay whatever the shard-level setting.
    assert stream_value(node, "kinesis_IncomingRecords_total", stream) == 1


def test_node_gauges_disk_fsync_leaderless_and_under_replicated(tmp_path):
    """The gauges an operator alerts on: a healthy cluster shows no leaderless or under-replicated
    shard; a dead node makes its shards under-replicated on the survivors until it is back."""
    from test_cluster import start_cluster

    servers = start_cluster(tmp_path)
    try:
        client = servers[0].client()
        stream = create_stream(client, shards=3)
        client.put_record(StreamName=stream, Data=b"x", PartitionKey="k")
        for s in servers:
            text = metrics(s)
            assert 0 < value(text, "kinesin_disk_free_bytes") <= value(text, "kinesin_disk_total_bytes")
            assert value(text, "kinesin_wal_sync_seconds_count") > 0
            assert value(text, "kinesin_wal_sync_seconds_sum") > 0
        poll(lambda: all(value(metrics(s), "kinesin_shards_leaderless") == 0 for s in servers),
             timeout=30, what="every group to know its leader")
        assert all(value(metrics(s), "kinesin_shards_under_replicated") == 0 for s in servers)

        servers[2].kill9()
        survivors = servers[:2]
        poll(lambda: all(value(metrics(s), "kinesin_shards_under_replicated") == 3 for s in survivors),
             timeout=60, what="the dead node's shards counted under-replicated")
        assert all(value(metrics(s), "kinesin_node_peer_live", peer="3") == 0 for s in survivors)
        servers[2].start()
        poll(lambda: all(value(metrics(s), "kinesin_shards_under_replicated") == 0 for s in servers),
             timeout=60, what="full replication again")
    finally:
        for s in servers:
            s.cleanup()
