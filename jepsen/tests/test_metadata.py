"""The metadata checker must be able to fail (one hand-made history per violation) and must accept
racing operations that a correct cluster can produce; the workload records every operation once."""

import os
import sys
import threading
from collections import defaultdict

import botocore.exceptions
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kinesin_jepsen.history import History  # noqa: E402
from kinesin_jepsen.metadata import (  # noqa: E402
    CREATE, DELETE, DESCRIBE, FINAL, NOT_FOUND, MetadataWorkload, check_metadata, final_state,
)

INF = None  # an operation whose completion never came back


def op(process, f, stream, start, end, outcome="ok", status=None, error=None, node=1):
    """Invoke at `start`, completion at `end` (none when `end` is INF: it stays in flight)."""
    value = {"stream": stream, "node": node}
    ops = [{"process": process, "type": "invoke", "f": f, "time": start, "value": dict(value)}]
    if end is INF:
        return ops
    if status is not None:
        value["status"] = status
    if error is not None:
        value["error"] = error
    ops.append({"process": process, "type": outcome, "f": f, "time": end, "value": value})
    return ops


def create(process, stream, start, end, outcome="ok", **kw):
    if outcome == "fail":
        kw.setdefault("error", "ResourceInUseException")
    if outcome == "info":
        kw.setdefault("error", "ReadTimeoutError")
    return op(process, CREATE, stream, start, end, outcome, **kw)


def delete(process, stream, start, end, outcome="ok", **kw):
    if outcome == "fail":
        kw.setdefault("error", "ResourceNotFoundException")
    if outcome == "info":
        kw.setdefault("error", "ReadTimeoutError")
    return op(process, DELETE, stream, start, end, outcome, **kw)


def describe(process, stream, start, end, status):
    return op(process, DESCRIBE, stream, start, end, status=status)


def final(start, end, views):
    return [{"process": "final", "type": "invoke", "f": FINAL, "time": start, "value": None},
            {"process": "final", "type": "ok", "f": FINAL, "time": end, "value": views}]


def history_of(*parts):
    # Stable by time: each process's invoke still precedes its completion.
    return sorted((entry for part in parts for entry in part), key=lambda entry: entry["time"])


def kinds(result):
    return sorted({e["kind"] for e in result["errors"]})


def valid_history():
    return history_of(
        # Stream a: unknown outcomes and observations overlapping the ops they race with.
        describe(2, "a", 0.5, 1.2, NOT_FOUND),           # overlaps the create: may precede it
        create(0, "a", 1, 2),
        describe(1, "a", 1.5, 2.5, "CREATING"),          # overlaps the create: may follow it
        create(1, "a", 3, 3.1, outcome="fail"),
        delete(2, "a", 4, 4.5, outcome="info"),          # may have happened at any time after 4
        describe(0, "a", 5, 5.1, "ACTIVE"),              # ... or not yet
        describe(1, "a", 6, 6.1, NOT_FOUND),             # ... or already
        create(0, "a", 7, 8),                            # a second success: the unknown delete between
        delete(2, "a", 9, 10),
        describe(1, "a", 9.5, 9.6, "ACTIVE"),            # overlaps the delete
        describe(1, "a", 10.5, 10.6, "DELETING"),        # asynchronous deletion, as in AWS
        create(0, "a", 11, INF),                         # never answered
        describe(1, "a", 12, 12.1, "CREATING"),          # the unanswered create may have happened
        # Stream b: racing creates, each pair separated by a delete in some order, no unknowns.
        create(3, "b", 20, 22),
        delete(4, "b", 20.5, 21),
        create(5, "b", 21.5, 23),
        describe(4, "b", 21.2, 21.3, NOT_FOUND),         # between the delete and the second create
        describe(6, "b", 21.8, 22.5, "CREATING"),
        final(30, 31, {"1": {"a": "ACTIVE", "b": "ACTIVE"}, "2": {"a": "ACTIVE", "b": "ACTIVE"}}),
    )


def test_a_valid_racing_history_is_valid():
    result = check_metadata(valid_history())
    assert result["valid"], result["errors"]
    assert result["creates_ok"] == 4
    assert result["creates_unknown"] == 1
    assert result["deletes_ok"] == 2
    assert result["deletes_unknown"] == 1
    assert result["describes"] == 9
    assert result["not_found"] == 3


def test_other_operations_are_ignored():
    puts = [{"process": 0, "type": "invoke", "f": "put", "time": 0.1, "value": {"key": "k", "data": "d"}},
            {"process": 0, "type": "ok", "f": "put", "time": 0.2, "value": {"key": "k", "data": "d", "shard": "s", "seq": "1"}}]
    assert check_metadata(puts + valid_history())["valid"]


def test_two_sequential_creates_without_a_delete_between_them():
    history = history_of(
        delete(2, "a", 0, 0.5),                      # over before the first create began
        create(0, "a", 1, 2),
        delete(2, "a", 2.5, 2.6, outcome="fail"),    # definitely did not happen
        create(1, "a", 3, 4),
        delete(2, "a", 4.5, INF),                    # began after the second create completed
    )
    result = check_metadata(history)
    assert kinds(result) == ["double-create"]
    assert [(e["first"]["invoked"], e["second"]["invoked"]) for e in result["errors"]] == [(1, 3)]


def test_two_overlapping_creates_without_a_delete():
    assert kinds(check_metadata(history_of(create(0, "a", 1, 3), create(1, "a", 2, 4)))) == ["double-create"]
    excused = history_of(create(0, "a", 1, 3), delete(2, "a", 2.5, 2.6), create(1, "a", 2, 4))
    assert check_metadata(excused)["valid"]


def test_a_delete_that_may_have_happened_excuses_a_second_create():
    history = history_of(create(0, "a", 1, 2), delete(2, "a", 0.5, INF), create(1, "a", 3, 4))
    assert check_metadata(history)["valid"]


def test_a_stream_not_found_after_its_create_succeeded():
    history = history_of(
        create(0, "a", 1, 2),
        describe(1, "a", 3, 3.1, NOT_FOUND),
        delete(2, "a", 4, INF),                      # invoked only after the describe completed
    )
    assert kinds(check_metadata(history)) == ["lost-stream"]


def test_a_stream_lost_by_the_final_state():
    history = valid_history()[:-2] + final(30, 31, {"1": {"a": "ACTIVE", "b": NOT_FOUND}, "2": {"a": "ACTIVE", "b": NOT_FOUND}})
    result = check_metadata(history)
    assert kinds(result) == ["lost-stream"]
    assert {e["observed"]["node"] for e in result["errors"]} == {"1", "2"}


def test_a_stream_seen_before_anyone_created_it():
    history = history_of(describe(1, "a", 1, 1.1, "ACTIVE"), create(0, "a", 2, 3))
    assert kinds(check_metadata(history)) == ["phantom-stream"]
    deleting = history_of(describe(1, "a", 1, 1.1, "DELETING"), delete(0, "a", 0.5, 0.6))
    assert kinds(check_metadata(deleting)) == ["phantom-stream"]


def test_a_stream_in_the_final_state_that_nobody_created():
    history = valid_history()[:-2] + final(30, 31, {
        "1": {"a": "ACTIVE", "b": "ACTIVE", "meta-9": "ACTIVE"},
        "2": {"a": "ACTIVE", "b": "ACTIVE", "meta-9": "ACTIVE"},
    })
    result = check_metadata(history)
    assert kinds(result) == ["phantom-stream"]
    assert {e["stream"] for e in result["errors"]} == {"meta-9"}


def test_a_deleted_stream_that_comes_back():
    history = history_of(
        create(0, "a", 1, 2),
        delete(1, "a", 3, 4),
        create(0, "a", 4.5, 4.6, outcome="fail"),    # definitely did not happen
        describe(2, "a", 5, 5.1, "ACTIVE"),
        create(0, "a", 6, INF),                      # invoked after the describe completed
    )
    result = check_metadata(history)
    assert kinds(result) == ["resurrected"]
    assert result["errors"][0]["delete"]["invoked"] == 3


def test_deleting_after_a_delete_or_a_create_that_may_land_late_is_no_resurrection():
    deleting = history_of(create(0, "a", 1, 2), delete(1, "a", 3, 4), describe(2, "a", 5, 5.1, "DELETING"))
    assert check_metadata(deleting)["valid"]
    # A create invoked before the delete but never answered may take effect after it.
    late = history_of(create(0, "a", 1, 2), create(3, "a", 2.5, INF), delete(1, "a", 3, 4), describe(2, "a", 5, 5.1, "ACTIVE"))
    assert check_metadata(late)["valid"]


def test_a_resurrection_in_the_final_state():
    history = history_of(create(0, "a", 1, 2), delete(1, "a", 3, 4), final(10, 11, {"1": {"a": "ACTIVE"}, "2": {"a": "ACTIVE"}}))
    assert kinds(check_metadata(history)) == ["resurrected"]


def test_nodes_that_disagree_after_healing():
    history = valid_history()[:-2] + final(30, 31, {"1": {"a": "ACTIVE", "b": "ACTIVE"}, "2": {"a": NOT_FOUND, "b": "ACTIVE"}})
    result = check_metadata(history)
    assert kinds(result) == ["final-disagree"]
    assert result["errors"][0]["answers"] == {"1": "ACTIVE", "2": NOT_FOUND}


# -- the workload against an in-memory cluster ---------------------------------------------------

def client_error(code, operation):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, operation)


class FakeCluster:
    """A linearizable in-memory cluster, the same through every node: each call takes effect
    atomically. Some calls never connect (definitely not done), some time out after taking effect
    (unknown outcome); deletions finish a few calls later, as AWS's do."""

    def __init__(self, stop_event, stop_after, streams=None):
        self.lock = threading.Lock()
        self.stop_event = stop_event
        self.stop_after = stop_after
        self.calls = 0
        self.streams = dict(streams or {})  # name -> [status, call count when it last changed]

    def _tick(self):
        self.calls += 1
        if self.calls >= self.stop_after:
            self.stop_event.set()
        for name, (status, since) in list(self.streams.items()):
            if status == "DELETING" and self.calls - since >= 3:
                del self.streams[name]
            elif status == "CREATING" and self.calls - since >= 2:
                self.streams[name] = ["ACTIVE", self.calls]

    def _call(self, operation, apply):
        with self.lock:
            self._tick()
            if self.calls % 7 == 0:
                raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://fake")
            result = apply()
            if self.calls % 11 == 0:
                raise botocore.exceptions.ReadTimeoutError(endpoint_url="http://fake")
            return result

    def create_stream(self, StreamName, ShardCount):
        def apply():
            if StreamName in self.streams:
                raise client_error("ResourceInUseException", "CreateStream")
            self.streams[StreamName] = ["CREATING", self.calls]
            return {}
        return self._call("CreateStream", apply)

    def delete_stream(self, StreamName, EnforceConsumerDeletion):
        def apply():
            if StreamName not in self.streams:
                raise client_error("ResourceNotFoundException", "DeleteStream")
            if self.streams[StreamName][0] != "DELETING":
                self.streams[StreamName] = ["DELETING", self.calls]
            return {}
        return self._call("DeleteStream", apply)

    def describe_stream_summary(self, StreamName):
        def apply():
            if StreamName not in self.streams:
                raise client_error("ResourceNotFoundException", "DescribeStreamSummary")
            return {"StreamDescriptionSummary": {"StreamName": StreamName, "StreamStatus": self.streams[StreamName][0]}}
        return self._call("DescribeStreamSummary", apply)

    def list_streams(self, NextToken=None, ExclusiveStartStreamName=None):
        # Two names a page, DELETING ones left out, as Kinesin lists them; no injected faults.
        with self.lock:
            names = sorted(n for n, (status, _) in self.streams.items() if status != "DELETING")
        after = NextToken or ExclusiveStartStreamName
        rest = [n for n in names if after is None or n > after]
        page = rest[:2]
        more = len(rest) > 2
        return {"StreamNames": page, "HasMoreStreams": more, **({"NextToken": page[-1]} if more else {})}


def assert_paired(ops):
    """Every process alternates invoke and exactly one completion of the same operation."""
    in_flight = {}
    for entry in ops:
        if entry["type"] == "invoke":
            assert entry["process"] not in in_flight, entry
            in_flight[entry["process"]] = entry
        else:
            invoke = in_flight.pop(entry["process"])
            assert (invoke["f"], invoke["value"]["stream"]) == (entry["f"], entry["value"]["stream"])
    assert not in_flight


@pytest.mark.timeout(60)
def test_the_workload_records_every_operation_once_and_passes_the_checker(tmp_path):
    stop = threading.Event()
    cluster = FakeCluster(stop, stop_after=150, streams={"jepsen": ["ACTIVE", 0]})
    history = History(str(tmp_path / "history.jsonl"))
    workload = MetadataWorkload(history, lambda node: cluster, nodes=[1, 2, 3], seed=7, pause=0.001)
    threads = [threading.Thread(target=workload.run, args=(200 + p, stop)) for p in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    ops = list(history.ops)
    assert_paired(ops)
    by_outcome = defaultdict(int)
    for entry in ops:
        by_outcome[(entry["f"], entry["type"])] += 1
        if entry["type"] in ("fail", "info"):
            assert entry["value"]["error"]
        if entry["f"] == DESCRIBE and entry["type"] == "ok":
            assert entry["value"]["status"] in ("CREATING", "ACTIVE", "DELETING", NOT_FOUND)
    assert by_outcome[(CREATE, "ok")] and by_outcome[(DELETE, "ok")] and by_outcome[(DESCRIBE, "ok")]
    assert sum(n for (f, t), n in by_outcome.items() if t == "fail") and sum(n for (f, t), n in by_outcome.items() if t == "info")
    assert {entry["value"]["error"] for entry in ops if entry["type"] == "fail"} >= {"EndpointConnectionError"}
    assert {entry["value"]["error"] for entry in ops if entry["type"] == "info"} == {"ReadTimeoutError"}

    cluster.calls, cluster.stop_after = 1, 10**9  # no more injected faults from here: 1 % 7, 1 % 11
    cluster._call = lambda operation, apply: apply()
    views = workload.record_final_state(settle_timeout=0)
    history.close()
    assert set(views) == {"1", "2", "3"}
    assert "jepsen" not in views["1"]  # not ours
    assert history.ops[-1]["f"] == FINAL and history.ops[-1]["type"] == "ok"
    result = check_metadata(history.ops)
    assert result["valid"], result["errors"]
    assert result["describes"] == by_outcome[(DESCRIBE, "ok")]


def test_final_state_lists_our_streams_across_pages_and_reports_unreachable_nodes():
    streams = {name: ["ACTIVE", 0] for name in ("jepsen", "meta-0", "meta-5", "meta-7", "other")}
    cluster = FakeCluster(threading.Event(), 10**9, streams)
    cluster._call = lambda operation, apply: apply()

    def client_for_node(node):
        if node == 3:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://node3")
        return cluster

    views = final_state(client_for_node, [1, 2, 3], names=("meta-0", "meta-1"), settle_timeout=0)
    expected = {"meta-0": "ACTIVE", "meta-1": NOT_FOUND, "meta-5": "ACTIVE", "meta-7": "ACTIVE"}
    assert views["1"] == views["2"] == expected
    assert views["3"] == {"meta-0": "UNKNOWN:EndpointConnectionError", "meta-1": "UNKNOWN:EndpointConnectionError"}
