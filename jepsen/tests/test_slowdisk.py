"""The slow-disk report splits the puts of each slow-fsync window by whether the slow node led
their shard."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kinesin_jepsen.slowdisk import slow_fsync_latency  # noqa: E402


def put(process, t, kind, data, shard=None):
    value = {"key": "k", "data": data}
    if shard:
        value["shard"] = shard
    return {"process": process, "type": kind, "f": "put", "time": t, "value": value}


def test_puts_in_a_slow_fsync_window_are_split_by_the_leader_of_their_shard():
    history = [
        {"process": "nemesis", "type": "info", "f": "leaders", "time": 1.0,
         "value": {"node": 2, "leaders": {"shard-a": 2, "shard-b": 1}}},
        {"process": "nemesis", "type": "info", "f": "start", "time": 1.0, "value": "slow-fsync n2 2.0s"},
        put(1, 1.5, "invoke", "x"), put(1, 3.5, "ok", "x", "shard-a"),     # slow node's shard: 2 s
        put(2, 1.6, "invoke", "y"), put(2, 1.62, "ok", "y", "shard-b"),    # another: 20 ms
        put(3, 1.7, "invoke", "z"), put(3, 1.75, "ok", "z", "shard-b"),    # another: 50 ms
        {"process": "nemesis", "type": "info", "f": "stop", "time": 4.0, "value": "slow-fsync n2 2.0s"},
        put(4, 5.0, "invoke", "w"), put(4, 5.01, "ok", "w", "shard-a"),    # after the window
    ]
    [window] = slow_fsync_latency(history)
    assert window["fault"] == "slow-fsync n2 2.0s"
    assert window["led_by_slow_node"] == {"puts": 1, "p50_ms": 2000.0, "max_ms": 2000.0}
    assert window["others"] == {"puts": 2, "p50_ms": 20.0, "max_ms": 50.0}
