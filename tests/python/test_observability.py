"""What operators see: /healthz and Prometheus metrics at /metrics."""

import json
import re
import urllib.request

from conftest import create_stream, poll, read_shard


def metrics(server):
    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["content-type"].startswith("text/plain")
        return r.read().decode()


def value(text, name, **labels):
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_requests_records_and_group_commits(server):
    client = server.client()
    stream = create_stream(client, shards=2)
    before = metrics(server)
    client.put_records(StreamName=stream, Records=[{"Data": b"x" * 10, "PartitionKey": str(i)} for i in range(7)])
    try:
        client.describe_stream(StreamName="no-such-stream-for-metrics")
    except client.exceptions.ResourceNotFoundException:
        pass
    after = metrics(server)

    ok = dict(operation="PutRecords", outcome="ok")
    assert value(after, "kinesin_requests_total", **ok) == value(before, "kinesin_requests_total", **ok) + 1
    missing = dict(operation="DescribeStream", outcome="ResourceNotFoundException")
    assert value(after, "kinesin_requests_total", **missing) >= value(before, "kinesin_requests_total", **missing) + 1
    assert value(after, "kinesin_records_written_total") >= value(before, "kinesin_records_written_total") + 7
    assert value(after, "kinesin_record_bytes_written_total") >= value(before, "kinesin_record_bytes_written_total") + 70
    syncs = value(after, "kinesin_wal_syncs_total")
    assert syncs > value(before, "kinesin_wal_syncs_total")
    assert value(after, "kinesin_wal_sync_waiters_total") >= syncs
    assert value(after, "kinesin_raft_groups") >= 3  # the controller and the two shards


def test_idle_shards_go_quiet_and_a_write_wakes_one_without_an_election(fresh_server):
    """An idle shard stops ticking (kinesin_raft_groups_quiet counts it); a write to it is
    answered and read back at once, and no election happens on the way."""
    client = fresh_server.client()
    stream = create_stream(client, shards=3)
    client.put_record(StreamName=stream, Data=b"before", PartitionKey="k")

    def all_shards_quiet():
        text = metrics(fresh_server)
        # Every group but the controller's, which never goes quiet.
        return value(text, "kinesin_raft_groups_quiet") == value(text, "kinesin_raft_groups") - 1 == 3 and text

    quiet = poll(all_shards_quiet, what="every shard to go quiet")
    put = client.put_record(StreamName=stream, Data=b"after", PartitionKey="k")
    shard = put["ShardId"]
    data = [r["Data"] for r in read_shard(client, stream, shard)]
    assert data == [b"before", b"after"]
    again = poll(all_shards_quiet, what="the woken shard to go quiet again")
    assert value(again, "kinesin_raft_quiesced_total") > value(quiet, "kinesin_raft_quiesced_total")
    assert value(again, "kinesin_raft_term_changes_total") == value(quiet, "kinesin_raft_term_changes_total")
    assert value(again, "kinesin_raft_writes_refused_lease_total") == 0
    with urllib.request.urlopen(f"{fresh_server.endpoint}/admin/v1/streams/{stream}/shards", timeout=10) as r:
        view = json.load(r)
    assert [s["quiet"] for s in view["shards"]] == [True, True, True], view


def test_json_logs_carry_the_request_id_the_client_saw(tmp_path):
    """With --log-format json every line is a JSON object, and a line logged while a request was
    served names the request id its response carried (x-amzn-RequestId)."""
    import botocore.exceptions

    from conftest import Server, error_code

    s = Server(tmp_path / "node", extra_args=["--log-format", "json"])
    try:
        s.start()
        client = s.client()
        stream = create_stream(client)
        # A KMS refusal is logged (a warning) while the request is served.
        try:
            client.start_stream_encryption(StreamName=stream, EncryptionType="KMS", KeyId="no-such-key")
            raise AssertionError("an unknown key was accepted")
        except botocore.exceptions.ClientError as e:
            assert error_code(e) == "KMSNotFoundException", e
            request_id = e.response["ResponseMetadata"]["RequestId"]
        assert request_id

        def logged():
            with open(s.log_path) as f:
                lines = [line for line in f if line.startswith("{")]
            records = [json.loads(line) for line in lines]
            return [r for r in records if r.get("span", {}).get("request_id") == request_id]

        found = poll(logged, timeout=10, what="the request's log line")
        assert found[0]["span"]["op"] == "StartStreamEncryption", found
        assert found[0]["level"] == "WARN" and "KMS" in found[0]["fields"]["message"], found
    finally:
        s.cleanup()
