"""What a slow disk cost: for each `slow-fsync` window, the latency of the puts invoked in it,
split by whether the slow node led the shard they went to (the nemesis records the shards'
leaders as the window starts, as a `leaders` event). A node whose fsyncs take seconds may slow
the shards it leads; the others should keep their pace. Reported in results.json as
`slow_fsync`; figures, not a verdict (the producers are closed-loop: one blocked on a slow shard
writes nothing else meanwhile, so the others' count falls with it)."""

from .timeline import NEMESIS, fault_windows, percentile, run_duration


def _summary(latencies):
    latencies = sorted(latencies)
    if not latencies:
        return {"puts": 0}
    return {"puts": len(latencies), "p50_ms": round(percentile(latencies, 50), 1),
            "max_ms": round(latencies[-1], 1)}


def slow_fsync_latency(history):
    leaders = [op["value"] for op in history
               if op.get("process") == NEMESIS and op.get("f") == "leaders" and isinstance(op.get("value"), dict)]
    windows = [w for w in fault_windows(history, run_duration(history)) if w.kind == "slow-fsync"]
    invoked = {}
    puts = []  # (invoked at, shard, latency ms)
    for op in history:
        if op.get("f") != "put" or not isinstance(op.get("value"), dict):
            continue
        key = (op.get("process"), op["value"].get("data"))
        if op.get("type") == "invoke":
            invoked[key] = op["time"]
        elif op.get("type") == "ok" and key in invoked:
            start = invoked.pop(key)
            puts.append((start, op["value"].get("shard"), (op["time"] - start) * 1000))
    report = []
    for window, seen in zip(windows, leaders):
        slow, led = seen.get("node"), seen.get("leaders", {})
        inside = [(shard, ms) for start, shard, ms in puts if window.start <= start <= window.end]
        report.append({
            "fault": window.name,
            "led_by_slow_node": _summary([ms for shard, ms in inside if led.get(shard) == slow]),
            "others": _summary([ms for shard, ms in inside if led.get(shard) != slow]),
        })
    return report
