"""The user's AWS CLI walkthrough (shared/seeds), run with the real `aws` CLI against Kinesin.

Deviations from the document, because the document uses commands the CLI does not have:
- `aws kinesis update-stream --retention-period-hours 168` does not exist; the CLI command is
  `increase-stream-retention-period`.
- `create-stream --stream-encryption Enabled=true,KeyType=AWS_OWNED_CMK` does not exist either
  (encryption is `start-stream-encryption` after creation); that step is left out.

The module has a server of its own, so the document's fixed stream names are safe to use.
"""

import base64

import pytest

from conftest import MAX_HASH_KEY, aws_cli, aws_cli_major_version


@pytest.fixture(scope="module")
def cli_version():
    return aws_cli_major_version()


def binary_args(cli_version):
    # CLI v1 sends a blob argument's text as the raw bytes; CLI v2 by default expects base64
    # unless told otherwise.
    return ["--cli-binary-format", "raw-in-base64-out"] if cli_version >= 2 else []


def records_data(get_records_output):
    return [base64.b64decode(r["Data"]) for r in get_records_output["Records"]]


def test_walkthrough_my_stream(server, cli_version):
    # Step 1: create a stream.
    out = aws_cli(server, "kinesis", "create-stream", "--stream-name", "MyStream", "--shard-count", "1")
    assert out is None  # CreateStream returns an empty body: the CLI prints nothing.
    aws_cli(server, "kinesis", "wait", "stream-exists", "--stream-name", "MyStream")

    # Step 2: retention 168 h (the document's `update-stream` is not a CLI command).
    aws_cli(
        server, "kinesis", "increase-stream-retention-period", "--stream-name", "MyStream", "--retention-period-hours", "168"
    )
    desc = aws_cli(server, "kinesis", "describe-stream", "--stream-name", "MyStream")["StreamDescription"]
    assert desc["StreamName"] == "MyStream"
    assert desc["StreamStatus"] == "ACTIVE"
    assert desc["RetentionPeriodHours"] == 168
    assert [s["ShardId"] for s in desc["Shards"]] == ["shardId-000000000000"]
    assert desc["Shards"][0]["HashKeyRange"] == {"StartingHashKey": "0", "EndingHashKey": str(MAX_HASH_KEY)}
    assert desc["StreamARN"].endswith(":stream/MyStream")

    summary = aws_cli(server, "kinesis", "describe-stream-summary", "--stream-name", "MyStream")
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 1

    # LATEST taken before the write sees it; TRIM_HORIZON sees it too.
    latest = aws_cli(
        server,
        "kinesis", "get-shard-iterator",
        "--stream-name", "MyStream",
        "--shard-id", "shardId-000000000000",
        "--shard-iterator-type", "LATEST",
    )["ShardIterator"]

    put = aws_cli(
        server,
        "kinesis", "put-record",
        "--stream-name", "MyStream",
        "--data", "exampleData",
        "--partition-key", "partitionKey",
        *binary_args(cli_version),
    )
    assert put["ShardId"] == "shardId-000000000000"
    assert put["SequenceNumber"].isdigit()

    got = aws_cli(server, "kinesis", "get-records", "--shard-iterator", latest)
    assert records_data(got) == [b"exampleData"]
    assert got["Records"][0]["PartitionKey"] == "partitionKey"
    assert got["Records"][0]["SequenceNumber"] == put["SequenceNumber"]
    assert got["NextShardIterator"]
    assert got["MillisBehindLatest"] == 0

    trim = aws_cli(
        server,
        "kinesis", "get-shard-iterator",
        "--stream-name", "MyStream",
        "--shard-id", "shardId-000000000000",
        "--shard-iterator-type", "TRIM_HORIZON",
    )["ShardIterator"]
    got = aws_cli(server, "kinesis", "get-records", "--shard-iterator", trim)
    assert records_data(got) == [b"exampleData"]

    # A LATEST iterator taken after the write sees nothing.
    latest_after = aws_cli(
        server,
        "kinesis", "get-shard-iterator",
        "--stream-name", "MyStream",
        "--shard-id", "shardId-000000000000",
        "--shard-iterator-type", "LATEST",
    )["ShardIterator"]
    assert aws_cli(server, "kinesis", "get-records", "--shard-iterator", latest_after)["Records"] == []

    # An error comes back as a non-zero exit with the AWS error code on stderr.
    res = aws_cli(server, "kinesis", "describe-stream", "--stream-name", "NoSuchStream", check=False)
    assert res.returncode != 0
    assert "ResourceNotFoundException" in res.stderr


def test_walkthrough_example_stream(server, cli_version):
    aws_cli(server, "kinesis", "create-stream", "--stream-name", "ExampleStream", "--shard-count", "2")
    aws_cli(server, "kinesis", "wait", "stream-exists", "--stream-name", "ExampleStream")

    put = aws_cli(
        server,
        "kinesis", "put-record",
        "--stream-name", "ExampleStream",
        "--data", "exampleData",
        "--partition-key", "partitionKey",
        *binary_args(cli_version),
    )
    shard_ids = [
        s["ShardId"] for s in aws_cli(server, "kinesis", "list-shards", "--stream-name", "ExampleStream")["Shards"]
    ]
    assert shard_ids == ["shardId-000000000000", "shardId-000000000001"]
    assert put["ShardId"] in shard_ids

    # The document reads shardId-000000000000 with LATEST; read the shard the record went to
    # from TRIM_HORIZON so the data can be checked.
    it = aws_cli(
        server,
        "kinesis", "get-shard-iterator",
        "--stream-name", "ExampleStream",
        "--shard-id", put["ShardId"],
        "--shard-iterator-type", "TRIM_HORIZON",
    )["ShardIterator"]
    assert records_data(aws_cli(server, "kinesis", "get-records", "--shard-iterator", it)) == [b"exampleData"]

    it = aws_cli(
        server,
        "kinesis", "get-shard-iterator",
        "--stream-name", "ExampleStream",
        "--shard-id", "shardId-000000000000",
        "--shard-iterator-type", "LATEST",
    )["ShardIterator"]
    assert aws_cli(server, "kinesis", "get-records", "--shard-iterator", it)["Records"] == []

    listed = aws_cli(server, "kinesis", "list-streams")
    assert "ExampleStream" in listed["StreamNames"]
    assert [s["StreamName"] for s in listed.get("StreamSummaries", [])] == listed["StreamNames"]


def test_walkthrough_split_and_merge(server, cli_version):
    """The document's shard management: describe the stream, split shardId-000000000000 at hash key
    276, then merge the two children (shardId-000000000001 and shardId-000000000002). Its stream
    MyStream belongs to the first walkthrough here, so this one has a stream of its own."""
    name = "ReshardStream"

    def describe():
        desc = aws_cli(server, "kinesis", "describe-stream", "--stream-name", name)["StreamDescription"]
        return desc, {s["ShardId"]: s for s in desc["Shards"]}

    def put(hash_key):
        return aws_cli(
            server,
            "kinesis", "put-record",
            "--stream-name", name,
            "--data", f"at-{hash_key}",
            "--partition-key", "partitionKey",
            "--explicit-hash-key", str(hash_key),
            *binary_args(cli_version),
        )

    aws_cli(server, "kinesis", "create-stream", "--stream-name", name, "--shard-count", "1")
    aws_cli(server, "kinesis", "wait", "stream-exists", "--stream-name", name)
    desc, shards = describe()
    assert list(shards) == ["shardId-000000000000"]
    assert shards["shardId-000000000000"]["HashKeyRange"] == {"StartingHashKey": "0", "EndingHashKey": str(MAX_HASH_KEY)}
    before = put(276)
    assert before["ShardId"] == "shardId-000000000000"

    # Split at 276: the parent closes, its children split [0, MAX] at 276.
    out = aws_cli(
        server,
        "kinesis", "split-shard",
        "--stream-name", name,
        "--shard-to-split", "shardId-000000000000",
        "--new-starting-hash-key", "276",
    )
    assert out is None  # SplitShard answers an empty body.
    aws_cli(server, "kinesis", "wait", "stream-exists", "--stream-name", name)
    desc, shards = describe()
    assert desc["StreamStatus"] == "ACTIVE"
    assert list(shards) == ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"]
    parent = shards["shardId-000000000000"]["SequenceNumberRange"]
    assert int(parent["EndingSequenceNumber"]) >= int(before["SequenceNumber"])
    assert shards["shardId-000000000001"]["ParentShardId"] == "shardId-000000000000"
    assert shards["shardId-000000000001"]["HashKeyRange"] == {"StartingHashKey": "0", "EndingHashKey": "275"}
    assert shards["shardId-000000000002"]["ParentShardId"] == "shardId-000000000000"
    assert shards["shardId-000000000002"]["HashKeyRange"] == {"StartingHashKey": "276", "EndingHashKey": str(MAX_HASH_KEY)}
    for child in ("shardId-000000000001", "shardId-000000000002"):
        assert "AdjacentParentShardId" not in shards[child]
        assert "EndingSequenceNumber" not in shards[child]["SequenceNumberRange"]
        assert int(shards[child]["SequenceNumberRange"]["StartingSequenceNumber"]) > int(parent["EndingSequenceNumber"])
    assert put(275)["ShardId"] == "shardId-000000000001"
    assert put(276)["ShardId"] == "shardId-000000000002"
    summary = aws_cli(server, "kinesis", "describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2

    # Merge the two children back into one shard covering [0, MAX].
    out = aws_cli(
        server,
        "kinesis", "merge-shards",
        "--stream-name", name,
        "--shard-to-merge", "shardId-000000000001",
        "--adjacent-shard-to-merge", "shardId-000000000002",
    )
    assert out is None  # MergeShards answers an empty body.
    aws_cli(server, "kinesis", "wait", "stream-exists", "--stream-name", name)
    desc, shards = describe()
    assert desc["StreamStatus"] == "ACTIVE"
    assert list(shards) == [f"shardId-00000000000{i}" for i in range(4)]
    merged = shards["shardId-000000000003"]
    assert merged["ParentShardId"] == "shardId-000000000001"
    assert merged["AdjacentParentShardId"] == "shardId-000000000002"
    assert merged["HashKeyRange"] == {"StartingHashKey": "0", "EndingHashKey": str(MAX_HASH_KEY)}
    assert "EndingSequenceNumber" not in merged["SequenceNumberRange"]
    for closed in ("shardId-000000000000", "shardId-000000000001", "shardId-000000000002"):
        assert "EndingSequenceNumber" in shards[closed]["SequenceNumberRange"], shards[closed]
    assert put(0)["ShardId"] == "shardId-000000000003"
    latest = aws_cli(server, "kinesis", "list-shards", "--stream-name", name, "--shard-filter", "Type=AT_LATEST")["Shards"]
    assert [s["ShardId"] for s in latest] == ["shardId-000000000003"]
