"""`kinesin ctl`: the admin views as tables, read from a real node over HTTP, and its failures (an
unknown stream, an unreachable endpoint) as one clear line and a non-zero exit."""

import json
import os
import re
import subprocess

from conftest import create_stream, free_port, kinesin_bin, list_all_shards, unique_name

MAX_HASH_KEY = 2**128 - 1


def ctl(*args, endpoint=None, extra_env=None, timeout=60):
    """Run `kinesin ctl [--endpoint E] ARGS`; returns the CompletedProcess (text)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINESIN_")}
    env.pop("RUST_BACKTRACE", None)
    env.update(extra_env or {})
    cmd = [kinesin_bin(), "ctl"]
    if endpoint is not None:
        cmd += ["--endpoint", endpoint]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=timeout)


def ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def table(text, first_header):
    """The table whose header line starts with `first_header`, as one dict per row (header -> cell).

    Columns are left-aligned and at least two spaces apart, so each starts where its header does."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first_header))
    header = lines[start]
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append({n: line[a:b].strip() for n, a, b in zip(names, starts, starts[1:] + [None])})
    return names, rows


def test_cluster_table_names_this_node_and_its_replicas(server, kinesis):
    create_stream(kinesis, shards=2)
    out = ok(ctl("cluster", endpoint=server.endpoint))
    assert "answering node:" in out and "controller leader:" in out
    names, rows = table(out, "ID ")
    assert names[:2] == ["ID", "CLUSTER ADDRESS"] and "CONTROLLER LEADER" in names and "REPLICAS" in names, names
    assert len(rows) == 1, out
    node = rows[0]
    assert node["ID"] == str(server.node_id)
    assert node["CLUSTER ADDRESS"] == f"127.0.0.1:{server.cluster_port}"
    assert node["CONTROLLER LEADER"] == "yes", "a single node leads the controller"
    assert int(node["REPLICAS"]) >= 2, out
    if "STATE" in names:  # reported by newer nodes
        assert node["STATE"] == "up", out

    # --json is the node's own JSON; the endpoint may also come from KINESIN_ENDPOINT.
    raw = json.loads(ok(ctl("cluster", "--json", extra_env={"KINESIN_ENDPOINT": server.endpoint})))
    assert raw["node_id"] == server.node_id
    assert [n["id"] for n in raw["nodes"]] == [server.node_id]


def test_shards_table_lists_every_shard_with_its_hash_range(server, kinesis):
    name = create_stream(kinesis, shards=3)
    shards = list_all_shards(kinesis, name)
    out = ok(ctl("shards", name, endpoint=server.endpoint))
    assert f"stream:  {name}" in out
    assert "ACTIVE" in out
    names, rows = table(out, "SHARD ID")
    for column in ("STATE", "REPLICAS", "LEADER", "STARTING HASH KEY", "ENDING HASH KEY", "PARENTS"):
        assert column in names, names
    by_id = {row["SHARD ID"]: row for row in rows}
    assert sorted(by_id) == sorted(s["ShardId"] for s in shards)
    for s in shards:
        row = by_id[s["ShardId"]]
        assert row["STATE"] == "OPEN"
        assert row["STARTING HASH KEY"] == s["HashKeyRange"]["StartingHashKey"]
        assert row["ENDING HASH KEY"] == s["HashKeyRange"]["EndingHashKey"]
        assert row["PARENTS"] == "-"
        # A single node hosts every shard and, once elected, leads it.
        assert row["REPLICAS"] == str(server.node_id)
        assert row["LEADER"] in ("-", str(server.node_id))
    assert by_id["shardId-000000000000"]["STARTING HASH KEY"] == "0"
    assert by_id["shardId-000000000002"]["ENDING HASH KEY"] == str(MAX_HASH_KEY)

    # The flags may follow the subcommand, and --account/--region select the stream's home.
    raw = json.loads(
        ok(ctl("shards", name, "--json", "--account", "000000000000", "--region", "us-east-1", endpoint=server.endpoint))
    )
    assert [sh["shard_id"] for sh in raw["shards"]] == [row["SHARD ID"] for row in rows]


def test_unknown_stream_fails_with_the_nodes_message(server):
    name = unique_name("missing")
    result = ctl("shards", name, endpoint=server.endpoint)
    assert result.returncode != 0
    assert f"stream {name} not found" in result.stderr, result.stderr
    assert result.stdout == ""
    # In another region the same name is another stream.
    result = ctl("shards", name, "--region", "eu-west-1", endpoint=server.endpoint)
    assert result.returncode != 0 and "eu-west-1" in result.stderr, result.stderr


def test_unreachable_endpoint_is_one_clear_line():
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = ctl("cluster", endpoint=endpoint)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert endpoint in lines[0] and "cannot connect" in lines[0], lines[0]
    assert "panicked" not in result.stderr and "backtrace" not in result.stderr.lower()


def test_https_and_malformed_endpoints_are_refused_clearly():
    for endpoint, expected in [("https://127.0.0.1:4567", "https is not supported"), ("http://h:notaport", "bad port")]:
        result = ctl("cluster", endpoint=endpoint)
        assert result.returncode != 0
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
