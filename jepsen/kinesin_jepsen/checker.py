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
- `shards`: `ok` value `[{"shard", "start", "end", "open", "parent", "adjacent_parent"}]` — a
  ListShards answer (hash keys as decimal strings).
- Process `nemesis`, `f` `start`/`stop`, value a fault name: the fault windows.

`check(history)` returns a dict with `valid` and every count; each violation is listed under
`errors` with enough detail to find it in the history.
"""

from collections import defaultdict

MAX_HASH_KEY = 2**128 - 1


def _seq(value):
    return int(value)


def _completions(history, f):
    return [op for op in history if op.get("f") == f and op.get("type") in ("ok", "fail", "info")]


def check(history):
    errors = []

    def error(kind, **detail):
        errors.append({"kind": kind, **detail})

    attempted = {}
    outcome = {}
    for op in history:
        if op.get("f") != "put":
            continue
        data = op["value"]["data"]
        if op["type"] == "invoke":
            attempted[data] = op["value"]
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
    lineage = {}
    for op in history:
        if op.get("f") == "shards" and op.get("type") == "ok":
            for shard in op["value"]:
                lineage[shard["shard"]] = shard
    by_key = defaultdict(lambda: defaultdict(list))
    for shard, records in final.items():
        for record in records:
            key = record.get("key") or attempted.get(record["data"], {}).get("key")
            by_key[key][shard].append(_seq(record["seq"]))
    for key, shards in by_key.items():
        for child, seqs in shards.items():
            meta = lineage.get(child, {})
            for parent in (meta.get("parent"), meta.get("adjacent_parent")):
                if parent and shards.get(parent) and max(shards[parent]) >= min(seqs):
                    error("lineage-order", key=key, parent=parent, child=child)

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
