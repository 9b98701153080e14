"""Malformed and out-of-bounds requests: the error types, codes and messages AWS gives.

Raw HTTP (SigV4-signed, so only the intended defect is present) for what boto3 cannot send;
boto3 with client-side validation off for out-of-range values."""

import base64
import json
import os
import socket

import botocore.exceptions
import pytest

from conftest import (
    expect_error,
    JSON_CONTENT_TYPE,
    MAX_HASH_KEY,
    create_stream,
    error_code,
    list_all_shards,
    raw_request,
    read_shard,
    sign_headers,
    unique_name,
)



def assert_raw_error(resp, status, error_type):
    assert resp.status == status, resp
    assert resp.headers.get("x-amzn-requestid"), f"no x-amzn-RequestId header: {resp.headers}"
    types = (error_type,) if isinstance(error_type, str) else tuple(error_type)
    assert resp.error_type in types, resp


@pytest.fixture(scope="module")
def stream1(kinesis):
    return create_stream(kinesis, shards=1)


# ------------------------------------------------------------------------------------------
# Serialization and routing errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"StreamName": "x"',
        b"[1, 2, 3",
        b"\xff\xfe\x00garbage",
        b'{"StreamName": "x", "ShardCount": 1}}',
    ],
    ids=["unquoted", "truncated", "array-truncated", "binary", "trailing-brace"],
)
def test_malformed_json_is_serialization_exception(server, body):
    resp = raw_request(server, "CreateStream", body)
    assert_raw_error(resp, 400, "SerializationException")
    # AWS's body has no message (kinesalite test/connection.js, "non-JSON body").
    assert resp.json() == {"__type": "SerializationException"}


def test_wrong_member_type_is_serialization_exception(server):
    resp = raw_request(server, "CreateStream", {"StreamName": unique_name(), "ShardCount": "abc"})
    assert_raw_error(resp, 400, "SerializationException")
    resp = raw_request(server, "DescribeStreamSummary", {"StreamName": 12})
    assert_raw_error(resp, 400, "SerializationException")
    resp = raw_request(server, "PutRecords", {"StreamName": "s", "Records": {"not": "a list"}})
    assert_raw_error(resp, 400, "SerializationException")
    # A blob that is not base64.
    resp = raw_request(server, "PutRecord", {"StreamName": "s", "PartitionKey": "k", "Data": "!!!not base64!!!"})
    assert_raw_error(resp, 400, "SerializationException")


def test_unknown_target_is_unknown_operation(server):
    resp = raw_request(server, "Kinesis_20131202.NoSuchOperation", {})
    assert_raw_error(resp, 400, "UnknownOperationException")
    # AWS's body has no message (kinesalite test/connection.js).
    assert resp.json() == {"__type": "UnknownOperationException"}
    resp = raw_request(server, "SomethingElse_2020.ListStreams", {})
    assert_raw_error(resp, 400, "UnknownOperationException")
    assert resp.json() == {"__type": "UnknownOperationException"}


def test_error_response_shape(server):
    resp = raw_request(server, "DescribeStreamSummary", {"StreamName": unique_name("missing")})
    assert resp.status == 400
    assert resp.headers.get("content-type", "").startswith(JSON_CONTENT_TYPE)
    body = resp.json()
    assert body["__type"].split("#")[-1] == "ResourceNotFoundException"
    assert "under account" in body.get("message", body.get("Message", ""))


# ------------------------------------------------------------------------------------------
# Validation errors
# ------------------------------------------------------------------------------------------


def test_missing_required_member_message(server):
    resp = raw_request(server, "CreateStream", {"ShardCount": 1})
    assert_raw_error(resp, 400, "ValidationException")
    assert resp.error_message == (
        "1 validation error detected: Value null at 'streamName' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_two_validation_errors_are_counted(server):
    resp = raw_request(server, "PutRecords", {})
    assert_raw_error(resp, 400, "ValidationException")
    assert resp.error_message.startswith("1 validation error detected: ") or resp.error_message.startswith(
        "2 validation errors detected: "
    ), resp.error_message
    assert "Value null at 'records' failed to satisfy constraint: Member must not be null" in resp.error_message


def test_invalid_stream_name_pattern(kinesis_unvalidated):
    e = expect_error("ValidationException", kinesis_unvalidated.create_stream, StreamName="bad name!", ShardCount=1)
    assert e.response["Error"]["Message"] == (
        "1 validation error detected: Value 'bad name!' at 'streamName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
    )
    e = expect_error("ValidationException", kinesis_unvalidated.create_stream, StreamName="a" * 129, ShardCount=1)
    assert "Member must have length less than or equal to 128" in e.response["Error"]["Message"]
    expect_error("ValidationException", kinesis_unvalidated.describe_stream_summary, StreamName="slash/name")


def test_shard_count_out_of_range(kinesis_unvalidated):
    e = expect_error("ValidationException", kinesis_unvalidated.create_stream, StreamName=unique_name(), ShardCount=0)
    assert e.response["Error"]["Message"] == (
        "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )


def test_record_over_configured_max_is_rejected(server_factory):
    srv = server_factory(extra_args=["--max-record-bytes", "1024"])
    client = srv.client()
    name = create_stream(client, shards=1)
    key = "key"
    # Exactly at the limit (data + partition key = 1024 bytes): accepted and read back.
    ok = client.put_record(StreamName=name, Data=b"a" * (1024 - len(key)), PartitionKey=key)
    # One byte over: rejected. The size counted is data + key. (With a smaller configured limit
    # there is no model constraint in play, so AWS's service-side check applies; accept either
    # of the two 400 types AWS uses for size problems.)
    expect_error(
        ("ValidationException", "InvalidArgumentException"),
        client.put_record,
        StreamName=name,
        Data=b"a" * (1024 - len(key) + 1),
        PartitionKey=key,
    )
    # Data alone under the limit, but key pushes it over.
    expect_error(
        ("ValidationException", "InvalidArgumentException"),
        client.put_record,
        StreamName=name,
        Data=b"a" * 1020,
        PartitionKey="k" * 10,
    )
    # In PutRecords, an oversized entry fails the whole request (not a per-entry failure).
    expect_error(
        ("ValidationException", "InvalidArgumentException"),
        client.put_records,
        StreamName=name,
        Records=[{"Data": b"fine", "PartitionKey": "k"}, {"Data": b"a" * 1025, "PartitionKey": "k"}],
    )
    shard = list_all_shards(client, name)[0]["ShardId"]
    recs = read_shard(client, name, shard)
    assert [r["SequenceNumber"] for r in recs] == [ok["SequenceNumber"]], "nothing of a rejected request is stored"


def test_record_over_default_1mib_is_rejected(kinesis, stream1):
    # AWS's default record limit is 1 MiB (data + partition key); the current model allows Data
    # up to 10 MiB (large records, opt-in per stream), so the limit is the service's check.
    data = b"\x00" * (1024 * 1024 + 1)
    e = expect_error("ValidationException", kinesis.put_record, StreamName=stream1, Data=data, PartitionKey="k")
    # AWS's words (kinesalite test/putRecord.js and test/putRecords.js).
    assert e.response["Error"]["Message"] == (
        "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=1048577 cap=1048577]' "
        "at 'data' failed to satisfy constraint: Member must have length less than or equal to 1048576"
    )
    e = expect_error(
        "ValidationException",
        kinesis.put_records,
        StreamName=stream1,
        Records=[{"Data": data, "PartitionKey": "k"}],
    )
    assert e.response["Error"]["Message"] == (
        "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=1048577 cap=1048577]' "
        "at 'records.1.member.data' failed to satisfy constraint: Member must have length less than "
        "or equal to 1048576"
    )


def test_put_records_more_than_500(kinesis_unvalidated, stream1):
    records = [{"Data": b"x", "PartitionKey": f"k{i}"} for i in range(501)]
    e = expect_error("ValidationException", kinesis_unvalidated.put_records, StreamName=stream1, Records=records)
    msg = e.response["Error"]["Message"]
    # AWS's words (kinesalite test/putRecords.js): Java's toString of each entry.
    entries = ", ".join(["com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310"] * 501)
    assert msg == (
        f"1 validation error detected: Value '[{entries}]' at 'records' failed to satisfy constraint: "
        "Member must have length less than or equal to 500"
    ), msg[:300]


def test_put_records_empty_list(kinesis_unvalidated, stream1):
    e = expect_error("ValidationException", kinesis_unvalidated.put_records, StreamName=stream1, Records=[])
    assert "Member must have length greater than or equal to 1" in e.response["Error"]["Message"]


def test_put_records_over_10_mib_total_is_invalid_argument(kinesis, stream1):
    # 11 records of 1,000,000 bytes (+1-byte keys): each under the 1 MiB record limit, together
    # 11,000,011 bytes > 10 MiB (10,485,760) per request.
    records = [{"Data": bytes([i]) * 1_000_000, "PartitionKey": str(i % 10)} for i in range(11)]
    expect_error("InvalidArgumentException", kinesis.put_records, StreamName=stream1, Records=records)
    # Nothing of it was stored.
    shard = list_all_shards(kinesis, stream1)[0]["ShardId"]
    assert all(len(r["Data"]) != 1_000_000 for r in read_shard(kinesis, stream1, shard))


def test_put_records_under_10_mib_total_is_fine(server_factory):
    # 10 records of 1,000,000 bytes = 10,000,010 bytes with keys: under 10 MiB, accepted.
    srv = server_factory()
    client = srv.client()
    name = create_stream(client, shards=2)
    records = [{"Data": bytes([i]) * 1_000_000, "PartitionKey": str(i)} for i in range(10)]
    resp = client.put_records(StreamName=name, Records=records)
    assert resp["FailedRecordCount"] == 0 and len(resp["Records"]) == 10


def test_invalid_explicit_hash_key(kinesis, kinesis_unvalidated, stream1):
    # Not a decimal number: the model's pattern ^(0|([1-9]\d{0,38}))$ -> ValidationException.
    for bad in ("abc", "-1", "01", "1.5", " 1"):
        e = expect_error(
            "ValidationException",
            kinesis_unvalidated.put_record,
            StreamName=stream1,
            Data=b"x",
            PartitionKey="k",
            ExplicitHashKey=bad,
        )
        # AWS quotes the pattern without the anchors botocore's model adds (kinesalite
        # test/putRecord.js).
        assert e.response["Error"]["Message"] == (
            f"1 validation error detected: Value '{bad}' at 'explicitHashKey' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})"
        )
    # Numeric but above 2^128-1: InvalidArgumentException (kinesalite recorded from AWS:
    # "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was ...").
    for bad in (str(MAX_HASH_KEY + 1), "9" * 39):
        expect_error(
            "InvalidArgumentException", kinesis.put_record, StreamName=stream1, Data=b"x", PartitionKey="k", ExplicitHashKey=bad
        )
        expect_error(
            "InvalidArgumentException",
            kinesis.put_records,
            StreamName=stream1,
            Records=[{"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": bad}],
        )
    # More than 39 digits: pattern violation.
    expect_error(
        "ValidationException",
        kinesis_unvalidated.put_record,
        StreamName=stream1,
        Data=b"x",
        PartitionKey="k",
        ExplicitHashKey="1" * 40,
    )


def test_partition_key_length(kinesis_unvalidated, stream1):
    expect_error("ValidationException", kinesis_unvalidated.put_record, StreamName=stream1, Data=b"x", PartitionKey="")
    expect_error("ValidationException", kinesis_unvalidated.put_record, StreamName=stream1, Data=b"x", PartitionKey="k" * 257)


def test_put_to_unknown_stream(kinesis):
    expect_error("ResourceNotFoundException", kinesis.put_record, StreamName=unique_name("missing"), Data=b"x", PartitionKey="k")
    expect_error(
        "ResourceNotFoundException",
        kinesis.put_records,
        StreamName=unique_name("missing"),
        Records=[{"Data": b"x", "PartitionKey": "k"}],
    )


# ------------------------------------------------------------------------------------------
# AWS's texts, word for word (kinesalite's tests recorded them against AWS)
# ------------------------------------------------------------------------------------------

ACCOUNT = "000000000000"


def error_message(e):
    return e.response["Error"]["Message"]


def test_list_shards_needs_a_stream_or_a_token_but_not_both(kinesis, stream1):
    # kinesalite test/listShards.js.
    e = expect_error("InvalidArgumentException", kinesis.list_shards)
    assert error_message(e) == "Either NextToken or StreamName should be provided."
    e = expect_error("InvalidArgumentException", kinesis.list_shards, StreamName=stream1, NextToken="abc")
    assert error_message(e) == "NextToken and StreamName cannot be provided together."


def test_get_shard_iterator_unknown_shard_or_stream(kinesis, stream1):
    # kinesalite test/getShardIterator.js: ids AWS can read name a shard ("x-5" is shard 5),
    # and a missing stream is answered as a missing shard; ids it cannot read are not found.
    missing = unique_name("missing")
    for shard_id in ("2147483647", "x-2147483647", "a-00002147483647", "-00002147483647"):
        e = expect_error(
            "ResourceNotFoundException", kinesis.get_shard_iterator, StreamName=missing, ShardId=shard_id, ShardIteratorType="LATEST"
        )
        assert error_message(e) == f"Shard shardId-002147483647 in stream {missing} under account {ACCOUNT} does not exist"
    for shard_id in ("2147483648", "shardId-002147483648", "abc", "1e3"):
        e = expect_error(
            "ResourceNotFoundException", kinesis.get_shard_iterator, StreamName=missing, ShardId=shard_id, ShardIteratorType="LATEST"
        )
        assert error_message(e) == f"Could not find shard {shard_id} in stream {missing} under account {ACCOUNT}."
    e = expect_error(
        "ResourceNotFoundException",
        kinesis.get_shard_iterator,
        StreamName=stream1,
        ShardId="shardId-5",
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber="5",
    )
    assert error_message(e) == f"Shard shardId-000000000005 in stream {stream1} under account {ACCOUNT} does not exist"
    # The short spelling names the shard as the long one does.
    assert kinesis.get_shard_iterator(StreamName=stream1, ShardId="0", ShardIteratorType="LATEST")["ShardIterator"]


@pytest.mark.parametrize("kind", ["AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"])
def test_get_shard_iterator_sequence_type_without_sequence_number(kinesis, stream1, kind):
    # kinesalite test/getShardIterator.js.
    e = expect_error("InvalidArgumentException", kinesis.get_shard_iterator, StreamName=stream1, ShardId="shardId-0", ShardIteratorType=kind)
    assert error_message(e) == (
        "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or "
        "(2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. "
        f"Request specified {kind} and no StartingSequenceNumber."
    )


def test_get_shard_iterator_at_timestamp_without_timestamp(kinesis, stream1):
    e = expect_error(
        "InvalidArgumentException", kinesis.get_shard_iterator, StreamName=stream1, ShardId="shardId-0", ShardIteratorType="AT_TIMESTAMP"
    )
    assert error_message(e) == (
        "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter."
    )


def test_starting_sequence_number_pattern_is_quoted_without_anchors(kinesis_unvalidated, stream1):
    # kinesalite test/getShardIterator.js.
    e = expect_error(
        "ValidationException",
        kinesis_unvalidated.get_shard_iterator,
        StreamName=stream1,
        ShardId="shardId-0",
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber="abc",
    )
    assert error_message(e) == (
        "1 validation error detected: Value 'abc' at 'startingSequenceNumber' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})"
    )


def test_get_records_invalid_iterator_and_deleted_stream(kinesis):
    # kinesalite test/getRecords.js and actions/getRecords.js.
    e = expect_error("InvalidArgumentException", kinesis.get_records, ShardIterator=unique_name("junk"))
    assert error_message(e) == "Invalid ShardIterator."
    name = create_stream(kinesis, shards=1)
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    kinesis.delete_stream(StreamName=name)
    e = expect_error("ResourceNotFoundException", kinesis.get_records, ShardIterator=iterator)
    assert error_message(e) == f"Shard shardId-000000000000 in stream {name} under account {ACCOUNT} does not exist"


def test_add_tags_over_the_limit_uses_aws_words(kinesis):
    # AWS's message says 10 although its limit is 50 (kinesalite test/addTagsToStream.js).
    name = create_stream(kinesis, shards=1)
    kinesis.add_tags_to_stream(StreamName=name, Tags={f"k{i}": "v" for i in range(50)})
    e = expect_error("InvalidArgumentException", kinesis.add_tags_to_stream, StreamName=name, Tags={"one-more": "v"})
    assert error_message(e) == (
        f"Failed to add tags to stream {name} under account {ACCOUNT} because a given stream cannot have more "
        "than 10 tags associated with it."
    )


def test_split_and_merge_with_ids_that_name_no_shard(kinesis, stream1):
    # kinesalite test/splitShard.js and test/mergeShards.js.
    e = expect_error("ResourceNotFoundException", kinesis.split_shard, StreamName=stream1, ShardToSplit="abc", NewStartingHashKey="5")
    assert error_message(e) == f"Could not find shard abc in stream {stream1} under account {ACCOUNT}."
    e = expect_error("ResourceNotFoundException", kinesis.split_shard, StreamName=stream1, ShardToSplit="5", NewStartingHashKey="5")
    assert error_message(e) == f"Could not find shard shardId-000000000005 in stream {stream1} under account {ACCOUNT}."
    e = expect_error(
        "ResourceNotFoundException", kinesis.merge_shards, StreamName=stream1, ShardToMerge="shardId-0", AdjacentShardToMerge="2147483648"
    )
    assert error_message(e) == f"Could not find shard 2147483648 in stream {stream1} under account {ACCOUNT}."


def test_split_at_a_hash_key_past_the_key_space(kinesis, stream1):
    # 39 digits pass the model's pattern; AWS answers as for any key outside the shard
    # (kinesalite actions/splitShard.js).
    key = "9" * 39
    e = expect_error("InvalidArgumentException", kinesis.split_shard, StreamName=stream1, ShardToSplit="shardId-0", NewStartingHashKey=key)
    assert error_message(e) == (
        f"NewStartingHashKey {key} used in SplitShard() on shard shardId-000000000000 in stream {stream1} under account "
        f"{ACCOUNT} is not both greater than one plus the shard's StartingHashKey 0 and less than the shard's "
        f"EndingHashKey {MAX_HASH_KEY}."
    )


# ------------------------------------------------------------------------------------------
# Headers
# ------------------------------------------------------------------------------------------


def test_every_response_carries_request_id(server, kinesis, stream1):
    ids = set()
    cases = [
        ("ListStreams", {}),
        ("DescribeStreamSummary", {"StreamName": stream1}),
        ("DescribeStreamSummary", {"StreamName": unique_name("missing")}),
        ("CreateStream", {"ShardCount": 1}),
        ("CreateStream", b"{oops"),
        ("Nope.Nope", {}),
        ("PutRecord", {"StreamName": stream1, "PartitionKey": "k", "Data": base64.b64encode(b"d").decode()}),
    ]
    for op, body in cases:
        resp = raw_request(server, op, body)
        rid = resp.headers.get("x-amzn-requestid")
        assert rid, f"{op}: no x-amzn-RequestId ({resp.status}, {resp.headers})"
        ids.add(rid)
    assert len(ids) == len(cases), "request ids must be unique"
    # boto3 sees it too.
    assert kinesis.list_streams()["ResponseMetadata"]["RequestId"]


def test_success_response_content_type(server):
    resp = raw_request(server, "ListStreams", {})
    assert resp.status == 200
    assert resp.headers.get("content-type", "").startswith(JSON_CONTENT_TYPE)
    body = resp.json()
    assert body["HasMoreStreams"] in (True, False) and isinstance(body["StreamNames"], list)


# ------------------------------------------------------------------------------------------
# HTTP/2 with prior knowledge (the Java SDK v2 async client does this on http:// endpoints)
# ------------------------------------------------------------------------------------------


def test_http2_prior_knowledge_list_streams(server, stream1):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("h2")
    body = json.dumps({"Limit": 100}).encode()
    headers = sign_headers(server.endpoint, "Kinesis_20131202.ListStreams", body)
    # httpx sets Host itself; signed headers must match what is sent.
    with httpx.Client(http1=False, http2=True, timeout=30) as c:
        r = c.post(server.endpoint + "/", content=body, headers=headers)
    assert r.http_version == "HTTP/2"
    assert r.status_code == 200, r.text
    assert r.headers.get("x-amzn-requestid")
    j = r.json()
    assert stream1 in j["StreamNames"] or j["HasMoreStreams"] is True
    # An error over h2 is shaped the same.
    body = json.dumps({"StreamName": unique_name("missing")}).encode()
    headers = sign_headers(server.endpoint, "Kinesis_20131202.DescribeStreamSummary", body)
    with httpx.Client(http1=False, http2=True, timeout=30) as c:
        r = c.post(server.endpoint + "/", content=body, headers=headers)
        assert r.status_code == 400
        assert r.json()["__type"].split("#")[-1] == "ResourceNotFoundException"
        # Several requests on one h2 connection.
        for _ in range(5):
            b = json.dumps({}).encode()
            r = c.post(server.endpoint + "/", content=b, headers=sign_headers(server.endpoint, "Kinesis_20131202.ListStreams", b))
            assert r.status_code == 200 and r.http_version == "HTTP/2"


# ------------------------------------------------------------------------------------------
# Abuse, then health (kept last in this file)
# ------------------------------------------------------------------------------------------


def _send_raw_bytes(port, data):
    """Send bytes on a fresh connection, half-close, read whatever comes back (bounded).
    The server may close on us at any point; that is fine."""
    chunks = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            for _ in range(1000):
                c = s.recv(65536)
                if not c:
                    break
                chunks.append(c)
    except OSError:  # reset, not connected, timeout
        pass
    return b"".join(chunks)


def test_zz_server_still_healthy_after_abuse(server, kinesis, stream1):
    # Garbage on the socket, a bad HTTP request line, a truncated body, a huge Content-Length
    # promise that is never kept, a GET, and an unsigned request.
    _send_raw_bytes(server.port, os.urandom(4096))
    _send_raw_bytes(server.port, b"NOT HTTP AT ALL\r\n\r\n")
    _send_raw_bytes(
        server.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
        b"X-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Length: 100\r\n\r\n{\"Lim",
    )
    _send_raw_bytes(
        server.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\nabc",
    )
    _send_raw_bytes(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    resp = raw_request(server, "ListStreams", {}, sign=False)
    assert resp.status in (200, 400, 403), resp
    for body in (b"", b"null", b"[]", b"\"string\"", b"{}" * 1000):
        # No stream is named by any of these bodies, so whatever the parse, the answer is a 400.
        r = raw_request(server, "DescribeStreamSummary", body)
        assert r.status == 400, r
        assert r.error_type in ("SerializationException", "ValidationException", "InvalidArgumentException"), r

    # Still serving: health, control plane and data plane.
    assert server.healthy()
    assert server.running
    assert stream1 in kinesis.list_streams(Limit=10000)["StreamNames"] or kinesis.list_streams()["HasMoreStreams"]
    put = kinesis.put_record(StreamName=stream1, Data=b"after-abuse", PartitionKey="k")
    shard = list_all_shards(kinesis, stream1)[0]["ShardId"]
    recs = read_shard(kinesis, stream1, shard, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=put["SequenceNumber"])
    assert [r["Data"] for r in recs] == [b"after-abuse"]
