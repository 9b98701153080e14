"""Retention is enforced: records older than the stream's retention period disappear and
TRIM_HORIZON moves past them, on the real binary.

Records get an old arrival time by running the server with libfaketime preloaded, 25 hours in the
past (Debian's `faketime` package, which scripts/setup.sh installs); the server is then restarted on
the same data at the real time, and its retention loop (run every second here) must trim them.
"""

import glob

import pytest

from conftest import Server, poll, retry_throttled, unique_name

# Preloaded directly (not through the `faketime` wrapper) so the server keeps its own pid and
# receives SIGTERM/SIGKILL itself.
LIBFAKETIME = next(iter(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")), None)


class PastServer(Server):
    """A server whose clock runs `offset` behind (only while `in_past` is set)."""

    def __init__(self, base_dir, offset="-25h", **kwargs):
        super().__init__(base_dir, extra_args=["--retention-check-secs", "1"], **kwargs)
        self.offset = offset
        self.in_past = True

    def command(self):
        cmd = super().command()
        if self.in_past:
            # Monotonic time stays real so timers and timeouts behave.
            return ["env", f"LD_PRELOAD={LIBFAKETIME}", f"FAKETIME={self.offset}", "FAKETIME_DONT_FAKE_MONOTONIC=1"] + cmd
        return cmd


def read_all(client, stream, shard_id, iterator_type="TRIM_HORIZON", **kwargs):
    iterator = client.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType=iterator_type, **kwargs
    )["ShardIterator"]
    records = []
    for _ in range(100):
        out = retry_throttled(client.get_records, ShardIterator=iterator, Limit=1000)
        records += out["Records"]
        if not out["Records"] or out.get("MillisBehindLatest", 0) == 0:
            break
        iterator = out["NextShardIterator"]
    return records


@pytest.mark.skipif(LIBFAKETIME is None, reason="faketime is not installed (scripts/setup.sh installs it)")
def test_expired_records_disappear_and_trim_horizon_moves(tmp_path):
    server = PastServer(tmp_path)
    try:
        server.start()
        client = server.client()
        stream = unique_name("ret")
        client.create_stream(StreamName=stream, ShardCount=1)
        client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
        shard = client.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
        old = [client.put_record(StreamName=stream, Data=b"old-%d" % i, PartitionKey="k") for i in range(5)]
        assert [r["Data"] for r in read_all(client, stream, shard)] == [b"old-%d" % i for i in range(5)]
        assert server.stop() == 0

        server.in_past = False
        server.start()
        client = server.client()
        new = [client.put_record(StreamName=stream, Data=b"new-%d" % i, PartitionKey="k") for i in range(3)]

        def only_new_left():
            return [r["Data"] for r in read_all(client, stream, shard)] == [b"new-%d" % i for i in range(3)]

        poll(only_new_left, timeout=30, what="records older than 24 h to be removed")

        # An iterator at an expired record's sequence number starts at the trim horizon instead.
        at_old = read_all(client, stream, shard, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=old[0]["SequenceNumber"])
        assert [r["SequenceNumber"] for r in at_old] == [r["SequenceNumber"] for r in new]

        # The trim is durable: after a crash and restart the old records stay gone.
        server.kill9()
        server.start()
        client = server.client()
        assert [r["Data"] for r in read_all(client, stream, shard)] == [b"new-%d" % i for i in range(3)]
    finally:
        server.cleanup()
