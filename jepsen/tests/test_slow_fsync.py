"""A node whose disk stops completing fsyncs must not stall the shards it does not lead: their
leaders commit on the other majority. Real nodes on forgetfs, whose fsync delay is set to an hour
on one node, so that any write that waited for that node's disk could not be acknowledged
within the test at all."""

import json
import os
import sys
import time
import urllib.request

import boto3
import botocore.config
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kinesin_jepsen.local import LocalCluster  # noqa: E402
from test_forgetfs import _unavailable  # noqa: E402

pytestmark = [pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable())),
              pytest.mark.timeout(300)]

AN_HOUR = 3600.0
STREAM = "slow-disk"


def client(cluster, node):
    return boto3.client(
        "kinesis", endpoint_url=cluster.endpoint(node), region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=60, connect_timeout=5))


def settled_leaders(cluster, node, timeout=60):
    """{shard id: (leader node, starting hash key)} once every shard is led by its preferred
    leader (the first of its replicas), where the reconciler keeps it; `node` hosts every replica."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"{cluster.endpoint(node)}/admin/v1/streams/{STREAM}/shards", timeout=5) as r:
            shards = [s for s in json.load(r)["shards"] if s["state"] == "OPEN"]
        if shards and all(s["leader"] == s["replicas"][0] for s in shards):
            return {s["shard_id"]: (s["leader"], s["starting_hash_key"]) for s in shards}
        assert time.monotonic() < deadline, f"leaders never settled: {shards}"
        time.sleep(0.2)


def test_a_node_whose_fsyncs_never_finish_does_not_stall_the_shards_others_lead(tmp_path):
    binary = os.environ.get("KINESIN_BIN")
    if not binary:
        pytest.skip("KINESIN_BIN is not set")
    cluster = LocalCluster(binary, 3, str(tmp_path), forgetful=True, seed=1)
    try:
        cluster.start_all()
        kinesis = client(cluster, 1)
        kinesis.create_stream(StreamName=STREAM, ShardCount=3)
        kinesis.get_waiter("stream_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 0.2})
        # Three shards on three nodes (RF 3): each node prefers to lead one of them.
        leaders = settled_leaders(cluster, 1)
        slow = 3
        others = {shard: key for shard, (leader, key) in leaders.items() if leader != slow}
        assert others, f"node {slow} leads every shard: {leaders}"

        cluster.set_fsync_delay(slow, AN_HOUR)
        for shard, hash_key in others.items():
            for i in range(10):
                answer = kinesis.put_record(StreamName=STREAM, Data=f"{shard}-{i}".encode(),
                                            PartitionKey="k", ExplicitHashKey=hash_key)
                assert answer["ShardId"] == shard, answer
        # Read back through a node whose disk is fine: every record is there.
        for shard in others:
            iterator = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard,
                                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            records = kinesis.get_records(ShardIterator=iterator)["Records"]
            assert [r["Data"] for r in records] == [f"{shard}-{i}".encode() for i in range(10)], records
    finally:
        cluster.heal_disks()  # first: a process in a pending fsync cannot even be killed
        for node in cluster.nodes():
            cluster.kill(node)
        cluster.stop_all()
