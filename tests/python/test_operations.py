"""Every operation of botocore's Kinesis model reaches an implementation: none answers
UnknownOperationException.

Each operation is sent (signed, JSON) with the smallest input the model accepts — its required
members, filled from the model — so it passes validation and reaches the operation itself, which
may well refuse it (no such stream, say): what matters is that no operation is unknown.

botocore's newest model also carries the Queue and Channel operations (and
UpdateStreamRecordDistributionStrategy), which are not among the 39 stream operations Kinesin
serves (those kinesin-api's model/trim.py keeps). They, and SubscribeToShard until it is built,
are strict expected failures: implementing one turns its entry into a reminder to drop it here."""

import base64
import importlib.util
import os
import time

import botocore.session
import pytest

from conftest import REGION, raw_request

TRIM_PY = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "kinesin-api", "model", "trim.py")

STREAM_ARN = f"arn:aws:kinesis:{REGION}:000000000000:stream/ops-probe"
# Values for the model's string shapes that carry a pattern or name something.
SAMPLES = {
    "StreamName": "ops-probe",
    "StreamARN": STREAM_ARN,
    "ConsumerARN": f"{STREAM_ARN}/consumer/probe:1700000000",
    "ConsumerName": "probe",
    "ResourceARN": STREAM_ARN,
    "ShardId": "shardId-000000000000",
    "HashKey": "1",
    "Policy": "{}",
    "ChannelARN": f"arn:aws:kinesis:{REGION}:000000000000:channel/probe",
    "ChannelName": "probe",
    "QueueARN": f"arn:aws:kinesis:{REGION}:000000000000:queue/probe",
    "QueueName": "probe",
    "RoleARN": "arn:aws:iam::000000000000:role/probe",
}


def stream_operations():
    spec = importlib.util.spec_from_file_location("kinesin_model_trim", TRIM_PY)
    trim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trim)
    return set(trim.STREAM_OPERATIONS)


MODEL = botocore.session.get_session().get_service_model("kinesis")
MODEL_OPERATIONS = sorted(MODEL.operation_names)
STREAM_OPERATIONS = stream_operations()
# Built next, by the lead (its answers are event streams).
NOT_YET = {"SubscribeToShard": "SubscribeToShard is built next (enhanced fan-out reads)"}


def minimal(shape):
    """The smallest JSON value of `shape` that the model accepts."""
    kind = shape.type_name
    low = shape.metadata.get("min", 0)
    if kind == "structure":
        return {name: minimal(shape.members[name]) for name in shape.required_members}
    if kind == "list":
        return [minimal(shape.member) for _ in range(max(low, 1))]
    if kind == "map":
        return {"k": minimal(shape.value)} if low > 0 else {}
    if kind == "string":
        if shape.enum:
            return shape.enum[0]
        if shape.name in SAMPLES:
            return SAMPLES[shape.name]
        assert "pattern" not in shape.metadata, f"add a sample for {shape.name}"
        return "x" * max(low, 1)
    if kind in ("integer", "long"):
        return max(low, 1)
    if kind == "boolean":
        return False
    if kind == "blob":
        return base64.b64encode(b"x").decode()
    if kind == "timestamp":
        return time.time()
    raise AssertionError(f"no minimal value for {shape.name} ({kind})")


def case(op):
    if op in NOT_YET:
        return pytest.param(op, marks=pytest.mark.xfail(strict=True, reason=NOT_YET[op]))
    if op not in STREAM_OPERATIONS:
        reason = "not one of the 39 stream operations Kinesin serves (Queues, Channels, record distribution)"
        return pytest.param(op, marks=pytest.mark.xfail(strict=True, reason=reason))
    return op


def test_the_stream_operations_are_all_in_botocores_model():
    assert STREAM_OPERATIONS <= set(MODEL_OPERATIONS)
    assert len(STREAM_OPERATIONS) == 39


@pytest.mark.parametrize("operation", [case(op) for op in MODEL_OPERATIONS])
def test_no_operation_of_the_model_is_unknown(server, operation):
    input_shape = MODEL.operation_model(operation).input_shape
    body = minimal(input_shape) if input_shape is not None else {}
    resp = raw_request(server, operation, body)
    assert resp.status in (200, 400), f"{operation}: {resp}"
    if resp.status == 400:
        assert resp.error_type != "UnknownOperationException", f"{operation} {body}: {resp}"
        assert resp.error_type != "SerializationException", f"{operation} {body}: {resp}"
