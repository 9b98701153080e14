"""A subscriber outlives a stream that ends mid-read (a node killed under it): it records the
error and subscribes again, from where it was."""

import threading

import urllib3.exceptions

from kinesin_jepsen.fanout import FanOut


class History:
    def __init__(self):
        self.ops = []

    def record(self, process, kind, f, value):
        self.ops.append((process, kind, f, value))


class Stream:
    def __init__(self, events, fail=False):
        self.events = events
        self.fail = fail

    def __iter__(self):
        yield from self.events
        if self.fail:
            raise urllib3.exceptions.ProtocolError("Response ended prematurely")

    def close(self):
        pass


def event(seq, continuation):
    return {"SubscribeToShardEvent": {
        "Records": [{"SequenceNumber": seq, "Data": b"r" + seq.encode(), "PartitionKey": "k"}],
        "ContinuationSequenceNumber": continuation, "ChildShards": []}}


class Kinesis:
    """First a stream that breaks after one event, then one that reaches the shard's end."""

    def __init__(self):
        self.positions = []
        self.streams = [Stream([event("1", "1")], fail=True), Stream([event("2", None)])]

    def subscribe_to_shard(self, ConsumerARN, ShardId, StartingPosition):  # noqa: N803 - boto3's names
        self.positions.append(StartingPosition)
        return {"EventStream": self.streams.pop(0)}


class Run:
    def __init__(self):
        self.history = History()
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def spawn(self, *args):
        pass


def test_a_stream_that_ends_mid_read_is_subscribed_again_from_where_it_was():
    run, kinesis = Run(), Kinesis()
    fanout = FanOut(run)
    fanout.client = lambda node: kinesis
    fanout.subscriber(7, "n1", "shardId-000000000000")
    assert ("info", "subscribe", {"shard": "shardId-000000000000", "error": "ProtocolError"}) in [
        op[1:] for op in run.history.ops]
    assert kinesis.positions == [{"Type": "TRIM_HORIZON"},
                                 {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "1"}]
    reads = [op[3]["records"] for op in run.history.ops if op[1:3] == ("ok", "read")]
    assert [r["seq"] for batch in reads for r in batch] == ["1", "2"]
