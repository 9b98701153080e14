"""Per-shard write limits and node backpressure, through boto3 against a real server.

- A shard takes `shard_write_records_per_sec` records and `shard_write_bytes_per_sec` bytes per
  second (Kinesis: 1,000 and 1 MiB); beyond that PutRecords reports the shard's records with
  ErrorCode ProvisionedThroughputExceededException and PutRecord fails with it, as AWS does. 0
  switches a limit off.
- A node holds at most `max_inflight_request_bytes` of requests; a request that finds no room
  within a second is refused with ProvisionedThroughputExceededException, and room given back
  lets requests in again.
"""

import socket
import subprocess

import pytest

from conftest import expect_error, kinesin_bin, poll, unique_name, wait_active

ACCOUNT = "000000000000"


def create(client, shards=1):
    name = unique_name("thr")
    client.create_stream(StreamName=name, ShardCount=shards)
    wait_active(client, name)
    return name


def test_a_shard_over_its_record_rate_is_throttled_per_record(server_factory):
    # 2 records/s: one PutRecords of 2 takes the whole second's allowance, and the next record's
    # worth refills only after 500 ms. (At 50 records/s one refilled after 20 ms, and on a loaded
    # CI machine the PutRecord below went through.)
    server = server_factory(extra_args=["--shard-write-records-per-sec", "2"])
    client = server.client()
    name = create(client)
    records = [{"Data": b"x", "PartitionKey": f"k{i}"} for i in range(2)]
    first = client.put_records(StreamName=name, Records=records)
    assert first["FailedRecordCount"] == 0
    second = client.put_records(StreamName=name, Records=records)
    assert second["FailedRecordCount"] == 2
    for entry in second["Records"]:
        assert entry["ErrorCode"] == "ProvisionedThroughputExceededException"
        assert entry["ErrorMessage"] == (
            f"Rate exceeded for shard shardId-000000000000 in stream {name} under account {ACCOUNT}."
        )
        assert "SequenceNumber" not in entry
    error = expect_error("ProvisionedThroughputExceededException", client.put_record,
                         StreamName=name, Data=b"x", PartitionKey="k")
    assert "Rate exceeded for shard shardId-000000000000" in error.response["Error"]["Message"]
    # The bucket refills: within a couple of seconds the shard takes writes again, and nothing
    # refused was stored.
    poll(lambda: _put_ok(client, name), timeout=10, what="the shard to take writes again")
    shard_iterator = client.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000",
                                               ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    stored = client.get_records(ShardIterator=shard_iterator)["Records"]
    assert len(stored) == 3, "2 of the first request and the one that went through at the end"


def _put_ok(client, name):
    try:
        client.put_record(StreamName=name, Data=b"y", PartitionKey="k")
        return True
    except client.exceptions.ProvisionedThroughputExceededException:
        return False


def test_a_shard_over_its_byte_rate_is_throttled_and_a_large_record_still_passes(server_factory):
    server = server_factory(extra_args=["--shard-write-bytes-per-sec", "10000",
                                        "--shard-write-records-per-sec", "0"])
    client = server.client()
    name = create(client)
    # Larger than a second's allowance: admitted once, then the shard is in debt.
    client.put_record(StreamName=name, Data=b"z" * 30_000, PartitionKey="k")
    expect_error("ProvisionedThroughputExceededException", client.put_record,
                 StreamName=name, Data=b"x", PartitionKey="k")


def test_limits_off_take_a_burst_far_over_the_aws_rate(server_factory):
    server = server_factory(extra_args=["--shard-write-records-per-sec", "0",
                                        "--shard-write-bytes-per-sec", "0"])
    client = server.client()
    name = create(client)
    records = [{"Data": b"x" * 1000, "PartitionKey": f"k{i}"} for i in range(500)]
    for _ in range(6):  # 3,000 records and 3 MB on one shard, at once
        assert client.put_records(StreamName=name, Records=records)["FailedRecordCount"] == 0


def test_the_default_limits_are_awss(fresh_server):
    client = fresh_server.client()
    name = create(client)
    records = [{"Data": b"x", "PartitionKey": f"k{i}"} for i in range(500)]
    assert client.put_records(StreamName=name, Records=records)["FailedRecordCount"] == 0
    assert client.put_records(StreamName=name, Records=records)["FailedRecordCount"] == 0
    # 1,000 records taken within the second: the next ones are refused.
    refused = client.put_records(StreamName=name, Records=records)["FailedRecordCount"]
    assert refused == 500


def test_a_node_out_of_request_memory_refuses_and_recovers(server_factory):
    # Tiny request limits make the largest request, and so the smallest allowed budget,
    # 1,072,472 bytes; one request that declares that much and never sends its body holds all of it.
    largest = 10240 // 3 * 4 + 4 + 10 * 1024 + (1 << 20)
    server = server_factory(extra_args=[
        "--max-record-bytes", "1024", "--max-put-records", "10", "--max-put-records-bytes", "10240",
        "--max-inflight-request-bytes", str(largest),
    ])
    client = server.client()
    name = create(client)
    host, port = server.endpoint.removeprefix("http://").split(":")
    hog = socket.create_connection((host, int(port)))
    try:
        hog.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-amz-json-1.1\r\n"
                    b"x-amz-target: Kinesis_20131202.PutRecord\r\ncontent-length: "
                    + str(largest).encode() + b"\r\n\r\n{")
        # The hog's share is taken as soon as its headers are read; wait until it is.
        poll(lambda: _inflight_bytes(server) >= 1_000_000, timeout=10, what="the hog to be admitted")
        error = expect_error("ProvisionedThroughputExceededException", client.put_record,
                             StreamName=name, Data=b"x" * 100, PartitionKey="k")
        assert "max_inflight_request_bytes" in error.response["Error"]["Message"]
    finally:
        hog.close()
    # Its share comes back when its connection goes.
    poll(lambda: _inflight_bytes(server) == 0, timeout=10, what="the hog's share to be given back")
    client.put_record(StreamName=name, Data=b"x" * 100, PartitionKey="k")
    assert _metric(server, "kinesin_requests_refused_overload_total") >= 1


def _metric(server, name):
    import urllib.request

    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def _inflight_bytes(server):
    return _metric(server, "kinesin_inflight_request_bytes")


def test_a_budget_below_the_largest_request_is_a_config_error(tmp_path):
    run = subprocess.run([kinesin_bin(), "server", "--data-dir", str(tmp_path / "data"),
                          "--max-inflight-request-bytes", "1000"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "invalid value for `max_inflight_request_bytes`" in run.stderr + run.stdout
