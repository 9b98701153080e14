"""A three-node cluster of real `kinesin` processes on loopback: every node's gateway serves every
request (forwarding writes to shard leaders), every acknowledged record is on every replica, and
the cluster keeps taking writes when a node is killed, which catches up when it comes back."""

import json
import threading
import urllib.error
import urllib.request
import uuid

import botocore.exceptions
import pytest

from conftest import Server, error_code, free_ports, list_all_shards, poll, read_shard, wait_active
from test_retention import LIBFAKETIME


def start_cluster(tmp_path, size=3, extra_args=()):
    servers = [Server(tmp_path / f"node{i}", node_id=i) for i in range(1, size + 1)]
    peers = ",".join(f"{s.node_id}@127.0.0.1:{s.cluster_port}" for s in servers)
    for s in servers:
        s.extra_args = ["--peers", peers, *extra_args]
    start_all(servers)
    return servers


def start_all(servers):
    """Start nodes together: none is healthy until a majority has elected a controller leader."""
    errors = []

    def start(s):
        try:
            s.start()
        except Exception as e:  # reported below, with every node's log
            errors.append(e)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def put_batch(client, stream, tag, n=20, attempts=5, padding=0):
    """Puts n records, retrying failed ones as every producer does (the SDKs, the KPL); returns
    (shard, sequence number, data) of each. Right after a shard's leader dies, a write forwarded
    to it on the connection that is breaking has an unknown outcome: it fails with InternalFailure,
    never silently, and the retry may store a second copy (Kinesis is at-least-once)."""
    pending = [{"Data": f"{tag}-{i}-{uuid.uuid4().hex}{'x' * padding}".encode(), "PartitionKey": f"{tag}-{i}"}
               for i in range(n)]
    acked = []
    for _ in range(attempts):
        out = client.put_records(StreamName=stream, Records=pending)
        failed = []
        for result, record in zip(out["Records"], pending):
            if "ErrorCode" in result:
                assert result["ErrorCode"] in ("InternalFailure", "ProvisionedThroughputExceededException"), result
                failed.append(record)
            else:
                acked.append((result["ShardId"], result["SequenceNumber"], record["Data"]))
        if not failed:
            return acked
        pending = failed
    raise AssertionError(f"{len(pending)} records still failing after {attempts} attempts: {out}")


def everything(client, stream):
    """(shard, sequence number, data) of every record, per shard in order."""
    found = []
    for shard in list_all_shards(client, stream):
        for record in read_shard(client, stream, shard["ShardId"]):
            found.append((shard["ShardId"], record["SequenceNumber"], record["Data"]))
    return found


def check(acked, found):
    assert len(found) == len(set(found)), "a record appears twice"
    per_shard = {}
    for shard, seq, _ in found:
        per_shard.setdefault(shard, []).append(int(seq))
    for shard, seqs in per_shard.items():
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"{shard} out of order"
    missing = set(acked) - set(found)
    assert not missing, f"{len(missing)} acknowledged records missing, e.g. {sorted(missing)[:3]}"


def test_three_nodes_replicate_forward_and_survive_a_crash(tmp_path):
    servers = start_cluster(tmp_path)
    try:
        clients = [s.client() for s in servers]
        stream = f"c-{uuid.uuid4().hex[:8]}"
        clients[0].create_stream(StreamName=stream, ShardCount=3)
        for c in clients:
            wait_active(c, stream)

        acked = []
        for i, c in enumerate(clients):
            acked += put_batch(c, stream, f"n{i}")
        # Every node's gateway reads every record (all three replicate every shard here).
        for c in clients:
            poll(lambda c=c: len(everything(c, stream)) == len(acked), timeout=30, what="replication to every node")
            check(acked, everything(c, stream))

        # Kill node 1 (it leads at least the controller or some shards): the others keep going.
        servers[0].kill9()
        for i, c in enumerate(clients[1:], start=1):
            acked += put_batch(c, stream, f"after-kill-n{i}")
        check(acked, everything(clients[1], stream))

        # Node 1 comes back and catches up from the others.
        servers[0].start()
        clients[0] = servers[0].client()
        poll(lambda: len(everything(clients[0], stream)) == len(acked), timeout=60, what="node 1 to catch up")
        for c in clients:
            check(acked, everything(c, stream))
        acked += put_batch(clients[0], stream, "after-restart")
        for c in clients:
            poll(lambda c=c: len(everything(c, stream)) == len(acked), timeout=30, what="replication after restart")
            check(acked, everything(c, stream))
    finally:
        for s in servers:
            s.cleanup()


class ClockFileServer(Server):
    """A server whose wall clock is shifted by the offset written in `clock_file` (libfaketime
    re-reads it at least every second); monotonic time stays real, so timers behave."""

    def __init__(self, base_dir, clock_file, **kwargs):
        super().__init__(base_dir, **kwargs)
        self.clock_file = clock_file

    def command(self):
        return [
            "env",
            f"LD_PRELOAD={LIBFAKETIME}",
            f"FAKETIME_TIMESTAMP_FILE={self.clock_file}",
            "FAKETIME_CACHE_DURATION=1",
            "FAKETIME_DONT_FAKE_MONOTONIC=1",
        ] + super().command()


@pytest.mark.skipif(LIBFAKETIME is None, reason="faketime is not installed (scripts/setup.sh installs it)")
def test_a_replica_down_across_a_retention_cut_catches_up_from_the_snapshot_at_the_cut(tmp_path):
    """A shard's log is its records, purged only by retention; its snapshot sits at the retention
    cut. Node 3 misses writes, then retention expires everything written so far (the clocks jump
    25 hours ahead) and the leader purges its log past node 3's last entry: node 3 must come back
    through the snapshot at the cut, with every record written after it and none of those that
    expired, although its own old log still held some of them."""
    clock = tmp_path / "clock"
    clock.write_text("-25h\n")
    servers = [ClockFileServer(tmp_path / f"node{i}", clock, node_id=i) for i in range(1, 4)]
    peers = ",".join(f"{s.node_id}@127.0.0.1:{s.cluster_port}" for s in servers)
    for s in servers:
        s.extra_args = ["--peers", peers, "--raft-snapshot-every", "20", "--retention-check-secs", "1"]
    start_all(servers)
    try:
        clients = [s.client() for s in servers]
        stream = f"cut-{uuid.uuid4().hex[:8]}"
        clients[0].create_stream(StreamName=stream, ShardCount=1)
        for c in clients:
            wait_active(c, stream)
        expired = put_batch(clients[0], stream, "before", n=5)
        poll(lambda: len(everything(clients[2], stream)) == len(expired), timeout=30, what="node 3 in sync")
        last_on_node3 = shard_view(servers[2], stream)["applied_index"]

        servers[2].kill9()
        for i in range(20):
            expired += put_batch(clients[i % 2], stream, f"gap{i}", n=3)
        clock.write_text("+0\n")

        def all_expired():
            try:
                return not everything(clients[0], stream)
            except botocore.exceptions.ClientError as e:
                # The node's clock jumped 25 h between GetShardIterator and GetRecords (CI saw
                # it): the iterator is a day old, as a client's would be. Read again.
                if error_code(e) == "ExpiredIteratorException":
                    return False
                raise

        poll(all_expired, timeout=30, what="retention to expire every record")
        acked = []
        for i in range(30):
            acked += put_batch(clients[i % 2], stream, f"new{i}", n=3)

        def purged_past_node3():
            leader = shard_view(servers[0], stream)["leader"]
            return leader in (1, 2) and (shard_view(servers[leader - 1], stream)["purged_index"] or 0) > last_on_node3

        poll(purged_past_node3, timeout=60, what="the leader to purge its log past node 3's last entry")

        servers[2].start()
        lagging = servers[2].client()

        def installed_snapshot():
            with open(servers[2].log_path) as log:
                return "installing a shard snapshot (its retention cut) from the leader" in log.read()

        # Reads through node 3 are answered (by the leader, if need be) before its replica has
        # caught up, so wait for the install itself rather than for the records.
        poll(installed_snapshot, timeout=60, what="node 3 to install the snapshot at the cut")
        poll(lambda: shard_view(servers[2], stream)["applied_index"] >= shard_view(servers[0], stream)["applied_index"],
             timeout=60, what="node 3's replica to catch up")
        found = everything(lagging, stream)
        check(acked, found)
        assert not set(found) & set(expired), "an expired record came back"
        # And it keeps replicating normally afterwards.
        acked += put_batch(lagging, stream, "after", n=5)
        for c in clients[:2] + [lagging]:
            poll(lambda c=c: len(everything(c, stream)) == len(acked), timeout=30, what="replication")
            check(acked, everything(c, stream))
            assert len(everything(c, stream)) == len(acked)
    finally:
        for s in servers:
            s.cleanup()


def shard_view(server, stream):
    """The first shard of `stream` as `server`'s admin API shows it (its replica's indexes included)."""
    return admin(server, f"/admin/v1/streams/{stream}/shards")["shards"][0]


def admin(server, path):
    with urllib.request.urlopen(f"{server.endpoint}{path}", timeout=10) as r:
        assert r.status == 200
        return json.loads(r.read())


def test_admin_views_show_nodes_placement_and_leaders(tmp_path):
    servers = start_cluster(tmp_path)
    try:
        client = servers[1].client()
        stream = f"adm-{uuid.uuid4().hex[:8]}"
        client.create_stream(StreamName=stream, ShardCount=2)
        for s in servers:
            wait_active(s.client(), stream)

        views = [admin(s, "/admin/v1/cluster") for s in servers]
        for s, view in zip(servers, views):
            assert view["node_id"] == s.node_id
            assert [n["id"] for n in view["nodes"]] == [1, 2, 3]
            assert sum(n["controller_leader"] for n in view["nodes"]) == 1
        assert len({v["controller_leader"] for v in views}) == 1, "every node agrees on the controller leader"

        def leaders_known():
            shards = admin(servers[0], f"/admin/v1/streams/{stream}/shards")["shards"]
            return all(sh["leader"] in (1, 2, 3) for sh in shards) and shards

        shards = poll(leaders_known, timeout=30, what="shard leaders")
        assert [sh["shard_id"] for sh in shards] == ["shardId-000000000000", "shardId-000000000001"]
        for sh in shards:
            assert sorted(sh["replicas"]) == [1, 2, 3] and sh["state"] == "OPEN"
        assert shards[0]["starting_hash_key"] == "0"
        assert shards[1]["ending_hash_key"] == str(2**128 - 1)
        try:
            admin(servers[0], "/admin/v1/streams/no-such-stream/shards")
            raise AssertionError("expected 404")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    finally:
        for s in servers:
            s.cleanup()


# Two streams this wide make each node start 600 Raft groups at once (RF 3 on 3 nodes).
WIDE_SHARDS = 300


def test_the_metadata_api_answers_while_hundreds_of_groups_start(tmp_path):
    """Creating wide streams makes every node open, elect and fill hundreds of shard groups at
    once. Before group starts were bounded and the controller's heartbeats kept out of the shard
    groups' batches, DescribeStreamSummary answered ServiceUnavailable ("cannot read linearizably
    now") for seconds after such a creation, and a CreateStream answered InternalFailure (its
    forwarded proposal's answer lost under load). Every call through every node must succeed."""
    servers = start_cluster(tmp_path, extra_args=["--shard-limit", str(4 * WIDE_SHARDS)])
    try:
        clients = [s.client() for s in servers]
        clients[0].create_stream(StreamName="small", ShardCount=1)
        wait_active(clients[0], "small")
        failures = []
        stop = threading.Event()

        def keep_reading(client):
            while not stop.is_set():
                try:
                    client.describe_stream_summary(StreamName="small")
                    client.list_streams()
                except Exception as e:  # every failure is the finding
                    failures.append(repr(e))
                stop.wait(0.05)  # a dashboard's pace, not a flood

        readers = [threading.Thread(target=keep_reading, args=(c,)) for c in clients]
        for r in readers:
            r.start()
        try:
            # Through nodes that do not necessarily lead the controller: forwarded proposals.
            clients[1].create_stream(StreamName="wide-a", ShardCount=WIDE_SHARDS)
            clients[2].create_stream(StreamName="wide-b", ShardCount=WIDE_SHARDS)
            for name in ("wide-a", "wide-b"):
                wait_active(clients[0], name, timeout=240)
        finally:
            stop.set()
            for r in readers:
                r.join()
        assert not failures, f"{len(failures)} metadata calls failed, first: {failures[:3]}"
        assert len(list_all_shards(clients[2], "wide-b")) == WIDE_SHARDS
    finally:
        for s in servers:
            s.cleanup()
