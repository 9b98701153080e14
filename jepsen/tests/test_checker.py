"""The checker must be able to fail: hand-made histories, one per kind of violation, and a valid one."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kinesin_jepsen.checker import MAX_HASH_KEY, check  # noqa: E402

S0, S1, S2 = "shardId-000000000000", "shardId-000000000001", "shardId-000000000002"
HALF = 2**127


def put(process, data, key, time, outcome="ok", shard=S0, seq=None):
    ops = [{"process": process, "type": "invoke", "f": "put", "time": time, "value": {"key": key, "data": data}}]
    value = {"key": key, "data": data}
    if outcome == "ok":
        value.update(shard=shard, seq=str(seq))
    ops.append({"process": process, "type": outcome, "f": "put", "time": time + 0.01, "value": value})
    return ops


def record(seq, data, key):
    return {"seq": str(seq), "data": data, "key": key}


def final(shard, *records):
    return {"process": "final", "type": "ok", "f": "final-read", "time": 100, "value": {"shard": shard, "records": list(records)}}


def read(process, shard, time, *records):
    return {"process": process, "type": "ok", "f": "read", "time": time, "value": {"shard": shard, "records": list(records)}}


def shards(time, *listing):
    return {"process": "lister", "type": "ok", "f": "shards", "time": time, "value": list(listing)}


def shard(name, start, end, open=True, parent=None, adjacent=None):
    return {"shard": name, "start": str(start), "end": str(end), "open": open, "parent": parent, "adjacent_parent": adjacent}


def valid_history():
    history = []
    history += put(0, "a", "k1", 1, seq=10)
    history += put(1, "b", "k2", 2, seq=11)
    history += put(0, "c", "k1", 3, outcome="info")  # unknown: stored once, allowed
    history += put(1, "d", "k2", 4, outcome="info")  # unknown: not stored, allowed
    history += put(0, "e", "k1", 5, outcome="fail")  # definitely failed, not stored
    history.append(read(2, S0, 6, record(10, "a", "k1"), record(11, "b", "k2")))
    history.append(read(2, S0, 7, record(12, "c", "k1")))
    history.append(shards(8, shard(S0, 0, MAX_HASH_KEY)))
    history.append(final(S0, record(10, "a", "k1"), record(11, "b", "k2"), record(12, "c", "k1")))
    return history


def kinds(result):
    return sorted({e["kind"] for e in result["errors"]})


def test_a_valid_history_is_valid():
    result = check(valid_history())
    assert result["valid"], result["errors"]
    assert result["acknowledged"] == 2
    assert result["unknown"] == 2
    assert result["failed"] == 1
    assert result["stored_unknown"] == 1
    assert result["reads"] == 3


def test_a_lost_acknowledged_record_is_found():
    history = valid_history()[:-1] + [final(S0, record(11, "b", "k2"), record(12, "c", "k1"))]
    assert kinds(check(history)) == ["lost", "read-not-in-final"]


def test_a_record_at_another_sequence_number_is_found():
    history = valid_history()[:-1] + [final(S0, record(9, "a", "k1"), record(11, "b", "k2"), record(12, "c", "k1"))]
    assert "moved" in kinds(check(history))


def test_a_phantom_record_is_found():
    history = valid_history()[:-1] + [
        final(S0, record(10, "a", "k1"), record(11, "b", "k2"), record(12, "c", "k1"), record(13, "zz", "k1"))
    ]
    assert kinds(check(history)) == ["phantom"]


def test_a_definitely_failed_put_must_not_appear():
    history = valid_history()[:-1] + [
        final(S0, record(10, "a", "k1"), record(11, "b", "k2"), record(12, "c", "k1"), record(13, "e", "k1"))
    ]
    assert kinds(check(history)) == ["failed-but-present"]


def test_duplicates_are_found_even_of_unknown_outcomes():
    history = valid_history()[:-1] + [
        final(S0, record(10, "a", "k1"), record(11, "b", "k2"), record(12, "c", "k1"), record(13, "c", "k1"))
    ]
    assert kinds(check(history)) == ["duplicate"]


def test_a_changed_record_is_found():
    history = valid_history()[:-1] + [final(S0, record(10, "a", "other-key"), record(11, "b", "k2"), record(12, "c", "k1"))]
    assert kinds(check(history)) == ["changed"]


def test_order_and_reused_sequence_numbers_are_found():
    history = valid_history()[:-1] + [final(S0, record(10, "a", "k1"), record(12, "c", "k1"), record(11, "b", "k2"))]
    assert "order" in kinds(check(history))
    history = valid_history()[:-1] + [final(S0, record(10, "a", "k1"), record(11, "b", "k2"), record(11, "c", "k1"))]
    assert "sequence-reused" in kinds(check(history))


def test_a_reader_that_goes_backwards_or_skips_is_found():
    history = valid_history()
    history.append(read(2, S0, 9, record(11, "b", "k2")))
    assert "reader-went-backwards" in kinds(check(history))
    history = valid_history()
    history = [op for op in history if op.get("f") != "read"]
    history.append(read(3, S0, 6, record(10, "a", "k1")))
    history.append(read(3, S0, 7, record(12, "c", "k1")))
    assert kinds(check(history)) == ["reader-skipped"]


def test_parent_records_must_precede_child_records_per_key():
    history = []
    history += put(0, "p", "k2", 1, shard=S0, seq=100)  # k2 hashes into the lower half, S1
    history += put(0, "c", "k2", 2, shard=S1, seq=50)
    history.append(shards(3, shard(S0, 0, MAX_HASH_KEY, open=False), shard(S1, 0, HALF - 1, parent=S0), shard(S2, HALF, MAX_HASH_KEY, parent=S0)))
    history.append(final(S0, record(100, "p", "k2")))
    history.append(final(S1, record(50, "c", "k2")))
    # A child numbered below its parent breaks the stream-wide rule as well as the per-key one.
    assert kinds(check(history)) == ["child-sequence", "lineage-order"]


def test_open_shards_must_partition_the_hash_space():
    gap = valid_history() + [shards(9, shard(S1, 0, HALF - 10), shard(S2, HALF, MAX_HASH_KEY))]
    assert kinds(check(gap)) == ["hash-space"]
    overlap = valid_history() + [shards(9, shard(S1, 0, HALF), shard(S2, HALF, MAX_HASH_KEY))]
    assert kinds(check(overlap)) == ["hash-space"]
    short = valid_history() + [shards(9, shard(S1, 0, HALF - 1))]
    assert kinds(check(short)) == ["hash-space"]
    closed_parent = valid_history() + [
        shards(9, shard(S0, 0, MAX_HASH_KEY, open=False), shard(S1, 0, HALF - 1, parent=S0), shard(S2, HALF, MAX_HASH_KEY, parent=S0))
    ]
    assert check(closed_parent)["valid"]


def test_availability_is_counted_per_fault_window():
    history = valid_history()
    history.insert(0, {"process": "nemesis", "type": "info", "f": "start", "time": 2.5, "value": "kill"})
    history.append({"process": "nemesis", "type": "info", "f": "stop", "time": 5.5, "value": "kill"})
    availability = check(history)["availability"]
    # Completions inside 2.5..5.5: c (info at 3.01), d (info at 4.01), e (fail at 5.01).
    assert availability["kill"] == {"ok": 0, "total": 3, "share_ok": 0.0}
    assert availability["no fault"]["ok"] == 4
