"""A consumer that makes the KCL 2.x/3.x's calls in the KCL's order, in CBOR over h2c (what the Java
SDK's Netty client sends to an http:// endpoint), while the stream is split and merged under it.

The sequence, from shared/research/CLIENTS.md (amazon-kinesis-client's KinesisShardDetector,
HierarchicalShardSyncer, FanOutConsumerRegistration, FanOutRecordsPublisher, DataRetrievalUtil):
1. shard sync on an empty lease table: ListShards with StreamName and a ShardFilter AT_TRIM_HORIZON,
   retried until the shards' hash ranges cover the whole key space; a lease per shard;
2. consumer registration: DescribeStreamSummary (for the ARN), DescribeStreamConsumer, and on
   ResourceNotFoundException RegisterStreamConsumer, then DescribeStreamConsumer until ACTIVE;
3. per lease, SubscribeToShard from the lease's checkpoint (TRIM_HORIZON at first, then
   AFTER_SEQUENCE_NUMBER of the last ContinuationSequenceNumber), resubscribing whenever a
   subscription ends; a child lease is taken only once all its parents reached SHARD_END;
4. the shard-end rule, checked as DataRetrievalUtil checks it: an event with a null
   ContinuationSequenceNumber must carry non-empty ChildShards, each naming its parent; any other
   event must carry none. The KCL treats any other combination as an error and loops forever.

Everything acknowledged to the producer must be read exactly once, and in order per partition key.
"""

import collections
import threading
import time

from botocore.eventstream import EventStreamBuffer

from conftest import create_stream, poll, put_records_retrying, unique_name, wait_active
from kinesis_cbor import CborKinesis, KinesisCborError, decode

MAX_HASH_KEY = 2**128 - 1
KEYS = [f"pk-{i}" for i in range(16)]


def covers_key_space(shards):
    """HierarchicalShardSyncer's check: the open shards' hash ranges tile 0..2^128-1."""
    ranges = sorted(
        (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])) for s in shards
    )
    expected = 0
    for start, end in ranges:
        if start != expected:
            return False
        expected = end + 1
    return expected == MAX_HASH_KEY + 1


def shard_sync(client, stream):
    """ListShards with the KCL's filter for an empty lease table, paged with NextToken."""
    shards = []
    response = client.call("ListShards", StreamName=stream, ShardFilter={"Type": "AT_TRIM_HORIZON"})
    while True:
        shards += response["Shards"]
        token = response.get("NextToken")
        if not token:
            return shards
        response = client.call("ListShards", NextToken=token)


def register_consumer_as_the_kcl_does(client, stream, name):
    stream_arn = client.call("DescribeStreamSummary", StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    try:
        client.call("DescribeStreamConsumer", StreamARN=stream_arn, ConsumerName=name)
        raise AssertionError("a consumer that was never registered was described")
    except KinesisCborError as e:
        assert e.error_type == "ResourceNotFoundException", e
    arn = client.call("RegisterStreamConsumer", StreamARN=stream_arn, ConsumerName=name)["Consumer"]["ConsumerARN"]

    def active():
        described = client.call("DescribeStreamConsumer", StreamARN=stream_arn, ConsumerName=name)
        return described["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE"

    poll(active, what="consumer ACTIVE")
    return arn


class Lease:
    def __init__(self, shard_id, parents):
        self.shard_id = shard_id
        self.parents = [p for p in parents if p]
        self.checkpoint = {"Type": "TRIM_HORIZON"}
        self.shard_end = False
        self.taken = False


class KclStyleWorker:
    """Leases, one subscriber thread per taken lease, and what was read."""

    def __init__(self, endpoint, consumer_arn, shards):
        self.endpoint = endpoint
        self.consumer_arn = consumer_arn
        self.lock = threading.Lock()
        self.leases = {s["ShardId"]: Lease(s["ShardId"], [s.get("ParentShardId"), s.get("AdjacentParentShardId")])
                       for s in shards}
        self.read = []  # (shard, partition key, data) in delivery order
        self.violations = []
        self.stop = threading.Event()
        self.threads = []

    def take_ready_leases(self):
        with self.lock:
            ready = [
                lease
                for lease in self.leases.values()
                if not lease.taken
                and not lease.shard_end
                and all(self.leases[p].shard_end for p in lease.parents if p in self.leases)
            ]
            for lease in ready:
                lease.taken = True
        for lease in ready:
            thread = threading.Thread(target=self.process, args=(lease,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def process(self, lease):
        client = CborKinesis(self.endpoint, transport="h2c")
        try:
            while not self.stop.is_set() and not lease.shard_end:
                self.subscribe_once(client, lease)
        except Exception as e:  # noqa: BLE001 - a dying subscriber is a test failure, reported below
            with self.lock:
                self.violations.append(f"{lease.shard_id}: {e!r}")
        finally:
            client.close()

    def subscribe_once(self, client, lease):
        try:
            with client.stream(
                "SubscribeToShard",
                ConsumerARN=self.consumer_arn,
                ShardId=lease.shard_id,
                StartingPosition=lease.checkpoint,
            ) as response:
                if response.status_code != 200:
                    error = decode(response.read())
                    # The previous subscription of this consumer and shard may still be ending.
                    assert error["__type"] == "ResourceInUseException", error
                    time.sleep(0.2)
                    return
                buffer = EventStreamBuffer()
                for chunk in response.iter_bytes():
                    buffer.add_data(chunk)
                    for message in buffer:
                        if message.headers[":message-type"] != "event":
                            return  # an exception event ends this subscription; resubscribe
                        if message.headers[":event-type"] == "SubscribeToShardEvent":
                            self.on_event(lease, decode(message.payload))
                            if lease.shard_end:
                                return
                    if self.stop.is_set():
                        return
        except KinesisCborError:
            raise
        except Exception as e:  # noqa: BLE001 - connection errors: the KCL resubscribes
            if self.stop.is_set():
                return
            print(f"{lease.shard_id}: resubscribing after {e!r}")

    def on_event(self, lease, event):
        continuation = event.get("ContinuationSequenceNumber")
        children = event.get("ChildShards") or []
        with self.lock:
            for record in event["Records"]:
                self.read.append((lease.shard_id, record["PartitionKey"], record["Data"].decode()))
            if continuation is None:
                if not children:
                    self.violations.append(f"{lease.shard_id}: shard end without ChildShards: {event}")
                    return
                for child in children:
                    if lease.shard_id not in child["ParentShards"]:
                        self.violations.append(f"{lease.shard_id}: child {child} does not name its parent")
                    if child["ShardId"] not in self.leases:
                        self.leases[child["ShardId"]] = Lease(child["ShardId"], child["ParentShards"])
                lease.shard_end = True
            else:
                if children:
                    self.violations.append(f"{lease.shard_id}: ChildShards on an open shard: {event}")
                lease.checkpoint = {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation}
        if lease.shard_end:
            self.take_ready_leases()

    def shutdown(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads), "a subscriber did not stop"


def test_a_kcl_style_consumer_reads_everything_once_across_a_split_and_a_merge(server, kinesis):
    stream = create_stream(kinesis, shards=2)
    cbor = CborKinesis(server.endpoint, transport="h2c")
    try:

        def synced():
            shards = shard_sync(cbor, stream)
            return shards if covers_key_space(shards) else None

        shards = poll(synced, what="ListShards covering the key space")
        consumer = register_consumer_as_the_kcl_does(cbor, stream, unique_name("kcl-app"))
    finally:
        cbor.close()

    worker = KclStyleWorker(server.endpoint, consumer, shards)
    worker.take_ready_leases()
    acknowledged = []
    counters = collections.Counter()

    def put_round():
        entries = []
        for key in KEYS:
            counters[key] += 1
            entries.append({"PartitionKey": key, "Data": f"{key}:{counters[key]}".encode()})
        put_records_retrying(kinesis, StreamName=stream, Records=entries)
        acknowledged.extend((e["PartitionKey"], e["Data"].decode()) for e in entries)

    try:
        for _ in range(5):
            put_round()
        # Split the shard holding the lower half of the key space while the consumer reads.
        kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**126))
        for _ in range(5):
            put_round()
        wait_active(kinesis, stream)
        for _ in range(5):
            put_round()
        # Merge the split's upper child with the stream's other original shard.
        kinesis.merge_shards(
            StreamName=stream,
            ShardToMerge="shardId-000000000003",
            AdjacentShardToMerge="shardId-000000000001",
        )
        for _ in range(5):
            put_round()
        wait_active(kinesis, stream)
        for _ in range(5):
            put_round()

        def caught_up():
            with worker.lock:
                assert not worker.violations, worker.violations
                return len(worker.read) >= len(acknowledged)

        poll(caught_up, timeout=60, what="the consumer to read every acknowledged record")
    finally:
        worker.shutdown()

    assert not worker.violations, worker.violations
    delivered = [(key, data) for _, key, data in worker.read]
    duplicates = [item for item, n in collections.Counter(delivered).items() if n > 1]
    assert not duplicates, f"read more than once: {duplicates[:10]}"
    assert sorted(delivered) == sorted(acknowledged)
    for key in KEYS:
        numbers = [int(data.split(":")[1]) for k, data in delivered if k == key]
        assert numbers == sorted(numbers), f"{key} out of order: {numbers}"
    # The lineage the consumer walked: both originals, the split's children, the merged shard.
    assert set(worker.leases) == {f"shardId-00000000000{i}" for i in range(5)}
    assert all(worker.leases[s].shard_end for s in ("shardId-000000000000", "shardId-000000000001",
                                                    "shardId-000000000003"))
