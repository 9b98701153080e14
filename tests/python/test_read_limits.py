"""Per-shard read limits, through boto3 against a real server (on by default, as on AWS).

- A shard answers `shard_read_calls_per_sec` GetRecords calls and returns `shard_read_bytes_per_sec`
  bytes per second (Kinesis: 5 and 2 MiB) through each node; a call beyond them fails with
  ProvisionedThroughputExceededException and AWS's message, and is counted in /metrics.
- One call may still return up to 10 MiB; the shard's next calls are then refused until the
  excess is paid back at 2 MiB/s.
- A client that backs off and retries, as the SDKs' standard retry mode does, reads everything.
- 0 switches a limit off.
"""

import threading
import time
import urllib.request
from collections import Counter

import botocore.exceptions

from conftest import error_code, list_all_shards, put_records_retrying, unique_name, wait_active

ACCOUNT = "000000000000"
MIB = 1 << 20
# Writing the large records of these tests fast is not what they are about.
WRITES_UNLIMITED = ["--shard-write-records-per-sec", "0", "--shard-write-bytes-per-sec", "0"]


def create(client, shards=1):
    name = unique_name("rl")
    client.create_stream(StreamName=name, ShardCount=shards)
    wait_active(client, name)
    return name


def iterator(client, name, shard="shardId-000000000000"):
    return client.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]


def stream_of_megabyte_records(server_factory, count):
    """(client, stream name) of a new server whose one-shard stream holds `count` 1 MB records."""
    client = server_factory(extra_args=WRITES_UNLIMITED).client()
    name = create(client)
    records = [{"Data": bytes([i]) * 1_000_000, "PartitionKey": "k"} for i in range(count)]
    put_records_retrying(client, StreamName=name, Records=records)
    return client, name


def throttled_reads(server):
    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=5) as r:
        text = r.read().decode()
    line = next(l for l in text.splitlines() if l.startswith("kinesin_reads_throttled_total "))
    return int(line.split()[1])


def get(client, it):
    """(answer, None) or (None, the ClientError) of one GetRecords call."""
    try:
        return client.get_records(ShardIterator=it), None
    except botocore.exceptions.ClientError as e:
        return None, e


def test_the_sixth_immediate_get_records_call_on_a_shard_is_throttled_with_aws_message(server_factory):
    server = server_factory()
    client = server.client()
    name = create(client, shards=2)
    client.put_record(StreamName=name, Data=b"x", PartitionKey="k", ExplicitHashKey="0")
    it = iterator(client, name)
    before = throttled_reads(server)
    outcomes = [get(client, it) for _ in range(10)]
    refused = [i for i, (_, e) in enumerate(outcomes) if e is not None]
    assert refused, "ten immediate calls on one shard, none refused"
    assert refused[0] >= 5, f"call {refused[0] + 1} refused: a shard answers 5 calls a second"
    assert all(ok["Records"][0]["Data"] == b"x" for ok, _ in outcomes[: refused[0]])
    error = outcomes[refused[0]][1]
    assert error_code(error) == "ProvisionedThroughputExceededException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.response["Error"]["Message"] == (
        f"Rate exceeded for shard shardId-000000000000 in stream {name} under account {ACCOUNT}."
    )
    assert throttled_reads(server) - before == len(refused)
    # Another shard has a budget of its own.
    ok, e = get(client, iterator(client, name, "shardId-000000000001"))
    assert e is None and ok["Records"] == []


def test_a_three_mib_answer_is_allowed_and_throttles_the_next_call(server_factory):
    client, name = stream_of_megabyte_records(server_factory, 3)
    it = iterator(client, name)
    first, e = get(client, it)
    assert e is None and [len(r["Data"]) for r in first["Records"]] == [1_000_000] * 3, "3 MB in one answer"
    _, e = get(client, first["NextShardIterator"])
    assert e is not None and error_code(e) == "ProvisionedThroughputExceededException", "the shard is in debt"


def test_a_ten_mib_answer_keeps_the_shard_refusing_until_it_is_paid_back(server_factory):
    client, name = stream_of_megabyte_records(server_factory, 10)
    it = iterator(client, name)
    # The server charges the bytes once it has read them, after this instant (and some time before
    # the client has received and decoded 10 MB).
    sent = time.monotonic()
    first, e = get(client, it)
    assert e is None and len(first["Records"]) == 10, "10 MB in one answer (GetRecords' 10 MiB cap)"
    # About 7.9 MB of debt at 2 MiB/s: refused for 3.77 s after the charge, then answered.
    refusals, delay = 0, 0.05
    while True:
        resp, e = get(client, first["NextShardIterator"])
        if e is None:
            break
        assert error_code(e) == "ProvisionedThroughputExceededException", e.response
        refusals += 1
        assert time.monotonic() - sent < 15, "still refused 15 s after a 10 MB answer"
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    waited = time.monotonic() - sent
    assert refusals >= 1 and waited >= 3.7, f"answered again {waited:.2f}s after 10 MB ({refusals} refusals)"
    assert resp["Records"] == []


def test_a_client_in_standard_retry_mode_reads_every_record_exactly_once(server_factory):
    server = server_factory()
    writer = server.client()
    name = create(writer, shards=4)
    written = [f"rec-{i}".encode() for i in range(2000)]
    for start in range(0, len(written), 500):
        put_records_retrying(
            writer,
            timeout=30,
            StreamName=name,
            Records=[{"Data": d, "PartitionKey": d.decode()} for d in written[start : start + 500]],
        )
    before = throttled_reads(server)
    shards = [s["ShardId"] for s in list_all_shards(writer, name)]
    read = {}
    failures = []

    def consume(shard):
        # One client per consumer, as separate applications would have: botocore's standard mode
        # retries throttling with exponential backoff and jitter.
        client = server.client(retries={"mode": "standard", "total_max_attempts": 20})
        try:
            it, got = iterator(client, name, shard), []
            while True:
                resp = client.get_records(ShardIterator=it, Limit=25)  # many small pages: fast calls
                got += resp["Records"]
                it = resp["NextShardIterator"]
                if not resp["Records"] and resp["MillisBehindLatest"] == 0:
                    break
            read[shard] = got
        except Exception as e:  # noqa: BLE001 - reported by the test thread
            failures.append((shard, e))

    threads = [threading.Thread(target=consume, args=(shard,)) for shard in shards]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a consumer hung"
    assert not failures, failures
    counts = Counter(r["Data"] for records in read.values() for r in records)
    assert set(counts) == set(written) and set(counts.values()) == {1}, "every record read exactly once"
    for shard, records in read.items():
        seqs = [int(r["SequenceNumber"]) for r in records]
        assert seqs == sorted(seqs), f"{shard} out of order"
    assert throttled_reads(server) > before, "the consumers never met the read limit: the test proves nothing"


def test_read_limits_off_answer_a_burst(server_factory):
    server = server_factory(extra_args=["--shard-read-calls-per-sec", "0", "--shard-read-bytes-per-sec", "0"])
    client = server.client()
    name = create(client)
    client.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    it = iterator(client, name)
    for call in range(30):
        resp, e = get(client, it)
        assert e is None, f"call {call + 1} refused with the limits off: {e.response}"
        assert resp["Records"][0]["Data"] == b"x"
