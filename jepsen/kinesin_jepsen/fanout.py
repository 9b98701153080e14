"""Enhanced fan-out readers: one SubscribeToShard subscriber per shard, through the public API.

Each subscriber reads its shard from TRIM_HORIZON as events arrive, resubscribes from its last
ContinuationSequenceNumber (AFTER_SEQUENCE_NUMBER) whenever a subscription ends (its five minutes,
an error, a node killed under it), and at the shard-end event hands over to a subscriber per child
shard. Every event's records are recorded as one `read` of the subscriber's process, so the checker
holds them to the GetRecords consumers' rules: nothing that was never written, never backwards
(no record twice, resubscriptions included), no gap against the shard's final content, and the
lineage followed from parents to children.
"""

import time

import boto3
import botocore.exceptions
import urllib3.exceptions
from botocore.config import Config

from .clients import client, error_code

# Keep-alive events come every 2 s; a read that waits longer means the connection is gone.
SUBSCRIBE_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=10)
CONSUMER_NAME = "jepsen-fanout"


class FanOut:
    """The subscribers of one run (`run` gives history, stop, spawn, the cluster and the stream)."""

    def __init__(self, run, first_process=400, child_process=2000):
        self.run = run
        self.first_process = first_process
        self.next_child = child_process
        self.followed = set()
        self.consumer_arn = None

    def client(self, node):
        return boto3.session.Session().client(
            "kinesis", endpoint_url=self.run.cluster.endpoint(node), region_name="us-east-1",
            aws_access_key_id="jepsen", aws_secret_access_key="jepsen", config=SUBSCRIBE_CONFIG)

    def register(self, node, timeout=60.0):
        """Registers the run's consumer and waits until it is ACTIVE (before any fault). A cluster
        that has just opened hundreds of groups may answer ServiceUnavailable for a moment: such
        answers are waited out, up to `timeout`."""
        kinesis = client(self.run.cluster.endpoint(node))
        deadline = time.monotonic() + timeout
        while True:
            try:
                stream_arn = kinesis.describe_stream_summary(StreamName=self.run.stream)["StreamDescriptionSummary"]["StreamARN"]
                arn = kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName=CONSUMER_NAME)["Consumer"]["ConsumerARN"]
                break
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) == "ResourceInUseException":  # an earlier try went through
                    arn = kinesis.describe_stream_consumer(StreamARN=stream_arn, ConsumerName=CONSUMER_NAME)[
                        "ConsumerDescription"]["ConsumerARN"]
                    break
                if error_code(exc) != "ServiceUnavailableException" or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        while kinesis.describe_stream_consumer(ConsumerARN=arn)["ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
            if time.monotonic() > deadline:
                raise RuntimeError(f"consumer {arn} not ACTIVE after {timeout}s")
            time.sleep(0.1)
        self.consumer_arn = arn

    def start(self, nodes, shards):
        for i, shard in enumerate(shards):
            self.followed.add(shard)
            self.run.spawn(self.subscriber, self.first_process + i, nodes[i % len(nodes)], shard)

    def follow(self, node, shards):
        with self.run.lock:
            for shard in shards:
                if shard not in self.followed:
                    self.followed.add(shard)
                    self.next_child += 1
                    self.run.spawn(self.subscriber, self.next_child, node, shard)

    def subscriber(self, process, node, shard):
        history = self.run.history
        kinesis = self.client(node)
        continuation = None
        while not self.run.stop.is_set():
            position = ({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation}
                        if continuation else {"Type": "TRIM_HORIZON"})
            history.record(process, "invoke", "subscribe", {"shard": shard, "after": continuation})
            try:
                response = kinesis.subscribe_to_shard(ConsumerARN=self.consumer_arn, ShardId=shard,
                                                      StartingPosition=position)
            except Exception as exc:  # noqa: BLE001 - recorded; the subscriber tries again
                history.record(process, "info", "subscribe", {"shard": shard, "error": error_code(exc)})
                time.sleep(0.2)
                continue
            history.record(process, "ok", "subscribe", {"shard": shard})
            events = response["EventStream"]
            try:
                for event in events:
                    body = event["SubscribeToShardEvent"]
                    records = [{"seq": r["SequenceNumber"], "data": r["Data"].decode(), "key": r["PartitionKey"]}
                               for r in body["Records"]]
                    if records:
                        history.record(process, "invoke", "read", {"shard": shard})
                        history.record(process, "ok", "read", {"shard": shard, "records": records})
                    continuation = body.get("ContinuationSequenceNumber") or continuation
                    if body.get("ContinuationSequenceNumber") is None:
                        children = [c["ShardId"] for c in body.get("ChildShards") or []]
                        self.follow(node, children)
                        return
                    if self.run.stop.is_set():
                        return
            # A node killed mid-stream ends the response early: urllib3 raises that from the read
            # itself, not wrapped by botocore (it killed subscriber threads in the soak).
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
                    urllib3.exceptions.HTTPError, OSError) as exc:
                history.record(process, "info", "subscribe", {"shard": shard, "error": error_code(exc)})
                time.sleep(0.2)
            finally:
                events.close()
