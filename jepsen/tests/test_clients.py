"""The harness's consumers back off when a shard's read limits refuse them, and only then."""

import os
import random
import sys

import botocore.exceptions
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kinesin_jepsen import clients  # noqa: E402


def client_error(code):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": "m"}}, "GetRecords")


class Answers:
    """Stands in for a boto3 client: GetRecords raises or returns what it is given, in turn."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def get_records(self, **kwargs):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_backoff_is_jittered_exponential_and_capped():
    rng = random.Random(7)
    for attempt in range(12):
        cap = min(2.0, 0.05 * 2**attempt)
        waits = [clients.backoff(attempt, rng) for _ in range(200)]
        assert all(0 <= w <= cap for w in waits), attempt
        assert max(waits) > cap / 2, f"attempt {attempt}: no spread up to the cap"
        assert len(set(waits)) > 100, "jittered, not one fixed delay"


def test_get_records_retries_throttling_only(monkeypatch):
    monkeypatch.setattr(clients.time, "sleep", lambda _: None)
    throttled = client_error(clients.THROTTLED)
    kinesis = Answers(throttled, throttled, {"Records": []})
    assert clients.get_records(kinesis, ShardIterator="it") == {"Records": []}
    assert kinesis.calls == 3

    kinesis = Answers(client_error("ExpiredIteratorException"))
    with pytest.raises(botocore.exceptions.ClientError):
        clients.get_records(kinesis, ShardIterator="it")
    assert kinesis.calls == 1, "other errors are not retried"

    kinesis = Answers(*[throttled] * 3)
    with pytest.raises(botocore.exceptions.ClientError):
        clients.get_records(kinesis, attempts=3, ShardIterator="it")
    assert kinesis.calls == 3, "bounded"
