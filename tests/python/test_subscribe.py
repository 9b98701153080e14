"""Enhanced fan-out: SubscribeToShard with boto3 (HTTP/1.1 event stream) and with the CBOR client
(HTTP/1.1 and h2c, as the Java SDK's Netty client sends it): every record once and in order,
pushed as written; continuation numbers a resubscription loses and repeats nothing from; the
shard-end event with ChildShards across a split and a merge; one subscriber per consumer and
shard; keep-alive events while idle; a subscription through a node that holds no replica, and one
kept across a kill -9 of the shard's leader."""

import threading
import time
import botocore.exceptions
import pytest
from botocore.eventstream import EventStreamBuffer

from conftest import (
    create_stream,
    error_code,
    expect_error,
    poll,
    put_records_retrying,
    unique_name,
    wait_active,
)
from kinesis_cbor import CBOR_CONTENT_TYPE, CborKinesis, Millis, decode

SHARD0 = "shardId-000000000000"


def register_consumer(client, stream, name=None):
    """Register a consumer and wait until it is ACTIVE (as the KCL polls); its ARN."""
    stream_arn = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    consumer = client.register_stream_consumer(StreamARN=stream_arn, ConsumerName=name or unique_name("c"))[
        "Consumer"
    ]
    arn = consumer["ConsumerARN"]
    poll(
        lambda: client.describe_stream_consumer(ConsumerARN=arn)["ConsumerDescription"]["ConsumerStatus"]
        == "ACTIVE",
        what="consumer ACTIVE",
    )
    return arn


def subscribe_retrying(client, timeout=30.0, **kwargs):
    """SubscribeToShard, retrying while an ended subscription of the same consumer and shard is
    still registered (ResourceInUseException), as clients do."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.subscribe_to_shard(**kwargs)
        except botocore.exceptions.ClientError as e:
            if error_code(e) != "ResourceInUseException" or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def read_events(client, consumer, shard, position, until, timeout=60.0):
    """Subscribe and collect events until `until(events)` is true; the events."""
    response = subscribe_retrying(client, ConsumerARN=consumer, ShardId=shard, StartingPosition=position)
    events = []
    deadline = time.monotonic() + timeout
    stream = response["EventStream"]
    try:
        for event in stream:
            events.append(event["SubscribeToShardEvent"])
            if until(events):
                return events
            assert time.monotonic() < deadline, f"condition not met in {timeout}s: {events[-3:]}"
    finally:
        stream.close()
    return events


def records_of(events):
    return [r for e in events for r in e["Records"]]


def put_numbered(client, stream, prefix, n, key="k"):
    entries = [{"PartitionKey": key, "Data": f"{prefix}-{i}".encode()} for i in range(n)]
    sequence = []
    for start in range(0, n, 100):
        out = put_records_retrying(client, StreamName=stream, Records=entries[start : start + 100])
        sequence += [r["SequenceNumber"] for r in out]
    return sequence


def test_every_record_once_in_order_pushed_as_written(kinesis):
    stream = create_stream(kinesis, shards=1)
    consumer = register_consumer(kinesis, stream)
    before = put_numbered(kinesis, stream, "before", 50)

    def write_later():
        put_numbered(kinesis, stream, "after", 150)

    writer = threading.Thread(target=write_later)
    started = []

    def until(events):
        if not started:
            started.append(True)
            writer.start()
        return len(records_of(events)) >= 200

    events = read_events(kinesis, consumer, SHARD0, {"Type": "TRIM_HORIZON"}, until)
    writer.join()
    records = records_of(events)
    assert [r["Data"].decode() for r in records] == [f"before-{i}" for i in range(50)] + [
        f"after-{i}" for i in range(150)
    ]
    assert [r["SequenceNumber"] for r in records[:50]] == before
    numbers = [int(r["SequenceNumber"]) for r in records]
    assert numbers == sorted(set(numbers)), "strictly increasing, no duplicate"
    for r in records:
        assert r["PartitionKey"] == "k"
        assert r["ApproximateArrivalTimestamp"].year >= 2024
    for event in events:
        assert event["ContinuationSequenceNumber"], event
        assert "ChildShards" not in event or not event["ChildShards"], "no ChildShards on an open shard"
        if event["Records"]:
            assert event["ContinuationSequenceNumber"] == event["Records"][-1]["SequenceNumber"]


def test_resubscribing_from_the_continuation_loses_and_repeats_nothing(kinesis):
    stream = create_stream(kinesis, shards=1)
    consumer = register_consumer(kinesis, stream)
    put_numbered(kinesis, stream, "a", 30)
    first = read_events(kinesis, consumer, SHARD0, {"Type": "TRIM_HORIZON"}, lambda ev: len(records_of(ev)) >= 30)
    continuation = first[-1]["ContinuationSequenceNumber"]
    put_numbered(kinesis, stream, "b", 30)
    second = read_events(
        kinesis,
        consumer,
        SHARD0,
        {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation},
        lambda ev: len(records_of(ev)) >= 30,
    )
    assert [r["Data"].decode() for r in records_of(first)] == [f"a-{i}" for i in range(30)]
    assert [r["Data"].decode() for r in records_of(second)] == [f"b-{i}" for i in range(30)]


def test_the_continuation_advances_while_nothing_is_written_and_keepalives_come(kinesis):
    stream = create_stream(kinesis, shards=1)
    consumer = register_consumer(kinesis, stream)
    put_numbered(kinesis, stream, "x", 3)
    arrivals = []

    def until(events):
        arrivals.append(time.monotonic())
        return len(events) >= 4

    events = read_events(kinesis, consumer, SHARD0, {"Type": "LATEST"}, until)
    assert records_of(events) == []
    # At least one event every 5 s while idle (the first comes at once).
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert max(gaps) < 5.5, gaps
    # An idle continuation, resubscribed AFTER, delivers what is written next and nothing older.
    continuation = events[-1]["ContinuationSequenceNumber"]
    put_numbered(kinesis, stream, "y", 2)
    resumed = read_events(
        kinesis,
        consumer,
        SHARD0,
        {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation},
        lambda ev: len(records_of(ev)) >= 2,
    )
    assert [r["Data"] for r in records_of(resumed)] == [b"y-0", b"y-1"]


def test_a_second_subscriber_to_the_same_shard_is_refused(kinesis):
    stream = create_stream(kinesis, shards=2)
    consumer = register_consumer(kinesis, stream)
    first = kinesis.subscribe_to_shard(ConsumerARN=consumer, ShardId=SHARD0, StartingPosition={"Type": "LATEST"})
    try:
        error = expect_error(
            "ResourceInUseException",
            kinesis.subscribe_to_shard,
            ConsumerARN=consumer,
            ShardId=SHARD0,
            StartingPosition={"Type": "LATEST"},
        )
        assert consumer in error.response["Error"]["Message"]
        # Another shard of the same consumer is another subscription.
        other = kinesis.subscribe_to_shard(
            ConsumerARN=consumer, ShardId="shardId-000000000001", StartingPosition={"Type": "LATEST"}
        )
        other["EventStream"].close()
    finally:
        first["EventStream"].close()


def test_subscription_errors_are_kinesis_errors(kinesis):
    stream = create_stream(kinesis, shards=1)
    consumer = register_consumer(kinesis, stream)
    expect_error(
        "ResourceNotFoundException",
        kinesis.subscribe_to_shard,
        ConsumerARN=consumer,
        ShardId="shardId-000000000009",
        StartingPosition={"Type": "LATEST"},
    )
    stream_arn = consumer.split("/consumer/")[0]
    expect_error(
        "ResourceNotFoundException",
        kinesis.subscribe_to_shard,
        ConsumerARN=f"{stream_arn}/consumer/nobody:1",
        ShardId=SHARD0,
        StartingPosition={"Type": "LATEST"},
    )
    expect_error(
        "InvalidArgumentException",
        kinesis.subscribe_to_shard,
        ConsumerARN=consumer,
        ShardId=SHARD0,
        StartingPosition={"Type": "AT_SEQUENCE_NUMBER"},
    )


def follow(kinesis, consumer, shard, position):
    """Read `shard` from `position` to its end: (records, the last event)."""
    events = read_events(
        kinesis, consumer, shard, position, lambda ev: ev[-1].get("ContinuationSequenceNumber") is None
    )
    return records_of(events), events[-1]


def test_a_subscriber_follows_child_shards_across_a_split_and_a_merge(kinesis):
    stream = create_stream(kinesis, shards=1)
    consumer = register_consumer(kinesis, stream)
    keys = [f"key-{i}" for i in range(20)]

    def put_phase(tag):
        entries = [{"PartitionKey": k, "Data": f"{tag}:{k}".encode()} for k in keys]
        put_records_retrying(kinesis, StreamName=stream, Records=entries)

    put_phase("p0")
    kinesis.split_shard(StreamName=stream, ShardToSplit=SHARD0, NewStartingHashKey=str(2**127))
    wait_active(kinesis, stream)
    put_phase("p1")
    kinesis.merge_shards(
        StreamName=stream, ShardToMerge="shardId-000000000001", AdjacentShardToMerge="shardId-000000000002"
    )
    wait_active(kinesis, stream)
    put_phase("p2")

    # Walk the lineage breadth first from the root, as the KCL does from shard-end events.
    seen = {}
    queue = [SHARD0]
    visited = set()
    while queue:
        shard = queue.pop(0)
        if shard in visited:
            continue
        visited.add(shard)
        if shard == "shardId-000000000003":
            # The merged child is open: read what it has.
            events = read_events(
                kinesis, consumer, shard, {"Type": "TRIM_HORIZON"}, lambda ev: len(records_of(ev)) >= len(keys)
            )
            records = records_of(events)
            assert all(not e.get("ChildShards") for e in events)
        else:
            records, last = follow(kinesis, consumer, shard, {"Type": "TRIM_HORIZON"})
            children = last["ChildShards"]
            assert children, "a closed shard ends with its children"
            assert last["Records"] == []
            for child in children:
                assert shard in child["ParentShards"]
                queue.append(child["ShardId"])
        seen[shard] = [r["Data"].decode() for r in records]

    assert seen[SHARD0] == [f"p0:{k}" for k in keys]
    split_children = seen["shardId-000000000001"] + seen["shardId-000000000002"]
    assert sorted(split_children) == sorted(f"p1:{k}" for k in keys)
    assert sorted(seen["shardId-000000000003"]) == sorted(f"p2:{k}" for k in keys)


# ---------------------------------------------------------------------------------------------
# CBOR event streams, over HTTP/1.1 and h2c
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    from conftest import Server
    from test_tls import Ca

    base = tmp_path_factory.mktemp("kinesin-subscribe-tls")
    s = Server(base / "node", tls=Ca(base / "ca").server_files("kinesin-subscribe"))
    s.start()
    yield s
    s.cleanup()


@pytest.mark.parametrize("transport", ["http1", "h2c", "h2"])
def test_cbor_subscription_events_carry_bytes_and_millisecond_timestamps(request, transport):
    if transport == "h2":
        server = request.getfixturevalue("tls_server")
        kinesis = server.tls_client()
    else:
        server = request.getfixturevalue("server")
        kinesis = request.getfixturevalue("kinesis")
    stream = create_stream(kinesis, shards=1)
    consumer = register_consumer(kinesis, stream)
    payloads = [bytes([i, 0, 255 - i]) for i in range(5)]
    for p in payloads:
        kinesis.put_record(StreamName=stream, PartitionKey="k", Data=p)
    json_records = kinesis.get_records(
        ShardIterator=kinesis.get_shard_iterator(StreamName=stream, ShardId=SHARD0, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
    )["Records"]

    if transport == "h2":
        client = CborKinesis(server.tls_endpoint, transport=transport, verify=server.ca_bundle)
    else:
        client = CborKinesis(server.endpoint, transport=transport)
    messages = []
    try:
        with client.stream(
            "SubscribeToShard", ConsumerARN=consumer, ShardId=SHARD0, StartingPosition={"Type": "TRIM_HORIZON"}
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/vnd.amazon.eventstream"
            assert r.http_version == ("HTTP/1.1" if transport == "http1" else "HTTP/2")
            buffer = EventStreamBuffer()
            records = []
            for chunk in r.iter_bytes():
                buffer.add_data(chunk)
                for message in buffer:
                    messages.append(message)
                    if message.headers[":event-type"] == "SubscribeToShardEvent":
                        records += decode(message.payload)["Records"]
                if len(records) >= len(payloads):
                    break
    finally:
        client.close()
    assert messages[0].headers[":event-type"] == "initial-response"
    assert messages[0].headers[":message-type"] == "event"
    assert messages[1].headers[":content-type"] == CBOR_CONTENT_TYPE
    assert [r["Data"] for r in records] == payloads
    for ours, theirs in zip(records, json_records, strict=True):
        assert isinstance(ours["ApproximateArrivalTimestamp"], Millis)
        assert ours["ApproximateArrivalTimestamp"].to_datetime() == theirs["ApproximateArrivalTimestamp"]
        assert ours["SequenceNumber"] == theirs["SequenceNumber"]


# ---------------------------------------------------------------------------------------------
# Across nodes: a subscription through a node with no replica, and across a leader's kill -9
# ---------------------------------------------------------------------------------------------


def shard_placement(server, stream):
    from test_cluster import admin

    return admin(server, f"/admin/v1/streams/{stream}/shards")["shards"][0]


def test_a_subscription_through_a_node_without_a_replica_streams_from_a_replica(tmp_path):
    from test_cluster import start_cluster

    servers = start_cluster(tmp_path, extra_args=["--replication-factor", "1"])
    try:
        client = servers[0].client()
        stream = create_stream(client, shards=1)
        holder = poll(lambda: shard_placement(servers[0], stream)["replicas"], what="placement")
        assert len(holder) == 1
        outsider = next(s for s in servers if s.node_id not in holder)
        via = outsider.client(read_timeout=30)
        wait_active(via, stream)
        consumer = register_consumer(via, stream)
        put_numbered(client, stream, "old", 10)
        started = []

        def until(events):
            if not started:
                started.append(True)
                threading.Thread(target=put_numbered, args=(client, stream, "new", 10)).start()
            return len(records_of(events)) >= 20

        events = read_events(via, consumer, SHARD0, {"Type": "TRIM_HORIZON"}, until)
        assert [r["Data"].decode() for r in records_of(events)] == [f"old-{i}" for i in range(10)] + [
            f"new-{i}" for i in range(10)
        ]
    finally:
        for s in servers:
            s.cleanup()


def test_a_subscription_survives_or_resumes_across_a_leader_kill9_without_loss(tmp_path):
    from test_cluster import start_cluster

    servers = start_cluster(tmp_path)
    try:
        client = servers[0].client()
        stream = create_stream(client, shards=1)
        leader = poll(lambda: shard_placement(servers[0], stream)["leader"], what="a shard leader")
        # Subscribe through a node that does not lead the shard; write through the third.
        reader = next(s for s in servers if s.node_id != leader)
        writer_node = next(s for s in servers if s.node_id not in (leader, reader.node_id))
        via = reader.client(read_timeout=30)
        consumer = register_consumer(via, stream)
        written = []
        uncertain = set()  # puts that failed at least once: stored or not, then written again
        stop = threading.Event()

        def write():
            w = writer_node.client(read_timeout=30, connect_timeout=5)
            i = 0
            while not stop.is_set() and i < 400:
                try:
                    w.put_record(StreamName=stream, PartitionKey="k", Data=f"r-{i}".encode())
                    written.append(f"r-{i}")
                except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
                    # Unavailable during the election, or timed out: not acknowledged, maybe stored;
                    # written again.
                    uncertain.add(f"r-{i}")
                else:
                    i += 1
            stop.set()

        received = []
        continuation = None
        killed = []
        thread = threading.Thread(target=write)
        thread.start()
        deadline = time.monotonic() + 120
        def missing():
            return set(written) - set(received)

        while (not stop.is_set() or missing()) and time.monotonic() < deadline:
            position = (
                {"Type": "TRIM_HORIZON"}
                if continuation is None
                else {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation}
            )
            try:
                response = subscribe_retrying(via, ConsumerARN=consumer, ShardId=SHARD0, StartingPosition=position)
                for event in response["EventStream"]:
                    e = event["SubscribeToShardEvent"]
                    received += [r["Data"].decode() for r in e["Records"]]
                    continuation = e["ContinuationSequenceNumber"]
                    if len(received) >= 100 and not killed:
                        leader_server = next(s for s in servers if s.node_id == leader)
                        leader_server.kill9()
                        killed.append(leader)
                    if stop.is_set() and not missing():
                        break
                response["EventStream"].close()
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
                # The stream ended with an error: resubscribe from the last continuation.
                time.sleep(0.2)
        stop.set()
        thread.join()
        assert killed, "the leader was killed mid-subscription"
        assert not missing(), f"acknowledged but never delivered: {sorted(missing())[:10]}"
        # In write order; a record delivered twice is one whose put failed and was written again
        # (a resubscription from the continuation repeats nothing).
        firsts = list(dict.fromkeys(received))
        assert firsts == sorted(firsts, key=lambda x: int(x.split("-")[1]))
        repeated = {x for x in received if received.count(x) > 1}
        assert repeated <= uncertain, repeated - uncertain
    finally:
        for s in servers:
            s.cleanup()
