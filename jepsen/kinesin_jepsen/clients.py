"""Kinesis clients as the harness uses them: no retries, bounded timeouts, and one rule for which
errors mean "definitely not done" (fail) and which leave the outcome unknown (info)."""

import random
import time

import boto3
import botocore.exceptions
from botocore.config import Config

# No retries at all: every outcome in the history is what one request got.
CLIENT_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=5)

# The cluster answered: the operation was decided and not done.
DEFINITE_ERRORS = {"ResourceInUseException", "ResourceNotFoundException", "LimitExceededException",
                   "ValidationException", "InvalidArgumentException", "ServiceUnavailableException"}
# The connection was never established, so no byte of the request reached a node (a killed node
# refuses connections). Without this, every operation against a dead node would stay possible
# forever and blunt the checks that need "nothing could have happened since".
NEVER_SENT = (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError)


# A shard's read limits (5 GetRecords calls and 2 MiB per second, as on AWS) refused the call: it
# did nothing, and a consumer backs off and asks again.
THROTTLED = "ProvisionedThroughputExceededException"


def client(endpoint):
    return boto3.session.Session().client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="jepsen", aws_secret_access_key="jepsen", config=CLIENT_CONFIG)


def error_code(exc):
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code", "ClientError")
    return type(exc).__name__


def is_definite_failure(exc):
    """Did the operation definitely not happen? Timeouts, dropped connections and InternalFailure
    may all hide a proposal that commits later, so they are unknown."""
    return isinstance(exc, NEVER_SENT) or error_code(exc) in DEFINITE_ERRORS


def is_not_found(exc):
    return error_code(exc) == "ResourceNotFoundException"


def perform(history, process, f, value, connect, request):
    """One operation of `process`, recorded as invoke then exactly one completion; never raises.

    `connect()` gives the client (when it raises, no request was sent: fail); `request(kinesis)`
    sends the request and returns what an ok completion adds to `value`. Returns that, or None."""
    history.record(process, "invoke", f, dict(value))
    try:
        kinesis = connect()
    except Exception as exc:  # noqa: BLE001 - no request was sent: definitely not done
        history.record(process, "fail", f, {**value, "error": error_code(exc)})
        return None
    try:
        extra = request(kinesis)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is fatal
        kind = "fail" if is_definite_failure(exc) else "info"
        history.record(process, kind, f, {**value, "error": error_code(exc)})
        return None
    history.record(process, "ok", f, {**value, **extra})
    return extra


def list_shards(kinesis, stream):
    """Every shard of `stream` (OPEN and CLOSED, every page) as the checker's `shards` entries."""
    shards, page = [], {"StreamName": stream}
    while True:
        out = kinesis.list_shards(**page)
        shards += out["Shards"]
        if not out.get("NextToken"):
            break
        page = {"NextToken": out["NextToken"]}
    return [{
        "shard": s["ShardId"],
        "start": s["HashKeyRange"]["StartingHashKey"],
        "end": s["HashKeyRange"]["EndingHashKey"],
        "open": "EndingSequenceNumber" not in s.get("SequenceNumberRange", {}),
        "parent": s.get("ParentShardId"),
        "adjacent_parent": s.get("AdjacentParentShardId"),
        "start_seq": s.get("SequenceNumberRange", {}).get("StartingSequenceNumber"),
        "end_seq": s.get("SequenceNumberRange", {}).get("EndingSequenceNumber"),
    } for s in shards]


def backoff(attempt, rng=random):
    """Seconds to wait before retry `attempt` (0, 1, ...): exponential with full jitter, as the AWS
    SDKs do (50 ms doubling, capped at 2 s), so consumers refused together do not retry together."""
    return rng.uniform(0, min(2.0, 0.05 * 2 ** attempt))


def is_throttled(exc):
    return error_code(exc) == THROTTLED


def get_records(kinesis, attempts=30, **kwargs):
    """GetRecords, backing off while the shard's read limits refuse it (any other error raises)."""
    for attempt in range(attempts):
        try:
            return kinesis.get_records(**kwargs)
        except botocore.exceptions.ClientError as exc:
            if not is_throttled(exc) or attempt == attempts - 1:
                raise
        time.sleep(backoff(attempt))
    raise AssertionError("unreachable: the last attempt returns or raises")
