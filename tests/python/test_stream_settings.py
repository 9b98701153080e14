"""Per-stream settings: enhanced monitoring, the maximum record size and resource policies (server-side
encryption: test_encryption.py). Each test uses its own streams, so they share one server per module."""

import json

import botocore.exceptions
import pytest

from conftest import create_stream, error_code, expect_error, list_all_shards, put_records_retrying, read_shard, unique_name

ALL_METRICS = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
]
KEY_ID = "arn:aws:kms:us-east-1:000000000000:key/12345678-1234-1234-1234-123456789012"
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": ["kinesis:GetRecords", "kinesis:GetShardIterator"],
                "Resource": "*",
            }
        ],
    }
)



def stream_arn(client, name):
    return client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


def missing_arn(client):
    """The ARN of a stream that does not exist, in the server's account and region."""
    name = create_stream(client)
    arn = stream_arn(client, name)
    return arn.rsplit("/", 1)[0] + "/" + unique_name("missing")


def reported_metrics(client, name):
    summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    stream = client.describe_stream(StreamName=name)["StreamDescription"]
    from_summary = summary["EnhancedMonitoring"][0].get("ShardLevelMetrics", [])
    assert from_summary == stream["EnhancedMonitoring"][0].get("ShardLevelMetrics", [])
    return from_summary


# ------------------------------------------------------------------------------------------
# Enhanced monitoring
# ------------------------------------------------------------------------------------------


def test_enable_and_disable_enhanced_monitoring(kinesis):
    name = create_stream(kinesis)
    arn = stream_arn(kinesis, name)
    out = kinesis.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["OutgoingBytes", "IncomingBytes"])
    assert out["StreamName"] == name
    assert out["StreamARN"] == arn
    assert out["CurrentShardLevelMetrics"] == []
    assert sorted(out["DesiredShardLevelMetrics"]) == ["IncomingBytes", "OutgoingBytes"]
    assert sorted(reported_metrics(kinesis, name)) == ["IncomingBytes", "OutgoingBytes"]

    # ALL expands to the seven metrics; the stream can also be named by ARN.
    out = kinesis.enable_enhanced_monitoring(StreamARN=arn, ShardLevelMetrics=["ALL"])
    assert sorted(out["CurrentShardLevelMetrics"]) == ["IncomingBytes", "OutgoingBytes"]
    assert sorted(out["DesiredShardLevelMetrics"]) == sorted(ALL_METRICS)
    assert sorted(reported_metrics(kinesis, name)) == sorted(ALL_METRICS)

    out = kinesis.disable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["IncomingBytes", "IteratorAgeMilliseconds"])
    assert sorted(out["CurrentShardLevelMetrics"]) == sorted(ALL_METRICS)
    assert sorted(out["DesiredShardLevelMetrics"]) == sorted(set(ALL_METRICS) - {"IncomingBytes", "IteratorAgeMilliseconds"})

    out = kinesis.disable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["ALL"])
    assert out["DesiredShardLevelMetrics"] == []
    assert reported_metrics(kinesis, name) == []


def test_enhanced_monitoring_errors(kinesis, kinesis_unvalidated):
    expect_error("ResourceNotFoundException", kinesis.enable_enhanced_monitoring, StreamName=unique_name("missing"), ShardLevelMetrics=["ALL"])
    expect_error("ResourceNotFoundException", kinesis.disable_enhanced_monitoring, StreamName=unique_name("missing"), ShardLevelMetrics=["ALL"])
    name = create_stream(kinesis)
    e = expect_error("ValidationException", kinesis_unvalidated.enable_enhanced_monitoring, StreamName=name, ShardLevelMetrics=["Bogus"])
    assert "shardLevelMetrics" in e.response["Error"]["Message"]
    expect_error("ValidationException", kinesis_unvalidated.enable_enhanced_monitoring, StreamName=name, ShardLevelMetrics=[])


def test_settings_need_an_active_stream(kinesis):
    # A deleted stream is DELETING only briefly before it is gone, so either answer is AWS's.
    name = create_stream(kinesis)
    kinesis.delete_stream(StreamName=name)
    expect_error(
        ("ResourceInUseException", "ResourceNotFoundException"),
        kinesis.enable_enhanced_monitoring,
        StreamName=name,
        ShardLevelMetrics=["ALL"],
    )
    expect_error(
        ("ResourceInUseException", "ResourceNotFoundException"),
        kinesis.start_stream_encryption,
        StreamName=name,
        EncryptionType="KMS",
        KeyId=KEY_ID,
    )


# ------------------------------------------------------------------------------------------
# UpdateMaxRecordSize
# ------------------------------------------------------------------------------------------


def max_record_size(client, name):
    return client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["MaxRecordSizeInKiB"]


def test_update_max_record_size_lets_large_records_in(kinesis):
    # No special server is needed: the stream's own maximum decides, and the default server's
    # other limits already fit a 1.5 MiB record (PutRecords allows 10 MiB per request, GetRecords
    # returns up to 10 MiB, and the HTTP body cap is sized for 10 MiB of base64). The node's
    # --max-record-bytes only seeds the maximum of streams created without MaxRecordSizeInKiB.
    name = create_stream(kinesis)
    arn = stream_arn(kinesis, name)
    assert max_record_size(kinesis, name) == 1024
    big = bytes(range(256)) * (1536 * 1024 // 256)
    expect_error(("ValidationException", "InvalidArgumentException"), kinesis.put_record, StreamName=name, Data=big, PartitionKey="k")

    kinesis.update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=2048)
    assert max_record_size(kinesis, name) == 2048
    put = kinesis.put_record(StreamName=name, Data=big, PartitionKey="k")
    # The first record spent more than the shard's 1 MiB/s write limit: wait it out, as a producer would.
    batch = put_records_retrying(kinesis, StreamName=name, Records=[{"Data": big, "PartitionKey": "k"}])
    # Still bounded: data + key over 2 MiB is refused.
    expect_error(
        ("ValidationException", "InvalidArgumentException"),
        kinesis.put_record,
        StreamName=name,
        Data=b"a" * (2048 * 1024),
        PartitionKey="k",
    )
    records = read_shard(kinesis, name, put["ShardId"])
    assert [r["SequenceNumber"] for r in records] == [put["SequenceNumber"], batch[0]["SequenceNumber"]]
    assert all(r["Data"] == big for r in records)

    # Back down to 1 MiB: the large record is refused again.
    kinesis.update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=1024)
    expect_error(("ValidationException", "InvalidArgumentException"), kinesis.put_record, StreamName=name, Data=big, PartitionKey="k")


def test_create_stream_with_max_record_size(kinesis):
    name = create_stream(kinesis, MaxRecordSizeInKiB=2048)
    assert max_record_size(kinesis, name) == 2048
    kinesis.put_record(StreamName=name, Data=b"a" * (1536 * 1024), PartitionKey="k")


def test_update_max_record_size_errors(kinesis, kinesis_unvalidated):
    name = create_stream(kinesis)
    arn = stream_arn(kinesis, name)
    for kib in (1023, 10241):
        e = expect_error("ValidationException", kinesis_unvalidated.update_max_record_size, StreamARN=arn, MaxRecordSizeInKiB=kib)
        assert "maxRecordSizeInKiB" in e.response["Error"]["Message"]
    assert max_record_size(kinesis, name) == 1024
    expect_error("ValidationException", kinesis_unvalidated.update_max_record_size, MaxRecordSizeInKiB=2048)
    expect_error("ResourceNotFoundException", kinesis.update_max_record_size, StreamARN=missing_arn(kinesis), MaxRecordSizeInKiB=2048)


# ------------------------------------------------------------------------------------------
# Resource policies
# ------------------------------------------------------------------------------------------


def test_put_get_delete_resource_policy(kinesis):
    name = create_stream(kinesis)
    arn = stream_arn(kinesis, name)
    assert kinesis.get_resource_policy(ResourceARN=arn)["Policy"] == "{}"
    kinesis.put_resource_policy(ResourceARN=arn, Policy=POLICY)
    assert json.loads(kinesis.get_resource_policy(ResourceARN=arn)["Policy"]) == json.loads(POLICY)
    # A second Put replaces the first.
    replacement = json.dumps({"Version": "2012-10-17", "Statement": []})
    kinesis.put_resource_policy(ResourceARN=arn, Policy=replacement)
    assert kinesis.get_resource_policy(ResourceARN=arn)["Policy"] == replacement
    kinesis.delete_resource_policy(ResourceARN=arn)
    assert kinesis.get_resource_policy(ResourceARN=arn)["Policy"] == "{}"


def test_resource_policy_errors(kinesis, kinesis_unvalidated):
    arn = missing_arn(kinesis)
    expect_error("ResourceNotFoundException", kinesis.put_resource_policy, ResourceARN=arn, Policy=POLICY)
    expect_error("ResourceNotFoundException", kinesis.get_resource_policy, ResourceARN=arn)
    expect_error("ResourceNotFoundException", kinesis.delete_resource_policy, ResourceARN=arn)

    name = create_stream(kinesis)
    consumer = stream_arn(kinesis, name) + "/consumer/c1:1700000000"
    expect_error("ResourceNotFoundException", kinesis.put_resource_policy, ResourceARN=consumer, Policy=POLICY)
    expect_error("ResourceNotFoundException", kinesis.get_resource_policy, ResourceARN=consumer)
    expect_error("ResourceNotFoundException", kinesis.delete_resource_policy, ResourceARN=consumer)

    expect_error("ValidationException", kinesis_unvalidated.get_resource_policy, ResourceARN="not-an-arn")
    expect_error("InvalidArgumentException", kinesis.put_resource_policy, ResourceARN=stream_arn(kinesis, name), Policy="not json")
