"""The resharding workload: one process reshapes the producers' stream while they write, and a
checker proves that what the cluster acknowledged is what happened.

The resharder repeats, through a random node each time: wait until the stream is ACTIVE and list
its shards (recorded as a `shards` op of the resharder's process: a *settled* listing, taken when
no resharding was under way), then one of

- `split-shard`: SplitShard of a random OPEN shard at a random hash key inside it; value
  `{"node", "shard", "hash_key"}`;
- `merge-shards`: MergeShards of a random adjacent OPEN pair; value `{"node", "shard", "adjacent"}`;
- `update-shard-count`: UpdateShardCount (UNIFORM_SCALING) to a random count between 2 and 6,
  within AWS's bounds (half to double the OPEN count); value `{"node", "target"}`, `ok` adds
  `"current"`.

Each recorded as invoke then ok / fail / info like every client operation. The producers and the
consumers are the `produce` workload's; consumers follow the lineage (a shard read to its end
hands over to its children), and the final read reads every shard, OPEN and CLOSED.

`check_resharding` proves, over the last listings' lineage (sound with `info` ops as may-have-
happened; the record-level properties across resharding are in checker.py):

- reshard-not-applied: an ok split left no two children of the shard split at the hash key; an ok
  merge left no child of exactly that pair; after an ok UpdateShardCount the next settled listing
  does not have the target count of OPEN shards (unless an earlier reshard's outcome is unknown);
- failed-reshard-applied: a split or merge that definitely failed is in the lineage anyway, and
  no other split, merge or UpdateShardCount that may have happened explains it;
- unexplained-reshard: a CLOSED shard that no split, merge or UpdateShardCount could have closed.

It also reports how the writers fared: the slowest acknowledged put, the longest stretch with no
put acknowledged (overall, and outside fault windows), and failed or unknown puts while a
resharding was under way with no fault in force (the cluster should hold writes, not fail them).
"""

import itertools
import math
import random
import time
from dataclasses import dataclass

from .checker import lineage, parents_of, range_of
from .clients import error_code, list_shards, perform
from .timeline import fault_windows, pair_completions, run_duration

SPLIT, MERGE, UPDATE = "split-shard", "merge-shards", "update-shard-count"
RESHARDS = (SPLIT, MERGE, UPDATE)
MIN_OPEN, MAX_OPEN = 2, 6


def _by_start(listing):
    return sorted((s for s in listing if s["open"]), key=lambda s: int(s["start"]))


def choose(rng, listing, turn=0):
    """The next reshard for a stream whose shards are `listing`: (f, request value). The kinds take
    turns (SplitShard, MergeShards, UpdateShardCount from `turn` on), skipping one that cannot be
    made now, so a short run does every kind."""
    open_shards = _by_start(listing)
    n = len(open_shards)
    pairs = [(a, b) for a, b in zip(open_shards, open_shards[1:]) if int(a["end"]) + 1 == int(b["start"])]
    splittable = [s for s in open_shards if int(s["end"]) > int(s["start"])]
    targets = [t for t in range(max(MIN_OPEN, (n + 1) // 2), min(MAX_OPEN, 2 * n) + 1) if t != n]
    possible = {SPLIT: n < MAX_OPEN and splittable, MERGE: n > MIN_OPEN and pairs, UPDATE: targets}
    order = [RESHARDS[(turn + i) % len(RESHARDS)] for i in range(len(RESHARDS))]
    f = next(f for f in order if possible[f])
    if f == SPLIT:
        shard = rng.choice(splittable)
        return f, {"shard": shard["shard"], "hash_key": str(rng.randint(int(shard["start"]) + 1, int(shard["end"])))}
    if f == MERGE:
        a, b = rng.choice(pairs)
        return f, {"shard": a["shard"], "adjacent": b["shard"]}
    return f, {"target": rng.choice(targets)}


def _request(stream, f, value):
    def send(kinesis):
        if f == SPLIT:
            kinesis.split_shard(StreamName=stream, ShardToSplit=value["shard"], NewStartingHashKey=value["hash_key"])
            return {}
        if f == MERGE:
            kinesis.merge_shards(StreamName=stream, ShardToMerge=value["shard"], AdjacentShardToMerge=value["adjacent"])
            return {}
        out = kinesis.update_shard_count(StreamName=stream, TargetShardCount=value["target"], ScalingType="UNIFORM_SCALING")
        return {"current": out.get("CurrentShardCount")}
    return send


class ReshardingWorkload:
    """The resharder; `run` is its loop."""

    def __init__(self, history, client_for_node, nodes, seed, stream, pause=1.0, poll=0.2):
        self.history = history
        self.client_for_node = client_for_node
        self.nodes = list(nodes)
        self.seed = seed
        self.stream = stream
        self.pause = pause
        self.poll = poll

    def run(self, process, stop_event):
        rng = random.Random(self.seed * 1000 + process)
        clients = {}

        def connect(node):
            if node not in clients:
                clients[node] = self.client_for_node(node)
            return clients[node]

        for turn in itertools.count():
            listing = self.settle(process, rng, connect, stop_event)
            if listing is None:
                return
            f, value = choose(rng, listing, turn)
            node = rng.choice(self.nodes)
            perform(self.history, process, f, {"node": node, **value}, lambda: connect(node), _request(self.stream, f, value))
            stop_event.wait(self.pause)

    def settle(self, process, rng, connect, stop_event):
        """Waits (through random nodes) until the stream is ACTIVE, then records and returns its
        shards; None when stopped first."""
        while not stop_event.is_set():
            try:
                kinesis = connect(rng.choice(self.nodes))
                status = kinesis.describe_stream_summary(StreamName=self.stream)["StreamDescriptionSummary"]["StreamStatus"]
                if status == "ACTIVE":
                    listing = list_shards(kinesis, self.stream)
                    self.history.record(process, "ok", "shards", listing)
                    return listing
            except Exception:  # noqa: BLE001 - a node that cannot answer now: ask another
                pass
            stop_event.wait(self.poll)
        return None


# How long a stream must be answered as not found before waiting for it stops: metadata reads
# are linearizable, so once the healed cluster answers, "not found" is its committed state (a build
# that loses its state under power cuts loses the stream) and waiting out the whole timeout for it
# only made CI slower.
GONE_AFTER = 10.0


def wait_active(kinesis, stream, timeout=120.0):
    """Waits for the stream to be ACTIVE: after its creation, and after healing (to finish any
    resharding: the final listing needs it). Errors in between (a cluster electing) are waited out."""
    deadline = time.monotonic() + timeout
    missing_since = None
    while True:
        try:
            status = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
        except Exception as exc:  # noqa: BLE001 - a cluster just healed may still elect leaders
            status = error_code(exc)
        if status == "ACTIVE":
            return
        now = time.monotonic()
        missing_since = (missing_since or now) if status == "ResourceNotFoundException" else None
        if missing_since is not None and now - missing_since > GONE_AFTER:
            raise RuntimeError(f"stream {stream} not found for {GONE_AFTER:.0f} s after healing")
        if now > deadline:
            raise RuntimeError(f"stream {stream} not ACTIVE {timeout:.0f} s after healing (last answer: {status})")
        time.sleep(0.5)


# -- the checker ---------------------------------------------------------------------------------

@dataclass
class Reshard:
    f: str
    outcome: str  # ok, fail or info (never completed counts as info)
    start: float
    end: float | None
    value: dict
    process: object
    settled: tuple | None = None  # (time, listing) of the next settled listing


def _reshard_ops(history):
    """The reshard operations in invoke order, each with the settled listing that followed it: the
    next `shards` answer of its process (the resharder lists only once the stream is ACTIVE
    again) or of process `final` (after healing)."""
    ops, pending = [], {}
    for op in history:
        if op.get("f") in RESHARDS:
            if op["type"] == "invoke":
                pending[op["process"]] = op
                continue
            invoke = pending.pop(op["process"], op)
            ops.append(Reshard(op["f"], op["type"], invoke["time"], op["time"], op["value"], op["process"]))
        elif op.get("f") == "shards" and op.get("type") == "ok":
            for reshard in ops:
                if reshard.settled is None and op["process"] in (reshard.process, "final"):
                    reshard.settled = (op["time"], op["value"])
    ops += [Reshard(op["f"], "info", op["time"], None, op["value"], op["process"]) for op in pending.values()]
    return sorted(ops, key=lambda op: op.start)


def _split_done(shards, shard, at):
    children = {range_of(c) for c in shards.values() if c.get("parent") == shard and not c.get("adjacent_parent")}
    parent = shards.get(shard)
    return parent is not None and {(range_of(parent)[0], at - 1), (at, range_of(parent)[1])} <= children


def _merge_done(shards, a, b):
    return any({c.get("parent"), c.get("adjacent_parent")} == {a, b} for c in shards.values())


def _closed_by(shards):
    """How each CLOSED shard was closed, as the lineage tells: ("split", shard, at) or ("merge", a, b)."""
    how = {}
    for child in shards.values():
        parents = parents_of(child)
        if len(parents) == 2:
            for p in parents:
                how[p] = ("merge", *sorted(parents))
        elif len(parents) == 1 and int(child["start"]) > int(shards.get(parents[0], child)["start"]):
            how[parents[0]] = ("split", parents[0], int(child["start"]))
    return how


def _change(op):
    if op.f == SPLIT:
        return ("split", op.value["shard"], int(op.value["hash_key"]))
    if op.f == MERGE:
        return ("merge", *sorted((op.value["shard"], op.value["adjacent"])))
    return None


def _closing_windows(history):
    """`{shard: (last time listed OPEN, first time listed CLOSED)}`: when it may have closed."""
    seen_open, seen_closed = {}, {}
    for op in history:
        if op.get("f") == "shards" and op.get("type") == "ok":
            for shard in op["value"]:
                if shard.get("open"):
                    seen_open[shard["shard"]] = op["time"]
                else:
                    seen_closed.setdefault(shard["shard"], op["time"])
    return {s: (seen_open.get(s, -math.inf), t) for s, t in seen_closed.items()}


def check_resharding(history):
    shards = lineage(history)
    closed_by = _closed_by(shards)
    closing = _closing_windows(history)
    ops = _reshard_ops(history)
    errors = []
    may = [op for op in ops if op.outcome != "fail"]  # ok or info: may have happened

    def explains(shard, change, op):
        """Could op have closed shard as `change`? It must be the same split or merge, or an
        UpdateShardCount (rounds of splits and merges at keys of its choosing), and be under way
        at some point of the window in which the shard closed: invoked before the shard was seen
        CLOSED, not settled (ACTIVE again) before it was last seen OPEN. Unknown outcomes may land
        at any time after their invoke."""
        last_open, first_closed = closing.get(shard, (-math.inf, math.inf))
        settled = op.settled[0] if op.outcome == "ok" and op.settled else math.inf
        return _change(op) in (change, None) and op.start < first_closed and settled > last_open

    def explained(shard, change):
        return any(explains(shard, change, op) for op in may)

    for op in ops:
        done = op.outcome == "ok" and op.settled  # acknowledged, and the stream was ACTIVE again after it
        if done and op.f == SPLIT and not _split_done(shards, op.value["shard"], int(op.value["hash_key"])) \
                or done and op.f == MERGE and not _merge_done(shards, op.value["shard"], op.value["adjacent"]):
            errors.append({"kind": "reshard-not-applied", "f": op.f, "value": op.value, "at": op.end})
        elif done and op.f == UPDATE:
            listed_at, listing = op.settled
            count = sum(bool(s["open"]) for s in listing)
            unknown_before = any(other.outcome == "info" and other.start < listed_at for other in ops)
            if count != op.value["target"] and not unknown_before:
                errors.append({"kind": "reshard-not-applied", "f": op.f, "value": op.value, "at": op.end,
                               "open_shards_after": count, "listed_at": listed_at})
        elif op.outcome == "fail" and op.f != UPDATE:
            change = _change(op)
            if closed_by.get(change[1]) == change and not explained(change[1], change):
                errors.append({"kind": "failed-reshard-applied", "f": op.f, "value": op.value})
    for shard, change in sorted(closed_by.items()):
        if not explained(shard, change):
            errors.append({"kind": "unexplained-reshard", "shard": shard, "change": [str(x) for x in change]})

    counts = {f: {t: sum(op.f == f and op.outcome == t for op in ops) for t in ("ok", "fail", "info")} for f in RESHARDS}
    return {
        "valid": not errors,
        "reshards_ok": sum(c["ok"] for c in counts.values()),
        "operations": counts,
        "shards_total": len(shards),
        "shards_open": sum(bool(s.get("open")) for s in shards.values()),
        "puts_during_resharding": _puts_during_resharding(history, ops),
        "errors": errors,
    }


# A fault is recorded once it is in force, and the cluster takes a moment to recover after it is
# undone: what falls this close to a fault window is the fault's doing, not the resharding's.
FAULT_MARGIN = (1.0, 3.0)  # seconds before its start, after its end


def _faults(history):
    return [(w.start - FAULT_MARGIN[0], w.end + FAULT_MARGIN[1]) for w in fault_windows(history, run_duration(history))]


def _puts_during_resharding(history, ops):
    """Failed and unknown puts while a resharding was under way (invoke to the next settled
    listing) and no fault was near, by error code."""
    end = run_duration(history)
    faults = _faults(history)
    reshards = [(op.start, op.settled[0] if op.settled else end) for op in ops if op.outcome != "fail"]

    def inside(t, windows):
        return any(a <= t <= b for a, b in windows)

    errors, total = {}, 0
    for op in history:
        if op.get("f") == "put" and op.get("type") != "invoke" and inside(op["time"], reshards) and not inside(op["time"], faults):
            total += 1
            if op["type"] != "ok":
                code = op["value"].get("error") or "?"
                errors[code] = errors.get(code, 0) + 1
    return {"completed": total, "not_ok": sum(errors.values()), "errors": errors}


def write_stall(history):
    """How long writers waited: the slowest acknowledged put, and the longest stretch of the load
    (first to last put invoked) in which no put was acknowledged, overall and away from faults."""
    puts = [c for c in pair_completions(history) if c.f == "put"]
    invoked = [c.time - c.latency_ms / 1000 for c in puts if c.latency_ms is not None]
    ok = sorted(c.time for c in puts if c.outcome == "ok")
    if not ok or not invoked:
        return {"max_put_latency_ms": None, "longest_put_gap_s": None, "longest_put_gap_without_fault_s": None}
    begin, stop = min(invoked), max(invoked)
    ok = [t for t in ok if t < stop]
    faults = _faults(history)
    gaps = [(b - a, a, b) for a, b in zip([begin] + ok, ok + [stop])]
    quiet = [g for g in gaps if not any(a < g[2] and g[1] < b for a, b in faults)]
    longest = max(gaps)
    return {
        "max_put_latency_ms": round(max((c.latency_ms for c in puts if c.outcome == "ok" and c.latency_ms is not None), default=0), 3),
        "longest_put_gap_s": round(longest[0], 3),
        "longest_put_gap_at": [round(longest[1], 3), round(longest[2], 3)],
        "longest_put_gap_without_fault_s": round(max(quiet)[0], 3) if quiet else None,
    }
