"""Stream control plane: create/delete/describe/list, shards, retention, tags, limits.

Every test uses its own unique stream names, so they share one server per module."""

import datetime
import re
import time

import botocore.exceptions
import pytest

from conftest import (
    expect_error,
    MAX_HASH_KEY,
    REGION,
    create_stream,
    error_code,
    list_all_shards,
    poll,
    raw_request,
    unique_name,
    wait_active,
    wait_deleted,
)

SHARD_ID_RE = re.compile(r"^shardId-\d{12}$")
SEQ_RE = re.compile(r"^(0|[1-9]\d{0,128})$")
ARN_RE = re.compile(r"^arn:aws:kinesis:([a-z0-9-]+):(\d{12}):stream/(.+)$")



def assert_even_split(shards):
    """The shards cover 0..2^128-1 contiguously, and are evenly sized (widths differ by < n)."""
    n = len(shards)
    ranges = sorted((int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])) for s in shards)
    assert ranges[0][0] == 0
    assert ranges[-1][1] == MAX_HASH_KEY
    for (s0, e0), (s1, e1) in zip(ranges, ranges[1:]):
        assert s1 == e0 + 1, f"gap or overlap between {e0} and {s1}"
    widths = [e - s + 1 for s, e in ranges]
    assert max(widths) - min(widths) < n, widths
    ideal = 2**128 // n
    for w in widths:
        assert abs(w - ideal) < n


def shard_ids(shards):
    return [s["ShardId"] for s in shards]


# ------------------------------------------------------------------------------------------
# CreateStream
# ------------------------------------------------------------------------------------------


def test_create_stream_with_shard_count(kinesis):
    name = create_stream(kinesis, shards=3)
    desc = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert desc["StreamName"] == name
    assert desc["StreamStatus"] == "ACTIVE"
    assert desc["HasMoreShards"] is False
    shards = desc["Shards"]
    assert shard_ids(shards) == ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"]
    for s in shards:
        assert SHARD_ID_RE.match(s["ShardId"])
        assert "ParentShardId" not in s
        assert "AdjacentParentShardId" not in s
        assert SEQ_RE.match(s["SequenceNumberRange"]["StartingSequenceNumber"])
        assert "EndingSequenceNumber" not in s["SequenceNumberRange"], "a new shard is open"
    assert_even_split(shards)


def test_create_stream_without_shard_count_makes_four_even_shards(kinesis):
    # AWS (no ShardCount, no StreamModeDetails) creates 4 shards; localstack's AWS-validated
    # snapshot shows it.
    name = unique_name()
    kinesis.create_stream(StreamName=name)
    wait_active(kinesis, name)
    shards = list_all_shards(kinesis, name)
    assert len(shards) == 4
    shards.sort(key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
    assert shards[0]["HashKeyRange"]["StartingHashKey"] == "0"
    assert shards[0]["HashKeyRange"]["EndingHashKey"] == "85070591730234615865843651857942052863"
    assert shards[1]["HashKeyRange"]["StartingHashKey"] == "85070591730234615865843651857942052864"
    assert shards[1]["HashKeyRange"]["EndingHashKey"] == str(2 * 2**126 - 1)
    assert shards[2]["HashKeyRange"]["StartingHashKey"] == str(2 * 2**126)
    assert shards[2]["HashKeyRange"]["EndingHashKey"] == str(3 * 2**126 - 1)
    assert shards[3]["HashKeyRange"]["StartingHashKey"] == str(3 * 2**126)
    assert shards[3]["HashKeyRange"]["EndingHashKey"] == str(2**128 - 1)
    assert shards[3]["HashKeyRange"]["EndingHashKey"] == "340282366920938463463374607431768211455"
    assert_even_split(shards)


def test_create_stream_goes_from_creating_to_active(kinesis):
    name = unique_name()
    kinesis.create_stream(StreamName=name, ShardCount=1)
    # Straight after CreateStream the stream exists, CREATING or (if quick) already ACTIVE.
    first = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert first["StreamStatus"] in ("CREATING", "ACTIVE")
    summary = wait_active(kinesis, name)
    assert summary["StreamStatus"] == "ACTIVE"
    # boto3's own waiter agrees.
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def test_create_stream_duplicate_name_is_resource_in_use(kinesis):
    name = create_stream(kinesis, shards=1)
    expect_error("ResourceInUseException", kinesis.create_stream, StreamName=name, ShardCount=1)
    # Also when the original is still creating.
    name2 = unique_name()
    kinesis.create_stream(StreamName=name2, ShardCount=1)
    expect_error("ResourceInUseException", kinesis.create_stream, StreamName=name2, ShardCount=2)
    wait_active(kinesis, name2)
    assert len(list_all_shards(kinesis, name2)) == 1, "the failed duplicate must not change the stream"


def test_create_stream_provisioned_mode_details(kinesis):
    name = create_stream(kinesis, shards=2, StreamModeDetails={"StreamMode": "PROVISIONED"})
    s = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert s["OpenShardCount"] == 2


def test_create_stream_on_demand_mode_details(kinesis):
    name = unique_name()
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    s = wait_active(kinesis, name)
    assert s["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    # AWS starts an on-demand stream with 4 shards.
    assert s["OpenShardCount"] == 4
    assert_even_split(list_all_shards(kinesis, name))
    d = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert d["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}


def test_create_stream_with_tags(kinesis):
    name = unique_name()
    kinesis.create_stream(StreamName=name, ShardCount=1, Tags={"env": "test", "team": "streams"})
    wait_active(kinesis, name)
    resp = kinesis.list_tags_for_stream(StreamName=name)
    assert {t["Key"]: t.get("Value") for t in resp["Tags"]} == {"env": "test", "team": "streams"}
    assert resp["HasMoreTags"] is False


def test_stream_name_charset_and_max_length(kinesis):
    # Name regex [a-zA-Z0-9_.-]+, 1..128 characters.
    for name in ("A.b_c-1" + unique_name("x"), ("n" + unique_name("x")).ljust(128, "z")):
        assert len(name) <= 128
        create_stream(kinesis, name=name)
        s = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        assert s["StreamName"] == name and s["StreamARN"].endswith(f":stream/{name}")


def test_stream_id_is_accepted_and_ignored(server, kinesis):
    # StreamId ("Not Implemented. Reserved for future use.") appears on most inputs since
    # 2026-02; clients may send it and it must not break the call. (Sent raw: botocore's
    # endpoint rules route a StreamId to an AWS host even with endpoint_url set.)
    name = create_stream(kinesis)
    sid = "abcdefghij0123456789-abc"
    r = raw_request(server, "DescribeStreamSummary", {"StreamName": name, "StreamId": sid})
    assert r.status == 200, r
    assert r.json()["StreamDescriptionSummary"]["StreamName"] == name
    r = raw_request(server, "PutRecord", {"StreamName": name, "StreamId": sid, "Data": "eA==", "PartitionKey": "k"})
    assert r.status == 200, r
    r = raw_request(server, "ListShards", {"StreamName": name, "StreamId": sid})
    assert r.status == 200 and len(r.json()["Shards"]) == 1, r


# ------------------------------------------------------------------------------------------
# DeleteStream
# ------------------------------------------------------------------------------------------


def test_delete_stream(kinesis):
    name = create_stream(kinesis, shards=2)
    kinesis.delete_stream(StreamName=name)
    # DELETING for a while (or gone at once), then ResourceNotFoundException.
    wait_deleted(kinesis, name)
    expect_error("ResourceNotFoundException", kinesis.describe_stream, StreamName=name)
    expect_error("ResourceNotFoundException", kinesis.list_shards, StreamName=name)
    names = kinesis.list_streams(Limit=10000)["StreamNames"]  # Limit is capped at 100 by AWS
    assert name not in names
    # The name can be used again, and the new stream starts empty.
    create_stream(kinesis, shards=1, name=name)
    assert kinesis.list_tags_for_stream(StreamName=name)["Tags"] == []


def test_delete_stream_while_creating(kinesis):
    # Allowed (kinesalite recorded this from AWS): the stream goes away without becoming usable.
    name = unique_name()
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.delete_stream(StreamName=name)
    wait_deleted(kinesis, name)


def test_delete_unknown_stream_is_not_found(kinesis):
    e = expect_error("ResourceNotFoundException", kinesis.delete_stream, StreamName=unique_name("missing"))
    assert e.response["Error"]["Message"]


def test_describe_unknown_stream_message(kinesis):
    name = unique_name("missing")
    e = expect_error("ResourceNotFoundException", kinesis.describe_stream_summary, StreamName=name)
    # AWS: "Stream <name> under account <account> not found."
    assert re.fullmatch(rf"Stream {re.escape(name)} under account \d{{12}} not found\.", e.response["Error"]["Message"])


# ------------------------------------------------------------------------------------------
# DescribeStream / DescribeStreamSummary
# ------------------------------------------------------------------------------------------


def test_describe_stream_paging(kinesis):
    name = create_stream(kinesis, shards=5)
    d1 = kinesis.describe_stream(StreamName=name, Limit=2)["StreamDescription"]
    assert shard_ids(d1["Shards"]) == ["shardId-000000000000", "shardId-000000000001"]
    assert d1["HasMoreShards"] is True
    d2 = kinesis.describe_stream(StreamName=name, Limit=2, ExclusiveStartShardId=d1["Shards"][-1]["ShardId"])[
        "StreamDescription"
    ]
    assert shard_ids(d2["Shards"]) == ["shardId-000000000002", "shardId-000000000003"]
    assert d2["HasMoreShards"] is True
    d3 = kinesis.describe_stream(StreamName=name, Limit=2, ExclusiveStartShardId=d2["Shards"][-1]["ShardId"])[
        "StreamDescription"
    ]
    assert shard_ids(d3["Shards"]) == ["shardId-000000000004"]
    assert d3["HasMoreShards"] is False
    # Without a limit: everything, no more.
    d = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert len(d["Shards"]) == 5 and d["HasMoreShards"] is False
    # Exactly the limit: HasMoreShards false.
    d = kinesis.describe_stream(StreamName=name, Limit=5)["StreamDescription"]
    assert len(d["Shards"]) == 5 and d["HasMoreShards"] is False
    # Starting after the last shard: nothing.
    d = kinesis.describe_stream(StreamName=name, ExclusiveStartShardId="shardId-000000000004")["StreamDescription"]
    assert d["Shards"] == [] and d["HasMoreShards"] is False
    assert d["RetentionPeriodHours"] == 24
    assert d["EncryptionType"] == "NONE"
    assert isinstance(d["StreamCreationTimestamp"], datetime.datetime)
    assert isinstance(d["EnhancedMonitoring"], list)


def test_describe_stream_summary_fields(server, kinesis):
    before = time.time()
    name = create_stream(kinesis, shards=3)
    s = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["StreamName"] == name
    m = ARN_RE.match(s["StreamARN"])
    assert m, s["StreamARN"]
    assert m.group(1) == REGION and m.group(3) == name
    assert s["StreamARN"] == f"arn:aws:kinesis:us-east-1:{m.group(2)}:stream/{name}"
    assert s["StreamStatus"] == "ACTIVE"
    assert s["OpenShardCount"] == 3
    assert s["RetentionPeriodHours"] == 24
    assert s["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert s["EncryptionType"] == "NONE"
    assert "KeyId" not in s or s["KeyId"] is None
    assert s["ConsumerCount"] == 0
    assert isinstance(s["EnhancedMonitoring"], list)
    created = s["StreamCreationTimestamp"].timestamp()
    assert before - 5 <= created <= time.time() + 5
    # Same ARN from DescribeStream and ListStreams' summaries.
    assert kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"] == s["StreamARN"]


def test_account_id_flag_puts_account_in_arns(server_factory):
    srv = server_factory(account_id="123456789012")
    client = srv.client()
    name = create_stream(client, shards=1)
    arn = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    assert arn == f"arn:aws:kinesis:us-east-1:123456789012:stream/{name}"
    assert client.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"] == arn
    summaries = client.list_streams()["StreamSummaries"]
    assert [x["StreamARN"] for x in summaries if x["StreamName"] == name] == [arn]
    # The not-found message names the account too.
    e = expect_error("ResourceNotFoundException", client.describe_stream_summary, StreamName="nope")
    assert e.response["Error"]["Message"] == "Stream nope under account 123456789012 not found."
    # ARN-addressed calls work with that account.
    assert client.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]["StreamName"] == name


# ------------------------------------------------------------------------------------------
# ListStreams (on a server of its own, so the listing is exactly known)
# ------------------------------------------------------------------------------------------


def test_list_streams_paging(server_factory):
    srv = server_factory()
    client = srv.client()
    empty = client.list_streams()
    assert empty["StreamNames"] == [] and empty["HasMoreStreams"] is False
    names = sorted(f"ls-{i}-{unique_name('x')}" for i in range(5))
    for n in names:
        client.create_stream(StreamName=n, ShardCount=1)
    for n in names:
        wait_active(client, n)

    full = client.list_streams()
    assert full["StreamNames"] == names  # AWS lists names in lexicographic order
    assert full["HasMoreStreams"] is False
    assert [x["StreamName"] for x in full["StreamSummaries"]] == names
    for x in full["StreamSummaries"]:
        assert x["StreamARN"].endswith(":stream/" + x["StreamName"])
        assert x["StreamStatus"] == "ACTIVE"
        assert x["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
        assert isinstance(x["StreamCreationTimestamp"], datetime.datetime)

    # Limit + ExclusiveStartStreamName
    p1 = client.list_streams(Limit=2)
    assert p1["StreamNames"] == names[:2] and p1["HasMoreStreams"] is True
    assert [x["StreamName"] for x in p1["StreamSummaries"]] == names[:2]
    p2 = client.list_streams(Limit=2, ExclusiveStartStreamName=p1["StreamNames"][-1])
    assert p2["StreamNames"] == names[2:4] and p2["HasMoreStreams"] is True
    p3 = client.list_streams(Limit=2, ExclusiveStartStreamName=p2["StreamNames"][-1])
    assert p3["StreamNames"] == names[4:] and p3["HasMoreStreams"] is False
    # A start name that is not a stream: the listing continues after where it would sort.
    p = client.list_streams(ExclusiveStartStreamName=names[1] + "-")
    assert p["StreamNames"] == names[2:]
    # Exactly the limit: no more.
    p = client.list_streams(Limit=5)
    assert p["StreamNames"] == names and p["HasMoreStreams"] is False

    # NextToken paging
    got = []
    resp = client.list_streams(Limit=2)
    for _ in range(10):
        got += resp["StreamNames"]
        assert len(resp["StreamNames"]) <= 2
        if not resp["HasMoreStreams"]:
            break
        assert resp.get("NextToken"), "HasMoreStreams without a NextToken"
        resp = client.list_streams(Limit=2, NextToken=resp["NextToken"])
    assert got == names

    # boto3's paginator (which uses NextToken) sees the same.
    paged = [n for page in client.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 2}) for n in page["StreamNames"]]
    assert paged == names


# ------------------------------------------------------------------------------------------
# ListShards
# ------------------------------------------------------------------------------------------


def test_list_shards_paging_with_next_token(kinesis):
    name = create_stream(kinesis, shards=5)
    r1 = kinesis.list_shards(StreamName=name, MaxResults=2)
    assert shard_ids(r1["Shards"]) == ["shardId-000000000000", "shardId-000000000001"]
    assert r1.get("NextToken")
    r2 = kinesis.list_shards(NextToken=r1["NextToken"], MaxResults=2)
    assert shard_ids(r2["Shards"]) == ["shardId-000000000002", "shardId-000000000003"]
    assert r2.get("NextToken")
    r3 = kinesis.list_shards(NextToken=r2["NextToken"], MaxResults=2)
    assert shard_ids(r3["Shards"]) == ["shardId-000000000004"]
    assert not r3.get("NextToken")

    full = kinesis.list_shards(StreamName=name)
    assert len(full["Shards"]) == 5 and not full.get("NextToken")
    assert_even_split(full["Shards"])
    # ExclusiveStartShardId
    r = kinesis.list_shards(StreamName=name, ExclusiveStartShardId="shardId-000000000002")
    assert shard_ids(r["Shards"]) == ["shardId-000000000003", "shardId-000000000004"]


def test_list_shards_next_token_with_stream_name_is_invalid(kinesis):
    name = create_stream(kinesis, shards=3)
    r1 = kinesis.list_shards(StreamName=name, MaxResults=1)
    token = r1["NextToken"]
    expect_error("InvalidArgumentException", kinesis.list_shards, StreamName=name, NextToken=token)
    expect_error(
        "InvalidArgumentException", kinesis.list_shards, NextToken=token, ExclusiveStartShardId="shardId-000000000000"
    )


def test_list_shards_garbage_next_token_is_invalid(kinesis):
    expect_error(("InvalidArgumentException", "ExpiredNextTokenException"), kinesis.list_shards, NextToken="not-a-token")


@pytest.mark.parametrize(
    "filter_type", ["AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP", "FROM_TIMESTAMP"]
)
def test_list_shards_filters_on_unsplit_stream_return_open_shards(kinesis, filter_type):
    name = create_stream(kinesis, shards=3)
    expected = ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"]
    shard_filter = {"Type": filter_type}
    if filter_type in ("AT_TIMESTAMP", "FROM_TIMESTAMP"):
        shard_filter["Timestamp"] = datetime.datetime.now(datetime.timezone.utc)
    r = kinesis.list_shards(StreamName=name, ShardFilter=shard_filter)
    assert shard_ids(r["Shards"]) == expected
    # Paged with the filter: the token carries it.
    r1 = kinesis.list_shards(StreamName=name, ShardFilter=shard_filter, MaxResults=2)
    assert shard_ids(r1["Shards"]) == expected[:2]
    r2 = kinesis.list_shards(NextToken=r1["NextToken"], MaxResults=2)
    assert shard_ids(r2["Shards"]) == expected[2:]


def test_list_shards_filter_after_shard_id(kinesis):
    name = create_stream(kinesis, shards=3)
    r = kinesis.list_shards(StreamName=name, ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000000"})
    assert shard_ids(r["Shards"]) == ["shardId-000000000001", "shardId-000000000002"]
    r = kinesis.list_shards(StreamName=name, ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000002"})
    assert r["Shards"] == []


# ------------------------------------------------------------------------------------------
# StreamARN instead of / together with StreamName
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("addressing", ["arn", "both"])
def test_every_stream_op_accepts_stream_arn(kinesis, addressing):
    name = create_stream(kinesis, shards=2)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    ref = {"StreamARN": arn} if addressing == "arn" else {"StreamARN": arn, "StreamName": name}

    assert kinesis.describe_stream(**ref)["StreamDescription"]["StreamName"] == name
    assert kinesis.describe_stream_summary(**ref)["StreamDescriptionSummary"]["StreamName"] == name
    assert len(kinesis.list_shards(**ref)["Shards"]) == 2

    put = kinesis.put_record(Data=b"one", PartitionKey="pk", **ref)
    puts = kinesis.put_records(Records=[{"Data": b"two", "PartitionKey": "pk"}], **ref)
    assert puts["FailedRecordCount"] == 0
    it = kinesis.get_shard_iterator(ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON", **ref)["ShardIterator"]
    got = kinesis.get_records(ShardIterator=it, **({"StreamARN": arn}))["Records"]
    assert [r["Data"] for r in got] == [b"one", b"two"]

    kinesis.add_tags_to_stream(Tags={"k1": "v1", "k2": "v2"}, **ref)
    kinesis.remove_tags_from_stream(TagKeys=["k2"], **ref)
    assert kinesis.list_tags_for_stream(**ref)["Tags"] == [{"Key": "k1", "Value": "v1"}]

    kinesis.increase_stream_retention_period(RetentionPeriodHours=48, **ref)
    assert kinesis.describe_stream_summary(**ref)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 48
    kinesis.decrease_stream_retention_period(RetentionPeriodHours=24, **ref)
    assert kinesis.describe_stream_summary(**ref)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 24

    kinesis.delete_stream(**ref)
    wait_deleted(kinesis, name)


def test_unknown_stream_arn_is_not_found(kinesis):
    arn = kinesis.describe_stream_summary(StreamName=create_stream(kinesis))["StreamDescriptionSummary"]["StreamARN"]
    missing = arn.rsplit("/", 1)[0] + "/" + unique_name("missing")
    expect_error("ResourceNotFoundException", kinesis.describe_stream_summary, StreamARN=missing)


def test_stream_name_or_arn_is_required(kinesis_unvalidated):
    # Neither StreamName nor StreamARN: AWS rejects (the model cannot mark either as required).
    expect_error(
        ("InvalidArgumentException", "ValidationException"), kinesis_unvalidated.describe_stream_summary
    )


# ------------------------------------------------------------------------------------------
# Regions and accounts
# ------------------------------------------------------------------------------------------


def test_region_comes_from_the_signature(server, kinesis):
    eu = server.client(region="eu-west-1")
    name = create_stream(kinesis, shards=1)
    us_arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    assert us_arn.startswith("arn:aws:kinesis:us-east-1:")

    expect_error("ResourceNotFoundException", eu.describe_stream_summary, StreamName=name)
    assert name not in eu.list_streams()["StreamNames"]

    # The same name can exist in another region, independently.
    create_stream(eu, shards=2, name=name)
    eu_summary = eu.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert eu_summary["StreamARN"].startswith("arn:aws:kinesis:eu-west-1:")
    assert eu_summary["StreamARN"].endswith(f":stream/{name}")
    assert eu_summary["OpenShardCount"] == 2
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 1

    eu.put_record(StreamName=name, Data=b"eu-data", PartitionKey="k")
    us_shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=us_shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert kinesis.get_records(ShardIterator=it)["Records"] == [], "data written in eu-west-1 leaked into us-east-1"

    eu.delete_stream(StreamName=name)
    wait_deleted(eu, name)
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"


# ------------------------------------------------------------------------------------------
# Retention
# ------------------------------------------------------------------------------------------


def retention(client, name):
    return client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["RetentionPeriodHours"]


def test_retention_increase_and_decrease(kinesis):
    name = create_stream(kinesis)
    assert retention(kinesis, name) == 24
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    assert retention(kinesis, name) == 48
    assert kinesis.describe_stream(StreamName=name)["StreamDescription"]["RetentionPeriodHours"] == 48
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=8760)
    assert retention(kinesis, name) == 8760
    kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=168)
    assert retention(kinesis, name) == 168
    kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=24)
    assert retention(kinesis, name) == 24


def test_retention_increase_to_smaller_value_is_invalid(kinesis):
    name = create_stream(kinesis)
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=72)
    expect_error("InvalidArgumentException", kinesis.increase_stream_retention_period, StreamName=name, RetentionPeriodHours=48)
    assert retention(kinesis, name) == 72


def test_retention_decrease_to_larger_value_is_invalid(kinesis):
    name = create_stream(kinesis)
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    expect_error("InvalidArgumentException", kinesis.decrease_stream_retention_period, StreamName=name, RetentionPeriodHours=72)
    assert retention(kinesis, name) == 48


def test_retention_bounds(kinesis, kinesis_unvalidated):
    name = create_stream(kinesis)
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    # Below the 24 h minimum / above the 8760 h maximum: the current model has no min/max on
    # RetentionPeriodHours, so these are the service's own checks, InvalidArgumentException
    # ("Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is
    # too short." / "Maximum allowed retention period is 8760 hours. ..."; kinesalite recorded the
    # same type from AWS).
    short = expect_error(
        "InvalidArgumentException", kinesis.decrease_stream_retention_period, StreamName=name, RetentionPeriodHours=23
    )
    assert short.response["Error"]["Message"] == (
        "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short."
    )
    long = expect_error(
        "InvalidArgumentException", kinesis.increase_stream_retention_period, StreamName=name, RetentionPeriodHours=8761
    )
    assert long.response["Error"]["Message"] == (
        "Maximum allowed retention period is 8760 hours. Requested retention period (8761 hours) is too long."
    )
    # Zero / negative: older models had min 1 (-> ValidationException "Member must have value
    # greater than or equal to 1"); the current model has no minimum, so either type is AWS-like.
    expect_error(
        ("ValidationException", "InvalidArgumentException"),
        kinesis_unvalidated.decrease_stream_retention_period,
        StreamName=name,
        RetentionPeriodHours=0,
    )
    expect_error(
        ("ValidationException", "InvalidArgumentException"),
        kinesis_unvalidated.increase_stream_retention_period,
        StreamName=name,
        RetentionPeriodHours=-1,
    )
    assert retention(kinesis, name) == 48


def test_retention_unknown_stream(kinesis):
    expect_error(
        "ResourceNotFoundException", kinesis.increase_stream_retention_period, StreamName=unique_name("missing"), RetentionPeriodHours=48
    )


# ------------------------------------------------------------------------------------------
# Tags
# ------------------------------------------------------------------------------------------


def tags_of(client, **ref):
    resp = client.list_tags_for_stream(**ref)
    assert resp["HasMoreTags"] is False
    return {t["Key"]: t.get("Value", "") for t in resp["Tags"]}


def test_tags_add_overwrite_remove(kinesis):
    name = create_stream(kinesis)
    assert tags_of(kinesis, StreamName=name) == {}
    kinesis.add_tags_to_stream(StreamName=name, Tags={"a": "1", "b": "2", "empty": ""})
    assert tags_of(kinesis, StreamName=name) == {"a": "1", "b": "2", "empty": ""}
    kinesis.add_tags_to_stream(StreamName=name, Tags={"a": "3", "c": "4"})
    assert tags_of(kinesis, StreamName=name) == {"a": "3", "b": "2", "c": "4", "empty": ""}
    # Removing a key that is not there is ignored.
    kinesis.remove_tags_from_stream(StreamName=name, TagKeys=["b", "no-such-key"])
    assert tags_of(kinesis, StreamName=name) == {"a": "3", "c": "4", "empty": ""}
    kinesis.remove_tags_from_stream(StreamName=name, TagKeys=["a", "c", "empty"])
    assert tags_of(kinesis, StreamName=name) == {}


def test_tags_listed_in_key_order(kinesis):
    name = create_stream(kinesis)
    keys = ["zeta", "Alpha", "_under", "0digit", "beta", "b"]
    kinesis.add_tags_to_stream(StreamName=name, Tags={k: k.upper() for k in keys})
    listed = kinesis.list_tags_for_stream(StreamName=name)["Tags"]
    assert [t["Key"] for t in listed] == sorted(keys)
    assert all(t["Value"] == t["Key"].upper() for t in listed)


def test_more_than_50_tags_is_rejected(kinesis, kinesis_unvalidated):
    name = create_stream(kinesis)
    kinesis.add_tags_to_stream(StreamName=name, Tags={f"k{i:02d}": "v" for i in range(40)})
    # 40 existing + 11 new = 51 > 50. AWS rejects the request as a whole (kinesalite recorded
    # InvalidArgumentException "... a given stream cannot have more than N tags associated with
    # it."; the operation also lists LimitExceededException, so accept either).
    expect_error(
        ("InvalidArgumentException", "LimitExceededException"),
        kinesis.add_tags_to_stream,
        StreamName=name,
        Tags={f"n{i:02d}": "v" for i in range(11)},
    )
    assert len(tags_of(kinesis, StreamName=name)) == 40, "a rejected AddTagsToStream must add nothing"
    # Overwriting existing keys does not count as new tags: 40 + 10 = 50 is fine.
    kinesis.add_tags_to_stream(StreamName=name, Tags={**{f"k{i:02d}": "w" for i in range(40)}, **{f"n{i:02d}": "v" for i in range(10)}})
    t = tags_of(kinesis, StreamName=name)
    assert len(t) == 50 and t["k00"] == "w"
    expect_error(
        ("InvalidArgumentException", "LimitExceededException"), kinesis.add_tags_to_stream, StreamName=name, Tags={"one-more": "v"}
    )
    # 51 tags in a single request on a fresh stream.
    name2 = create_stream(kinesis)
    expect_error(
        ("InvalidArgumentException", "LimitExceededException", "ValidationException"),
        kinesis_unvalidated.add_tags_to_stream,
        StreamName=name2,
        Tags={f"x{i:02d}": "v" for i in range(51)},
    )
    assert tags_of(kinesis, StreamName=name2) == {}


def test_list_tags_for_stream_paging(kinesis):
    name = create_stream(kinesis)
    keys = [f"key{i:02d}" for i in range(7)]
    kinesis.add_tags_to_stream(StreamName=name, Tags={k: f"v-{k}" for k in keys})
    p1 = kinesis.list_tags_for_stream(StreamName=name, Limit=3)
    assert [t["Key"] for t in p1["Tags"]] == keys[:3] and p1["HasMoreTags"] is True
    p2 = kinesis.list_tags_for_stream(StreamName=name, Limit=3, ExclusiveStartTagKey=p1["Tags"][-1]["Key"])
    assert [t["Key"] for t in p2["Tags"]] == keys[3:6] and p2["HasMoreTags"] is True
    p3 = kinesis.list_tags_for_stream(StreamName=name, Limit=3, ExclusiveStartTagKey=p2["Tags"][-1]["Key"])
    assert [t["Key"] for t in p3["Tags"]] == keys[6:] and p3["HasMoreTags"] is False
    assert all(t["Value"] == f"v-{t['Key']}" for t in p1["Tags"] + p2["Tags"] + p3["Tags"])
    p = kinesis.list_tags_for_stream(StreamName=name, Limit=7)
    assert len(p["Tags"]) == 7 and p["HasMoreTags"] is False
    p = kinesis.list_tags_for_stream(StreamName=name, ExclusiveStartTagKey="zzz")
    assert p["Tags"] == [] and p["HasMoreTags"] is False


def test_tag_resource_by_stream_arn(kinesis):
    name = create_stream(kinesis)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    kinesis.tag_resource(ResourceARN=arn, Tags={"owner": "me", "tier": "gold"})
    tags = kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"owner": "me", "tier": "gold"}
    # The same tags through the stream API.
    assert tags_of(kinesis, StreamName=name) == {"owner": "me", "tier": "gold"}
    kinesis.tag_resource(ResourceARN=arn, Tags={"owner": "you"})
    kinesis.untag_resource(ResourceARN=arn, TagKeys=["tier", "absent"])
    tags = kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"owner": "you"}
    missing = arn.rsplit("/", 1)[0] + "/" + unique_name("missing")
    expect_error("ResourceNotFoundException", kinesis.list_tags_for_resource, ResourceARN=missing)


def test_tags_unknown_stream(kinesis):
    expect_error("ResourceNotFoundException", kinesis.add_tags_to_stream, StreamName=unique_name("missing"), Tags={"a": "b"})
    expect_error("ResourceNotFoundException", kinesis.list_tags_for_stream, StreamName=unique_name("missing"))


# ------------------------------------------------------------------------------------------
# DescribeLimits (on a server of its own, so the counts are exactly known)
# ------------------------------------------------------------------------------------------


def test_describe_limits(server_factory):
    srv = server_factory()
    client = srv.client()
    base = client.describe_limits()
    assert base["OpenShardCount"] == 0
    assert base["OnDemandStreamCount"] == 0
    assert isinstance(base["ShardLimit"], int) and base["ShardLimit"] > 0
    assert isinstance(base["OnDemandStreamCountLimit"], int) and base["OnDemandStreamCountLimit"] > 0

    create_stream(client, shards=3)
    create_stream(client, shards=2)
    # DescribeLimits is limited to 1 TPS on AWS: poll gently.
    lim = poll(
        lambda: (lambda r: r if r["OpenShardCount"] == 5 else None)(client.describe_limits()),
        timeout=20,
        interval=1.0,
        what="OpenShardCount == 5",
    )
    assert lim["OnDemandStreamCount"] == 0

    od = unique_name("od")
    client.create_stream(StreamName=od, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(client, od)
    lim = poll(
        lambda: (lambda r: r if r["OnDemandStreamCount"] == 1 else None)(client.describe_limits()),
        timeout=20,
        interval=1.0,
        what="OnDemandStreamCount == 1",
    )
    open_od = client.describe_stream_summary(StreamName=od)["StreamDescriptionSummary"]["OpenShardCount"]
    assert lim["OpenShardCount"] == 5 + open_od

    # Other regions are counted separately.
    eu = srv.client(region="eu-west-1")
    assert eu.describe_limits()["OpenShardCount"] == 0
