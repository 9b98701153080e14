"""Enhanced fan-out consumers: RegisterStreamConsumer, DescribeStreamConsumer, ListStreamConsumers,
DeregisterStreamConsumer, their limits, their tags and policies, and how they go with their stream.
The tests share one server per module and use their own streams."""

import datetime
import json
import re
import time

import botocore.exceptions

from conftest import aws_cli, create_stream, error_code, expect_error, poll, unique_name, wait_deleted
from test_cluster import start_cluster
from test_stream_settings import POLICY, stream_arn


def new_stream(client):
    """A fresh ACTIVE stream: (name, ARN)."""
    name = create_stream(client)
    return name, stream_arn(client, name)


def consumer_status(client, consumer_arn):
    """The consumer's status, or None once it is gone."""
    try:
        return client.describe_stream_consumer(ConsumerARN=consumer_arn)["ConsumerDescription"]["ConsumerStatus"]
    except botocore.exceptions.ClientError as e:
        if error_code(e) == "ResourceNotFoundException":
            return None
        raise


def wait_consumer_active(client, consumer_arn, timeout=30.0):
    """Poll DescribeStreamConsumer until the consumer is ACTIVE, as the KCL does."""
    poll(lambda: consumer_status(client, consumer_arn) == "ACTIVE", timeout=timeout, what=f"{consumer_arn} ACTIVE")


def wait_consumer_gone(client, consumer_arn, timeout=30.0):
    poll(lambda: consumer_status(client, consumer_arn) is None, timeout=timeout, what=f"{consumer_arn} removed")


def register(client, arn, name=None, **kwargs):
    """Register a consumer and return its `Consumer` description (still CREATING)."""
    return client.register_stream_consumer(StreamARN=arn, ConsumerName=name or unique_name("c"), **kwargs)["Consumer"]


def register_active(client, arn, name=None, **kwargs):
    consumer = register(client, arn, name, **kwargs)
    wait_consumer_active(client, consumer["ConsumerARN"])
    return consumer


def list_all_consumers(client, arn, max_results=None):
    """Every page of ListStreamConsumers, following NextToken (bounded)."""
    kwargs = {"StreamARN": arn}
    if max_results is not None:
        kwargs["MaxResults"] = max_results
    pages = [client.list_stream_consumers(**kwargs)]
    for _ in range(1000):
        token = pages[-1].get("NextToken")
        if not token:
            return pages
        pages.append(client.list_stream_consumers(NextToken=token, **kwargs))
    raise AssertionError("ListStreamConsumers never stopped returning NextToken")


def message(exc):
    return exc.response["Error"]["Message"]


def account_of(arn):
    return arn.split(":")[4]


# ------------------------------------------------------------------------------------------
# Lifecycle
# ------------------------------------------------------------------------------------------


def test_register_describe_both_ways_and_deregister(kinesis):
    name, arn = new_stream(kinesis)
    before = time.time()
    consumer = register(kinesis, arn, "app-1")
    assert consumer["ConsumerName"] == "app-1"
    assert consumer["ConsumerStatus"] == "CREATING"
    created = consumer["ConsumerCreationTimestamp"]
    assert isinstance(created, datetime.datetime)
    assert before - 2 <= created.timestamp() <= time.time() + 2
    # AWS's format: the stream's ARN, /consumer/<name>, :<creation time in epoch seconds>.
    match = re.fullmatch(re.escape(arn) + r"/consumer/app-1:(\d+)", consumer["ConsumerARN"])
    assert match, consumer["ConsumerARN"]
    assert int(match.group(1)) == int(created.timestamp())

    wait_consumer_active(kinesis, consumer["ConsumerARN"])
    by_arn = kinesis.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])["ConsumerDescription"]
    by_name = kinesis.describe_stream_consumer(StreamARN=arn, ConsumerName="app-1")["ConsumerDescription"]
    by_all = kinesis.describe_stream_consumer(
        StreamARN=arn, ConsumerName="app-1", ConsumerARN=consumer["ConsumerARN"]
    )["ConsumerDescription"]
    assert by_arn == by_name == by_all
    assert by_arn == {
        "ConsumerName": "app-1",
        "ConsumerARN": consumer["ConsumerARN"],
        "ConsumerStatus": "ACTIVE",
        "ConsumerCreationTimestamp": created,
        "StreamARN": arn,
    }

    kinesis.deregister_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
    assert consumer_status(kinesis, consumer["ConsumerARN"]) in ("DELETING", None)
    wait_consumer_gone(kinesis, consumer["ConsumerARN"])
    assert kinesis.list_stream_consumers(StreamARN=arn)["Consumers"] == []
    expect_error(
        "ResourceNotFoundException", kinesis.describe_stream_consumer, StreamARN=arn, ConsumerName="app-1"
    )


def test_deregister_by_stream_and_name(kinesis):
    _, arn = new_stream(kinesis)
    consumer = register_active(kinesis, arn, "by-name")
    kinesis.deregister_stream_consumer(StreamARN=arn, ConsumerName="by-name")
    wait_consumer_gone(kinesis, consumer["ConsumerARN"])


def test_a_consumer_must_be_named_by_arn_or_by_stream_and_name(kinesis):
    _, arn = new_stream(kinesis)
    consumer = register_active(kinesis, arn, "named")
    for kwargs in ({}, {"ConsumerName": "named"}, {"StreamARN": arn}):
        e = expect_error("InvalidArgumentException", kinesis.describe_stream_consumer, **kwargs)
        assert message(e) == "ConsumerARN or both ConsumerName and StreamARN are required for this request."
        expect_error("InvalidArgumentException", kinesis.deregister_stream_consumer, **kwargs)
    # All three are fine as long as they agree.
    _, other_arn = new_stream(kinesis)
    for kwargs in ({"StreamARN": other_arn}, {"ConsumerName": "someone-else"}):
        expect_error(
            "InvalidArgumentException",
            kinesis.describe_stream_consumer,
            ConsumerARN=consumer["ConsumerARN"],
            **kwargs,
        )
    assert consumer_status(kinesis, consumer["ConsumerARN"]) == "ACTIVE"


def test_duplicate_consumer_name_is_in_use(kinesis):
    name, arn = new_stream(kinesis)
    register(kinesis, arn, "twice")
    e = expect_error("ResourceInUseException", kinesis.register_stream_consumer, StreamARN=arn, ConsumerName="twice")
    assert message(e) == f"Consumer twice under stream {name} and account {account_of(arn)} already exists."
    # Names are per stream.
    _, other = new_stream(kinesis)
    register(kinesis, other, "twice")


def test_unknown_consumers_and_streams_are_not_found(kinesis, kinesis_unvalidated):
    name, arn = new_stream(kinesis)
    missing = f"{arn}/consumer/ghost:1700000000"
    e = expect_error("ResourceNotFoundException", kinesis.describe_stream_consumer, ConsumerARN=missing)
    assert message(e) == (
        f"Consumer ghost with creation timestamp 1700000000 under stream {name} "
        f"and account {account_of(arn)} not found."
    )
    expect_error("ResourceNotFoundException", kinesis.deregister_stream_consumer, ConsumerARN=missing)
    e = expect_error("ResourceNotFoundException", kinesis.describe_stream_consumer, StreamARN=arn, ConsumerName="ghost")
    assert message(e) == f"Consumer ghost under stream {name} and account {account_of(arn)} not found."

    # A consumer ARN of an earlier registration under the same name names nothing.
    consumer = register_active(kinesis, arn, "again")
    secs = int(consumer["ConsumerARN"].rsplit(":", 1)[1])
    stale = f"{arn}/consumer/again:{secs - 1}"
    expect_error("ResourceNotFoundException", kinesis.describe_stream_consumer, ConsumerARN=stale)

    gone_stream = arn.rsplit("/", 1)[0] + "/" + unique_name("nostream")
    e = expect_error("ResourceNotFoundException", kinesis.register_stream_consumer, StreamARN=gone_stream, ConsumerName="c")
    assert message(e).startswith("Stream nostream-")
    expect_error("ResourceNotFoundException", kinesis.list_stream_consumers, StreamARN=gone_stream)
    e = expect_error(
        "ResourceNotFoundException", kinesis.describe_stream_consumer, StreamARN=gone_stream, ConsumerName="c"
    )
    assert message(e).startswith("Stream nostream-")

    expect_error(
        "ValidationException", kinesis_unvalidated.describe_stream_consumer, ConsumerARN="arn:aws:kinesis:nope"
    )
    expect_error(
        "ValidationException",
        kinesis_unvalidated.register_stream_consumer,
        StreamARN=arn,
        ConsumerName="bad name!",
    )
    expect_error(
        "ValidationException", kinesis_unvalidated.register_stream_consumer, StreamARN=arn, ConsumerName="x" * 129
    )


# ------------------------------------------------------------------------------------------
# Listing
# ------------------------------------------------------------------------------------------


def test_list_stream_consumers_pages_with_next_token(kinesis, kinesis_unvalidated):
    name, arn = new_stream(kinesis)
    assert kinesis.list_stream_consumers(StreamARN=arn)["Consumers"] == []
    names = [f"c{i}" for i in range(4)]
    registered = {n: register(kinesis, arn, n) for n in names}

    pages = list_all_consumers(kinesis, arn, max_results=1)
    assert len(pages) == 4
    assert all(len(p["Consumers"]) == 1 for p in pages)
    assert "NextToken" not in pages[-1]
    listed = [c for p in pages for c in p["Consumers"]]
    assert [c["ConsumerName"] for c in listed] == names
    for c in listed:
        assert c["ConsumerARN"] == registered[c["ConsumerName"]]["ConsumerARN"]
        assert c["ConsumerStatus"] in ("CREATING", "ACTIVE")
        assert c["ConsumerCreationTimestamp"] == registered[c["ConsumerName"]]["ConsumerCreationTimestamp"]

    pages = list_all_consumers(kinesis, arn, max_results=3)
    assert [len(p["Consumers"]) for p in pages] == [3, 1]
    whole = kinesis.list_stream_consumers(StreamARN=arn)
    assert len(whole["Consumers"]) == 4 and "NextToken" not in whole

    # The stream's creation time tells it from an earlier stream of the same name.
    created = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamCreationTimestamp"]
    same = kinesis.list_stream_consumers(StreamARN=arn, StreamCreationTimestamp=created)
    assert len(same["Consumers"]) == 4
    earlier = created - datetime.timedelta(days=1)
    expect_error("ResourceNotFoundException", kinesis.list_stream_consumers, StreamARN=arn, StreamCreationTimestamp=earlier)

    token = kinesis.list_stream_consumers(StreamARN=arn, MaxResults=1)["NextToken"]
    expect_error(
        "InvalidArgumentException",
        kinesis.list_stream_consumers,
        StreamARN=arn,
        NextToken=token,
        StreamCreationTimestamp=created,
    )
    _, other = new_stream(kinesis)
    expect_error("InvalidArgumentException", kinesis.list_stream_consumers, StreamARN=other, NextToken=token)
    expect_error("InvalidArgumentException", kinesis.list_stream_consumers, StreamARN=arn, NextToken="garbage")
    for bad in (0, 10001):
        expect_error("ValidationException", kinesis_unvalidated.list_stream_consumers, StreamARN=arn, MaxResults=bad)


def test_list_answers_at_most_a_hundred(kinesis):
    """MaxResults above 100 still pages by 100 (AWS's documented cap); with 4 consumers nothing
    pages at all."""
    _, arn = new_stream(kinesis)
    for i in range(4):
        register(kinesis, arn, f"x{i}")
    resp = kinesis.list_stream_consumers(StreamARN=arn, MaxResults=10000)
    assert len(resp["Consumers"]) == 4 and "NextToken" not in resp


# ------------------------------------------------------------------------------------------
# Limits
# ------------------------------------------------------------------------------------------


def register_many(client, arn, count, prefix="c"):
    """Register `count` consumers, at most 5 in CREATING at a time (AWS's limit)."""
    consumers = []
    for start in range(0, count, 5):
        batch = [register(client, arn, f"{prefix}{i:02d}") for i in range(start, min(start + 5, count))]
        for c in batch:
            wait_consumer_active(client, c["ConsumerARN"])
        consumers += batch
    return consumers


def test_twenty_consumers_per_stream_by_default(kinesis):
    name, arn = new_stream(kinesis)
    consumers = register_many(kinesis, arn, 20)
    e = expect_error("LimitExceededException", kinesis.register_stream_consumer, StreamARN=arn, ConsumerName="c20")
    assert message(e) == (
        f"This request would exceed the limit of 20 consumers registered with stream {name} "
        f"under account {account_of(arn)}."
    )
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["ConsumerCount"] == 20
    # A slot frees once a consumer is gone.
    kinesis.deregister_stream_consumer(ConsumerARN=consumers[0]["ConsumerARN"])
    wait_consumer_gone(kinesis, consumers[0]["ConsumerARN"])
    register(kinesis, arn, "c20")


def test_the_consumer_limit_is_configurable(server_factory):
    small = server_factory(extra_args=["--max-consumers-per-stream", "2"])
    client = small.client()
    name, arn = new_stream(client)
    register(client, arn, "a")
    register(client, arn, "b")
    e = expect_error("LimitExceededException", client.register_stream_consumer, StreamARN=arn, ConsumerName="c")
    assert "limit of 2 consumers registered with stream" in message(e)


# ------------------------------------------------------------------------------------------
# Deleting the stream
# ------------------------------------------------------------------------------------------


def test_delete_stream_with_consumers_needs_enforce_consumer_deletion(kinesis):
    name, arn = new_stream(kinesis)
    consumer = register_active(kinesis, arn, "holder")
    e = expect_error("ResourceInUseException", kinesis.delete_stream, StreamName=name)
    assert message(e) == (
        f"DeleteStream can't delete {arn} because there are consumers associated with this data stream. "
        f"To delete {name} anyway, set the EnforceConsumerDeletion parameter to true to force the deletion "
        "of all the consumers that are associated with it."
    )
    expect_error("ResourceInUseException", kinesis.delete_stream, StreamName=name, EnforceConsumerDeletion=False)
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    assert consumer_status(kinesis, consumer["ConsumerARN"]) == "ACTIVE"

    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    wait_deleted(kinesis, name)
    assert consumer_status(kinesis, consumer["ConsumerARN"]) is None
    # A new stream of the same name starts without consumers.
    create_stream(kinesis, name=name)
    assert kinesis.list_stream_consumers(StreamARN=arn)["Consumers"] == []


def test_a_stream_whose_consumers_are_gone_deletes_without_enforcement(kinesis):
    name, arn = new_stream(kinesis)
    consumer = register_active(kinesis, arn)
    kinesis.deregister_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
    wait_consumer_gone(kinesis, consumer["ConsumerARN"])
    kinesis.delete_stream(StreamName=name)
    wait_deleted(kinesis, name)


# ------------------------------------------------------------------------------------------
# Tags, policies, counts
# ------------------------------------------------------------------------------------------


def test_tags_on_a_consumer(kinesis):
    name, arn = new_stream(kinesis)
    consumer = register(kinesis, arn, "tagged", Tags={"team": "data"})
    carn = consumer["ConsumerARN"]
    assert kinesis.list_tags_for_resource(ResourceARN=carn)["Tags"] == [{"Key": "team", "Value": "data"}]
    kinesis.tag_resource(ResourceARN=carn, Tags={"env": "test", "team": "platform"})
    tags = {t["Key"]: t["Value"] for t in kinesis.list_tags_for_resource(ResourceARN=carn)["Tags"]}
    assert tags == {"env": "test", "team": "platform"}
    kinesis.untag_resource(ResourceARN=carn, TagKeys=["env"])
    assert kinesis.list_tags_for_resource(ResourceARN=carn)["Tags"] == [{"Key": "team", "Value": "platform"}]
    # The stream's own tags are apart from its consumers'.
    assert kinesis.list_tags_for_stream(StreamName=name)["Tags"] == []
    assert kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"] == []
    too_many = {f"k{i}": "v" for i in range(50)}
    expect_error("InvalidArgumentException", kinesis.tag_resource, ResourceARN=carn, Tags=too_many)
    expect_error(
        "ResourceNotFoundException", kinesis.list_tags_for_resource, ResourceARN=f"{arn}/consumer/ghost:1700000000"
    )


def test_resource_policy_on_a_consumer(kinesis):
    _, arn = new_stream(kinesis)
    consumer = register_active(kinesis, arn, "governed")
    carn = consumer["ConsumerARN"]
    assert kinesis.get_resource_policy(ResourceARN=carn)["Policy"] == "{}"
    kinesis.put_resource_policy(ResourceARN=carn, Policy=POLICY)
    assert json.loads(kinesis.get_resource_policy(ResourceARN=carn)["Policy"]) == json.loads(POLICY)
    assert kinesis.get_resource_policy(ResourceARN=arn)["Policy"] == "{}", "the stream's policy is apart"
    kinesis.delete_resource_policy(ResourceARN=carn)
    assert kinesis.get_resource_policy(ResourceARN=carn)["Policy"] == "{}"


def test_consumer_count(kinesis):
    name, arn = new_stream(kinesis)

    def count():
        return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["ConsumerCount"]

    assert count() == 0
    first = register(kinesis, arn)
    register(kinesis, arn)
    assert count() == 2
    kinesis.deregister_stream_consumer(ConsumerARN=first["ConsumerARN"])
    wait_consumer_gone(kinesis, first["ConsumerARN"])
    assert count() == 1


# ------------------------------------------------------------------------------------------
# A cluster
# ------------------------------------------------------------------------------------------


def test_consumers_are_replicated_cluster_metadata(tmp_path):
    """Registered through one node, activated by the controller's leader, seen and deregistered
    through the others."""
    servers = start_cluster(tmp_path)
    try:
        first, second, third = (s.client() for s in servers)
        _, arn = new_stream(first)
        consumer = register(third, arn, "everywhere")
        wait_consumer_active(second, consumer["ConsumerARN"])
        assert [c["ConsumerName"] for c in first.list_stream_consumers(StreamARN=arn)["Consumers"]] == ["everywhere"]
        first.deregister_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
        wait_consumer_gone(third, consumer["ConsumerARN"])
    finally:
        for s in servers:
            s.cleanup()


# ------------------------------------------------------------------------------------------
# The AWS CLI
# ------------------------------------------------------------------------------------------


def test_aws_cli_registers_describes_and_deregisters_a_consumer(server, kinesis):
    _, arn = new_stream(kinesis)
    out = aws_cli(server, "kinesis", "register-stream-consumer", "--stream-arn", arn, "--consumer-name", "cli-app")
    consumer = out["Consumer"]
    assert consumer["ConsumerName"] == "cli-app"
    assert consumer["ConsumerStatus"] == "CREATING"
    assert consumer["ConsumerARN"].startswith(f"{arn}/consumer/cli-app:")

    def described():
        out = aws_cli(server, "kinesis", "describe-stream-consumer", "--consumer-arn", consumer["ConsumerARN"])
        return out["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE"

    poll(described, timeout=60, what="the consumer ACTIVE through the CLI")
    listed = aws_cli(server, "kinesis", "list-stream-consumers", "--stream-arn", arn)
    assert [c["ConsumerName"] for c in listed["Consumers"]] == ["cli-app"]
    aws_cli(server, "kinesis", "deregister-stream-consumer", "--consumer-arn", consumer["ConsumerARN"])
    wait_consumer_gone(kinesis, consumer["ConsumerARN"])
