"""Account settings (DescribeAccountSettings, UpdateAccountSettings: the minimum throughput billing
commitment) and the warm throughput of on-demand streams that it unlocks
(UpdateStreamWarmThroughput, CreateStream's and UpdateStreamMode's WarmThroughputMiBps,
DescribeStreamSummary's WarmThroughput).

Account settings belong to an account in a region, so each test works in a region of its own on
the module's shared server."""

import datetime
import time
import zlib

import pytest

from conftest import create_stream, expect_error, poll, unique_name, wait_active

DAY = datetime.timedelta(hours=24)
ON_DEMAND = {"StreamMode": "ON_DEMAND"}


@pytest.fixture
def regional(server, request):
    """A client in a region no other test uses (tests are named differently)."""
    region = f"xx-{zlib.crc32(request.node.name.encode())}-1"
    return server.client(region=region)


def commitment(client):
    return client.describe_account_settings()["MinimumThroughputBillingCommitment"]


def summary(client, name):
    return client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]


def on_demand_stream(client, **kwargs):
    name = unique_name("od")
    client.create_stream(StreamName=name, StreamModeDetails=ON_DEMAND, **kwargs)
    wait_active(client, name)
    return name


def test_an_account_starts_without_a_commitment(regional):
    assert commitment(regional) == {"Status": "DISABLED"}
    # Disabling what is off changes nothing.
    resp = regional.update_account_settings(MinimumThroughputBillingCommitment={"Status": "DISABLED"})
    assert resp["MinimumThroughputBillingCommitment"] == {"Status": "DISABLED"}


def test_a_commitment_runs_at_least_a_day(regional):
    before = time.time()
    enabled = regional.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"})[
        "MinimumThroughputBillingCommitment"
    ]
    assert enabled["Status"] == "ENABLED"
    started = enabled["StartedAt"]
    assert before - 2 <= started.timestamp() <= time.time() + 2
    assert enabled["EarliestAllowedEndAt"] == started + DAY
    assert "EndedAt" not in enabled
    assert commitment(regional) == enabled

    # Enabling again changes nothing.
    again = regional.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"})
    assert again["MinimumThroughputBillingCommitment"] == enabled

    # Disabled within the first day: it runs until its earliest allowed end.
    pending = regional.update_account_settings(MinimumThroughputBillingCommitment={"Status": "DISABLED"})[
        "MinimumThroughputBillingCommitment"
    ]
    assert pending["Status"] == "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
    assert pending["StartedAt"] == started
    assert pending["EarliestAllowedEndAt"] == started + DAY
    assert commitment(regional) == pending

    # Enabled again before then: the same commitment continues.
    resumed = regional.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"})
    assert resumed["MinimumThroughputBillingCommitment"] == enabled


def test_account_settings_are_per_region(server, regional):
    regional.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"})
    elsewhere = server.client(region="xx-elsewhere-9")
    assert commitment(elsewhere) == {"Status": "DISABLED"}


def test_update_account_settings_validation(server):
    client = server.client(region="xx-validation-1", parameter_validation=False)
    expect_error("ValidationException", client.update_account_settings, MinimumThroughputBillingCommitment={"Status": "MAYBE"})
    expect_error("ValidationException", client.update_account_settings, MinimumThroughputBillingCommitment={})
    expect_error("ValidationException", client.update_account_settings)
    # The status ENABLED_UNTIL_EARLIEST_ALLOWED_END is reported, never asked for.
    expect_error(
        "ValidationException",
        client.update_account_settings,
        MinimumThroughputBillingCommitment={"Status": "ENABLED_UNTIL_EARLIEST_ALLOWED_END"},
    )


def test_warm_throughput_needs_a_commitment_and_an_on_demand_stream(regional):
    name = on_demand_stream(regional)
    assert "WarmThroughput" not in summary(regional, name), "only shown for committed accounts"
    e = expect_error(
        "ValidationException", regional.update_stream_warm_throughput, StreamName=name, WarmThroughputMiBps=4
    )
    assert "MinimumThroughputBillingCommitment" in e.response["Error"]["Message"]

    regional.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"})
    assert summary(regional, name)["WarmThroughput"] == {"CurrentMiBps": 4}
    resp = regional.update_stream_warm_throughput(StreamName=name, WarmThroughputMiBps=4)
    arn = summary(regional, name)["StreamARN"]
    assert resp["StreamName"] == name
    assert resp["StreamARN"] == arn
    assert resp["WarmThroughput"] == {"TargetMiBps": 4, "CurrentMiBps": 4}
    assert summary(regional, name)["WarmThroughput"] == {"TargetMiBps": 4, "CurrentMiBps": 4}
    # By ARN too, and back to nothing warm.
    resp = regional.update_stream_warm_throughput(StreamARN=arn, WarmThroughputMiBps=0)
    assert resp["WarmThroughput"]["TargetMiBps"] == 0

    provisioned = create_stream(regional, shards=1)
    e = expect_error(
        "ValidationException", regional.update_stream_warm_throughput, StreamName=provisioned, WarmThroughputMiBps=4
    )
    assert "Provisioned mode" in e.response["Error"]["Message"]
    assert "WarmThroughput" not in summary(regional, provisioned)
    expect_error(
        "LimitExceededException", regional.update_stream_warm_throughput, StreamName=name, WarmThroughputMiBps=10241
    )
    expect_error(
        "ResourceNotFoundException",
        regional.update_stream_warm_throughput,
        StreamName=unique_name("missing"),
        WarmThroughputMiBps=4,
    )
    expect_error("ValidationException", regional.update_stream_warm_throughput, WarmThroughputMiBps=4)


def test_warm_throughput_is_set_at_creation_and_goes_with_provisioned_mode(regional):
    expect_error(
        "ValidationException",
        regional.create_stream,
        StreamName=unique_name("od"),
        StreamModeDetails=ON_DEMAND,
        WarmThroughputMiBps=4,
    )
    regional.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"})
    name = on_demand_stream(regional, WarmThroughputMiBps=4)
    assert summary(regional, name)["WarmThroughput"]["TargetMiBps"] == 4
    expect_error(
        "ValidationException", regional.create_stream, StreamName=unique_name("p"), ShardCount=1, WarmThroughputMiBps=4
    )

    arn = summary(regional, name)["StreamARN"]
    expect_error(
        "ValidationException",
        regional.update_stream_mode,
        StreamARN=arn,
        StreamModeDetails={"StreamMode": "PROVISIONED"},
        WarmThroughputMiBps=4,
    )
    regional.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "PROVISIONED"})
    wait_active(regional, name)
    assert "WarmThroughput" not in summary(regional, name)
    regional.update_stream_mode(StreamARN=arn, StreamModeDetails=ON_DEMAND, WarmThroughputMiBps=4)
    wait_active(regional, name)
    assert summary(regional, name)["WarmThroughput"] == {"TargetMiBps": 4, "CurrentMiBps": 4}


def test_warm_throughput_scales_the_stream_up(server_factory):
    """The target is a floor under the on-demand stream's shards (1 MiB/s each): the stream is
    split up to it without any traffic, and CurrentMiBps follows."""
    fast = server_factory(extra_args=["--on-demand-check-secs", "1"])
    client = fast.client()
    client.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"})
    name = on_demand_stream(client)
    assert summary(client, name)["OpenShardCount"] == 4
    client.update_stream_warm_throughput(StreamName=name, WarmThroughputMiBps=6)

    def warmed():
        s = summary(client, name)
        return s if s["StreamStatus"] == "ACTIVE" and s["OpenShardCount"] == 6 else None

    s = poll(warmed, timeout=60, what="the stream split up to 6 open shards")
    assert s["WarmThroughput"] == {"TargetMiBps": 6, "CurrentMiBps": 6}
