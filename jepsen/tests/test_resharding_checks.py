"""Resharding: the checker must be able to fail (hand-made histories of a stream split, merged and
rescaled, one per violation), the resharder must stay within AWS's rules and record every
operation once, and the membership nemesis must walk drain → remove → wipe → join."""

import os
import random
import sys
import threading

import botocore.exceptions
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kinesin_jepsen.checker import MAX_HASH_KEY, check, hash_key  # noqa: E402
from kinesin_jepsen.history import History  # noqa: E402
from kinesin_jepsen import membership as membership_module  # noqa: E402
from kinesin_jepsen import nemesis as nemesis_module  # noqa: E402
from kinesin_jepsen import resharding as resharding_module  # noqa: E402
from kinesin_jepsen.membership import Membership  # noqa: E402
from kinesin_jepsen.nemesis import Nemesis  # noqa: E402
from kinesin_jepsen.resharding import (  # noqa: E402
    MAX_OPEN, MERGE, MIN_OPEN, SPLIT, UPDATE, ReshardingWorkload, check_resharding, choose, wait_active,
    write_stall,
)
from test_checker import HALF, final, kinds, put, record, shard  # noqa: E402

def sid(i):
    return f"shardId-{i:012d}"


S = [sid(i) for i in range(8)]
R = 300  # the resharder
LOW, HIGH = "k2", "k1"  # partition keys hashing into the lower and the upper half
assert hash_key(LOW) < HALF <= hash_key(HIGH)


def listing(process, time, *entries):
    return {"process": process, "type": "ok", "f": "shards", "time": time, "value": list(entries)}


def meta(n, start, end, first, last=None, parent=None, adjacent=None):
    entry = shard(S[n], start, end, open=last is None, parent=None if parent is None else S[parent],
                  adjacent=None if adjacent is None else S[adjacent])
    entry.update(start_seq=str(first), end_seq=None if last is None else str(last))
    return entry


def reshard(f, start, outcome="ok", **value):
    completion = dict(value)
    if outcome != "ok":
        completion["error"] = "ResourceInUseException" if outcome == "fail" else "ReadTimeoutError"
    return [{"process": R, "type": "invoke", "f": f, "time": start, "value": dict(value)},
            {"process": R, "type": outcome, "f": f, "time": start + 0.1, "value": completion}]


# The lineage: S0 split at HALF into S1 and S2, merged back into S3, rescaled to 2 (S3 split into S4, S5).
S0_OPEN = meta(0, 0, MAX_HASH_KEY, 1)
S0 = meta(0, 0, MAX_HASH_KEY, 1, 19)
S1, S2 = meta(1, 0, HALF - 1, 20, 25, parent=0), meta(2, HALF, MAX_HASH_KEY, 21, 26, parent=0)
S1_OPEN, S2_OPEN = meta(1, 0, HALF - 1, 20, parent=0), meta(2, HALF, MAX_HASH_KEY, 21, parent=0)
S3 = meta(3, 0, MAX_HASH_KEY, 30, 35, parent=1, adjacent=2)
S3_OPEN = meta(3, 0, MAX_HASH_KEY, 30, parent=1, adjacent=2)
S4, S5 = meta(4, 0, HALF - 1, 40, parent=3), meta(5, HALF, MAX_HASH_KEY, 41, parent=3)
LAST = [S0, S1, S2, S3, S4, S5]


def valid_history(last=LAST, finals=None, split_at=HALF, target=2):
    history = [listing("lister", 0, S0_OPEN)]
    history += put(0, "a", HIGH, 1, shard=S[0], seq=10)
    history += put(1, "b", LOW, 1.5, shard=S[0], seq=11)
    history.append(listing(R, 2, S0_OPEN))
    history += reshard(SPLIT, 2.1, shard=S[0], hash_key=str(split_at))
    history.append(listing(R, 3, S0, S1_OPEN, S2_OPEN))
    history += put(1, "c", LOW, 3.5, shard=S[1], seq=20)
    history += put(0, "d", HIGH, 3.6, shard=S[2], seq=21)
    history += reshard(MERGE, 4, shard=S[1], adjacent=S[2])
    history.append(listing(R, 5, S0, S1, S2, S3_OPEN))
    history += put(1, "e", LOW, 5.5, shard=S[3], seq=30)
    history += reshard(UPDATE, 6, target=target)
    history.append(listing(R, 7, *last))
    history += put(1, "f", LOW, 7.5, shard=S[4], seq=44)
    history += put(0, "g", HIGH, 7.6, shard=S[5], seq=41)
    history += reshard(SPLIT, 8, outcome="fail", shard=S[4], hash_key=str(HALF // 2))
    history.append(listing("final", 9, *last))
    reads = finals or {0: [record(10, "a", HIGH), record(11, "b", LOW)], 1: [record(20, "c", LOW)], 2: [record(21, "d", HIGH)],
                       3: [record(30, "e", LOW)], 4: [record(44, "f", LOW)], 5: [record(41, "g", HIGH)]}
    history += [final(S[n], *records) for n, records in reads.items()]
    return history


def test_a_valid_resharding_history_is_valid():
    history = valid_history()
    result = check(history)
    assert result["valid"], result["errors"]
    assert result["acknowledged"] == 7
    resharding = check_resharding(history)
    assert resharding["valid"], resharding["errors"]
    assert resharding["reshards_ok"] == 3
    assert resharding["operations"][SPLIT] == {"ok": 1, "fail": 1, "info": 0}
    assert (resharding["shards_total"], resharding["shards_open"]) == (6, 2)


# -- record properties across resharding (checker.py) ---------------------------------------------

def test_a_put_read_before_one_acknowledged_earlier_is_out_of_order():
    history = valid_history()
    history += put(1, "h", LOW, 8.5, shard=S[4], seq=43)  # invoked after f was acknowledged at 44
    history = [op for op in history if op.get("f") != "final-read" or op["value"]["shard"] != S[4]]
    history.append(final(S[4], record(43, "h", LOW), record(44, "f", LOW)))
    assert kinds(check(history)) == ["key-order"]


def test_a_key_read_from_a_parent_after_its_child_is_out_of_order():
    history = valid_history()
    history += put(1, "h", LOW, 8.5, shard=S[0], seq=12)  # in the sealed parent, after the children took writes
    history = [op for op in history if op.get("f") != "final-read" or op["value"]["shard"] != S[0]]
    history.append(final(S[0], record(10, "a", HIGH), record(11, "b", LOW), record(12, "h", LOW)))
    assert kinds(check(history)) == ["key-order"]


def test_concurrent_puts_may_be_read_in_either_order():
    history = valid_history()
    history += [{"process": 2, "type": "invoke", "f": "put", "time": 7.505, "value": {"key": LOW, "data": "h"}},
                {"process": 2, "type": "ok", "f": "put", "time": 7.7, "value": {"key": LOW, "data": "h", "shard": S[4], "seq": "43"}}]
    history = [op for op in history if op.get("f") != "final-read" or op["value"]["shard"] != S[4]]
    history.append(final(S[4], record(43, "h", LOW), record(44, "f", LOW)))  # f (7.5 .. 7.51) overlaps h
    assert check(history)["valid"]


def test_a_child_that_lost_its_parent_link_is_found():
    orphan = meta(1, 0, HALF - 1, 20, 25)  # no ParentShardId
    last = [S0, orphan, S2, S3, S4, S5]
    assert kinds(check(valid_history(last=last))) == ["key-lineage", "lineage-range"]


def test_a_child_numbered_below_its_parent_is_found():
    low_child = meta(2, HALF, MAX_HASH_KEY, 5, 26, parent=0)
    last = [S0, S1, low_child, S3, S4, S5]
    assert kinds(check(valid_history(last=last))) == ["child-sequence"]
    finals = {0: [record(10, "a", HIGH), record(11, "b", LOW)], 1: [record(20, "c", LOW)], 2: [record(21, "d", HIGH)],
              3: [record(18, "e", LOW)], 4: [record(44, "f", LOW)], 5: [record(41, "g", HIGH)]}
    history = [op for op in valid_history(finals=finals) if op.get("f") != "put" or op["value"]["data"] != "e"]
    history += put(1, "e", LOW, 5.5, outcome="info")
    assert "child-sequence" in kinds(check(history))


def test_a_record_outside_its_shards_sequence_range_is_found():
    finals = {0: [record(10, "a", HIGH), record(11, "b", LOW)], 1: [record(20, "c", LOW)], 2: [record(21, "d", HIGH)],
              3: [record(30, "e", LOW)], 4: [record(44, "f", LOW)], 5: [record(41, "g", HIGH)]}
    finals[3] = [record(30, "e", LOW), record(36, "z", LOW)]
    history = valid_history(finals=finals)
    history += put(2, "z", LOW, 9.5, outcome="info")
    assert kinds(check(history)) == ["sequence-range"]


def test_a_record_in_a_shard_its_key_does_not_hash_into_is_found():
    finals = {0: [record(10, "a", HIGH), record(11, "b", LOW)], 1: [record(20, "c", LOW), record(22, "z", HIGH)],
              2: [record(21, "d", HIGH)], 3: [record(30, "e", LOW)], 4: [record(44, "f", LOW)], 5: [record(41, "g", HIGH)]}
    history = valid_history(finals=finals) + put(2, "z", HIGH, 9.5, outcome="info")
    assert "wrong-shard" in kinds(check(history))


def test_children_that_do_not_cover_their_parent_are_found():
    short = meta(5, HALF + 10, MAX_HASH_KEY, 41, parent=3)
    result = check(valid_history(last=[S0, S1, S2, S3, S4, short]))
    assert kinds(result) == ["hash-space", "lineage-range"]
    wide = meta(3, 0, MAX_HASH_KEY - 1, 30, 35, parent=1, adjacent=2)  # a merge child short of its parents' union
    assert "lineage-range" in kinds(check(valid_history(last=[S0, S1, S2, wide, S4, S5])))


def test_a_parent_still_open_beside_its_children_is_found():
    assert kinds(check(valid_history(last=[S0, S1, S2, S3_OPEN, S4, S5]))) == ["hash-space"]


# -- the resharder's operations ----------------------------------------------------------------------

def test_an_acknowledged_split_that_did_not_happen_is_found():
    # The listings show S0 split at HALF, the resharder was told it split at HALF + 1.
    errors = check_resharding(valid_history(split_at=HALF + 1))["errors"]
    assert [(e["kind"], e["f"]) for e in errors if e["kind"] == "reshard-not-applied"] == [("reshard-not-applied", SPLIT)]


def test_an_acknowledged_merge_that_did_not_happen_is_found():
    history = [op for op in valid_history() if not (op.get("f") == MERGE and op["type"] != "invoke")]
    history += [{"process": R, "type": "ok", "f": MERGE, "time": 4.1, "value": {"shard": S[4], "adjacent": S[5]}}]
    history.sort(key=lambda op: op["time"])
    result = check_resharding(history)
    assert {e["kind"] for e in result["errors"]} >= {"reshard-not-applied"}


def test_an_update_shard_count_that_did_not_reach_its_target_is_found():
    result = check_resharding(valid_history(target=3))  # acknowledged, but two shards are open after it
    assert [e["kind"] for e in result["errors"]] == ["reshard-not-applied"]
    assert result["errors"][0]["open_shards_after"] == 2


def test_an_earlier_unknown_reshard_excuses_an_unexpected_count():
    history = valid_history(target=3)
    history += reshard(SPLIT, 1.8, outcome="info", shard=S[0], hash_key=str(HALF))
    history.sort(key=lambda op: op["time"])
    assert check_resharding(history)["valid"]


def test_a_definitely_failed_split_must_not_happen():
    history = [op for op in valid_history() if op.get("f") != SPLIT or op["time"] > 3]
    history += reshard(SPLIT, 2.1, outcome="fail", shard=S[0], hash_key=str(HALF))
    history.sort(key=lambda op: op["time"])
    errors = check_resharding(history)["errors"]
    assert [(e["kind"], e.get("shard")) for e in errors] == [("failed-reshard-applied", None), ("unexplained-reshard", S[0])]


def test_a_reshard_nobody_asked_for_is_found():
    # S1 and S2 were last seen OPEN at 2 and CLOSED at 5: the UpdateShardCount at 6 came too late.
    history = [op for op in valid_history() if op.get("f") != MERGE]
    errors = check_resharding(history)["errors"]
    assert [(e["kind"], e["shard"]) for e in errors] == [("unexplained-reshard", S[1]), ("unexplained-reshard", S[2])]


def test_a_reshard_may_be_explained_by_an_unknown_request_that_landed_late():
    history = [op for op in valid_history() if op.get("f") != MERGE]
    history += reshard(MERGE, 1, outcome="info", shard=S[1], adjacent=S[2])
    history.sort(key=lambda op: op["time"])
    assert check_resharding(history)["valid"]


def test_write_stall_and_puts_failing_while_resharding():
    history = valid_history()
    history += put(2, "x", LOW, 6.5, outcome="fail")  # during the UpdateShardCount (6 .. 7), no fault
    history += [{"process": "nemesis", "type": "info", "f": "start", "time": 1.6, "value": "kill {1}"},
                {"process": "nemesis", "type": "info", "f": "stop", "time": 2.4, "value": "kill {1}"}]
    history.sort(key=lambda op: op["time"])
    stall = write_stall(history)
    assert stall["max_put_latency_ms"] == pytest.approx(10, abs=0.01)
    assert stall["longest_put_gap_s"] == pytest.approx(3.51 - 1.51)  # b acknowledged, then c
    # Gaps up to 3 s after a fault count as the fault's: 3.61 .. 5.51 does, 5.51 .. 7.51 does not.
    assert stall["longest_put_gap_without_fault_s"] == pytest.approx(7.51 - 5.51)
    during = check_resharding(history)["puts_during_resharding"]
    assert during["not_ok"] == 1 and during["errors"] == {"?": 1}  # hand-made fails carry no error code


# -- the resharder against a fake stream -------------------------------------------------------------

def test_choose_stays_within_aws_bounds():
    rng = random.Random(3)
    for n in range(1, 9):
        width = (MAX_HASH_KEY + 1) // n
        shards = [{"shard": sid(i), "start": str(i * width), "end": str(MAX_HASH_KEY if i == n - 1 else (i + 1) * width - 1),
                   "open": True} for i in range(n)]
        kinds = set()
        for turn in range(50):
            f, value = choose(rng, shards, turn)
            kinds.add(f)
            if f == UPDATE:
                assert MIN_OPEN <= value["target"] <= MAX_OPEN and (n + 1) // 2 <= value["target"] <= 2 * n
                assert value["target"] != n
            elif f == SPLIT:
                assert n < MAX_OPEN
                target = next(s for s in shards if s["shard"] == value["shard"])
                assert int(target["start"]) < int(value["hash_key"]) <= int(target["end"])
            else:
                assert n > MIN_OPEN
                a = next(s for s in shards if s["shard"] == value["shard"])
                b = next(s for s in shards if s["shard"] == value["adjacent"])
                assert int(a["end"]) + 1 == int(b["start"])
        assert len(kinds) == 3 if MIN_OPEN < n < MAX_OPEN else len(kinds) == 2  # each kind that can be made, in turn


def client_error(code, operation):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, operation)


class FakeStream:
    """One stream: reshards are UPDATING for three calls, then take effect; every 5th call does not
    connect, every 11th times out after taking effect."""

    def __init__(self, stop_event, stop_after):
        self.shards = [{"id": 0, "start": 0, "end": MAX_HASH_KEY, "parents": [], "open": True}]
        self.pending, self.calls, self.lock = None, 0, threading.Lock()
        self.stop_event, self.stop_after = stop_event, stop_after

    def _call(self, apply):
        with self.lock:
            self.calls += 1
            if self.calls >= self.stop_after:
                self.stop_event.set()
            if self.pending and self.calls >= self.pending[0]:
                self.pending[1]()
                self.pending = None
            if self.calls % 5 == 0:
                raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://fake")
            result = apply()
            if self.calls % 11 == 0:
                raise botocore.exceptions.ReadTimeoutError(endpoint_url="http://fake")
            return result

    def _open(self):
        return sorted((s for s in self.shards if s["open"]), key=lambda s: s["start"])

    def _add(self, start, end, parents):
        self.shards.append({"id": len(self.shards), "start": start, "end": end, "parents": parents, "open": True})

    def _reshard(self, change):
        if self.pending:
            raise client_error("ResourceInUseException", "Reshard")
        self.pending = (self.calls + 3, change)
        return {}

    def _shard(self, name):
        found = [s for s in self._open() if sid(s["id"]) == name]
        if not found:
            raise client_error("InvalidArgumentException", "Reshard")
        return found[0]

    def split_shard(self, StreamName, ShardToSplit, NewStartingHashKey):
        def apply():
            parent, at = self._shard(ShardToSplit), int(NewStartingHashKey)

            def change():
                parent["open"] = False
                self._add(parent["start"], at - 1, [parent["id"]])
                self._add(at, parent["end"], [parent["id"]])
            return self._reshard(change)
        return self._call(apply)

    def merge_shards(self, StreamName, ShardToMerge, AdjacentShardToMerge):
        def apply():
            a, b = self._shard(ShardToMerge), self._shard(AdjacentShardToMerge)

            def change():
                a["open"] = b["open"] = False
                self._add(a["start"], b["end"], [a["id"], b["id"]])
            return self._reshard(change)
        return self._call(apply)

    def update_shard_count(self, StreamName, TargetShardCount, ScalingType):
        def apply():
            current = len(self._open())

            def change():  # every open shard closes; the new ones name the shard their start was in
                old = self._open()
                width = (MAX_HASH_KEY + 1) // TargetShardCount
                for s in old:
                    s["open"] = False
                for i in range(TargetShardCount):
                    start = i * width
                    end = MAX_HASH_KEY if i == TargetShardCount - 1 else start + width - 1
                    self._add(start, end, [next(s["id"] for s in old if s["start"] <= start <= s["end"])])
            self._reshard(change)
            return {"CurrentShardCount": current, "TargetShardCount": TargetShardCount}
        return self._call(apply)

    def describe_stream_summary(self, StreamName):
        return self._call(lambda: {"StreamDescriptionSummary": {"StreamStatus": "UPDATING" if self.pending else "ACTIVE"}})

    def list_shards(self, StreamName):
        def apply():
            shards = []
            for s in self.shards:
                entry = {"ShardId": sid(s["id"]), "HashKeyRange": {"StartingHashKey": str(s["start"]), "EndingHashKey": str(s["end"])},
                         "SequenceNumberRange": {"StartingSequenceNumber": "1", **({} if s["open"] else {"EndingSequenceNumber": "2"})}}
                for field, parent in zip(("ParentShardId", "AdjacentParentShardId"), s["parents"]):
                    entry[field] = sid(parent)
                shards.append(entry)
            return {"Shards": shards}
        return self._call(apply)


@pytest.mark.timeout(60)
def test_the_resharder_records_every_operation_once_and_passes_the_checker(tmp_path):
    stop = threading.Event()
    stream = FakeStream(stop, stop_after=400)
    history = History(str(tmp_path / "history.jsonl"))
    workload = ReshardingWorkload(history, lambda node: stream, nodes=[1, 2, 3], seed=7, stream="jepsen", pause=0, poll=0)
    thread = threading.Thread(target=workload.run, args=(R, stop))
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    workload.settle("final", random.Random(0), lambda node: stream, threading.Event())  # as the run does after healing
    history.close()
    ops = [op for op in history.ops if op["f"] in (SPLIT, MERGE, UPDATE)]
    assert all(a["type"] == "invoke" and b["type"] != "invoke" and a["f"] == b["f"] for a, b in zip(ops[::2], ops[1::2]))
    outcomes = {(op["f"], op["type"]) for op in ops}
    assert {(SPLIT, "ok"), (MERGE, "ok"), (UPDATE, "ok")} <= outcomes
    assert any(t == "fail" for _, t in outcomes) and any(t == "info" for _, t in outcomes)
    for op in history.ops:
        if op["f"] == "shards":
            assert sum(s["open"] for s in op["value"]) <= MAX_OPEN
    result = check_resharding(history.ops)
    assert result["valid"], result["errors"]
    assert result["reshards_ok"] >= 3


# -- the membership nemesis against a fake admin API ------------------------------------------------

class FakeMembers:
    """Five nodes; a drained node's replicas move away one per GET; DELETE is 409 until then."""

    def __init__(self):
        self.members = {n: {"id": n, "state": "up", "draining": False, "replicas": 3} for n in range(1, 6)}
        self.up = set(self.members)
        self.paused, self.disk_node, self.calls = set(), 5, []

    def nodes(self):
        return list(range(1, 6))

    def running(self, node):
        return node in self.up

    healthy = running

    def admin_request(self, node, method, path, body=None):
        assert node in self.up
        parts = path.strip("/").split("/")
        if method == "GET":
            for entry in self.members.values():
                if entry["draining"] and entry["replicas"]:
                    entry["replicas"] -= 1
            return 200, {"nodes": [dict(e) for e in self.members.values()]}
        target = int(parts[3])
        self.calls.append((method, target, node))
        if method == "POST":
            self.members[target]["draining"] = True
            return 200, {"node_id": target, "replicas": self.members[target]["replicas"]}
        if self.members[target]["replicas"]:
            return 409, {"error": "not drained"}
        del self.members[target]
        return 200, {}

    def stop(self, node):
        self.up.discard(node)
        self.calls.append(("stop", node))

    def wipe(self, node):
        assert node not in self.up
        self.calls.append(("wipe", node))

    def join(self, node, via):
        assert node not in self.members and via in self.up
        self.up.add(node)
        self.members[node] = {"id": node, "state": "up", "draining": False, "replicas": 0}
        self.calls.append(("join", node))


def test_membership_drains_removes_wipes_and_rejoins(tmp_path):
    cluster = FakeMembers()
    history = History(str(tmp_path / "history.jsonl"))
    membership = Membership(cluster, history)
    node = membership.start_leave(random.Random(1), cluster.nodes())
    assert node != cluster.disk_node and membership.leaving == {node}
    membership.finish(node, timeout=10)
    history.close()
    assert not membership.leaving
    steps = [c[0] for c in cluster.calls]
    assert steps[0] == "POST" and steps[-3:] == ["stop", "wipe", "join"]
    assert "DELETE" in steps and all(c[2] != node for c in cluster.calls if c[0] in ("POST", "DELETE"))
    texts = [op["value"] for op in history.ops if op["f"] == "membership"]
    assert [t.split(" ", 1)[1].split(" ")[0] for t in texts] == ["draining", "drained,", "removed", "stopped,", "joining", "joined:"]
    assert membership.heal()[node]["state"] == "up"


def test_membership_heal_finishes_a_cycle_cut_short(tmp_path):
    cluster = FakeMembers()
    membership = Membership(cluster, History(str(tmp_path / "history.jsonl")))
    node = membership.start_leave(random.Random(2), cluster.nodes())
    membership.heal(timeout=10)
    assert not membership.leaving and node in cluster.up and not cluster.members[node]["draining"]


def test_membership_heal_finishes_a_rejoin_cut_short(tmp_path):
    cluster = FakeMembers()
    membership = Membership(cluster, History(str(tmp_path / "history.jsonl")))
    node = membership.start_leave(random.Random(3), cluster.nodes())
    join = cluster.join

    def join_then_crash(node, via):
        join(node, via)
        cluster.members[node]["replicas"] = 2  # rebalancing onto it had begun
        cluster.up.discard(node)
        raise RuntimeError("exited while starting")
    cluster.join = join_then_crash
    with pytest.raises(RuntimeError):
        membership.finish(node, timeout=10)
    assert membership.rejoining == {node}
    cluster.restart = cluster.up.add
    membership.heal(timeout=10)
    assert not membership.leaving and node in cluster.up


def test_membership_never_leaves_fewer_than_three_members(tmp_path):
    cluster = FakeMembers()
    for n in (1, 2):
        del cluster.members[n]
    membership = Membership(cluster, History(str(tmp_path / "history.jsonl")))
    with pytest.raises(RuntimeError, match="none may leave"):
        membership.start_leave(random.Random(1), cluster.nodes())


def test_faults_leave_alone_the_nodes_another_fault_acts_on(tmp_path):
    cluster = FakeMembers()
    cluster.kill = cluster.stop
    cluster.restart = cluster.up.add
    nemesis = Nemesis(["kill", "membership"], cluster, History(str(tmp_path / "history.jsonl")), seed=1, stop=threading.Event())
    name, undo = nemesis._start_membership(random.Random(1))
    leaving = int(name.split("n")[-1])
    for seed in range(20):
        kill, undo_kill = nemesis._start_kill(random.Random(seed))
        victims = {int(n) for n in kill.split("{")[1].rstrip("}").split(",")}
        assert leaving not in victims and nemesis.held == victims | {leaving}
        undo_kill()
        assert nemesis.held == {leaving}
    undo()
    assert not nemesis.held and not nemesis.membership.leaving


def test_an_admin_request_waits_while_no_node_answers(tmp_path, monkeypatch):
    monkeypatch.setattr(membership_module, "ASK_PATIENCE", 30.0)
    cluster = FakeMembers()
    membership = Membership(cluster, History(str(tmp_path / "history.jsonl")))
    down = {1, 2, 3, 4}
    cluster.up -= down  # a power cut on every node but 5, the one to drain
    back = threading.Timer(0.3, lambda: cluster.up.update(down))
    back.start()
    try:
        via, status, _ = membership.ask("POST", "/admin/v1/nodes/5/drain", exclude={5})
    finally:
        back.cancel()
    assert status == 200 and via in down and cluster.members[5]["draining"]


def test_a_corrupt_node_whose_rebuild_could_not_start_is_finished_by_the_next_membership_fault(tmp_path, monkeypatch):
    monkeypatch.setattr(membership_module, "ASK_PATIENCE", 0.2)
    monkeypatch.setattr(nemesis_module, "corrupt_database", lambda *args: "wal 000004.log bit flipped")
    cluster = FakeMembers()
    cluster.kill = cluster.stop
    cluster.restart = cluster.up.add
    cluster.data_dir = lambda node: str(tmp_path / f"n{node}")
    nemesis = Nemesis(["corrupt", "membership"], cluster, History(str(tmp_path / "history.jsonl")), seed=1, stop=threading.Event())
    others = set()

    def start_corrupt(node):
        # The damaged node exits; at that moment every other node is down too (a power cut).
        others.update(cluster.up)
        cluster.up.clear()
    cluster.start = start_corrupt
    cluster.wait_exit_or_healthy = lambda node, timeout: f"exit {nemesis_module.DATA_CORRUPT_EXIT}"
    with pytest.raises(RuntimeError, match="no node answered"):
        nemesis._start_corrupt(random.Random(1))
    [corrupt] = nemesis.membership.leaving
    assert not nemesis.held, "a fault that could not start holds no node"
    cluster.up.update(others)
    name, undo = nemesis._start_membership(random.Random(2))
    assert corrupt not in nemesis.membership.leaving and corrupt in cluster.up
    assert ("wipe", corrupt) in cluster.calls and ("join", corrupt) in cluster.calls
    undo()


class FakeSummaries:
    """describe_stream_summary answering from a list of statuses (an error code raises it)."""

    def __init__(self, answers):
        self.answers = list(answers)

    def describe_stream_summary(self, StreamName):
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer.endswith("Exception"):
            raise botocore.exceptions.ClientError({"Error": {"Code": answer, "Message": "x"}}, "DescribeStreamSummary")
        return {"StreamDescriptionSummary": {"StreamStatus": answer}}


def test_waiting_for_a_stream_stops_soon_once_it_is_gone(monkeypatch):
    monkeypatch.setattr(resharding_module, "GONE_AFTER", 0.6)
    with pytest.raises(RuntimeError, match="not found for"):
        wait_active(FakeSummaries(["ResourceNotFoundException"]), "jepsen", timeout=120.0)
    # Not found for a moment, then there (a healed node answering before it caught up): waited for.
    answers = ["ResourceNotFoundException", "ServiceUnavailableException", "ResourceNotFoundException", "UPDATING", "ACTIVE"]
    wait_active(FakeSummaries(answers), "jepsen", timeout=120.0)


def test_the_final_read_goes_through_running_nodes_only():
    """After a healing that failed with node 1 still down, the final read went through node 1 and
    read nothing (soak seed 32): it reads through the nodes that run."""
    from kinesin_jepsen.run import Run

    class Cluster:
        def __init__(self, down):
            self.down = down

        def nodes(self):
            return [1, 2, 3, 4]

        def running(self, node):
            return node not in self.down

    run = Run.__new__(Run)
    run.cluster = Cluster(down={1, 3})
    assert run.serving_nodes() == [2, 4]
    run.cluster = Cluster(down={1, 2, 3, 4})
    assert run.serving_nodes() == [1, 2, 3, 4], "nothing runs: ask them all, to record why"
