"""The timeline plot: a synthetic run rendered to SVG and read back, plus the latency numbers."""

import math
import os
import sys
import xml.etree.ElementTree as ET

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kinesin_jepsen.timeline import (  # noqa: E402
    MAX_FAILURE_MARKERS,
    fault_windows,
    latency_summary,
    render,
    run_duration,
)

SVG = "{http://www.w3.org/2000/svg}"
KILL = "kill n3"
PARTITION = "partition-halves {1,2}|{3,4,5}"
CLOCK = "clock n2 +300s"


def op(process, type_, f, time, value=None):
    return {"process": process, "type": type_, "f": f, "time": time, "value": value}


def put(process, data, start, latency_ms, outcome="ok"):
    value = {"key": "k" + data, "data": data}
    return [op(process, "invoke", "put", start, value), op(process, outcome, "put", start + latency_ms / 1000, dict(value))]


def read(process, start, latency_ms, outcome="ok"):
    value = {"shard": "shardId-000000000000"}
    return [op(process, "invoke", "read", start, value), op(process, outcome, "read", start + latency_ms / 1000, dict(value, records=[]))]


def nemesis(f, time, name):
    return op("nemesis", "info", f, time, name)


def synthetic_history():
    """Ten seconds of load; second 6 is an outage with only a fail and an info."""
    history = []
    for second in range(10):
        if second == 6:
            history += put(0, f"fail{second}", second + 0.1, 5, outcome="fail")
            history += put(0, f"info{second}", second + 0.3, 500, outcome="info")
            continue
        history += put(0, f"p{second}", second + 0.1, 10)
        history += read(2, second + 0.2, 5)
    # A PutRecords batch: three invokes in a row, then the three completions.
    batch = ["b1", "b2", "b3"]
    history += [op(1, "invoke", "put", 2.5, {"key": "k", "data": d}) for d in batch]
    history += [op(1, "ok", "put", 2.5 + 0.02 * (i + 1), {"key": "k", "data": d, "shard": "s", "seq": str(i)}) for i, d in enumerate(batch)]
    history += [op(3, "invoke", "describe-stream", 4.4), op(3, "ok", "describe-stream", 4.45)]
    # Two overlapping windows, and one that is never stopped.
    history += [nemesis("start", 2.0, KILL), nemesis("start", 3.0, PARTITION), nemesis("stop", 5.0, KILL),
                nemesis("stop", 6.0, PARTITION), nemesis("start", 8.0, CLOCK)]
    # Bookkeeping after the run: must neither stretch the time axis nor count as load.
    history += [op("lister", "ok", "shards", 60.0, []), op("final", "ok", "final-read", 61.0, {"shard": "s", "records": []})]
    history.sort(key=lambda o: o["time"])
    return history


def rendered(tmp_path, history, title="run"):
    path = tmp_path / "timeline.svg"
    render(history, str(path), title=title)
    return ET.parse(path).getroot()


def panel(root, name):
    return next(g for g in root.iter(SVG + "g") if g.get("id") == name)


def with_class(root, tag, css_class):
    return [e for e in root.iter(SVG + tag) if css_class in (e.get("class") or "").split()]


def texts(root):
    return [t.text for t in root.iter(SVG + "text")]


def point_count(polyline):
    return len(polyline.get("points").split())


def y_values(polyline):
    return [float(p.split(",")[1]) for p in polyline.get("points").split()]


def test_renders_an_svg_with_title_and_totals(tmp_path):
    root = rendered(tmp_path, synthetic_history(), title="seed 7 <kill & partition>")
    assert root.tag == SVG + "svg"
    assert "seed 7 <kill & partition>" in texts(root)
    # 9 ok puts + 3 batch puts + 9 ok reads + 1 describe-stream; the final read is not an op of the run.
    assert "ops: 22 ok, 1 fail, 1 info" in next(t.text for t in with_class(root, "text", "totals"))


def test_each_fault_window_is_shaded_once_per_panel_and_labelled(tmp_path):
    root = rendered(tmp_path, synthetic_history())
    for name in ("throughput", "latency"):
        shaded = with_class(panel(root, name), "rect", "fault")
        assert sorted(r.get("data-fault") for r in shaded) == sorted([KILL, PARTITION, CLOCK])
        labels = {t.text: float(t.get("y")) for t in with_class(panel(root, name), "text", "fault-label")}
        assert set(labels) == {KILL, PARTITION, CLOCK}
        assert labels[KILL] != labels[PARTITION], "overlapping windows must have their labels on different rows"


def test_fault_windows_pair_start_and_stop_and_unstopped_lasts_to_the_end():
    history = synthetic_history()
    windows = {w.name: (w.start, w.end) for w in fault_windows(history, run_duration(history))}
    assert windows[KILL] == (2.0, 5.0)
    assert windows[PARTITION] == (3.0, 6.0)
    assert windows[CLOCK] == (8.0, pytest.approx(9.205))


def test_throughput_lines_have_one_point_per_second(tmp_path):
    history = synthetic_history()
    buckets = math.ceil(run_duration(history))
    assert buckets == 10
    lines = with_class(panel(rendered(tmp_path, history), "throughput"), "polyline", "throughput")
    assert {line.get("class") for line in lines} == {"throughput " + s for s in ("ok-put", "ok-read", "ok-other", "fail", "info")}
    assert all(point_count(line) == buckets for line in lines)
    fail_line = next(line for line in lines if line.get("class") == "throughput fail")
    baseline = y_values(fail_line)[0]
    assert [y < baseline for y in y_values(fail_line)] == [b == 6 for b in range(buckets)]


def test_latency_lines_have_one_point_per_second_with_ok_ops_and_break_at_the_outage(tmp_path):
    root = rendered(tmp_path, synthetic_history())
    latency = panel(root, "latency")
    for series in ("p50", "p99", "max"):
        lines = with_class(latency, "polyline", series)
        dots = with_class(latency, "circle", series)
        assert len(lines) == 2, "second 6 had no ok operation, so the line must not bridge it"
        assert sum(point_count(line) for line in lines) + len(dots) == 9
    markers = {m.get("class"): m.get("d").count("M") for m in with_class(latency, "path", "markers")}
    assert markers == {"markers fail": 1, "markers info": 1}


def test_failure_markers_are_capped(tmp_path):
    history = []
    for i in range(MAX_FAILURE_MARKERS * 2 + 1):
        history += put(i % 10, f"d{i}", i * 0.001, 5000, outcome="info")
    root = rendered(tmp_path, history)
    info = with_class(root, "path", "info")
    assert len(info) == 1 and info[0].get("d").count("M") == MAX_FAILURE_MARKERS


def test_latency_summary_percentiles_of_ok_operations():
    history = []
    for i, latency in enumerate([40, 10, 100, 30, 20]):
        history += put(0, f"d{i}", i, latency)
    history += put(0, "slow-fail", 6, 9000, outcome="fail")
    history += put(0, "slow-info", 7, 9000, outcome="info")
    history += read(1, 8, 7)
    history.append(op(1, "ok", "read", 9))  # never invoked: no latency
    summary = latency_summary(history)
    # Nearest rank over [10, 20, 30, 40, 100]: p50 is the 3rd, p99 the 5th.
    assert summary["put"] == {"count": 5, "p50_ms": 30.0, "p99_ms": 100.0, "max_ms": 100.0}
    assert summary["read"] == {"count": 1, "p50_ms": 7.0, "p99_ms": 7.0, "max_ms": 7.0}


def test_batch_completions_pair_with_their_own_invoke():
    # Completions arrive in the reverse order of the invokes; pairing by arrival order would give
    # 300, 400 and 700 ms instead of each record's own 100, 400 and 900 ms.
    invokes = [op(0, "invoke", "put", t, {"key": "k", "data": d}) for d, t in (("a", 1.0), ("b", 1.1), ("c", 1.2))]
    completions = [op(0, "ok", "put", t, {"key": "k", "data": d, "shard": "s", "seq": "1"}) for d, t in (("c", 1.3), ("b", 1.5), ("a", 1.9))]
    summary = latency_summary(invokes + completions)["put"]
    assert summary["count"] == 3
    assert summary["p50_ms"] == pytest.approx(400.0)
    assert summary["max_ms"] == pytest.approx(900.0)


def test_other_operations_pair_with_the_oldest_pending_invoke_of_their_process():
    history = [op(0, "invoke", "split", 1.0), op(1, "invoke", "split", 1.5), op(0, "ok", "split", 1.2), op(1, "ok", "split", 2.5)]
    assert latency_summary(history)["split"] == {"count": 2, "p50_ms": 200.0, "p99_ms": 1000.0, "max_ms": 1000.0}


def test_empty_history_renders_a_valid_svg(tmp_path):
    root = rendered(tmp_path, [], title="")
    assert root.tag == SVG + "svg"
    assert not list(root.iter(SVG + "polyline"))
    assert not with_class(root, "rect", "fault")
    assert len(with_class(root, "text", "no-data")) == 2
    assert latency_summary([]) == {}


def test_history_without_faults_renders_without_shading(tmp_path):
    history = put(0, "a", 0.5, 12) + read(1, 1.5, 3)
    root = rendered(tmp_path, history)
    assert not with_class(root, "rect", "fault")
    assert "no faults injected" in texts(root)
    assert all(point_count(line) == 2 for line in with_class(root, "polyline", "throughput"))


def test_fault_names_are_escaped(tmp_path):
    name = 'pause n1 <&"\'>'
    history = put(0, "a", 0.5, 12) + [nemesis("start", 0.2, name), nemesis("stop", 0.9, name)]
    root = rendered(tmp_path, history)
    assert [r.get("data-fault") for r in with_class(root, "rect", "fault")] == [name, name]
    assert texts(root).count(name) == 2
