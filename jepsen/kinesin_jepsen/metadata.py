"""The stream-metadata workload: clients race CreateStream, DeleteStream and DescribeStreamSummary
on a few stream names through every node, and a checker proves what such a history allows.

Operations (each recorded as `invoke` then `ok` / `fail` / `info`, value `{"stream", "node"}`):

- `create-stream`: CreateStream with one shard.
- `delete-stream`: DeleteStream with EnforceConsumerDeletion. Asynchronous, as in AWS: the stream
  is DELETING for a while, then gone.
- `describe-stream`: DescribeStreamSummary; `ok` adds `"status"`, the StreamStatus, or `NOT_FOUND`
  when the answer was ResourceNotFoundException (a definite, successful observation).
- `final-metadata` (process `final`): after healing, `{node: {stream: status}}` as every node
  answers it, once the nodes agree (or a deadline passed).

`fail` and `info` add `"error"`, the error code. `fail` means the operation definitely did not
happen; `info` means it may have happened at any time after its invoke, or never.

Properties `check_metadata` proves (sound only: each op took effect somewhere between its invoke
and its completion, an `info` op at any time after its invoke or never, a `fail` op never):

- double-create: two CreateStream succeeded on one name with no DeleteStream (ok or info) that
  could have taken effect between them. An existing name answers ResourceInUseException.
- lost-stream: NOT_FOUND observed although a create of that name succeeded before, and no delete
  could have taken effect between that create and the observation.
- phantom-stream: a stream observed (any status, DELETING included) although no create of that
  name (ok or info) had been invoked yet.
- resurrected: a stream observed CREATING / ACTIVE / UPDATING although a delete of it succeeded
  before, and no create could have taken effect between that delete and the observation. DELETING
  after a delete is what AWS shows, so it is never flagged.
- final-disagree: after healing, the nodes give different answers.

The final state counts as one more observation per node, so it is checked like a describe too.
"""

import bisect
import itertools
import math
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass

import botocore.exceptions

from .clients import error_code, is_not_found, perform

DEFAULT_NAMES = ("meta-0", "meta-1", "meta-2")
CREATE, DELETE, DESCRIBE, FINAL = "create-stream", "delete-stream", "describe-stream", "final-metadata"
NOT_FOUND = "NOT_FOUND"
# What a node that could not answer at the end reports for each stream, followed by the error.
UNKNOWN_PREFIX = "UNKNOWN:"

OPERATION_WEIGHTS = {CREATE: 3, DELETE: 2, DESCRIBE: 5}

# -- the workload --------------------------------------------------------------------------------

def _create(kinesis, name):
    kinesis.create_stream(StreamName=name, ShardCount=1)
    return {}


def _delete(kinesis, name):
    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    return {}


def _describe(kinesis, name):
    try:
        out = kinesis.describe_stream_summary(StreamName=name)
    except botocore.exceptions.ClientError as exc:
        if is_not_found(exc):
            return {"status": NOT_FOUND}
        raise
    return {"status": out["StreamDescriptionSummary"]["StreamStatus"]}


OPERATIONS = {CREATE: _create, DELETE: _delete, DESCRIBE: _describe}


class MetadataWorkload:
    """Client processes racing metadata operations; `run` is one process's loop."""

    def __init__(self, history, client_for_node, nodes, seed, names=DEFAULT_NAMES, pause=0.05):
        self.history = history
        self.client_for_node = client_for_node
        self.nodes = list(nodes)
        self.seed = seed
        self.names = tuple(names)
        self.pause = pause

    def run(self, process, stop_event):
        rng = random.Random(self.seed * 1000 + process)
        operations, weights = zip(*OPERATION_WEIGHTS.items())
        clients = {}
        while not stop_event.is_set():
            node = rng.choice(self.nodes)
            name = rng.choice(self.names)
            f = rng.choices(operations, weights)[0]
            self.perform(process, clients, node, name, f)
            stop_event.wait(self.pause)

    def perform(self, process, clients, node, name, f):
        """One operation, recorded as invoke then exactly one completion; never raises."""
        def connect():
            if node not in clients:
                clients[node] = self.client_for_node(node)
            return clients[node]
        perform(self.history, process, f, {"stream": name, "node": node}, connect, lambda kinesis: OPERATIONS[f](kinesis, name))

    def final_state(self, settle_timeout=30.0):
        return final_state(self.client_for_node, self.nodes, self.names, settle_timeout)

    def record_final_state(self, settle_timeout=30.0):
        return record_final_state(self.history, self.client_for_node, self.nodes, self.names, settle_timeout)


# -- the final state -----------------------------------------------------------------------------

def _list_stream_names(kinesis):
    names, page = [], {}
    while True:
        out = kinesis.list_streams(**page)
        names += out.get("StreamNames", [])
        if not out.get("HasMoreStreams") or not out.get("StreamNames"):
            return names
        page = {"NextToken": out["NextToken"]} if out.get("NextToken") else {"ExclusiveStartStreamName": names[-1]}


def _is_ours(name, names):
    """A listed stream belongs to this workload when it is one of its names or shares their common
    prefix (a `meta-7` nobody created is a phantom; the producers' stream is none of our business)."""
    prefix = os.path.commonprefix(list(names))
    return name in names or bool(prefix) and name.startswith(prefix)


def node_view(kinesis, names):
    """`{stream: status}` as one node answers now: every workload name, and any listed stream of ours."""
    listed = [n for n in _list_stream_names(kinesis) if _is_ours(n, names)]
    return {name: _describe(kinesis, name)["status"] for name in sorted(set(names) | set(listed))}


def final_state(client_for_node, nodes, names=DEFAULT_NAMES, settle_timeout=30.0):
    """`{str(node): {stream: status or NOT_FOUND}}` once every node gives the same answer.

    DeleteStream finishes asynchronously, so right after healing one node may still say DELETING
    where another already says NOT_FOUND: ask again until they agree or `settle_timeout` passes,
    and return the last answers either way (the checker flags what still differs)."""
    clients = {}
    deadline = time.monotonic() + settle_timeout
    while True:
        views = {}
        for node in nodes:
            try:
                if node not in clients:
                    clients[node] = client_for_node(node)
                views[str(node)] = node_view(clients[node], names)
            except Exception as exc:  # noqa: BLE001 - a node that cannot answer is part of the answer
                views[str(node)] = {name: UNKNOWN_PREFIX + error_code(exc) for name in names}
        answers = list(views.values())
        if all(a == answers[0] for a in answers) or time.monotonic() > deadline:
            return views
        time.sleep(0.5)


def record_final_state(history, client_for_node, nodes, names=DEFAULT_NAMES, settle_timeout=30.0):
    """Reads the final state and records it as an invoke / ok pair of process `final`: the invoke
    time bounds when the answers were read, which the checker needs to use them as observations."""
    history.record("final", "invoke", FINAL, None)
    views = final_state(client_for_node, nodes, names, settle_timeout)
    history.record("final", "ok", FINAL, views)
    return views


# -- the checker ---------------------------------------------------------------------------------

@dataclass
class Op:
    """One metadata operation with the window in which it may have taken effect."""
    f: str
    process: object
    type: str  # ok, fail or info (an invoke never completed counts as info)
    start: float
    end: float  # completion time; infinity for info, which may take effect any time later
    value: dict

    def brief(self):
        return {"process": self.process, "type": self.type, "invoked": self.start,
                "completed": None if math.isinf(self.end) else self.end, "node": self.value.get("node")}


@dataclass
class Observation:
    """A status seen for a stream, somewhere in [start, end]."""
    stream: str
    status: str
    start: float
    end: float
    source: dict

    @property
    def exists(self):
        return self.status != NOT_FOUND

    @property
    def live(self):
        """Exists and is not going away: what only a create can explain."""
        return self.exists and self.status != "DELETING"


class Windows:
    """Effect windows, indexed to answer: could one of them fall between two instants?"""

    def __init__(self, ops):
        ops = sorted(ops, key=lambda op: op.start)
        self.starts = [op.start for op in ops]
        self.reach = list(itertools.accumulate((op.end for op in ops), max))

    def any_between(self, after, before):
        """Some op started by `before` and not completed before `after` (ties count, to stay sound)."""
        k = bisect.bisect_right(self.starts, before)
        return k > 0 and self.reach[k - 1] >= after


class Completed:
    """Successful ops, indexed to answer: of those completed before an instant, which began last?"""

    def __init__(self, ops):
        ops = sorted(ops, key=lambda op: op.end)
        self.ends = [op.end for op in ops]
        # The latest-starting op among the first k: it is the hardest to explain away.
        self.latest = list(itertools.accumulate(ops, lambda a, b: b if b.start > a.start else a))

    def latest_before(self, instant):
        k = bisect.bisect_left(self.ends, instant)
        return self.latest[k - 1] if k else None


def _metadata_ops(history):
    """Pairs each metadata invoke with its completion; returns (ops, final ops)."""
    pending, ops, finals = {}, [], []
    for entry in history:
        f = entry.get("f")
        if f not in (CREATE, DELETE, DESCRIBE, FINAL):
            continue
        if entry["type"] == "invoke":
            pending[entry["process"]] = entry
            continue
        invoke = pending.pop(entry["process"], None)
        start = invoke["time"] if invoke else entry["time"]
        end = math.inf if entry["type"] == "info" else entry["time"]
        op = Op(f, entry["process"], entry["type"], start, end, entry.get("value") or {})
        if f != FINAL:
            ops.append(op)
        elif op.type == "ok" and isinstance(op.value, dict):
            finals.append(op)
    for invoke in pending.values():
        if invoke["f"] != FINAL:
            ops.append(Op(invoke["f"], invoke["process"], "info", invoke["time"], math.inf, invoke.get("value") or {}))
    return ops, finals


def _observations(ops, finals):
    seen = [Observation(op.value["stream"], op.value["status"], op.start, op.end, op.brief())
            for op in ops if op.f == DESCRIBE and op.type == "ok" and "status" in op.value]
    for final in finals:
        for node, view in final.value.items():
            for stream, status in view.items():
                if not status.startswith(UNKNOWN_PREFIX):
                    seen.append(Observation(stream, status, final.start, final.end, {"process": "final", "node": node}))
    return seen


def _double_creates(stream, creates_ok, deletes):
    """Every pair of successful creates needs a delete that can sit between them in some order."""
    errors = []

    def error(first, second):
        errors.append({"kind": "double-create", "stream": stream, "first": first.brief(), "second": second.brief()})

    # Sequential pairs: for each create, the earlier one that began last leaves a delete the
    # least room, so it alone decides.
    completed = Completed(creates_ok)
    for second in creates_ok:
        first = completed.latest_before(second.start)
        if first and not deletes.any_between(first.start, second.end):
            error(first, second)
    # Overlapping pairs may have taken effect in either order; both orders must be impossible.
    ordered = sorted(creates_ok, key=lambda op: op.start)
    for i, a in enumerate(ordered):
        j = i + 1
        while j < len(ordered) and ordered[j].start <= a.end:
            b = ordered[j]
            if not deletes.any_between(a.start, b.end) and not deletes.any_between(b.start, a.end):
                error(a, b)
            j += 1
    return errors


def _lost_stream(seen, creates_ok, deletes):
    if seen.exists:
        return None
    create = creates_ok.latest_before(seen.start)
    if create and not deletes.any_between(create.start, seen.end):
        return {"kind": "lost-stream", "stream": seen.stream, "observed": seen.source, "at": [seen.start, seen.end],
                "create": create.brief()}
    return None


def _phantom_stream(seen, creates):
    if seen.exists and not creates.any_between(-math.inf, seen.end):
        return {"kind": "phantom-stream", "stream": seen.stream, "status": seen.status, "observed": seen.source,
                "at": [seen.start, seen.end]}
    return None


def _resurrected(seen, deletes_ok, creates):
    if not seen.live:
        return None
    delete = deletes_ok.latest_before(seen.start)
    if delete and not creates.any_between(delete.start, seen.end):
        return {"kind": "resurrected", "stream": seen.stream, "status": seen.status, "observed": seen.source,
                "at": [seen.start, seen.end], "delete": delete.brief()}
    return None


def _final_disagreements(finals):
    errors = []
    for final in finals:
        views = final.value
        streams = sorted({s for view in views.values() for s in view})
        for stream in streams:
            answers = {node: view.get(stream, NOT_FOUND) for node, view in views.items()}
            if len(set(answers.values())) > 1:
                errors.append({"kind": "final-disagree", "stream": stream, "answers": answers})
    return errors


def check_metadata(history):
    """Checks the metadata operations of `history`; other operations are ignored."""
    ops, finals = _metadata_ops(history)
    seen = _observations(ops, finals)
    ops_of, seen_of = defaultdict(list), defaultdict(list)
    for op in ops:
        ops_of[op.value["stream"]].append(op)
    for observation in seen:
        seen_of[observation.stream].append(observation)
    errors = []
    for stream in sorted(set(ops_of) | set(seen_of)):
        mine = ops_of[stream]
        # ok and info ops may have taken effect; fail ops never did.
        creates = [op for op in mine if op.f == CREATE and op.type != "fail"]
        deletes = [op for op in mine if op.f == DELETE and op.type != "fail"]
        creates_ok = [op for op in creates if op.type == "ok"]
        deletes_ok = [op for op in deletes if op.type == "ok"]
        may_create, may_delete = Windows(creates), Windows(deletes)
        created, deleted = Completed(creates_ok), Completed(deletes_ok)
        errors += _double_creates(stream, creates_ok, may_delete)
        for observation in seen_of[stream]:
            for found in (_lost_stream(observation, created, may_delete),
                          _phantom_stream(observation, may_create),
                          _resurrected(observation, deleted, may_create)):
                if found:
                    errors.append(found)
    errors += _final_disagreements(finals)
    return {
        "valid": not errors,
        "creates_ok": sum(op.f == CREATE and op.type == "ok" for op in ops),
        "creates_unknown": sum(op.f == CREATE and op.type == "info" for op in ops),
        "deletes_ok": sum(op.f == DELETE and op.type == "ok" for op in ops),
        "deletes_unknown": sum(op.f == DELETE and op.type == "info" for op in ops),
        "describes": sum(op.f == DESCRIBE and op.type == "ok" for op in ops),
        "not_found": sum(s.status == NOT_FOUND for s in seen if s.source.get("process") != "final"),
        "errors": errors,
    }
