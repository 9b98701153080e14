"""The CBOR protocol, as the Java SDK v2 (KCL, Flink, Spark) speaks it by default: every operation
answers in CBOR when asked in CBOR, over HTTP/1.1 and h2c, with byte-string blobs and tag-1
millisecond timestamps, and errors carry the same `__type` and message as their JSON twins."""

import datetime
import json
import os

import pytest

from conftest import create_stream, poll, unique_name
from kinesis_cbor import CBOR_CONTENT_TYPE, CborKinesis, KinesisCborError, Millis, encode

BINARY = bytes(range(256))


@pytest.fixture(scope="module", params=["http1", "h2c"])
def cbor(request, server):
    client = CborKinesis(server.endpoint, transport=request.param)
    yield client
    client.close()


def wait_active_cbor(cbor, name):
    return poll(
        lambda: (s := cbor.call("DescribeStreamSummary", StreamName=name)["StreamDescriptionSummary"])[
            "StreamStatus"
        ]
        == "ACTIVE"
        and s,
        what=f"{name} ACTIVE",
    )


def expect_cbor_error(error_type, fn, *args, **kwargs):
    with pytest.raises(KinesisCborError) as caught:
        fn(*args, **kwargs)
    error = caught.value
    assert error.error_type == error_type, error
    assert error.headers["content-type"] == CBOR_CONTENT_TYPE
    assert error.headers["x-amzn-errortype"] == error_type
    return error


def test_h2c_requests_are_answered_over_http2(cbor, server):
    response = cbor.raw("ListStreams", encode({}))
    assert response.status == 200
    assert response.http_version == ("HTTP/2" if cbor.transport == "h2c" else "HTTP/1.1")
    assert "StreamNames" in response.body


def test_a_stream_created_in_cbor_is_described_in_both_protocols(cbor, kinesis):
    name = unique_name("cbor")
    assert cbor.call("CreateStream", StreamName=name, ShardCount=2) is None
    summary = wait_active_cbor(cbor, name)
    assert summary["OpenShardCount"] == 2
    created = summary["StreamCreationTimestamp"]
    assert isinstance(created, Millis)
    # The same instant as the JSON protocol reports, to the millisecond.
    json_created = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "StreamCreationTimestamp"
    ]
    assert created.to_datetime() == json_created.astimezone(datetime.timezone.utc)

    described = cbor.call("DescribeStream", StreamName=name)["StreamDescription"]
    assert [s["ShardId"] for s in described["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]
    assert described["Shards"][1]["HashKeyRange"]["EndingHashKey"] == str(2**128 - 1)
    assert name in cbor.call("ListStreams", Limit=1000)["StreamNames"]
    listed = cbor.call("ListShards", StreamName=name)["Shards"]
    assert [s["ShardId"] for s in listed] == [s["ShardId"] for s in described["Shards"]]


def test_binary_records_round_trip_with_millisecond_arrival_times(cbor, kinesis):
    name = create_stream(kinesis, shards=1)
    put = cbor.call("PutRecord", StreamName=name, PartitionKey="k", Data=BINARY)
    assert put["ShardId"] == "shardId-000000000000"
    batch = cbor.call(
        "PutRecords",
        StreamName=name,
        Records=[
            {"PartitionKey": "a", "Data": b"\x00"},
            {"PartitionKey": "b", "Data": b"\xff\xfe\x00\x01"},
            {"PartitionKey": "c", "Data": "text is not a blob".encode()},
        ],
    )
    assert batch["FailedRecordCount"] == 0
    assert len(batch["Records"]) == 3

    iterator = cbor.call(
        "GetShardIterator", StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    got = cbor.call("GetRecords", ShardIterator=iterator)
    records = got["Records"]
    assert [r["Data"] for r in records] == [BINARY, b"\x00", b"\xff\xfe\x00\x01", b"text is not a blob"]
    assert [r["SequenceNumber"] for r in records] == [put["SequenceNumber"]] + [
        r["SequenceNumber"] for r in batch["Records"]
    ]
    assert isinstance(got["MillisBehindLatest"], int)

    # The JSON protocol reads the same records with the same arrival times, to the millisecond.
    json_iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    json_records = kinesis.get_records(ShardIterator=json_iterator)["Records"]
    for ours, theirs in zip(records, json_records, strict=True):
        assert isinstance(ours["ApproximateArrivalTimestamp"], Millis)
        assert ours["ApproximateArrivalTimestamp"].to_datetime() == theirs["ApproximateArrivalTimestamp"]
        assert ours["Data"] == theirs["Data"]
        assert ours["PartitionKey"] == theirs["PartitionKey"]


def test_tag_1_millisecond_timestamps_position_iterators_exactly(cbor, kinesis):
    name = create_stream(kinesis, shards=1)
    shard = "shardId-000000000000"
    first = cbor.call("PutRecord", StreamName=name, PartitionKey="k", Data=b"first")

    def arrivals():
        it = cbor.call("GetShardIterator", StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        return cbor.call("GetRecords", ShardIterator=it["ShardIterator"])["Records"]

    # A second record in a later millisecond than the first (puts can share one).
    def second_in_a_later_millisecond():
        cbor.call("PutRecord", StreamName=name, PartitionKey="k", Data=b"later")
        records = arrivals()
        return records[-1]["ApproximateArrivalTimestamp"] > records[0]["ApproximateArrivalTimestamp"] and records

    records = poll(second_in_a_later_millisecond, what="a record in a later millisecond")
    assert records[0]["SequenceNumber"] == first["SequenceNumber"]
    later = records[-1]
    at = later["ApproximateArrivalTimestamp"].to_datetime()
    iterator = cbor.call(
        "GetShardIterator", StreamName=name, ShardId=shard, ShardIteratorType="AT_TIMESTAMP", Timestamp=at
    )["ShardIterator"]
    from_there = cbor.call("GetRecords", ShardIterator=iterator)["Records"]
    assert from_there[0]["ApproximateArrivalTimestamp"] == later["ApproximateArrivalTimestamp"]
    assert all(r["Data"] == b"later" for r in from_there)

    # ListShards' AT_TIMESTAMP filter takes the same encoding.
    shards = cbor.call("ListShards", StreamName=name, ShardFilter={"Type": "AT_TIMESTAMP", "Timestamp": at})
    assert [s["ShardId"] for s in shards["Shards"]] == [shard]


def test_errors_carry_the_same_type_and_message_as_json(cbor, kinesis, server):
    missing = unique_name("missing")
    error = expect_cbor_error("ResourceNotFoundException", cbor.call, "DescribeStreamSummary", StreamName=missing)
    assert error.status == 400
    assert error.message == f"Stream {missing} under account 000000000000 not found."
    assert set(error.body) == {"__type", "message"}

    error = expect_cbor_error("ValidationException", cbor.call, "DescribeStreamSummary", StreamName="a b")
    assert "failed to satisfy constraint: Member must satisfy regular expression pattern" in error.message

    error = expect_cbor_error("ValidationException", cbor.call, "PutRecord", StreamName="s", PartitionKey="k")
    assert "at 'data' failed to satisfy constraint: Member must not be null" in error.message

    # A string where the model wants an integer: the JSON layer's type error.
    error = expect_cbor_error("SerializationException", cbor.call, "CreateStream", StreamName="s", ShardCount="two")
    assert set(error.body) == {"__type", "Message"}

    response = cbor.raw("ListStreams", b"\xff\x00\x01")
    assert response.status == 400
    assert response.headers["content-type"] == CBOR_CONTENT_TYPE
    assert response.body["__type"] == "SerializationException"

    response = cbor.raw("NoSuchOperation", encode({}))
    assert response.status == 400
    assert response.body["__type"] == "UnknownOperationException"


def test_control_operations_answer_in_cbor(cbor, kinesis):
    name = unique_name("cbor-ctl")
    cbor.call("CreateStream", StreamName=name, ShardCount=2)
    summary = wait_active_cbor(cbor, name)
    arn = summary["StreamARN"]

    cbor.call("AddTagsToStream", StreamName=name, Tags={"team": "data", "env": "test"})
    tags = cbor.call("ListTagsForStream", StreamName=name)
    assert {t["Key"]: t["Value"] for t in tags["Tags"]} == {"team": "data", "env": "test"}
    assert tags["HasMoreTags"] is False
    cbor.call("RemoveTagsFromStream", StreamName=name, TagKeys=["env"])
    cbor.call("TagResource", ResourceARN=arn, Tags={"owner": "me"})
    cbor.call("UntagResource", ResourceARN=arn, TagKeys=["team"])
    assert cbor.call("ListTagsForResource", ResourceARN=arn)["Tags"] == [{"Key": "owner", "Value": "me"}]

    cbor.call("IncreaseStreamRetentionPeriod", StreamName=name, RetentionPeriodHours=48)
    assert cbor.call("DescribeStreamSummary", StreamARN=arn)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 48
    cbor.call("DecreaseStreamRetentionPeriod", StreamName=name, RetentionPeriodHours=24)

    enabled = cbor.call("EnableEnhancedMonitoring", StreamName=name, ShardLevelMetrics=["IncomingBytes"])
    assert enabled["DesiredShardLevelMetrics"] == ["IncomingBytes"]
    disabled = cbor.call("DisableEnhancedMonitoring", StreamName=name, ShardLevelMetrics=["ALL"])
    assert disabled["DesiredShardLevelMetrics"] == []

    cbor.call("StartStreamEncryption", StreamName=name, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    wait_active_cbor(cbor, name)
    cbor.call("StopStreamEncryption", StreamName=name, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    wait_active_cbor(cbor, name)

    cbor.call("UpdateMaxRecordSize", StreamARN=arn, MaxRecordSizeInKiB=2048)
    wait_active_cbor(cbor, name)

    policy = json.dumps({"Version": "2012-10-17", "Statement": []})
    cbor.call("PutResourcePolicy", ResourceARN=arn, Policy=policy)
    assert cbor.call("GetResourcePolicy", ResourceARN=arn)["Policy"] == policy
    cbor.call("DeleteResourcePolicy", ResourceARN=arn)

    limits = cbor.call("DescribeLimits")
    assert limits["OpenShardCount"] >= 2

    cbor.call(
        "SplitShard",
        StreamName=name,
        ShardToSplit="shardId-000000000000",
        NewStartingHashKey=str(2**125),
    )
    wait_active_cbor(cbor, name)
    cbor.call(
        "MergeShards",
        StreamName=name,
        ShardToMerge="shardId-000000000002",
        AdjacentShardToMerge="shardId-000000000003",
    )
    wait_active_cbor(cbor, name)
    updated = cbor.call("UpdateShardCount", StreamName=name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    assert updated["TargetShardCount"] == 4
    wait_active_cbor(cbor, name)
    cbor.call("UpdateStreamMode", StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active_cbor(cbor, name)

    cbor.call("DeleteStream", StreamName=name)

    def gone():
        try:
            return cbor.call("DescribeStreamSummary", StreamName=name)["StreamDescriptionSummary"][
                "StreamStatus"
            ] == "DELETING"
        except KinesisCborError as e:
            return e.error_type == "ResourceNotFoundException"

    poll(gone, what=f"{name} deleted")


EMBEDDED_MODEL = os.path.join(
    os.path.dirname(__file__), "..", "..", "crates", "kinesin-api", "model", "kinesis-2013-12-02.json"
)


def model_operations():
    """The 39 operations of the model Kinesin implements (botocore's own copy may be newer: 1.44
    added queue and channel operations, which Kinesin does not serve yet)."""
    with open(EMBEDDED_MODEL) as f:
        return sorted(json.load(f)["operations"])


@pytest.mark.parametrize("op", model_operations())
def test_every_operation_answers_in_cbor(op, server):
    """An empty CBOR map for each of the model's operations: an output (operations whose input has
    no required member) or a Kinesis error, always in CBOR and never UnknownOperationException."""
    client = CborKinesis(server.endpoint)
    try:
        response = client.raw(op, encode({}))
    finally:
        client.close()
    assert response.headers["content-type"] in (CBOR_CONTENT_TYPE, "application/vnd.amazon.eventstream")
    if response.status == 200:
        assert isinstance(response.body, dict) or response.body is None
    else:
        assert response.status == 400, (response.status, response.body)
        assert response.body["__type"] not in ("UnknownOperationException", "InternalFailure"), response.body
        assert response.headers["x-amzn-errortype"] == response.body["__type"]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A server that also serves TLS, with a private CA of the test's own."""
    from conftest import Server
    from test_tls import Ca

    base = tmp_path_factory.mktemp("kinesin-cbor-tls")
    ca = Ca(base / "ca")
    s = Server(base / "node", tls=ca.server_files("kinesin-cbor"))
    s.start()
    yield s
    s.cleanup()


def test_cbor_over_tls_with_alpn_h2(tls_server):
    cbor = CborKinesis(tls_server.tls_endpoint, transport="h2", verify=tls_server.ca_bundle)
    try:
        name = unique_name("cbor-tls")
        cbor.call("CreateStream", StreamName=name, ShardCount=1)
        wait_active_cbor(cbor, name)
        put = cbor.call("PutRecord", StreamName=name, PartitionKey="k", Data=BINARY)
        response = cbor.raw(
            "GetShardIterator",
            encode({"StreamName": name, "ShardId": put["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
        )
        assert response.http_version == "HTTP/2"
        records = cbor.call("GetRecords", ShardIterator=response.body["ShardIterator"])["Records"]
        assert [r["Data"] for r in records] == [BINARY]
        assert isinstance(records[0]["ApproximateArrivalTimestamp"], Millis)
        expect_cbor_error("ResourceNotFoundException", cbor.call, "DescribeStream", StreamName=unique_name("no"))
    finally:
        cbor.close()
