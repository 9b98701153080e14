#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target into fuzz/corpus/<target>/seed-*.

Run with the test venv's Python (botocore, cbor2): `$KINESIN_VENV/bin/python fuzz/make_seeds.py`.
JSON bodies are serialised by botocore from its own Kinesis model; CBOR bodies are encoded the way
the Java SDK writes them (tests/python/kinesis_cbor.py); the signed requests are signed by
botocore's SigV4 signer with fuzz's SECRET. Files the fuzzers found (crash-*, regression-*) are
never touched.
"""

import datetime
import hashlib
import hmac
import os
import struct
import sys
import zlib
from base64 import b64encode

import botocore.session
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
from kinesis_cbor import encode as cbor_encode  # noqa: E402

OPERATIONS = """AddTagsToStream CreateStream DecreaseStreamRetentionPeriod DeleteResourcePolicy
DeleteStream DeregisterStreamConsumer DescribeAccountSettings DescribeLimits DescribeStream
DescribeStreamConsumer DescribeStreamSummary DisableEnhancedMonitoring EnableEnhancedMonitoring
GetRecords GetResourcePolicy GetShardIterator IncreaseStreamRetentionPeriod ListShards
ListStreamConsumers ListStreams ListTagsForResource ListTagsForStream MergeShards PutRecord
PutRecords PutResourcePolicy RegisterStreamConsumer RemoveTagsFromStream SplitShard
StartStreamEncryption StopStreamEncryption SubscribeToShard TagResource UntagResource
UpdateAccountSettings UpdateMaxRecordSize UpdateShardCount UpdateStreamMode
UpdateStreamWarmThroughput""".split()  # Operation::ALL's order: the first byte's meaning

SECRET = "fuzz-secret"  # kinesin_fuzz::SECRET
ITERATOR_KEY = bytes([7] * 32)  # kinesin_fuzz::ITERATOR_KEY
STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/s"
CONSUMER_ARN = STREAM_ARN + "/consumer/c:1700000000"
WHEN = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)

REQUESTS = [
    ("CreateStream", {"StreamName": "s", "ShardCount": 2}),
    ("CreateStream", {"StreamName": "s", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}, "Tags": {"k": "v"}}),
    ("DescribeStream", {"StreamName": "s", "Limit": 10, "ExclusiveStartShardId": "shardId-000000000001"}),
    ("DescribeStreamSummary", {"StreamARN": STREAM_ARN}),
    ("PutRecord", {"StreamName": "s", "Data": b"hello", "PartitionKey": "k", "ExplicitHashKey": "12345",
                   "SequenceNumberForOrdering": "49590338271490256608559692538361571095921575989136588898"}),
    ("PutRecords", {"StreamName": "s", "Records": [{"Data": b"a", "PartitionKey": "1"},
                                                   {"Data": b"", "PartitionKey": "2", "ExplicitHashKey": "0"}]}),
    ("GetShardIterator", {"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP",
                          "Timestamp": WHEN}),
    ("GetShardIterator", {"StreamARN": STREAM_ARN, "ShardId": "1", "ShardIteratorType": "AT_SEQUENCE_NUMBER",
                          "StartingSequenceNumber": "49590338271490256608559692538361571095921575989136588898"}),
    ("GetRecords", {"ShardIterator": "AAAAAAAAAAE=", "Limit": 100}),
    ("ListShards", {"StreamName": "s", "ShardFilter": {"Type": "AT_TIMESTAMP", "Timestamp": WHEN}, "MaxResults": 5}),
    ("ListShards", {"NextToken": "AAAA", "MaxResults": 5}),
    ("ListStreams", {"Limit": 5, "ExclusiveStartStreamName": "a", "NextToken": "x"}),
    ("SplitShard", {"StreamName": "s", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "170141183460469231731687303715884105728"}),
    ("MergeShards", {"StreamName": "s", "ShardToMerge": "shardId-000000000000", "AdjacentShardToMerge": "shardId-000000000001"}),
    ("UpdateShardCount", {"StreamName": "s", "TargetShardCount": 4, "ScalingType": "UNIFORM_SCALING"}),
    ("AddTagsToStream", {"StreamName": "s", "Tags": {"a": "b", "c": ""}}),
    ("RemoveTagsFromStream", {"StreamName": "s", "TagKeys": ["a"]}),
    ("TagResource", {"ResourceARN": CONSUMER_ARN, "Tags": {"a": "b"}}),
    ("RegisterStreamConsumer", {"StreamARN": STREAM_ARN, "ConsumerName": "c"}),
    ("DescribeStreamConsumer", {"ConsumerARN": CONSUMER_ARN}),
    ("ListStreamConsumers", {"StreamARN": STREAM_ARN, "StreamCreationTimestamp": WHEN, "MaxResults": 3}),
    ("SubscribeToShard", {"ConsumerARN": CONSUMER_ARN, "ShardId": "shardId-000000000000",
                          "StartingPosition": {"Type": "AT_TIMESTAMP", "Timestamp": WHEN}}),
    ("EnableEnhancedMonitoring", {"StreamName": "s", "ShardLevelMetrics": ["ALL"]}),
    ("StartStreamEncryption", {"StreamName": "s", "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
    ("PutResourcePolicy", {"ResourceARN": STREAM_ARN, "Policy": '{"Version":"2012-10-17","Statement":[]}'}),
    ("IncreaseStreamRetentionPeriod", {"StreamName": "s", "RetentionPeriodHours": 48}),
    ("UpdateStreamMode", {"StreamARN": STREAM_ARN, "StreamModeDetails": {"StreamMode": "PROVISIONED"}}),
    ("DescribeLimits", {}),
]


def write(target, name, data):
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "seed-" + name), "wb") as f:
        f.write(data)


def json_seeds():
    client = botocore.session.get_session().create_client(
        "kinesis", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    for i, (op, params) in enumerate(REQUESTS):
        model = client.meta.service_model.operation_model(op)
        if op not in OPERATIONS or model is None:
            continue
        body = client._serializer.serialize_to_request(params, model)["body"]
        if isinstance(body, str):
            body = body.encode()
        write("json_request", f"{i:02}-{op}", bytes([OPERATIONS.index(op)]) + body)
        write("cbor_request", f"{i:02}-{op}", bytes([OPERATIONS.index(op)]) + cbor_encode(params))


def frame(headers, payload):
    encoded = b"".join(bytes([len(n)]) + n.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode()
                       for n, v in headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_stream_seeds():
    initial = frame([(":message-type", "event"), (":event-type", "initial-response"),
                     (":content-type", "application/x-amz-json-1.1")], b"{}")
    event = frame([(":message-type", "event"), (":event-type", "SubscribeToShardEvent"),
                   (":content-type", "application/x-amz-cbor-1.1")], cbor_encode({"Records": [], "MillisBehindLatest": 0}))
    error = frame([(":message-type", "exception"), (":exception-type", "ResourceInUseException")],
                  b'{"message":"in use"}')
    write("event_stream", "subscription", initial + event + error)
    write("event_stream", "empty", frame([], b""))
    # For the write-then-read half: 2 headers, then the payload.
    write("event_stream", "headers", b"\x02\x05:type\x05event\x03abc\x00payload")


def http_text(method, url_path, headers, body):
    lines = [method, url_path] + [f"{k}: {v}" for k, v in headers]
    return ("\n".join(lines) + "\n\n").encode() + body


def sigv4_seeds():
    credentials = Credentials("AKIDFUZZ", SECRET)
    body = b'{"StreamName":"s"}'
    request = AWSRequest(method="POST", url="http://localhost:4567/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Kinesis_20131202.DescribeStreamSummary"})
    SigV4Auth(credentials, "kinesis", "us-east-1").add_auth(request)
    headers = [("Host", "localhost:4567")] + list(request.headers.items())
    write("sigv4", "header", http_text("POST", "/", headers, body))

    request = AWSRequest(method="GET", url="http://localhost:4567/a%20b/?Action=ListStreams&x=1")
    SigV4QueryAuth(credentials, "kinesis", "us-east-1", expires=300).add_auth(request)
    path = request.url.split("localhost:4567", 1)[1]
    write("sigv4", "presigned", http_text("GET", path, [("Host", "localhost:4567")], b""))


def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def iterator_seeds():
    payload = b"\x01"
    for s in [b"123456789012", b"us-east-1", b"s" * 130]:
        payload += varint(len(s)) + s
    payload += struct.pack(">QIQQ", 1_700_000_000_000, 3, 42, 1_700_000_000_000)
    write("shard_iterator", "payload", payload)
    tag = hmac.new(ITERATOR_KEY, payload, hashlib.sha256).digest()[:16]
    write("shard_iterator", "iterator", b64encode(payload + tag))


def value_seeds():
    write("values", "all", "\n".join([
        "49590338271490256608559692538361571095921575989136588898",
        "shardId-000000000007", "7", "000007",
        "0", "340282366920938463463374607431768211455",
        STREAM_ARN, CONSUMER_ARN, "my-stream_1.a",
        "application/x-amz-cbor-1.1", "aGVsbG8=", "PutRecord",
        "AKIDFUZZ/20240102/us-east-1/kinesis/aws4_request", "20240102T030405Z",
    ]).encode())


json_seeds()
event_stream_seeds()
sigv4_seeds()
iterator_seeds()
value_seeds()
