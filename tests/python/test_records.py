"""The data plane: PutRecord(s), GetShardIterator, GetRecords."""

import datetime
import os
import random
import re
import time

import botocore.exceptions
import pytest

from conftest import (
    expect_error,
    MAX_HASH_KEY,
    create_stream,
    error_code,
    list_all_shards,
    md5_hash_key,
    read_shard,
    put_records_retrying,
    retry_throttled,
    shard_for_hash,
    wait_deleted,
)

SEQ56_RE = re.compile(r"^[1-9]\d{55}$")



def shards_sorted(client, name):
    return sorted(list_all_shards(client, name), key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))


def get_iterator(client, name, shard_id, kind, **kw):
    return retry_throttled(client.get_shard_iterator, StreamName=name, ShardId=shard_id, ShardIteratorType=kind, **kw)[
        "ShardIterator"
    ]


@pytest.fixture(scope="module")
def stream4(kinesis):
    """A 4-shard stream shared by the routing tests (which only look at their own records)."""
    name = create_stream(kinesis, shards=4)
    return name, shards_sorted(kinesis, name)


# ------------------------------------------------------------------------------------------
# PutRecord
# ------------------------------------------------------------------------------------------


def test_put_record_returns_shard_and_56_digit_sequence_number(kinesis, stream4):
    name, shards = stream4
    r = kinesis.put_record(StreamName=name, Data=b"hello", PartitionKey="hello-key")
    assert r["ShardId"] in [s["ShardId"] for s in shards]
    assert SEQ56_RE.match(r["SequenceNumber"]), r["SequenceNumber"]
    assert r.get("EncryptionType", "NONE") == "NONE"
    # The sequence number is not below the shard's starting sequence number.
    shard = next(s for s in shards if s["ShardId"] == r["ShardId"])
    assert int(r["SequenceNumber"]) >= int(shard["SequenceNumberRange"]["StartingSequenceNumber"])


def test_put_record_routes_by_md5_of_partition_key(kinesis, stream4):
    name, shards = stream4
    rng = random.Random(1234)
    keys = [f"key-{i}" for i in range(40)] + ["", "ü-unicode-€", "a" * 256, str(rng.random())]
    keys = [k for k in keys if k]  # empty partition keys are invalid
    seen = set()
    for k in keys:
        r = kinesis.put_record(StreamName=name, Data=k.encode(), PartitionKey=k)
        expected = shard_for_hash(shards, md5_hash_key(k))
        assert r["ShardId"] == expected, f"partition key {k!r} (md5 {md5_hash_key(k)}) went to {r['ShardId']}"
        seen.add(r["ShardId"])
    assert len(seen) == 4, "40+ random keys should reach all 4 shards"


def test_put_record_routes_by_explicit_hash_key(kinesis, stream4):
    name, shards = stream4
    cases = [(0, shards[0]["ShardId"]), (MAX_HASH_KEY, shards[-1]["ShardId"])]
    for s in shards:
        lo, hi = int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])
        cases += [(lo, s["ShardId"]), (hi, s["ShardId"]), ((lo + hi) // 2, s["ShardId"])]
    for hash_key, shard_id in cases:
        # The partition key would hash elsewhere; ExplicitHashKey wins.
        pk = next(f"pk{i}" for i in range(1000) if shard_for_hash(shards, md5_hash_key(f"pk{i}")) != shard_id)
        r = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey=pk, ExplicitHashKey=str(hash_key))
        assert r["ShardId"] == shard_id, f"ExplicitHashKey {hash_key} -> {r['ShardId']}, expected {shard_id}"


def test_sequence_numbers_strictly_increase_per_shard(kinesis):
    name = create_stream(kinesis, shards=2)
    last = {}
    for i in range(60):
        r = kinesis.put_record(StreamName=name, Data=str(i).encode(), PartitionKey=f"k{i % 7}")
        seq = int(r["SequenceNumber"])
        if r["ShardId"] in last:
            assert seq > last[r["ShardId"]], f"sequence number went backwards on {r['ShardId']}"
        last[r["ShardId"]] = seq


def test_sequence_number_for_ordering(kinesis):
    name = create_stream(kinesis, shards=1)
    a = kinesis.put_record(StreamName=name, Data=b"a", PartitionKey="k")
    b = kinesis.put_record(StreamName=name, Data=b"b", PartitionKey="k", SequenceNumberForOrdering=a["SequenceNumber"])
    c = kinesis.put_record(StreamName=name, Data=b"c", PartitionKey="other", SequenceNumberForOrdering=b["SequenceNumber"])
    assert int(a["SequenceNumber"]) < int(b["SequenceNumber"]) < int(c["SequenceNumber"])
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    assert [r["Data"] for r in read_shard(kinesis, name, shard)] == [b"a", b"b", b"c"]


def test_put_record_with_empty_data(kinesis):
    # The Data blob may be empty (model: min 0).
    name = create_stream(kinesis, shards=1)
    r = kinesis.put_record(StreamName=name, Data=b"", PartitionKey="k")
    recs = read_shard(kinesis, name, r["ShardId"])
    assert [(x["Data"], x["PartitionKey"], x["SequenceNumber"]) for x in recs] == [(b"", "k", r["SequenceNumber"])]


# ------------------------------------------------------------------------------------------
# PutRecords
# ------------------------------------------------------------------------------------------


def test_put_records_results_in_request_order(kinesis):
    name = create_stream(kinesis, shards=4)
    shards = shards_sorted(kinesis, name)
    entries = [{"Data": f"payload-{i}".encode(), "PartitionKey": f"user-{i * 7919}"} for i in range(300)]
    # A few with explicit hash keys to the edges.
    entries[10]["ExplicitHashKey"] = "0"
    entries[20]["ExplicitHashKey"] = str(MAX_HASH_KEY)
    resp = kinesis.put_records(StreamName=name, Records=entries)
    assert resp["FailedRecordCount"] == 0
    assert len(resp["Records"]) == len(entries)
    expected = {}
    for i, (e, r) in enumerate(zip(entries, resp["Records"])):
        assert "ErrorCode" not in r, r
        hk = int(e["ExplicitHashKey"]) if "ExplicitHashKey" in e else md5_hash_key(e["PartitionKey"])
        assert r["ShardId"] == shard_for_hash(shards, hk), f"entry {i} reported on the wrong shard"
        assert SEQ56_RE.match(r["SequenceNumber"])
        expected[(r["ShardId"], r["SequenceNumber"])] = (e["Data"], e["PartitionKey"])
    assert len(expected) == len(entries), "duplicate (shard, sequence number) pairs"

    got = {}
    for s in shards:
        recs = read_shard(kinesis, name, s["ShardId"])
        seqs = [int(x["SequenceNumber"]) for x in recs]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        for x in recs:
            got[(s["ShardId"], x["SequenceNumber"])] = (x["Data"], x["PartitionKey"])
    assert got == expected
    # Entries with the same partition key keep request order within a shard.
    per_key = {}
    for e, r in zip(entries, resp["Records"]):
        per_key.setdefault(e["PartitionKey"], []).append(int(r["SequenceNumber"]))
    for k, seqs in per_key.items():
        assert seqs == sorted(seqs)


def test_put_records_same_key_keeps_order(kinesis):
    name = create_stream(kinesis, shards=2)
    entries = [{"Data": f"{i:04d}".encode(), "PartitionKey": "same"} for i in range(100)]
    resp = kinesis.put_records(StreamName=name, Records=entries)
    assert resp["FailedRecordCount"] == 0
    shard = resp["Records"][0]["ShardId"]
    assert all(r["ShardId"] == shard for r in resp["Records"])
    seqs = [int(r["SequenceNumber"]) for r in resp["Records"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 100
    assert [r["Data"] for r in read_shard(kinesis, name, shard)] == [e["Data"] for e in entries]


# ------------------------------------------------------------------------------------------
# GetShardIterator: the five types
# ------------------------------------------------------------------------------------------


def wait_clock_past(t):
    """Poll the wall clock (bounded) until it is past t."""
    deadline = time.monotonic() + 5
    while time.time() <= t:
        assert time.monotonic() < deadline, "clock did not advance"
        time.sleep(0.002)


def test_shard_iterator_types(kinesis):
    name = create_stream(kinesis, shards=1)
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    before_all = time.time() - 60

    # LATEST taken on an empty shard sees the records that come after it.
    latest_empty = get_iterator(kinesis, name, shard, "LATEST")

    seqs = []
    for i in range(2):
        seqs.append(kinesis.put_record(StreamName=name, Data=f"r{i}".encode(), PartitionKey="k")["SequenceNumber"])
    # A timestamp strictly between r1's arrival and r2's arrival (10 ms clear of both, so
    # millisecond rounding on either side cannot blur it).
    t_after_r1 = time.time()
    ts = t_after_r1 + 0.010
    wait_clock_past(ts + 0.010)
    for i in range(2, 5):
        seqs.append(kinesis.put_record(StreamName=name, Data=f"r{i}".encode(), PartitionKey="k")["SequenceNumber"])
    all_data = [f"r{i}".encode() for i in range(5)]

    def read_from(it, limit_calls=50):
        out = []
        for _ in range(limit_calls):
            resp = retry_throttled(kinesis.get_records, ShardIterator=it)
            out += resp["Records"]
            it = resp["NextShardIterator"]
            if not resp["Records"] and resp["MillisBehindLatest"] == 0:
                break
        return out, it

    recs, _ = read_from(get_iterator(kinesis, name, shard, "TRIM_HORIZON"))
    assert [r["Data"] for r in recs] == all_data
    assert [r["SequenceNumber"] for r in recs] == seqs
    assert all(r["PartitionKey"] == "k" for r in recs)
    arrivals = [r["ApproximateArrivalTimestamp"].timestamp() for r in recs]
    assert arrivals == sorted(arrivals)
    assert arrivals[1] < ts < arrivals[2], (arrivals, ts)

    recs, _ = read_from(latest_empty)
    assert [r["Data"] for r in recs] == all_data

    recs, it_latest = read_from(get_iterator(kinesis, name, shard, "LATEST"))
    assert recs == []
    kinesis.put_record(StreamName=name, Data=b"after-latest", PartitionKey="k")
    recs, _ = read_from(it_latest)
    assert [r["Data"] for r in recs] == [b"after-latest"]
    all_data.append(b"after-latest")

    recs, _ = read_from(get_iterator(kinesis, name, shard, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2]))
    assert [r["Data"] for r in recs] == all_data[2:]
    recs, _ = read_from(get_iterator(kinesis, name, shard, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2]))
    assert [r["Data"] for r in recs] == all_data[3:]
    recs, _ = read_from(get_iterator(kinesis, name, shard, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[0]))
    assert [r["Data"] for r in recs] == all_data
    recs, _ = read_from(get_iterator(kinesis, name, shard, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[-1]))
    assert [r["Data"] for r in recs] == all_data[5:]

    recs, _ = read_from(
        get_iterator(kinesis, name, shard, "AT_TIMESTAMP", Timestamp=datetime.datetime.fromtimestamp(ts, datetime.timezone.utc))
    )
    assert [r["Data"] for r in recs] == all_data[2:]
    # A time before the oldest record reads from the trim horizon.
    recs, _ = read_from(
        get_iterator(kinesis, name, shard, "AT_TIMESTAMP", Timestamp=datetime.datetime.fromtimestamp(before_all, datetime.timezone.utc))
    )
    assert [r["Data"] for r in recs] == all_data
    # Epoch-seconds timestamps (what the JSON protocol sends) with a fraction work too.
    recs, _ = read_from(get_iterator(kinesis, name, shard, "AT_TIMESTAMP", Timestamp=ts))
    assert [r["Data"] for r in recs] == all_data[2:]
    # A time just after the last record (but not in the future): nothing.
    t_now = time.time()
    wait_clock_past(t_now + 0.01)
    recs, _ = read_from(get_iterator(kinesis, name, shard, "AT_TIMESTAMP", Timestamp=t_now))
    assert recs == []
    # A time in the future is refused (AWS: "The timestampInMillis parameter cannot be greater
    # than the currentTimestampInMillis...", InvalidArgumentException; kinesalite recorded it).
    expect_error(
        "InvalidArgumentException",
        kinesis.get_shard_iterator,
        StreamName=name,
        ShardId=shard,
        ShardIteratorType="AT_TIMESTAMP",
        Timestamp=time.time() + 3600,
    )


def test_iterator_type_requires_its_parameter(kinesis, kinesis_unvalidated):
    name = create_stream(kinesis, shards=1)
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    # AT/AFTER_SEQUENCE_NUMBER without StartingSequenceNumber, AT_TIMESTAMP without Timestamp.
    for kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "AT_TIMESTAMP"):
        expect_error("InvalidArgumentException", kinesis.get_shard_iterator, StreamName=name, ShardId=shard, ShardIteratorType=kind)
    # Not one of the enum values: the model's enum constraint, ValidationException.
    expect_error(
        "ValidationException",
        kinesis_unvalidated.get_shard_iterator,
        StreamName=name,
        ShardId=shard,
        ShardIteratorType="SOMEWHERE",
    )


@pytest.mark.parametrize("kind", ["TRIM_HORIZON", "LATEST"])
def test_trim_horizon_or_latest_with_sequence_number_is_invalid(kinesis, kind):
    # AWS: InvalidArgumentException "Must either specify (1) AT_SEQUENCE_NUMBER or
    # AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no
    # StartingSequenceNumber. Request specified TRIM_HORIZON and also a StartingSequenceNumber."
    # (recorded from AWS by kinesalite's test suite).
    name = create_stream(kinesis, shards=1)
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    seq = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")["SequenceNumber"]
    expect_error(
        "InvalidArgumentException",
        kinesis.get_shard_iterator,
        StreamName=name,
        ShardId=shard,
        ShardIteratorType=kind,
        StartingSequenceNumber=seq,
    )


def test_get_shard_iterator_unknown_shard(kinesis):
    name = create_stream(kinesis, shards=1)
    expect_error(
        "ResourceNotFoundException",
        kinesis.get_shard_iterator,
        StreamName=name,
        ShardId="shardId-000000000007",
        ShardIteratorType="TRIM_HORIZON",
    )


def test_at_sequence_number_from_another_shard_is_invalid(kinesis):
    name = create_stream(kinesis, shards=2)
    shards = shards_sorted(kinesis, name)
    r = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k", ExplicitHashKey="0")
    assert r["ShardId"] == shards[0]["ShardId"]
    kinesis.put_record(StreamName=name, Data=b"y", PartitionKey="k", ExplicitHashKey=str(MAX_HASH_KEY))
    for kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        expect_error(
            "InvalidArgumentException",
            kinesis.get_shard_iterator,
            StreamName=name,
            ShardId=shards[1]["ShardId"],
            ShardIteratorType=kind,
            StartingSequenceNumber=r["SequenceNumber"],
        )


# ------------------------------------------------------------------------------------------
# GetRecords
# ------------------------------------------------------------------------------------------


def test_get_records_limit_and_chaining_reads_everything_once_in_order(kinesis):
    name = create_stream(kinesis, shards=1)
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    sent = [f"rec-{i:03d}".encode() for i in range(23)]
    seqs = [kinesis.put_record(StreamName=name, Data=d, PartitionKey="pk")["SequenceNumber"] for d in sent]

    it = get_iterator(kinesis, name, shard, "TRIM_HORIZON")
    got = []
    caught_up = None
    for _ in range(100):
        resp = retry_throttled(kinesis.get_records, ShardIterator=it, Limit=5)
        assert len(resp["Records"]) <= 5
        assert resp["NextShardIterator"], "an open shard always has a next iterator"
        assert isinstance(resp["MillisBehindLatest"], int) and resp["MillisBehindLatest"] >= 0
        got += resp["Records"]
        it = resp["NextShardIterator"]
        if len(got) == len(sent):
            # Everything read: nothing more, and caught up.
            caught_up = retry_throttled(kinesis.get_records, ShardIterator=it, Limit=5)
            break
    assert [r["Data"] for r in got] == sent
    assert [r["SequenceNumber"] for r in got] == seqs
    assert caught_up is not None and caught_up["Records"] == []
    assert caught_up["MillisBehindLatest"] == 0

    # New data after catching up is picked up by the same chain, once.
    kinesis.put_record(StreamName=name, Data=b"late", PartitionKey="pk")
    resp = retry_throttled(kinesis.get_records, ShardIterator=caught_up["NextShardIterator"])
    assert [r["Data"] for r in resp["Records"]] == [b"late"]
    resp = retry_throttled(kinesis.get_records, ShardIterator=resp["NextShardIterator"])
    assert resp["Records"] == [] and resp["MillisBehindLatest"] == 0


def test_get_records_same_iterator_twice_reads_the_same(kinesis):
    name = create_stream(kinesis, shards=1)
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    for i in range(3):
        kinesis.put_record(StreamName=name, Data=bytes([i]), PartitionKey="pk")
    it = get_iterator(kinesis, name, shard, "TRIM_HORIZON")
    a = retry_throttled(kinesis.get_records, ShardIterator=it, Limit=2)
    b = retry_throttled(kinesis.get_records, ShardIterator=it, Limit=2)
    assert [r["Data"] for r in a["Records"]] == [r["Data"] for r in b["Records"]] == [b"\x00", b"\x01"]


def test_binary_data_round_trips_exactly(kinesis):
    name = create_stream(kinesis, shards=1)
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    payloads = [
        bytes(range(256)),
        b"\x00" * 100,
        b"\x00",
        b"\xff\xfe\x00\x01",
        os.urandom(4096),
        "ünïcødé €".encode("utf-8"),
        b'{"json": "looking", "\\u0000": null}',
        b"=" * 3,
    ]
    for p in payloads:
        kinesis.put_record(StreamName=name, Data=p, PartitionKey="bin")
    resp = kinesis.put_records(StreamName=name, Records=[{"Data": p, "PartitionKey": "bin"} for p in payloads])
    assert resp["FailedRecordCount"] == 0
    assert [r["Data"] for r in read_shard(kinesis, name, shard)] == payloads + payloads


def test_max_size_record_round_trips(kinesis):
    # 1 MiB counts data + partition key: a 1-byte key leaves 1 MiB - 1 byte of data.
    name = create_stream(kinesis, shards=1)
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    data = os.urandom(1024 * 1024 - 1)
    r = kinesis.put_record(StreamName=name, Data=data, PartitionKey="k")
    recs = read_shard(kinesis, name, shard)
    assert len(recs) == 1
    assert recs[0]["SequenceNumber"] == r["SequenceNumber"]
    assert recs[0]["Data"] == data
    # And through PutRecords.
    data2 = os.urandom(1024 * 1024 - 2)
    # The shard's 1 MiB/s write limit is spent by the first record: wait it out.
    put_records_retrying(kinesis, StreamName=name, Records=[{"Data": data2, "PartitionKey": "kk"}])
    recs = read_shard(kinesis, name, shard, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=r["SequenceNumber"])
    assert [x["Data"] for x in recs] == [data2]


def test_records_visible_immediately_after_put(kinesis):
    # Read-your-write: as soon as PutRecord returns, a TRIM_HORIZON read's first call has it.
    name = create_stream(kinesis, shards=1)
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    for i in range(10):
        r = kinesis.put_record(StreamName=name, Data=f"ryw-{i}".encode(), PartitionKey="k")
        it = get_iterator(kinesis, name, shard, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=r["SequenceNumber"])
        resp = retry_throttled(kinesis.get_records, ShardIterator=it, Limit=1)
        assert [x["Data"] for x in resp["Records"]] == [f"ryw-{i}".encode()]
    it = get_iterator(kinesis, name, shard, "TRIM_HORIZON")
    resp = retry_throttled(kinesis.get_records, ShardIterator=it)
    assert [x["Data"] for x in resp["Records"]] == [f"ryw-{i}".encode() for i in range(10)]


def test_get_records_record_fields(kinesis):
    name = create_stream(kinesis, shards=1)
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    before = time.time()
    put = kinesis.put_record(StreamName=name, Data=b"fields", PartitionKey="the-key")
    after = time.time()
    it = get_iterator(kinesis, name, shard, "TRIM_HORIZON")
    resp = retry_throttled(kinesis.get_records, ShardIterator=it)
    (rec,) = resp["Records"]
    assert rec["SequenceNumber"] == put["SequenceNumber"]
    assert rec["PartitionKey"] == "the-key"
    assert rec["Data"] == b"fields"
    assert rec.get("EncryptionType", "NONE") == "NONE"
    ts = rec["ApproximateArrivalTimestamp"].timestamp()
    assert before - 1 <= ts <= after + 1


# ------------------------------------------------------------------------------------------
# Bad iterators
# ------------------------------------------------------------------------------------------


def _tamper(it):
    """Change one character in the middle of an iterator to another of the same alphabet."""
    i = len(it) // 2
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    c = it[i]
    repl = alphabet[(alphabet.index(c) + 1) % len(alphabet)] if c in alphabet else "A"
    return it[:i] + repl + it[i + 1 :]


def test_tampered_iterator_is_invalid(kinesis):
    name = create_stream(kinesis, shards=1)
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    kinesis.put_record(StreamName=name, Data=b"secret", PartitionKey="k")
    it = get_iterator(kinesis, name, shard, "TRIM_HORIZON")
    assert 1 <= len(it) <= 512
    bad = _tamper(it)
    assert bad != it
    expect_error("InvalidArgumentException", kinesis.get_records, ShardIterator=bad)
    # Every single-position change is caught, not just the middle one. (The last base64 quantum
    # is left alone: a lenient decoder may ignore its padding bits, which is harmless.)
    for pos in (0, len(it) // 4, 3 * len(it) // 4, len(it) - 5):
        c = it[pos]
        alt = "B" if c != "B" else "C"
        expect_error(
            ("InvalidArgumentException",), kinesis.get_records, ShardIterator=it[:pos] + alt + it[pos + 1 :]
        )
    # The untouched iterator still works.
    assert [r["Data"] for r in retry_throttled(kinesis.get_records, ShardIterator=it)["Records"]] == [b"secret"]


def test_garbage_iterator_is_invalid(kinesis, kinesis_unvalidated):
    expect_error("InvalidArgumentException", kinesis.get_records, ShardIterator="garbage")
    expect_error("InvalidArgumentException", kinesis.get_records, ShardIterator="A" * 200)
    # Outside the model's length constraint (1..512): ValidationException.
    expect_error("ValidationException", kinesis_unvalidated.get_records, ShardIterator="A" * 513)
    expect_error("ValidationException", kinesis_unvalidated.get_records, ShardIterator="")


def test_get_records_limit_out_of_range(kinesis, kinesis_unvalidated):
    name = create_stream(kinesis, shards=1)
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    it = get_iterator(kinesis, name, shard, "TRIM_HORIZON")
    # Model: GetRecordsInputLimit 1..10000.
    expect_error("ValidationException", kinesis_unvalidated.get_records, ShardIterator=it, Limit=0)
    expect_error("ValidationException", kinesis_unvalidated.get_records, ShardIterator=it, Limit=10001)


def test_iterator_of_deleted_stream(kinesis):
    name = create_stream(kinesis, shards=1)
    shard = list_all_shards(kinesis, name)[0]["ShardId"]
    it = get_iterator(kinesis, name, shard, "TRIM_HORIZON")
    kinesis.delete_stream(StreamName=name)
    wait_deleted(kinesis, name)
    expect_error("ResourceNotFoundException", kinesis.get_records, ShardIterator=it)
