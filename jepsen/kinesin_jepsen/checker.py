"""The checker: proves properties of a whole history, Jepsen-style.

A history is a list of operations (JSON objects, one per line in `history.jsonl`), each with
`process`, `type` (`invoke`, `ok`, `fail` or `info` = outcome unknown), `f`, `time` (seconds) and
`value`:

- `put`: value `{"key", "data"}` on invoke; `ok` adds `"shard"` and `"seq"` (the sequence number the
  cluster acknowledged). `fail` means definitely not written; `info` means it may have been.
- `read`: `ok` value `{"shard", "records": [{"seq", "data", "key"}]}` — one GetRecords answer of a
  consumer process that follows its shard iterators (successive reads of one process and shard
  continue each other).
- `final-read`: `ok` value `{"shard", "records": [...]}` — everything in the shard after healing.
- `shards`: `ok` value `[{"shard", "start", "end", "open", "parent", "adjacent_parent", "start_seq",
  "end_seq"}]` — a ListShards answer (hash keys and sequence numbers as decimal strings; `end_seq`
  is None while the shard is OPEN, and both may be missing). The last answer naming a shard gives
  its lineage.
- `split-shard`, `merge-shards`, `update-shard-count`: the resharder's requests (resharding.py).
- Process `nemesis`, `f` `start`/`stop`, value a fault name: the fault windows; `f` `membership`,
  value a sentence: a step of a node's leave and rejoin (membership.py).

`check(history)` returns a dict with `valid` and every count; each violation is listed under
`errors` with enough detail to find it in the history.
"""

import bisect
import hashlib
import itertools
from collections import defaultdict
from functools import lru_cache

MAX_HASH_KEY = 2**128 - 1


def _seq(value):
    return int(value)


def hash_key(partition_key):
    """Where Kinesis puts a partition key: its MD5 as an unsigned big-endian 128-bit integer."""
    return int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")


def lineage(history):
    """`{shard: its entry in the last ListShards answer that names it}`."""
    shards = {}
    for op in history:
        if op.get("f") == "shards" and op.get("type") == "ok":
            for shard in op["value"]:
                shards[shard["shard"]] = shard
    return shards


def parents_of(meta):
    return [p for p in (meta.get("parent"), meta.get("adjacent_parent")) if p]


def range_of(meta):
    return int(meta["start"]), int(meta["end"])


def _covers(ranges, start, end):
    """Do the (start, end) ranges together cover start..end?"""
    reach = start
    for a, b in sorted(ranges):
        if a > reach:
            break
        reach = max(reach, b + 1)
    return reach > end


def _completions(history, f):
    return [op for op in history if op.get("f") == f and op.get("type") in ("ok", "fail", "info")]


def check(history):
    errors = []

    def error(kind, **detail):
        errors.append({"kind": kind, **detail})

    attempted = {}
    invoked = {}
    outcome = {}
    for op in history:
        if op.get("f") != "put":
            continue
        data = op["value"]["data"]
        if op["type"] == "invoke":
            attempted[data] = op["value"]
            invoked[data] = op["time"]
        else:
            outcome[data] = op
    acked = {d: op for d, op in outcome.items() if op["type"] == "ok"}
    failed = {d for d, op in outcome.items() if op["type"] == "fail"}
    unknown = {d for d, op in outcome.items() if op["type"] == "info"}
    unknown |= {d for d in attempted if d not in outcome}

    # The final reads: the cluster's content after healing.
    final = {}
    for op in history:
        if op.get("f") == "final-read" and op.get("type") == "ok":
            final[op["value"]["shard"]] = op["value"]["records"]

    found = {}
    at = {}
    for shard, records in final.items():
        previous = None
        for record in records:
            seq = _seq(record["seq"])
            data = record["data"]
            if previous is not None and seq <= previous:
                error("order", shard=shard, seq=record["seq"], previous=str(previous))
            previous = seq
            if (shard, seq) in at and at[(shard, seq)] != data:
                error("sequence-reused", shard=shard, seq=record["seq"])
            at[(shard, seq)] = data
            if data in found:
                # At most once, whatever the outcome: a retried or unknown put may be stored, but once.
                error("duplicate", data=data, places=[found[data], (shard, record["seq"])])
            found[data] = (shard, record["seq"])
            if data not in attempted:
                error("phantom", data=data, shard=shard, seq=record["seq"])
            elif data in failed:
                error("failed-but-present", data=data, shard=shard, seq=record["seq"])
            elif record.get("key") is not None and record["key"] != attempted[data].get("key"):
                error("changed", data=data, shard=shard, seq=record["seq"])

    for data, op in acked.items():
        where = found.get(data)
        if where is None:
            error("lost", data=data, shard=op["value"].get("shard"), seq=op["value"].get("seq"))
        elif (where[0], _seq(where[1])) != (op["value"]["shard"], _seq(op["value"]["seq"])):
            error("moved", data=data, acknowledged=(op["value"]["shard"], op["value"]["seq"]), found=where)

    # Consumers: per process and shard, what they read must be a contiguous run of the final content.
    reads = defaultdict(list)
    for op in history:
        if op.get("f") == "read" and op.get("type") == "ok":
            reads[(op["process"], op["value"]["shard"])].extend(op["value"]["records"])
    for (process, shard), records in reads.items():
        order = [_seq(r["seq"]) for r in final.get(shard, [])]
        index = {seq: i for i, seq in enumerate(order)}
        previous = None
        for record in records:
            seq = _seq(record["seq"])
            if record["data"] not in attempted:
                error("phantom-read", process=process, shard=shard, seq=record["seq"])
            if previous is not None and seq <= previous:
                error("reader-went-backwards", process=process, shard=shard, seq=record["seq"])
            elif previous is not None and seq in index and previous in index and index[seq] != index[previous] + 1:
                error("reader-skipped", process=process, shard=shard, after=str(previous), to=record["seq"])
            if seq not in index:
                error("read-not-in-final", process=process, shard=shard, seq=record["seq"])
            previous = seq

    # Lineage: per partition key, every record of a parent shard precedes every one of its children.
    shard_lineage = lineage(history)
    by_key = defaultdict(lambda: defaultdict(list))
    for shard, records in final.items():
        for record in records:
            key = record.get("key") or attempted.get(record["data"], {}).get("key")
            by_key[key][shard].append(_seq(record["seq"]))
    for key, shards in by_key.items():
        for child, seqs in shards.items():
            for parent in parents_of(shard_lineage.get(child, {})):
                if shards.get(parent) and max(shards[parent]) >= min(seqs):
                    error("lineage-order", key=key, parent=parent, child=child)

    _check_lineage(shard_lineage, final, error)
    _check_key_order(shard_lineage, final, found, acked, invoked, attempted, error)

    # Every ListShards answer: its OPEN shards partition the hash space.
    listings = 0
    for op in history:
        if op.get("f") != "shards" or op.get("type") != "ok":
            continue
        listings += 1
        open_ranges = sorted((int(s["start"]), int(s["end"]), s["shard"]) for s in op["value"] if s.get("open"))
        expected = 0
        for start, end, shard in open_ranges:
            if start != expected:
                error("hash-space", time=op.get("time"), at=shard, expected_start=str(expected), start=str(start))
            expected = end + 1
        if open_ranges and expected != MAX_HASH_KEY + 1:
            error("hash-space", time=op.get("time"), at="end", expected_end=str(MAX_HASH_KEY), end=str(expected - 1))

    result = {
        "valid": not errors,
        "attempted": len(attempted),
        "acknowledged": len(acked),
        "failed": len(failed),
        "unknown": len(unknown),
        "stored": len(found),
        "stored_unknown": len(set(found) & unknown),
        "reads": sum(len(r) for r in reads.values()),
        "shard_listings": listings,
        "availability": availability(history),
        "errors": errors,
    }
    return result


def _check_lineage(shards, final, error):
    """The shards' family tree, as the last listings describe it, against the records read.

    - lineage-range: a child's hash range lies in its parent's (a split), or is exactly the union
      of its two adjacent parents (a merge); a CLOSED shard's range is covered by its children's.
    - child-sequence: every sequence number of a child (read, or its StartingSequenceNumber) is
      greater than every one of each parent (read, or its EndingSequenceNumber).
    - sequence-range: a record lies within its shard's SequenceNumberRange.
    - wrong-shard: a record's partition key hashes into its shard's hash range."""
    children = defaultdict(list)
    for shard, meta in shards.items():
        for parent in parents_of(meta):
            children[parent].append(meta)
    for shard, meta in shards.items():
        parents = [shards[p] for p in parents_of(meta) if p in shards]
        start, end = range_of(meta)
        ranges = sorted(range_of(p) for p in parents)
        if len(ranges) == 1 and not (ranges[0][0] <= start and end <= ranges[0][1]) or \
                len(ranges) == 2 and (ranges[0][1] + 1 != ranges[1][0] or (start, end) != (ranges[0][0], ranges[1][1])):
            error("lineage-range", shard=shard, range=[str(start), str(end)], parents=parents_of(meta))
        if not meta.get("open") and not _covers([range_of(c) for c in children[shard]], start, end):
            error("lineage-range", shard=shard, closed_but_not_covered_by=[c["shard"] for c in children[shard]])

        seqs = [_seq(r["seq"]) for r in final.get(shard, [])]
        low, high = meta.get("start_seq"), meta.get("end_seq")
        outside = [s for s in seqs if low and s < _seq(low) or high and s > _seq(high)]
        if outside:
            error("sequence-range", shard=shard, seq=str(outside[0]), start_seq=low, end_seq=high)
        first = min(seqs + ([_seq(low)] if low else []), default=None)
        for parent in parents:
            parent_seqs = [_seq(r["seq"]) for r in final.get(parent["shard"], [])]
            last = max(parent_seqs + ([_seq(parent["end_seq"])] if parent.get("end_seq") else []), default=None)
            if first is not None and last is not None and first <= last:
                error("child-sequence", child=shard, parent=parent["shard"], child_first=str(first), parent_last=str(last))

        for record in final.get(shard, []):
            if record.get("key") is not None and not start <= hash_key(record["key"]) <= end:
                error("wrong-shard", shard=shard, seq=record["seq"], key=record["key"])


def _check_key_order(shards, final, found, acked, invoked, attempted, error):
    """Per partition key, reading shard after shard down the lineage, then each in sequence order,
    gives one order; an acknowledged put must come before every put invoked after it was
    acknowledged (by any producer: a shard's log is one order).

    - key-lineage: a key's records lie in two shards neither of which descends from the other,
      so no reader could order them.
    - key-order: a put invoked after another was acknowledged is read before it."""

    @lru_cache(maxsize=None)
    def ancestors(shard):
        parents = parents_of(shards.get(shard, {}))
        return frozenset(parents).union(*(ancestors(p) for p in parents))

    def key_of(record):
        return record.get("key") or attempted.get(record["data"], {}).get("key")

    in_shards = defaultdict(set)
    for shard, records in final.items():
        for record in records:
            in_shards[key_of(record)].add(shard)
    depth = {}
    for key, where in in_shards.items():
        chain = sorted(where, key=lambda s: len(ancestors(s)))
        for a, b in zip(chain, chain[1:]):
            if a not in ancestors(b):
                error("key-lineage", key=key, shards=[a, b])
        depth.update((s, len(ancestors(s))) for s in where)

    puts = defaultdict(list)  # key -> [(rank, invoked, acknowledged, data)]
    for data, op in acked.items():
        if data in found:
            shard, seq = found[data]
            puts[op["value"]["key"]].append(((depth.get(shard, 0), _seq(seq)), invoked.get(data, op["time"]), op["time"], data))
    for key, ops in puts.items():
        by_ack = sorted(ops, key=lambda p: p[2])
        acks = [p[2] for p in by_ack]
        latest = list(itertools.accumulate(by_ack, lambda a, b: b if b[0] > a[0] else a))  # furthest read so far
        for rank, start, _, data in ops:
            k = bisect.bisect_left(acks, start)  # those acknowledged before this put was invoked
            if k and latest[k - 1][0] >= rank:
                before = latest[k - 1]
                error("key-order", key=key, acknowledged_first=before[3], at=found[before[3]],
                      invoked_after=data, read_at=found[data])


def availability(history):
    """Share of completed client operations that succeeded, outside faults and per fault window."""
    windows = []
    open_faults = {}
    for op in history:
        if op.get("process") != "nemesis":
            continue
        if op.get("f") == "start":
            open_faults[op["value"]] = op["time"]
        elif op.get("f") == "stop" and op["value"] in open_faults:
            windows.append((op["value"], open_faults.pop(op["value"]), op["time"]))
    end = max((op.get("time", 0) for op in history), default=0)
    windows += [(name, start, end) for name, start in open_faults.items()]

    stats = defaultdict(lambda: {"ok": 0, "total": 0})
    for op in history:
        if op.get("process") == "nemesis" or op.get("type") == "invoke" or op.get("f") not in ("put", "read"):
            continue
        names = [name for name, start, stop in windows if start <= op["time"] <= stop] or ["no fault"]
        for name in names:
            stats[name]["total"] += 1
            stats[name]["ok"] += op["type"] == "ok"
    return {name: {**s, "share_ok": round(s["ok"] / s["total"], 4)} for name, s in stats.items()}
