"""A disk that returns other bytes than were written, on real processes: a node whose database is
damaged refuses to start (exit status 65) and says why, instead of serving or replicating the
damage; a shard whose replicas are damaged on a majority of nodes stops with an error and never
answers wrong data. (The jepsen `corrupt` nemesis covers the repair: a corrupt node rebuilt from
its peers under load.)"""

import os
import uuid

import botocore.exceptions
import pytest

from conftest import poll
from test_cluster import everything, put_batch, start_cluster, wait_active

# Small memtables, so that the records are in table files (checked when read), not only the WAL.
SMALL_MEMTABLES = ["--storage-rocksdb-options", "write_buffer_size=65536"]


def damage_tables(server):
    """Flips one byte in the middle of each table file of the node's database, durably."""
    db = os.path.join(server.data_dir, "db")
    tables = [os.path.join(db, name) for name in os.listdir(db) if name.endswith(".sst")]
    assert tables, f"no table file in {db}: {os.listdir(db)}"
    for path in tables:
        with open(path, "r+b") as f:
            middle = os.path.getsize(path) // 2
            f.seek(middle)
            byte = f.read(1)[0]
            f.seek(middle)
            f.write(bytes([byte ^ 0x10]))
            f.flush()
            os.fsync(f.fileno())
    return len(tables)


def test_corrupt_nodes_refuse_to_start_and_a_shard_corrupt_on_a_majority_answers_only_errors(tmp_path):
    servers = start_cluster(tmp_path, extra_args=SMALL_MEMTABLES)
    try:
        clients = [s.client() for s in servers]
        stream = f"rot-{uuid.uuid4().hex[:8]}"
        clients[0].create_stream(StreamName=stream, ShardCount=1)
        wait_active(clients[0], stream)
        acked = []
        for i in range(20):
            acked += put_batch(clients[i % 3], stream, f"b{i}", n=10, padding=900)
        for c in clients:
            poll(lambda c=c: len(everything(c, stream)) == len(acked), timeout=30, what="replication")

        for server in servers[1:]:
            assert server.stop() == 0
            assert damage_tables(server) > 0
            with pytest.raises(RuntimeError, match="exited with code 65"):
                server.start()
            log = server.log_tail()
            assert "the data directory is corrupt" in log, log

        # Node 1 alone holds an intact copy but no majority: it answers errors, never data that
        # a majority did not confirm, and never damaged data.
        lonely = servers[0].client()
        with pytest.raises(botocore.exceptions.ClientError) as put:
            lonely.put_record(StreamName=stream, Data=b"after", PartitionKey="k")
        assert put.value.response["Error"]["Code"] in ("ServiceUnavailableException", "InternalFailure"), put.value.response
        try:
            found = everything(lonely, stream)
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] in ("ServiceUnavailableException", "InternalFailure"), e.response
        else:
            assert sorted(found) == sorted(acked)
    finally:
        for s in servers:
            s.kill9()
            s.cleanup()
