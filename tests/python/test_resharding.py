"""Resharding (SplitShard, MergeShards, UpdateShardCount, UpdateStreamMode) and node membership
(`--join`, `kinesin ctl node drain` / `remove`), against real `kinesin` processes.

The single-node tests check the API as AWS defines it: the errors, the lineage (ParentShardId,
AdjacentParentShardId, EndingSequenceNumber, exact hash ranges), sequence numbers of children above
their parents', GetRecords at the end of a closed shard (ChildShards, no NextShardIterator), the
ListShards filters, UpdateShardCount and UpdateStreamMode, and that writes see no errors while the
stream reshards.

The cluster test runs four nodes (replication factor 3) with a writer on every gateway while the
stream is split, merged and scaled 2 -> 4 -> 2 (a node is killed with SIGKILL in the middle of the
last one and restarted), a fifth node joins, and node 2 is drained and removed. Afterwards every
acknowledged record is read back exactly once, in each writer's order per partition key, and the
open shards partition the hash space. `pytest -s` prints the measured figures on lines starting
with `FIGURES:`.
"""

import random
import re
import threading
import time
import urllib.error
import uuid
from collections import defaultdict

import botocore.exceptions
import pytest

from conftest import (
    MAX_HASH_KEY,
    Server,
    create_stream,
    error_code,
    expect_error,
    list_all_shards,
    make_client,
    md5_hash_key,
    poll,
    retry_throttled,
    unique_name,
    wait_active,
)
from test_cluster import admin, start_cluster
from test_ctl import ctl

UNIFORM = "UNIFORM_SCALING"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def message(exc):
    return exc.response["Error"].get("Message", "")


def hash_range(shard):
    r = shard["HashKeyRange"]
    return int(r["StartingHashKey"]), int(r["EndingHashKey"])


def is_open(shard):
    return "EndingSequenceNumber" not in shard["SequenceNumberRange"]


def parents_of(shard):
    return [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]


def shard_map(client, name):
    return {s["ShardId"]: s for s in list_all_shards(client, name)}


def open_shards(client, name):
    return [s for s in list_all_shards(client, name) if is_open(s)]


def summary(client, name):
    return client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]


def assert_partition(shards):
    """The shards' hash ranges cover [0, 2^128-1] exactly: no gap, no overlap."""
    ranges = sorted(hash_range(s) for s in shards)
    assert ranges, "no shards"
    assert ranges[0][0] == 0, ranges
    assert ranges[-1][1] == MAX_HASH_KEY, ranges
    for (start, end) in ranges:
        assert start <= end, ranges
    for (_, end), (start, _) in zip(ranges, ranges[1:]):
        assert start == end + 1, f"gap or overlap between ...{end} and {start}...: {ranges}"


def listed_ids(client, name, **kwargs):
    """ShardIds of one ListShards call (every test stream here has far fewer than a page)."""
    resp = client.list_shards(StreamName=name, **kwargs)
    assert not resp.get("NextToken"), resp
    return [s["ShardId"] for s in resp["Shards"]]


def sid(i):
    return f"shardId-{i:012d}"


def mid(shard):
    start, end = hash_range(shard)
    return (start + end + 1) // 2


def put_at(client, name, hash_key, tag="probe"):
    """PutRecord with an ExplicitHashKey; returns (shard id, sequence number, data)."""
    data = f"{tag}-{uuid.uuid4().hex}".encode()
    out = client.put_record(StreamName=name, Data=data, PartitionKey=tag, ExplicitHashKey=str(hash_key))
    return out["ShardId"], out["SequenceNumber"], data


def assert_kcl_shard_end_rule(shard_id, resp, closed):
    """The KCL's check of every GetRecords answer (DataRetrievalUtil.isValidResult): a null
    NextShardIterator comes with non-empty ChildShards, and never one without the other; an OPEN
    shard has no end."""
    end, children = resp.get("NextShardIterator") is None, bool(resp.get("ChildShards"))
    assert end == children, f"{shard_id}: NextShardIterator null = {end} but ChildShards non-empty = {children}: {resp}"
    assert closed or not end, f"open shard {shard_id} answered an end: {resp}"


def read_to_end(client, name, shard_id, closed=None, max_calls=1000, limit=None, calls_after_last_records=0, **start):
    """Every record of a shard (from TRIM_HORIZON unless `start` names another iterator), and the
    last GetRecords answer. Every answer must pass the KCL's shard-end rule.

    A CLOSED shard is read until its end, which must come with its last records, or at most
    `calls_after_last_records` answers after them (only a node whose replica had not yet applied
    the seal may need one more call); an OPEN one until an empty answer with MillisBehindLatest 0."""
    if closed is None:
        closed = not is_open(next(s for s in list_all_shards(client, name) if s["ShardId"] == shard_id))
    start = start or {"ShardIteratorType": "TRIM_HORIZON"}
    it = retry_throttled(client.get_shard_iterator, StreamName=name, ShardId=shard_id, **start)["ShardIterator"]
    records, empty = [], 0
    for _ in range(max_calls):
        kwargs = {"Limit": limit} if limit is not None else {}
        resp = retry_throttled(client.get_records, ShardIterator=it, **kwargs)
        assert_kcl_shard_end_rule(shard_id, resp, closed)
        records += resp["Records"]
        empty = 0 if resp["Records"] else empty + 1
        if resp.get("NextShardIterator") is None:
            # The answer with the shard's last records is the end (a shard read from a position
            # past its last record gets the end in the first answer).
            assert empty <= max(calls_after_last_records, 0 if records else 1), (
                f"closed shard {shard_id}: {empty} empty GetRecords answers after its {len(records)} records "
                f"before the one with no NextShardIterator: {resp}"
            )
            return records, resp
        it = resp["NextShardIterator"]
        if not closed and not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
            return records, resp
        assert not closed or empty <= calls_after_last_records, (
            f"closed shard {shard_id}: {empty} empty GetRecords answers after its {len(records)} records, "
            f"and still a NextShardIterator (expected null and ChildShards): {resp}"
        )
    raise AssertionError(f"{shard_id} of {name} not read to its end in {max_calls} calls")


def read_stream(client, name, calls_after_last_records=0):
    """(every shard as ListShards lists it, {shard id: records}) read through `client`. Each CLOSED
    shard's last GetRecords answer must name its children (ChildShards) as ListShards does."""
    shards = list_all_shards(client, name)
    stored = {}
    for s in shards:
        stored[s["ShardId"]], last = read_to_end(
            client, name, s["ShardId"], closed=not is_open(s), calls_after_last_records=calls_after_last_records
        )
        if not is_open(s):
            expected = sorted(
                (c["ShardId"], sorted(parents_of(c)), hash_range(c)) for c in shards if s["ShardId"] in parents_of(c)
            )
            got = sorted(
                (c["ShardId"], sorted(c["ParentShards"]), hash_range(c)) for c in last.get("ChildShards", [])
            )
            assert got == expected, f"ChildShards at the end of {s['ShardId']}: {got}, ListShards says {expected}"
    return shards, stored


def lineage_order(shards):
    """Shard ids with every shard after its parents (the order a KCL-style reader consumes them)."""
    by_id = {s["ShardId"]: s for s in shards}
    order, done = [], set()

    def visit(shard_id):
        if shard_id in done:
            return
        done.add(shard_id)
        for p in parents_of(by_id[shard_id]):
            if p in by_id:
                visit(p)
        order.append(shard_id)

    for shard_id in sorted(by_id):
        visit(shard_id)
    return order


class Ledger:
    """Every record attempted, and its outcome: acknowledged (shard, sequence number), or unknown
    ("maybe": the request failed; such a record may be stored at most once)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempted = {}  # data -> (writer id, partition key, hash key)
        self.acked = {}  # data -> (shard id, sequence number)
        self.ack_order = defaultdict(list)  # (writer id, partition key) -> [data in acknowledgement order]
        self.maybe = {}  # data -> why
        self.errors = []  # (writer id, sent, failed at, gateway node, what)
        self.ack_times = defaultdict(list)  # writer id -> [time of each acknowledged request]

    def attempt(self, wid, records):
        with self.lock:
            for data, key, hash_key in records:
                self.attempted[data] = (wid, key, hash_key)

    def ack(self, wid, data, key, shard, seq, at):
        with self.lock:
            self.acked[data] = (shard, seq)
            self.ack_order[(wid, key)].append(data)
            if wid != "probe":  # the test's own puts are neither progress nor a writer's stall
                self.ack_times[wid].append(at)

    def fail(self, wid, records, sent, node, what):
        now = time.monotonic()
        with self.lock:
            for data, *_ in records:
                self.maybe[data] = what
            self.errors.append((wid, sent, now, node, what))

    def acks_since(self, since, wids=None):
        with self.lock:
            return sum(
                sum(1 for t in times if t >= since)
                for wid, times in self.ack_times.items()
                if wids is None or wid in wids
            )

    def stalls(self, until):
        """Per writer: the longest gap between acknowledgements, as (gap, from, to)."""
        with self.lock:
            out = {}
            for wid, times in self.ack_times.items():
                times = sorted(times) + [until]
                out[wid] = max(((b - a, a, b) for a, b in zip(times, times[1:])), default=(0.0, until, until))
            return out


def probe_put(ledger, client, name, hash_key, tag="probe"):
    """A PutRecord by the test itself, recorded in the ledger (writer "probe")."""
    data = f"{tag}-{uuid.uuid4().hex}".encode()
    ledger.attempt("probe", [(data, tag, hash_key)])
    sent = time.monotonic()
    try:
        out = client.put_record(StreamName=name, Data=data, PartitionKey=tag, ExplicitHashKey=str(hash_key))
    except Exception as e:
        ledger.fail("probe", [(data,)], sent, None, f"{type(e).__name__}: {e}")
        raise
    ledger.ack("probe", data, tag, out["ShardId"], out["SequenceNumber"], time.monotonic())
    return out["ShardId"]


def verify(ledger, shards, stored):
    """Everything a reader must find, given what the writers were told. Returns (problems, stats)."""
    problems = []
    by_id = {s["ShardId"]: s for s in shards}
    where = defaultdict(list)  # data -> [(shard, seq)]
    for shard_id, records in stored.items():
        lo, hi = hash_range(by_id[shard_id])
        seqs = [int(r["SequenceNumber"]) for r in records]
        if any(b <= a for a, b in zip(seqs, seqs[1:])):
            problems.append(f"{shard_id}: sequence numbers not strictly increasing")
        for r in records:
            where[r["Data"]].append((shard_id, r["SequenceNumber"]))
            info = ledger.attempted.get(r["Data"])
            if info is None:
                problems.append(f"{shard_id}/{r['SequenceNumber']}: {r['Data']!r} was never written")
                continue
            _, key, hash_key = info
            if r["PartitionKey"] != key:
                problems.append(f"{shard_id}: {r['Data']!r} has partition key {r['PartitionKey']}, not {key}")
            if not lo <= hash_key <= hi:
                problems.append(f"{shard_id} [{lo}, {hi}] holds {r['Data']!r} whose hash key is {hash_key}")

    duplicates = {d: w for d, w in where.items() if len(w) > 1}
    if duplicates:
        sample = list(duplicates.items())[:3]
        problems.append(
            f"{len(duplicates)} records stored more than once "
            f"({sum(d in ledger.acked for d in duplicates)} of them acknowledged), e.g. "
            + "; ".join(f"{d!r} at {w}, acked as {ledger.acked.get(d)}, maybe: {ledger.maybe.get(d)}" for d, w in sample)
        )
    missing = [(d, a) for d, a in ledger.acked.items() if d not in where]
    if missing:
        problems.append(f"{len(missing)} acknowledged records are missing, e.g. {missing[:3]}")
    moved = [(d, a, where[d]) for d, a in ledger.acked.items() if d in where and where[d][0] != a]
    if moved:
        problems.append(f"{len(moved)} acknowledged records stored elsewhere than acknowledged, e.g. {moved[:3]}")

    # Lineage: a closed parent has an EndingSequenceNumber below every sequence number of its children.
    for s in shards:
        for p in parents_of(s):
            if p not in by_id:
                problems.append(f"{s['ShardId']}: parent {p} is not listed")
                continue
            ending = by_id[p]["SequenceNumberRange"].get("EndingSequenceNumber")
            if ending is None:
                problems.append(f"{s['ShardId']}: parent {p} is still open")
                continue
            if int(s["SequenceNumberRange"]["StartingSequenceNumber"]) <= int(ending):
                problems.append(f"{s['ShardId']} starts at or below its parent {p}'s EndingSequenceNumber")
            if stored.get(p) and stored.get(s["ShardId"]):
                if int(stored[s["ShardId"]][0]["SequenceNumber"]) <= int(stored[p][-1]["SequenceNumber"]):
                    problems.append(f"{s['ShardId']} has a sequence number not above every one of its parent {p}")
            if stored.get(p) and int(stored[p][-1]["SequenceNumber"]) > int(ending):
                problems.append(f"{p} holds a record above its EndingSequenceNumber {ending}")

    # Order: per writer and partition key, the acknowledged records in the order a reader meets them
    # (shards in lineage order, then by sequence number) are in the order they were acknowledged.
    position, i = {}, 0
    for shard_id in lineage_order(shards):
        for r in stored.get(shard_id, []):
            position.setdefault(r["Data"], i)
            i += 1
    reordered = []
    for (wid, key), datas in ledger.ack_order.items():
        if wid == "probe":
            continue  # probes use explicit hash keys: one partition key spans unrelated shards
        seen = [(position[d], d) for d in datas if d in position]
        for (a, da), (b, db) in zip(seen, seen[1:]):
            if b < a:
                reordered.append((wid, key, da, where[da], db, where[db]))
                break
    if reordered:
        problems.append(
            f"{len(reordered)} (writer, partition key) pairs read out of acknowledgement order, e.g. "
            + "; ".join(f"writer {w} key {k}: {a!r} at {wa} acked before {b!r} at {wb}" for w, k, a, wa, b, wb in reordered[:3])
        )
    stats = dict(
        attempted=len(ledger.attempted),
        acked=len(ledger.acked),
        maybe=len(ledger.maybe),
        maybe_stored=sum(1 for d in ledger.maybe if d in where),
        stored=sum(len(r) for r in stored.values()),
        shards=len(shards),
    )
    return problems, stats


KEYS = [f"key-{i}" for i in range(60)]  # the writers' fixed set of partition keys


# --------------------------------------------------------------------------------------------
# Single node: the API
# --------------------------------------------------------------------------------------------


def test_split_and_merge_validation_errors(kinesis):
    name = create_stream(kinesis, shards=3)
    shards = list_all_shards(kinesis, name)
    s0, s1, s2 = (s["ShardId"] for s in shards)
    (a0, e0), (a1, e1), (a2, e2) = (hash_range(s) for s in shards)

    # An unknown shard, an unknown stream.
    e = expect_error(
        "ResourceNotFoundException", kinesis.split_shard, StreamName=name, ShardToSplit=sid(42), NewStartingHashKey=str(a0 + 276)
    )
    assert sid(42) in message(e), message(e)
    expect_error(
        "ResourceNotFoundException",
        kinesis.split_shard,
        StreamName=unique_name("missing"),
        ShardToSplit=s0,
        NewStartingHashKey="276",
    )
    e = expect_error(
        "ResourceNotFoundException", kinesis.merge_shards, StreamName=name, ShardToMerge=s0, AdjacentShardToMerge=sid(42)
    )
    assert sid(42) in message(e), message(e)
    e = expect_error(
        "ResourceNotFoundException", kinesis.merge_shards, StreamName=name, ShardToMerge=sid(42), AdjacentShardToMerge=s0
    )
    assert sid(42) in message(e), message(e)

    # NewStartingHashKey must be > StartingHashKey + 1 and < EndingHashKey of the shard.
    for shard, start, end in ((s0, a0, e0), (s1, a1, e1)):
        for key in (start, start + 1, end, end + 1, MAX_HASH_KEY):
            e = expect_error(
                "InvalidArgumentException", kinesis.split_shard, StreamName=name, ShardToSplit=shard, NewStartingHashKey=str(key)
            )
            assert shard in message(e), (key, message(e))
    e = expect_error("InvalidArgumentException", kinesis.split_shard, StreamName=name, ShardToSplit=s1, NewStartingHashKey=str(a1 - 1))
    assert s1 in message(e), message(e)

    # Merged shards must be adjacent.
    e = expect_error("InvalidArgumentException", kinesis.merge_shards, StreamName=name, ShardToMerge=s0, AdjacentShardToMerge=s2)
    assert s0 in message(e) and s2 in message(e), message(e)

    # None of that changed anything.
    assert summary(kinesis, name)["StreamStatus"] == "ACTIVE"
    assert [(s["ShardId"], hash_range(s), is_open(s)) for s in list_all_shards(kinesis, name)] == [
        (s0, (a0, e0), True),
        (s1, (a1, e1), True),
        (s2, (a2, e2), True),
    ]

    # The smallest allowed key: StartingHashKey + 2 (the lower child holds two hash keys).
    kinesis.split_shard(StreamName=name, ShardToSplit=s1, NewStartingHashKey=str(a1 + 2))
    wait_active(kinesis, name)
    shards = shard_map(kinesis, name)
    assert sorted(shards) == [s0, s1, s2, sid(3), sid(4)]
    assert hash_range(shards[sid(3)]) == (a1, a1 + 1)
    assert hash_range(shards[sid(4)]) == (a1 + 2, e1)
    assert not is_open(shards[s1])

    # A closed shard can be neither split nor merged again.
    e = expect_error("ResourceInUseException", kinesis.split_shard, StreamName=name, ShardToSplit=s1, NewStartingHashKey=str(mid(shards[s1])))
    assert s1 in message(e), message(e)
    e = expect_error("ResourceInUseException", kinesis.merge_shards, StreamName=name, ShardToMerge=s0, AdjacentShardToMerge=s1)
    assert s1 in message(e), message(e)
    e = expect_error("ResourceInUseException", kinesis.merge_shards, StreamName=name, ShardToMerge=s1, AdjacentShardToMerge=s2)
    assert s1 in message(e), message(e)
    # The two-key child is not adjacent to shard 2.
    e = expect_error("InvalidArgumentException", kinesis.merge_shards, StreamName=name, ShardToMerge=sid(3), AdjacentShardToMerge=s2)
    assert sid(3) in message(e) and s2 in message(e), message(e)

    # The largest allowed key: EndingHashKey - 1 (the upper child holds two hash keys).
    kinesis.split_shard(StreamName=name, ShardToSplit=s2, NewStartingHashKey=str(e2 - 1))
    wait_active(kinesis, name)
    shards = shard_map(kinesis, name)
    assert hash_range(shards[sid(5)]) == (a2, e2 - 2)
    assert hash_range(shards[sid(6)]) == (e2 - 1, e2)

    # Adjacent shards merge whichever of the two is named first (here the upper one).
    kinesis.merge_shards(StreamName=name, ShardToMerge=sid(3), AdjacentShardToMerge=s0)
    wait_active(kinesis, name)
    shards = shard_map(kinesis, name)
    merged = shards[sid(7)]
    assert hash_range(merged) == (a0, a1 + 1)
    assert {merged["ParentShardId"], merged["AdjacentParentShardId"]} == {s0, sid(3)}
    assert_partition([s for s in shards.values() if is_open(s)])
    assert sorted(s for s, sh in shards.items() if is_open(sh)) == [sid(4), sid(5), sid(6), sid(7)]


def test_resharding_while_updating_is_resource_in_use(kinesis):
    """While a resharding is under way (UPDATING) every other change of the stream is refused
    with ResourceInUseException; reads and writes go on."""
    attempts = {
        "SplitShard": lambda name: kinesis.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(2**120)),
        "MergeShards": lambda name: kinesis.merge_shards(StreamName=name, ShardToMerge=sid(2), AdjacentShardToMerge=sid(3)),
        "UpdateShardCount": lambda name: kinesis.update_shard_count(StreamName=name, TargetShardCount=4, ScalingType=UNIFORM),
        "UpdateStreamMode": lambda name: kinesis.update_stream_mode(
            StreamARN=summary(kinesis, name)["StreamARN"], StreamModeDetails={"StreamMode": "ON_DEMAND"}
        ),
    }
    seen = {}
    for _ in range(6):
        if len(seen) == len(attempts):
            break
        # 4 -> 3 takes two rounds (two splits at 1/3 and 2/3, then three merges): a wide window.
        name = create_stream(kinesis, shards=4)
        kinesis.update_shard_count(StreamName=name, TargetShardCount=3, ScalingType=UNIFORM)
        for op, call in attempts.items():
            if op in seen:
                continue
            before = summary(kinesis, name)["StreamStatus"]
            try:
                call(name)
                outcome = None
            except botocore.exceptions.ClientError as e:
                outcome = e
            after = summary(kinesis, name)["StreamStatus"]
            if outcome is None:
                # Accepted: the first resharding may have ended just before (and this one made the
                # stream UPDATING again), so this says nothing. A server that accepted changes while
                # UPDATING never refuses one, and the final assertion fails.
                break
            if before == after == "UPDATING":
                assert error_code(outcome) == "ResourceInUseException", (op, outcome.response)
                assert name in message(outcome), message(outcome)
                seen[op] = message(outcome)
                # Writes and reads go on meanwhile.
                shard, seq, _ = put_at(kinesis, name, 2**127 + 5, tag="during")
                it = kinesis.get_shard_iterator(
                    StreamName=name, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=seq
                )["ShardIterator"]
                assert kinesis.get_records(ShardIterator=it)["Records"][0]["SequenceNumber"] == seq
        wait_active(kinesis, name, timeout=60)
    assert set(seen) == set(attempts), f"never refused while UPDATING: {set(attempts) - set(seen)}"


def test_shard_limit_is_enforced_on_split_and_update_shard_count(server_factory):
    srv = server_factory(extra_args=["--shard-limit", "3"])
    client = srv.client()
    name = create_stream(client, shards=3)
    shards = list_all_shards(client, name)
    e = expect_error(
        "LimitExceededException",
        client.split_shard,
        StreamName=name,
        ShardToSplit=shards[0]["ShardId"],
        NewStartingHashKey=str(mid(shards[0])),
    )
    # AWS's words, http:// included (kinesalite test/splitShard.js).
    assert message(e) == (
        "This request would exceed the shard limit for the account 000000000000 in us-east-1. "
        "Current shard count for the account: 3. Limit: 3. Number of additional shards that would have "
        "resulted from this request: 1. Refer to the AWS Service Limits page "
        "(http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) "
        "for current limits and how to request higher limits."
    ), message(e)
    expect_error("LimitExceededException", client.update_shard_count, StreamName=name, TargetShardCount=4, ScalingType=UNIFORM)
    assert [s["ShardId"] for s in list_all_shards(client, name)] == [sid(0), sid(1), sid(2)]
    assert summary(client, name)["StreamStatus"] == "ACTIVE"

    # A merge frees one open shard, and then a split fits again.
    client.merge_shards(StreamName=name, ShardToMerge=sid(0), AdjacentShardToMerge=sid(1))
    wait_active(client, name)
    client.split_shard(StreamName=name, ShardToSplit=sid(2), NewStartingHashKey=str(mid(shards[2])))
    wait_active(client, name)
    assert summary(client, name)["OpenShardCount"] == 3
    limits = client.describe_limits()
    assert limits["ShardLimit"] == 3 and limits["OpenShardCount"] == 3, limits


def test_split_then_merge_lineage_ranges_sequence_numbers_and_child_shards(kinesis):
    name = create_stream(kinesis, shards=1)
    p0 = sid(0)
    before = [put_at(kinesis, name, h, tag="before") for h in (0, 275, 276, MAX_HASH_KEY, 275, 0)]
    assert {shard for shard, _, _ in before} == {p0}

    # Split at 276: children [0, 275] and [276, MAX].
    assert kinesis.split_shard(StreamName=name, ShardToSplit=p0, NewStartingHashKey="276")["ResponseMetadata"]["HTTPStatusCode"] == 200
    wait_active(kinesis, name)
    shards = shard_map(kinesis, name)
    assert sorted(shards) == [p0, sid(1), sid(2)]
    ending0 = int(shards[p0]["SequenceNumberRange"]["EndingSequenceNumber"])
    assert int(shards[p0]["SequenceNumberRange"]["StartingSequenceNumber"]) <= ending0
    assert all(int(seq) <= ending0 for _, seq, _ in before)
    assert hash_range(shards[p0]) == (0, MAX_HASH_KEY)
    for child, rng in ((sid(1), (0, 275)), (sid(2), (276, MAX_HASH_KEY))):
        c = shards[child]
        assert c["ParentShardId"] == p0, c
        assert c.get("AdjacentParentShardId") is None, c
        assert hash_range(c) == rng
        assert is_open(c)
        assert int(c["SequenceNumberRange"]["StartingSequenceNumber"]) > ending0
    assert listed_ids(kinesis, name, ShardFilter={"Type": "AT_LATEST"}) == [sid(1), sid(2)]
    assert summary(kinesis, name)["OpenShardCount"] == 2

    middle = [put_at(kinesis, name, h, tag="middle") for h in (0, 275, 276, MAX_HASH_KEY)]
    assert [shard for shard, _, _ in middle] == [sid(1), sid(1), sid(2), sid(2)]
    assert min(int(seq) for _, seq, _ in middle) > max(int(seq) for _, seq, _ in before)
    assert min(int(seq) for _, seq, _ in middle) > ending0

    # Merge the two children: [0, MAX] again, with both parents named.
    kinesis.merge_shards(StreamName=name, ShardToMerge=sid(1), AdjacentShardToMerge=sid(2))
    wait_active(kinesis, name)
    shards = shard_map(kinesis, name)
    assert sorted(shards) == [p0, sid(1), sid(2), sid(3)]
    merged = shards[sid(3)]
    assert merged["ParentShardId"] == sid(1) and merged["AdjacentParentShardId"] == sid(2), merged
    assert hash_range(merged) == (0, MAX_HASH_KEY)
    assert is_open(merged)
    endings = {s: int(shards[s]["SequenceNumberRange"]["EndingSequenceNumber"]) for s in (sid(1), sid(2))}
    assert int(merged["SequenceNumberRange"]["StartingSequenceNumber"]) > max(endings.values())
    for shard, seq, _ in middle:
        assert int(seq) <= endings[shard]
    after = [put_at(kinesis, name, h, tag="after") for h in (0, 276, MAX_HASH_KEY)]
    assert {shard for shard, _, _ in after} == {sid(3)}
    assert min(int(seq) for _, seq, _ in after) > max(int(seq) for _, seq, _ in middle)

    # Reading: each closed parent to its end gives its records, then ChildShards and no iterator.
    def datas(puts, shard=None):
        return [d for s, _, d in puts if shard is None or s == shard]

    records, last = read_to_end(kinesis, name, p0)
    assert [r["Data"] for r in records] == datas(before)
    assert last.get("NextShardIterator") is None
    assert sorted(last["ChildShards"], key=lambda c: c["ShardId"]) == [
        {"ShardId": sid(1), "ParentShards": [p0], "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "275"}},
        {"ShardId": sid(2), "ParentShards": [p0], "HashKeyRange": {"StartingHashKey": "276", "EndingHashKey": str(MAX_HASH_KEY)}},
    ]
    for parent in (sid(1), sid(2)):
        records, last = read_to_end(kinesis, name, parent)
        assert [r["Data"] for r in records] == datas(middle, parent)
        assert last.get("NextShardIterator") is None
        assert len(last["ChildShards"]) == 1, last["ChildShards"]
        child = last["ChildShards"][0]
        assert child["ShardId"] == sid(3)
        assert sorted(child["ParentShards"]) == [sid(1), sid(2)]
        assert child["HashKeyRange"] == {"StartingHashKey": "0", "EndingHashKey": str(MAX_HASH_KEY)}
    records, last = read_to_end(kinesis, name, sid(3))
    assert [r["Data"] for r in records] == datas(after)
    assert last.get("NextShardIterator") and not last.get("ChildShards")

    # A LATEST iterator on a closed shard is at its end: one call answers no records, ChildShards
    # and no iterator.
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=sid(1), ShardIteratorType="LATEST")["ShardIterator"]
    resp = retry_throttled(kinesis.get_records, ShardIterator=it)
    assert resp["Records"] == []
    assert resp.get("NextShardIterator") is None and [c["ShardId"] for c in resp["ChildShards"]] == [sid(3)], resp


def test_a_closed_shards_last_records_come_with_its_end_whatever_the_page_size(kinesis):
    """The end of a CLOSED shard (no NextShardIterator, ChildShards) is the answer that returns its
    last records: no extra empty round trip, however the pages fall. Open shards never answer
    ChildShards, nor does a closed one before its end (read_to_end checks every answer)."""
    name = create_stream(kinesis, shards=1)
    before = [put_at(kinesis, name, i, tag=f"before{i}") for i in range(7)]
    kinesis.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(2**127))
    wait_active(kinesis, name)
    middle = [put_at(kinesis, name, i, tag=f"middle{i}") for i in range(5)]  # all in shard 1
    kinesis.merge_shards(StreamName=name, ShardToMerge=sid(1), AdjacentShardToMerge=sid(2))
    wait_active(kinesis, name)
    after = [put_at(kinesis, name, i, tag=f"after{i}") for i in range(3)]
    shards = shard_map(kinesis, name)
    assert sorted(shards) == [sid(i) for i in range(4)] and is_open(shards[sid(3)]), shards
    # A split parent, a merge parent with records, and one with none.
    for shard_id, written in ((sid(0), before), (sid(1), middle), (sid(2), [])):
        for limit in (None, 1, 2, 4, 5, 6):
            records, last = read_to_end(kinesis, name, shard_id, limit=limit)
            assert [r["Data"] for r in records] == [d for _, _, d in written], (shard_id, limit)
            if written:
                assert last["Records"], f"{shard_id} Limit={limit}: the end came after the last records: {last}"
            expected = sorted(c for c, s in shards.items() if shard_id in parents_of(s))
            assert sorted(c["ShardId"] for c in last["ChildShards"]) == expected, (shard_id, last)
            for child in last["ChildShards"]:
                assert sorted(child["ParentShards"]) == sorted(parents_of(shards[child["ShardId"]])), child
                assert hash_range(child) == hash_range(shards[child["ShardId"]]), child
    # The open shard: read to its latest record, never an end.
    records, last = read_to_end(kinesis, name, sid(3), closed=False, limit=2)
    assert [r["Data"] for r in records] == [d for _, _, d in after]
    assert last.get("NextShardIterator") and not last.get("ChildShards")


def test_an_iterator_at_the_end_of_a_closed_shard_gets_the_end_in_one_call(kinesis):
    name = create_stream(kinesis, shards=1)
    written = [put_at(kinesis, name, h, tag="end") for h in (1, 2, 3)]
    last_seq = written[-1][1]
    kinesis.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(2**127))
    wait_active(kinesis, name)
    expected_children = [sid(1), sid(2)]
    for start in (
        {"ShardIteratorType": "LATEST"},
        {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": last_seq},
        {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": last_seq},
        {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": time.time()},
    ):
        it = retry_throttled(kinesis.get_shard_iterator, StreamName=name, ShardId=sid(0), **start)["ShardIterator"]
        resp = retry_throttled(kinesis.get_records, ShardIterator=it)
        assert_kcl_shard_end_rule(sid(0), resp, closed=True)
        assert resp.get("NextShardIterator") is None, (start, resp)
        assert sorted(c["ShardId"] for c in resp["ChildShards"]) == expected_children, (start, resp)
        at_last = start["ShardIteratorType"] == "AT_SEQUENCE_NUMBER"
        assert [r["SequenceNumber"] for r in resp["Records"]] == ([last_seq] if at_last else []), (start, resp)


def test_list_shards_filters_after_resharding(kinesis):
    name = create_stream(kinesis, shards=1)
    kinesis.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(2**127))
    wait_active(kinesis, name)
    assert listed_ids(kinesis, name, ShardFilter={"Type": "AT_LATEST"}) == [sid(1), sid(2)]
    assert listed_ids(kinesis, name, ShardFilter={"Type": "AT_TRIM_HORIZON"}) == [sid(0)]
    assert listed_ids(kinesis, name, ShardFilter={"Type": "FROM_TRIM_HORIZON"}) == [sid(0), sid(1), sid(2)]

    kinesis.merge_shards(StreamName=name, ShardToMerge=sid(1), AdjacentShardToMerge=sid(2))
    wait_active(kinesis, name)
    kinesis.split_shard(StreamName=name, ShardToSplit=sid(3), NewStartingHashKey=str(2**126))
    wait_active(kinesis, name)
    everything = [sid(i) for i in range(6)]
    assert listed_ids(kinesis, name) == everything
    assert listed_ids(kinesis, name, ShardFilter={"Type": "FROM_TRIM_HORIZON"}) == everything
    assert listed_ids(kinesis, name, ShardFilter={"Type": "AT_LATEST"}) == [sid(4), sid(5)]
    assert listed_ids(kinesis, name, ShardFilter={"Type": "AT_TRIM_HORIZON"}) == [sid(0)]
    assert listed_ids(kinesis, name, ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": sid(1)}) == [sid(2), sid(3), sid(4), sid(5)]
    assert listed_ids(kinesis, name, ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": sid(5)}) == []
    assert listed_ids(kinesis, name, ExclusiveStartShardId=sid(2)) == [sid(3), sid(4), sid(5)]
    latest = kinesis.list_shards(StreamName=name, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    assert all(is_open(s) for s in latest)
    assert_partition(latest)
    # DescribeStream lists every shard too, closed ones with their EndingSequenceNumber.
    described = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"]
    assert [s["ShardId"] for s in described] == everything
    assert [s["ShardId"] for s in described if not is_open(s)] == [sid(0), sid(1), sid(2), sid(3)]
    assert summary(kinesis, name)["OpenShardCount"] == 2


def test_update_shard_count_1_2_4_2_partitions_the_hash_space(kinesis):
    name = create_stream(kinesis, shards=1)
    # UNIFORM_SCALING: the open shards end up as even as those of a stream created with that count.
    reference = {n: sorted(hash_range(s) for s in list_all_shards(kinesis, create_stream(kinesis, shards=n))) for n in (2, 4)}
    current = 1
    for target in (2, 4, 2):
        out = kinesis.update_shard_count(StreamName=name, TargetShardCount=target, ScalingType=UNIFORM)
        assert (out["StreamName"], out["CurrentShardCount"], out["TargetShardCount"]) == (name, current, target), out
        done = wait_active(kinesis, name, timeout=60)
        assert done["OpenShardCount"] == target, done
        shards = list_all_shards(kinesis, name)
        opened = [s for s in shards if is_open(s)]
        assert len(opened) == target
        assert_partition(opened)
        assert sorted(hash_range(s) for s in opened) == reference[target]
        assert listed_ids(kinesis, name, ShardFilter={"Type": "AT_LATEST"}) == sorted(s["ShardId"] for s in opened)
        # Every shard but the first descends from shard 0, and closed ones are parents.
        by_id = {s["ShardId"]: s for s in shards}
        for s in shards:
            assert s["ShardId"] == sid(0) or parents_of(s), s
            for p in parents_of(s):
                assert not is_open(by_id[p]), (s, by_id[p])
        if target == 4:
            # Out of bounds: below half or above double of the open count.
            for bad in (1, 9):
                e = expect_error(
                    "InvalidArgumentException", kinesis.update_shard_count, StreamName=name, TargetShardCount=bad, ScalingType=UNIFORM
                )
                assert str(bad) in message(e), message(e)
            assert summary(kinesis, name)["StreamStatus"] == "ACTIVE"
        current = target


def test_update_stream_mode_to_on_demand_and_back(kinesis):
    name = create_stream(kinesis, shards=2)
    before = summary(kinesis, name)
    arn = before["StreamARN"]
    assert before["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    s = wait_active(kinesis, name)
    assert s["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}, s
    assert kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert put_at(kinesis, name, 12345, tag="on-demand")[0] in listed_ids(kinesis, name, ShardFilter={"Type": "AT_LATEST"})
    kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "PROVISIONED"})
    s = wait_active(kinesis, name)
    assert s["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}, s
    assert put_at(kinesis, name, 12345, tag="provisioned")[0] in listed_ids(kinesis, name, ShardFilter={"Type": "AT_LATEST"})
    e = expect_error(
        "ResourceNotFoundException",
        kinesis.update_stream_mode,
        StreamARN=arn.replace(name, unique_name("missing")),
        StreamModeDetails={"StreamMode": "ON_DEMAND"},
    )
    assert "missing" in message(e), message(e)


def test_on_demand_streams_split_hot_shards_and_merge_cold_ones(server_factory):
    # Thresholds low enough for a test to cross them: a shard taking more than 40 records/s is
    # split, adjacent shards both under 5 records/s are merged, checked every second.
    srv = server_factory(extra_args=[
        "--on-demand-check-secs", "1",
        "--on-demand-split-records", "40", "--on-demand-merge-records", "5",
        "--on-demand-split-bytes", "1000000", "--on-demand-merge-bytes", "100000",
    ])
    client = srv.client()
    name = unique_name("od")
    client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(client, name)
    assert len(open_shards(client, name)) == 4, "AWS's on-demand start: 4 shards"
    expect_error(
        "InvalidArgumentException",
        client.split_shard,
        StreamName=name, ShardToSplit=sid(0), NewStartingHashKey="1000",
    )

    # One hot key: its shard (and only its shard) goes over the split threshold.
    stop = threading.Event()

    def hot():
        while not stop.is_set():
            client.put_records(StreamName=name, Records=[
                {"Data": b"x" * 10, "PartitionKey": "hot", "ExplicitHashKey": "7"} for _ in range(20)
            ])
            time.sleep(0.05)

    writer = threading.Thread(target=hot, daemon=True)
    writer.start()
    try:
        poll(lambda: len(open_shards(client, name)) > 4, timeout=60, what="the hot shard to split")
    finally:
        stop.set()
        writer.join(timeout=30)
    split = {s["ShardId"]: s for s in shard_map(client, name).values()}
    hot_parent = [s for s in split.values() if s.get("ParentShardId") == sid(0)]
    assert len(hot_parent) == 2, f"the shard holding hash key 7 was split: {sorted(split)}"
    assert_partition(open_shards(client, name))

    # Idle again: cold neighbours merge back, never below 4 shards.
    poll(lambda: len(open_shards(client, name)) == 4 and summary(client, name)["StreamStatus"] == "ACTIVE",
         timeout=60, what="cold shards to merge back to 4")
    assert_partition(open_shards(client, name))


def simple_writer(wid, client, name, ledger, stop, pace=0.005):
    """PutRecords of 5 distinct keys at a time, until `stop`; every failure is recorded."""
    rng = random.Random(wid)
    n = 0
    while not stop.is_set():
        records = []
        for key in rng.sample(KEYS, 5):
            n += 1
            records.append((f"{wid}-{n}-{uuid.uuid4().hex[:8]}".encode(), key, md5_hash_key(key)))
        ledger.attempt(wid, records)
        sent = time.monotonic()
        try:
            out = client.put_records(StreamName=name, Records=[{"Data": d, "PartitionKey": k} for d, k, _ in records])
            now = time.monotonic()
            for (data, key, _), r in zip(records, out["Records"]):
                if "ErrorCode" in r:
                    ledger.fail(wid, [(data,)], sent, None, f"{r['ErrorCode']}: {r.get('ErrorMessage')}")
                else:
                    ledger.ack(wid, data, key, r["ShardId"], r["SequenceNumber"], now)
        except Exception as e:  # noqa: BLE001 - every exception is a finding, reported by the test
            ledger.fail(wid, records, sent, None, f"{type(e).__name__}: {e}")
            time.sleep(0.05)
        time.sleep(pace)


def test_writes_see_no_errors_during_split_merge_and_update_shard_count(kinesis, server):
    name = create_stream(kinesis, shards=1)
    ledger = Ledger()
    stop = threading.Event()
    threads = [
        threading.Thread(target=simple_writer, args=(f"w{i}", server.client(read_timeout=60), name, ledger, stop), daemon=True)
        for i in range(2)
    ]
    timings = []
    try:
        for t in threads:
            t.start()

        def step(label, call):
            since = time.monotonic()
            poll(lambda: ledger.acks_since(since) >= 50, timeout=30, what=f"writes before {label}")
            t0 = time.monotonic()
            call()
            wait_active(kinesis, name, timeout=60)
            timings.append((label, time.monotonic() - t0))

        step("split", lambda: kinesis.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(2**127)))
        step("merge", lambda: kinesis.merge_shards(StreamName=name, ShardToMerge=sid(1), AdjacentShardToMerge=sid(2)))
        for target in (2, 4, 2):
            step(
                f"update-shard-count->{target}",
                lambda target=target: kinesis.update_shard_count(StreamName=name, TargetShardCount=target, ScalingType=UNIFORM),
            )
        since = time.monotonic()
        poll(lambda: ledger.acks_since(since) >= 50, timeout=30, what="writes after the last resharding")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a writer hung"

    stalls = ledger.stalls(time.monotonic())
    print(
        "\nFIGURES: single node: "
        + ", ".join(f"{label} {secs:.2f}s" for label, secs in timings)
        + f"; longest write stall {max(s[0] for s in stalls.values()):.2f}s; {len(ledger.acked)} records acknowledged"
    )
    assert not ledger.errors, f"{len(ledger.errors)} failed writes during resharding, e.g. {ledger.errors[:5]}"
    shards, stored = read_stream(kinesis, name)
    problems, stats = verify(ledger, shards, stored)
    assert not problems, problems
    assert stats["stored"] == stats["acked"], stats
    assert_partition([s for s in shards if is_open(s)])


# --------------------------------------------------------------------------------------------
# A cluster: resharding and membership changes under writes
# --------------------------------------------------------------------------------------------

WRITER_CONFIG = dict(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=1, read_timeout=20)
PROBE_CONFIG = dict(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=30)


class ClusterWriter(threading.Thread):
    """Writes through its home gateway, one PutRecords (4 distinct keys of KEYS) at a time. A request
    that fails makes its records "maybe"; the next request (fresh payloads) goes to another node
    that is up, and the writer returns home 2 s after its last failure there."""

    def __init__(self, wid, home, routes, ledger, stream, stop):
        super().__init__(daemon=True)
        self.wid = wid
        self.home = home  # node id (the orchestrator may move it)
        # routes["gateways"]: node id -> endpoint of the nodes writers may use; the orchestrator
        # replaces the dict as a whole (never mutates it), so a writer reads one consistent map.
        self.routes = routes
        self.ledger = ledger
        self.stream = stream
        self.stop = stop
        self.clients = {}
        self.failed_at = {}

    def client(self, endpoint):
        if endpoint not in self.clients:
            self.clients[endpoint] = make_client(endpoint, **WRITER_CONFIG)
        return self.clients[endpoint]

    def pick(self, gateways=None):
        gateways = gateways if gateways is not None else self.routes["gateways"]
        now = time.monotonic()
        if self.home in gateways and now - self.failed_at.get(self.home, -10) > 2:
            return self.home
        return min(sorted(gateways), key=lambda n: (self.failed_at.get(n, -10), n))

    def run(self):
        rng = random.Random(self.wid)
        n = 0
        while not self.stop.is_set():
            records = []
            for key in rng.sample(KEYS, 4):
                n += 1
                records.append((f"{self.wid}-{n}-{uuid.uuid4().hex[:8]}".encode(), key, md5_hash_key(key)))
            self.ledger.attempt(self.wid, records)
            gateways = self.routes["gateways"]
            node = self.pick(gateways)
            sent = time.monotonic()
            try:
                out = self.client(gateways[node]).put_records(
                    StreamName=self.stream, Records=[{"Data": d, "PartitionKey": k} for d, k, _ in records]
                )
                now = time.monotonic()
                for (data, key, _), r in zip(records, out["Records"]):
                    if "ErrorCode" in r:
                        self.ledger.fail(self.wid, [(data,)], sent, node, f"{r['ErrorCode']}: {r.get('ErrorMessage')}")
                    else:
                        self.ledger.ack(self.wid, data, key, r["ShardId"], r["SequenceNumber"], now)
                if out.get("FailedRecordCount", 0):
                    self.failed_at[node] = time.monotonic()
            except Exception as e:  # noqa: BLE001 - any failure: unknown outcome, judged by the test
                self.ledger.fail(self.wid, records, sent, node, f"{type(e).__name__}: {e}")
                self.failed_at[node] = time.monotonic()
                time.sleep(0.05)
            time.sleep(0.01)


def cluster_view(server):
    return admin(server, "/admin/v1/cluster")


def shards_view(server, stream):
    return admin(server, f"/admin/v1/streams/{stream}/shards")


def replica_moves(view, new_ids):
    """For each new shard: (id, replicas, [(parent, parent replicas)], whether its set differs from every parent's)."""
    by_id = {s["shard_id"]: s for s in view["shards"]}
    out = []
    for c in sorted(new_ids):
        child = by_id[c]
        parents = [by_id[p] for p in (child.get("parent_shard_id"), child.get("adjacent_parent_shard_id")) if p]
        differs = bool(parents) and all(set(child["replicas"]) != set(p["replicas"]) for p in parents)
        out.append((c, sorted(child["replicas"]), [(p["shard_id"], sorted(p["replicas"])) for p in parents], differs))
    return out


@pytest.mark.timeout(280)
def test_cluster_reshards_and_changes_membership_under_writes(tmp_path):
    # One replica moving at a time, so the drain below shows the bound holding.
    bounded = ["--replica-moves-at-once", "1"]
    servers = start_cluster(tmp_path, size=4, extra_args=["--replication-factor", "3", *bounded])
    by_node = {s.node_id: s for s in servers}
    stop = threading.Event()
    writers = []
    joined = None
    try:
        stream = f"rs-{uuid.uuid4().hex[:8]}"
        servers[0].client().create_stream(StreamName=stream, ShardCount=2)
        for s in servers:
            wait_active(s.client(), stream)
        poll(lambda: all(sh["leader"] for sh in shards_view(servers[0], stream)["shards"]), what="shard leaders")

        ledger = Ledger()
        routes = {"gateways": {s.node_id: s.endpoint for s in servers}}  # shared with the writers
        for s in servers:
            w = ClusterWriter(f"w{s.node_id}", s.node_id, routes, ledger, stream, stop)
            w.start()
            writers.append(w)
        fault_windows = []  # [start, end]: a node killed until it has recovered (end None: still open)
        phases = [(time.monotonic(), "warm-up")]  # (since, what the test is doing), for the stall report
        findings = []  # wrong answers that do not stop the scenario, asserted at the end
        figures = []
        moves = {}  # label -> replica_moves(...)
        down = set()

        def control():
            """A node that is up, for the test's own requests."""
            return next(by_node[n] for n in (1, 3, 4, 5, 2) if n in by_node and n not in down and by_node[n].running)

        def progress(what, n=60, wids=None):
            since = time.monotonic()
            poll(lambda: ledger.acks_since(since, wids) >= n, timeout=60, what=what)

        def all_shard_ids(server):
            return {sh["shard_id"] for sh in shards_view(server, stream)["shards"]}

        def timed(label, request, probes, timeout=60, after_request=None):
            """Seconds from the request until the stream is ACTIVE again and a put to every probe hash
            key has landed in a shard that did not exist before (a child accepting writes)."""
            phases.append((time.monotonic(), label))
            before = all_shard_ids(control())
            t0 = time.monotonic()
            request(make_client(control().endpoint, **PROBE_CONFIG))
            if after_request:
                after_request()
            server = control()
            client = make_client(server.endpoint, **PROBE_CONFIG)
            landed = {}

            def children_take_writes():
                for h in probes:
                    if h not in landed and probe_put(ledger, client, stream, h) not in before:
                        landed[h] = time.monotonic()
                return len(landed) == len(probes)

            poll(children_take_writes, timeout=timeout, what=f"{label}: puts landing in the children")
            wait_active(client, stream, timeout=timeout)
            active = time.monotonic()
            view = shards_view(server, stream)
            moves[label] = replica_moves(view, {sh["shard_id"] for sh in view["shards"]} - before)
            figures.append(
                f"{label} {active - t0:.2f}s (children accepting writes after {max(landed.values()) - t0:.2f}s)"
            )
            phases.append((time.monotonic(), f"after {label}"))
            return view

        progress("writes through every gateway", n=200)

        # Split shard 0 in the middle of its range, merge its children back.
        s0 = next(sh for sh in shards_view(control(), stream)["shards"] if sh["shard_id"] == sid(0))
        at = (int(s0["starting_hash_key"]) + int(s0["ending_hash_key"]) + 1) // 2
        timed(
            "split",
            lambda c: c.split_shard(StreamName=stream, ShardToSplit=sid(0), NewStartingHashKey=str(at)),
            [int(s0["starting_hash_key"]), at],
        )
        progress("writes after the split")
        timed(
            "merge",
            lambda c: c.merge_shards(StreamName=stream, ShardToMerge=sid(2), AdjacentShardToMerge=sid(3)),
            [0],
        )
        progress("writes after the merge")
        timed(
            "update-shard-count 2->4",
            lambda c: c.update_shard_count(StreamName=stream, TargetShardCount=4, ScalingType=UNIFORM),
            [i * 2**126 for i in range(4)],
        )
        progress("writes after scaling to 4")

        # 4 -> 2 with a node killed (SIGKILL) right after the request: the controller leader when it
        # is not node 2 (the one drained later), so a new leader must finish the procedure. A
        # majority of every group is still up, so it finishes while the node is down.
        leader = cluster_view(control())["controller_leader"]
        victim = by_node[leader if leader in (1, 3, 4) else 3]

        def kill():
            fault_windows.append([time.monotonic(), None])  # opens as the signal is sent
            victim.kill9()
            down.add(victim.node_id)

        timed(
            f"update-shard-count 4->2 with node {victim.node_id} (controller leader: {leader}) killed after the request",
            lambda c: c.update_shard_count(StreamName=stream, TargetShardCount=2, ScalingType=UNIFORM),
            [0, 2**127],
            after_request=kill,
        )
        killed_at = fault_windows[-1][0]
        survivors = {f"w{n}" for n in by_node if n != victim.node_id}
        progress(f"writes through the survivors while node {victim.node_id} is down", n=100, wids=survivors)
        poll(lambda: time.monotonic() - killed_at >= 2.0, timeout=5, what="node down for 2 s")
        phases.append((time.monotonic(), f"restart of node {victim.node_id}"))
        victim.start()
        down.discard(victim.node_id)

        def recovered():
            try:
                cv = cluster_view(victim)
                view = shards_view(victim, stream)
            except Exception:  # noqa: BLE001 - not serving yet
                return False
            hosted = [sh for sh in view["shards"] if victim.node_id in sh["replicas"] and sh["state"] == "OPEN"]
            if cv["controller_leader"] is None or any(sh["leader"] is None for sh in hosted):
                return False
            try:
                probe_put(ledger, make_client(victim.endpoint, **PROBE_CONFIG), stream, 7)
            except Exception:  # noqa: BLE001 - counted as an error of the fault window below
                return False
            return True

        poll(recovered, timeout=60, what=f"node {victim.node_id} to serve again after its restart")
        recovered_at = time.monotonic()
        fault_windows[-1][1] = recovered_at
        phases.append((recovered_at, f"node {victim.node_id} recovered"))
        figures.append(f"node {victim.node_id} killed: {recovered_at - killed_at:.2f}s from SIGKILL until it served again")
        assert len([sh for sh in shards_view(control(), stream)["shards"] if sh["state"] == "OPEN"]) == 2
        progress("writes after the restart", n=200)

        # A fifth node joins; replicas are rebalanced onto it.
        joined = Server(tmp_path / "node5", node_id=5)
        joined.extra_args = [
            "--join", by_node[1].endpoint,
            "--cluster-advertise", f"127.0.0.1:{joined.cluster_port}",
            "--replication-factor", "3",
            *bounded,
        ]
        phases.append((time.monotonic(), "join of node 5"))
        t_join = time.monotonic()
        joined.start()
        by_node[5] = joined
        # Once healthy, node 5 serves as every node does: the stream is there and ACTIVE through its
        # Kinesis API and its admin view. (Checked at the end, so the rest of the scenario still runs.)
        try:
            first = make_client(joined.endpoint, **PROBE_CONFIG).describe_stream_summary(StreamName=stream)
            if first["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
                findings.append(f"node 5, just healthy, describes the stream as {first['StreamDescriptionSummary']}")
        except botocore.exceptions.ClientError as e:
            findings.append(
                f"node 5, healthy {time.monotonic() - t_join:.2f}s after its start, answered DescribeStreamSummary "
                f"with {error_code(e)}: {message(e)}"
            )

        def balanced():
            """Node 5 is up and holds about its share of the replicas (at most one below the average)."""
            nodes = {n["id"]: n for n in cluster_view(by_node[1])["nodes"]}
            if 5 not in nodes or nodes[5]["state"] != "up":
                return False
            total = sum(n["replicas"] for n in nodes.values())
            return nodes[5]["replicas"] > 0 and nodes[5]["replicas"] >= total // len(nodes) - 1 and nodes

        nodes = poll(balanced, timeout=60, what="replicas rebalanced onto node 5")

        def node5_knows_leaders():
            """Node 5 runs the groups of the OPEN shards it hosts (it knows their leaders)."""
            try:
                view = shards_view(joined, stream)
            except urllib.error.HTTPError as e:
                if e.code == 404:  # node 5 has not applied the stream's creation yet
                    not_found.append(time.monotonic() - t_join)
                    return None
                raise
            hosted = [sh for sh in view["shards"] if 5 in sh["replicas"]]
            return view if all(sh["leader"] for sh in hosted if sh["state"] == "OPEN") else None

        not_found = []
        view = poll(node5_knows_leaders, timeout=60, what="node 5 to run its replicas' groups")
        if not_found:
            findings.append(
                f"node 5's admin view answered 404 (stream not found) {len(not_found)} times, "
                f"{not_found[0]:.2f}s to {not_found[-1]:.2f}s after it was started, after the cluster "
                f"already counted replicas on it"
            )
        hosted = [(sh["shard_id"], sh["state"]) for sh in view["shards"] if 5 in sh["replicas"]]
        figures.append(
            f"join node 5: balanced after {time.monotonic() - t_join:.2f}s "
            f"(replicas per node {({n: v['replicas'] for n, v in sorted(nodes.items())})}; node 5 hosts {hosted})"
        )
        routes["gateways"] = {**routes["gateways"], 5: joined.endpoint}
        progress("writes after the join", n=100)

        # Removing a node that is not drained is refused.
        refused = ctl("node", "remove", "3", "--endpoint", control().endpoint)
        assert refused.returncode != 0, refused
        assert "drain" in (refused.stderr + refused.stdout).lower(), refused
        assert 3 in [n["id"] for n in cluster_view(control())["nodes"]]

        # Drain node 2 (its gateway keeps taking writes meanwhile), then move its writer to node 5.
        phases.append((time.monotonic(), "drain of node 2"))
        t_drain = time.monotonic()
        drained = ctl("node", "drain", "2", "--endpoint", by_node[1].endpoint, timeout=180)
        drain_secs = time.monotonic() - t_drain
        assert drained.returncode == 0, f"drain failed: {drained.returncode}\n{drained.stdout}\n{drained.stderr}"
        assert "at most 1 at a time" in drained.stdout, drained.stdout
        moving = [int(m) for m in re.findall(r", (\d+) moving,", drained.stdout)]
        assert moving and max(moving) <= 1, f"more than one replica moving at once:\n{drained.stdout}"
        node2 = next(n for n in cluster_view(by_node[1])["nodes"] if n["id"] == 2)
        assert node2["replicas"] == 0 and node2["draining"] is True, node2
        assert all(2 not in sh["replicas"] for sh in shards_view(by_node[1], stream)["shards"])
        figures.append(f"drain node 2: {drain_secs:.2f}s (ctl output: {drained.stdout.strip().splitlines()[-1:]})")
        writers[1].home = 5
        routes["gateways"] = {n: e for n, e in routes["gateways"].items() if n != 2}
        progress("writes after the drain", n=100)

        phases.append((time.monotonic(), "removal of node 2"))
        removed = ctl("node", "remove", "2", "--endpoint", by_node[1].endpoint)
        assert removed.returncode == 0, f"remove failed: {removed.returncode}\n{removed.stdout}\n{removed.stderr}"
        for n in (1, 3, 4, 5):
            poll(
                lambda n=n: sorted(x["id"] for x in cluster_view(by_node[n])["nodes"]) == [1, 3, 4, 5],
                timeout=30,
                what=f"node {n} to forget node 2",
            )
        by_node[2].stop()
        progress("writes after node 2 left", n=100)

        # Scale out after the membership change: children go to the nodes there are now.
        low = next(
            sh for sh in shards_view(control(), stream)["shards"] if sh["state"] == "OPEN" and sh["starting_hash_key"] == "0"
        )
        at = (int(low["starting_hash_key"]) + int(low["ending_hash_key"]) + 1) // 2
        view = timed(
            "split after the membership change",
            lambda c: c.split_shard(StreamName=stream, ShardToSplit=low["shard_id"], NewStartingHashKey=str(at)),
            [0, at],
        )
        for sh in view["shards"]:
            assert set(sh["replicas"]) <= {1, 3, 4, 5} and len(sh["replicas"]) == 3, sh
        progress("writes at the end", n=100)

        stop.set()
        for w in writers:
            w.join(timeout=30)
        assert not any(w.is_alive() for w in writers), "a writer thread hung"
        end = time.monotonic()

        # ---- verification ------------------------------------------------------------------------
        # A node's replica of a shard sealed last may apply the seal a moment after its records:
        # the end may then come one answer after them.
        shards, stored = read_stream(
            make_client(by_node[1].endpoint, read_timeout=60), stream, calls_after_last_records=1
        )
        problems, stats = verify(ledger, shards, stored)
        _, stored5 = read_stream(make_client(joined.endpoint, read_timeout=60), stream, calls_after_last_records=1)
        if stored5 != stored:
            problems.append(
                "node 5's gateway reads differently from node 1's: "
                + str({s: (len(stored[s]), len(stored5.get(s, []))) for s in stored if stored[s] != stored5.get(s)})
            )

        def in_fault(sent, at):
            return any(sent <= (b if b is not None else end) and at >= a for a, b in fault_windows)

        def phase_at(t):
            return [what for since, what in phases if since <= t][-1]

        unexpected = [e for e in ledger.errors if not in_fault(e[1], e[2])]
        stalls = ledger.stalls(end)
        calm = {}
        for wid, times in ledger.ack_times.items():
            ts = sorted(times)
            gaps = [(b - a, a, b) for a, b in zip(ts, ts[1:]) if not in_fault(a, b)]
            calm[wid] = max(gaps, default=(0.0, 0, 0))
        worst = max(stalls.items(), key=lambda kv: kv[1][0])
        worst_calm = max(calm.items(), key=lambda kv: kv[1][0])
        print()
        for line in figures:
            print(f"FIGURES: {line}")
        for line in findings:
            print(f"FINDING: {line}")
        print(
            f"FIGURES: longest write stall (gap between a writer's acknowledgements) outside the kill window "
            f"{worst_calm[1][0]:.2f}s (writer {worst_calm[0]}, during: {phase_at(worst_calm[1][1])}); "
            f"including the kill {worst[1][0]:.2f}s (writer {worst[0]}, during: {phase_at(worst[1][1])})"
        )
        print("FIGURES: longest stall per writer outside the kill window: " + ", ".join(
            f"{w} {g:.2f}s ({phase_at(a)})" for w, (g, a, _) in sorted(calm.items())
        ))
        print(
            f"FIGURES: records attempted {stats['attempted']}, acknowledged {stats['acked']}, unknown outcome "
            f"{stats['maybe']} ({stats['maybe_stored']} of them stored), stored {stats['stored']} in {stats['shards']} shards; "
            f"write errors {len(ledger.errors)} ({len(unexpected)} outside the kill window)"
        )
        kinds = defaultdict(int)
        for wid, _, _, node, what in ledger.errors:
            kinds[(f"via node {node}", what.split(":")[0])] += 1
        print("FIGURES: write errors by gateway and kind: " + (", ".join(f"{k[0]} {k[1]} x{n}" for k, n in sorted(kinds.items())) or "none"))
        for what in sorted({what[:240] for *_, what in ledger.errors}):
            print(f"FIGURES:   write error seen: {what}")
        for label, m in moves.items():
            print(f"FIGURES: placement {label}: " + "; ".join(f"{c} on {r} (parents {p})" for c, r, p, _ in m))

        assert not unexpected, f"{len(unexpected)} write errors outside the kill window, e.g. {unexpected[:5]}"
        assert not problems, problems
        opened = [s for s in shards if is_open(s)]
        assert_partition(opened)
        assert len(opened) == 3, [s["ShardId"] for s in opened]
        for label, m in moves.items():
            assert m, f"{label}: no new shards in the admin view"
            assert any(differs for *_, differs in m), f"{label}: every child is on its parents' replica set: {m}"
        assert not findings, findings
    finally:
        stop.set()
        for w in writers:
            w.join(timeout=10)
        for s in servers + ([joined] if joined else []):
            s.cleanup()
