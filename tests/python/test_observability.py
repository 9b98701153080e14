"""What operators see: /healthz and Prometheus metrics at /metrics."""

import re
import urllib.request

from conftest import create_stream


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
