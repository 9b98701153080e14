"""Whole harness runs, as `make test` and CI run them: the docker compose cluster (5 nodes) under
every nemesis must come out VALID, so must resharding while nodes leave and join (docker, and a
short local run), and a local cluster over forgetting disks under power cuts, slow fsyncs and a
disk filling up. Test builds that acknowledge writes before a majority has them (failpoint
raft::ack-on-append) or before fsync (failpoint storage::wal-fsync) must come out INVALID with
acknowledged records lost.

KINESIN_BIN is the binary under test; KINESIN_FAILPOINTS_BIN the build with failpoints (`make
failpoints-bin`). Each run keeps its store under jepsen/store/ for a person to look at.
"""

import json
import os
import re
import subprocess
import sys

import pytest

JEPSEN = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
STORE = os.path.join(JEPSEN, "store")

pytestmark = pytest.mark.timeout(900)


def binary(variable):
    path = os.environ.get(variable)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"{variable} must name the binary to test (make test sets it)", pytrace=False)
    return path


def harness(*args):
    """Runs the harness; returns (exit code, results.json, output)."""
    before = set(os.listdir(STORE)) if os.path.isdir(STORE) else set()
    out = subprocess.run([sys.executable, "-m", "kinesin_jepsen.run", *args], cwd=JEPSEN,
                         capture_output=True, text=True, timeout=850)
    output = out.stdout + out.stderr
    created = sorted(set(os.listdir(STORE)) - before)
    assert created, f"the run made no store directory:\n{output}"
    results = os.path.join(STORE, created[-1], "results.json")
    assert os.path.exists(results), f"no results.json:\n{output}"
    with open(results) as f:
        return out.returncode, json.load(f), output, os.path.join(STORE, created[-1])


def test_cluster_under_every_nemesis_is_valid():
    code, result, output, store = harness(
        "--bin", binary("KINESIN_BIN"), "--cluster", "docker", "--nodes", "5", "--time-limit", "90",
        "--seed", "4", "--nemesis", "kill,pause,partition,clock,disk", "--workload", "produce,metadata")
    assert code == 0 and result["valid"], output[-5000:]
    assert result["acknowledged"] > 1000, result
    assert result["reads"] > 0 and result["nodes_agree"]
    assert result["metadata"]["creates_ok"] > 0 and result["metadata"]["describes"] > 0
    assert set(result["faults"]) == {"kill", "pause", "partition", "clock", "disk"}, result["faults"]
    exits = nemesis_values(store, "exit")  # the disk filled under the running node: it stopped
    assert exits and all(v.endswith("exit 74") for v in exits), exits
    for name in ("history.jsonl", "timeline.svg", "node1.log", "node5.log"):
        assert os.path.getsize(os.path.join(store, name)) > 0, name


def nemesis_values(store, f):
    """The values of the run's nemesis events with function `f`, in order."""
    with open(os.path.join(store, "history.jsonl")) as h:
        ops = [json.loads(line) for line in h]
    return [op["value"] for op in ops if op["process"] == "nemesis" and op["f"] == f]


def membership_steps(store):
    return nemesis_values(store, "membership")


def assert_caught_losing_acknowledged_records(code, result, output):
    """A fault build's run: INVALID (and so exit 0 under --expect-invalid), with acknowledged
    records lost."""
    assert code == 0 and not result["valid"], output[-5000:]
    lost = [e for e in result["errors"] if e["kind"] in ("lost", "moved")]
    assert lost, result["errors"][:10]


def check_resharding_run(result, output, store):
    assert result["valid"], output[-5000:]
    assert result["acknowledged"] > 500, result
    assert result["nodes_agree"]
    ops = result["resharding"]["operations"]
    assert all(ops[f]["ok"] > 0 for f in ("split-shard", "merge-shards", "update-shard-count")), ops
    assert result["resharding"]["shards_total"] > result["resharding"]["shards_open"]
    assert result["reads"] > 0
    joined = [step for step in membership_steps(store) if " joined:" in step]
    assert joined, membership_steps(store)
    assert result["write_stall"]["longest_put_gap_s"] is not None


def test_resharding_while_nodes_leave_and_join_is_valid():
    code, result, output, store = harness(
        "--bin", binary("KINESIN_BIN"), "--cluster", "docker", "--nodes", "5", "--time-limit", "90",
        "--seed", "6", "--nemesis", "membership,kill,partition", "--workload", "produce,resharding")
    assert code == 0, output[-5000:]
    check_resharding_run(result, output, store)
    assert set(result["faults"]) == {"membership", "kill", "partition"}, result["faults"]


def test_resharding_on_a_local_cluster_is_valid():
    """With the stream encrypted at rest: children of splits and merges, and replicas that joining
    nodes build from nothing, all hold sealed records only."""
    code, result, output, store = harness(
        "--bin", binary("KINESIN_BIN"), "--cluster", "local", "--nodes", "4", "--time-limit", "30",
        "--seed", "8", "--nemesis", "membership,kill", "--workload", "produce,resharding", "--encrypt")
    assert code == 0, output[-5000:]
    check_resharding_run(result, output, store)
    assert result["encryption"]["sealed_acks"] > 500 and not result["encryption"]["plaintext_on_disk"], result["encryption"]


def test_acknowledging_before_a_majority_is_caught():
    code, result, output, _ = harness(
        "--bin", binary("KINESIN_FAILPOINTS_BIN"), "--cluster", "docker", "--nodes", "5", "--time-limit", "45",
        "--seed", "5", "--nemesis", "partition", "--partition-shapes", "leader,halves", "--workload", "produce",
        "--failpoints", "raft::ack-on-append=return", "--expect-invalid")
    assert_caught_losing_acknowledged_records(code, result, output)


def test_power_cuts_slow_fsyncs_and_a_filling_disk_lose_nothing():
    code, result, output, store = harness(
        "--bin", binary("KINESIN_BIN"), "--cluster", "local", "--nodes", "3", "--time-limit", "60",
        "--seed", "9", "--nemesis", "lose-unsynced,slow-fsync,fill-disk", "--workload", "produce")
    assert code == 0 and result["valid"], output[-5000:]
    assert result["acknowledged"] > 200 and result["nodes_agree"], result
    assert set(result["faults"]) == {"lose-unsynced", "slow-fsync", "fill-disk"}, result["faults"]
    cuts = [v for v in nemesis_values(store, "start") if v.startswith("lose-unsynced")]
    assert any(":0B/" not in cut for cut in cuts), f"no power cut lost anything unsynced: {cuts}"
    exits = nemesis_values(store, "exit")
    assert exits and all(v.endswith("exit 74") for v in exits), exits
    assert len(result["slow_fsync"]) == result["faults"]["slow-fsync"], result["slow_fsync"]


def test_acknowledging_without_fsync_is_caught_by_power_cuts():
    code, result, output, _ = harness(
        "--bin", binary("KINESIN_FAILPOINTS_BIN"), "--cluster", "local", "--nodes", "3", "--time-limit", "40",
        "--seed", "10", "--nemesis", "lose-unsynced", "--workload", "produce",
        "--failpoints", "storage::wal-fsync=return", "--expect-invalid")
    assert_caught_losing_acknowledged_records(code, result, output)


def test_a_corrupt_database_is_refused_and_rebuilt_from_peers_or_rebuilds_itself():
    code, result, output, store = harness(
        "--bin", binary("KINESIN_BIN"), "--cluster", "local", "--nodes", "4", "--time-limit", "60",
        "--seed", "11", "--nemesis", "corrupt", "--workload", "produce")
    assert code == 0 and result["valid"], output[-5000:]
    assert result["acknowledged"] > 200 and result["nodes_agree"], result
    outcomes = nemesis_values(store, "corrupt")
    # Turn by turn: refused and rebuilt by the operator's steps, or rebuilt by the node itself
    # (--rebuild-corrupt) in a new life.
    refused = [v for v in outcomes if v.endswith(": exit 65")]
    self_repaired = [v for v in outcomes if "self-repair: healthy" in v]
    assert refused and self_repaired and len(refused) + len(self_repaired) == len(outcomes), outcomes
    for outcome in self_repaired:
        before, after = re.search(r"\(life (\w+) -> (\w+)\)", outcome).groups()
        assert before != after, outcome
    rebuilt = [step for step in membership_steps(store) if " joined:" in step]
    assert len(rebuilt) == len(refused), membership_steps(store)


def test_many_mostly_idle_shards_under_faults_are_valid():
    """64 shards written 4 keys at a time, the keys moving every 10 s: most shards are quiet
    (no ticks, no heartbeats; node liveness stands in) when kills, pauses, power cuts and
    membership changes hit them, and every acknowledged record is read back."""
    code, result, output, _ = harness(
        "--bin", binary("KINESIN_BIN"), "--cluster", "local", "--nodes", "4", "--time-limit", "45",
        "--seed", "12", "--shards", "64", "--hot-keys", "4", "--followed-shards", "4",
        "--nemesis", "kill,pause,lose-unsynced,membership", "--concurrent-faults", "2", "--workload", "produce",
        "--encrypt")
    assert code == 0 and result["valid"], output[-5000:]
    assert result["encryption"]["sealed_acks"] > 100 and not result["encryption"]["plaintext_on_disk"], result["encryption"]
    assert result["acknowledged"] > 100 and result["nodes_agree"], result
    # 64 shards × 3 replicas over 4 nodes: at least a third of them quiet at once.
    assert result["quiet_groups_max"] >= 64, result["quiet_groups_max"]
