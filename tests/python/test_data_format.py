"""A data directory written by an earlier version stays readable: the node opens the committed
fixture (tests/fixtures/make_data_format_fixture.py says how it was made) and serves everything it
held: the stream, its tags, its consumer and every record, byte for byte, at the same sequence
numbers; and it takes new writes on top. The records are older than their retention period by now,
so the node (the build with failpoints) runs on a clock started a minute after they were written."""

import json
import os
import tarfile

import pytest

from conftest import Server, read_shard, wait_active

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")


@pytest.mark.parametrize("name", ["data-format-1"])
def test_a_data_directory_of_an_earlier_format_opens_with_everything_in_it(tmp_path, name):
    with open(os.path.join(FIXTURES, f"{name}.json")) as f:
        expected = json.load(f)
    server = Server(tmp_path / "node", failpoints=f"clock::start-at=return({expected['written_at_ms'] + 60_000})")
    with tarfile.open(os.path.join(FIXTURES, f"{name}.tar.gz")) as tar:
        tar.extractall(server.base_dir, filter="data")
    try:
        server.start()
        client = server.client()
        stream = expected["stream"]
        wait_active(client, stream)
        assert client.list_tags_for_stream(StreamName=stream)["Tags"] == [
            {"Key": k, "Value": v} for k, v in expected["tags"].items()
        ]
        arn = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
        consumers = client.list_stream_consumers(StreamARN=arn)["Consumers"]
        assert [c["ConsumerName"] for c in consumers] == [expected["consumer"]]

        def stored():
            found = []
            for shard in sorted({r["shard"] for r in expected["records"]}):
                for record in read_shard(client, stream, shard):
                    found.append((shard, record["SequenceNumber"], record["PartitionKey"], record["Data"].hex()))
            return found

        want = sorted((r["shard"], r["sequence"], r["key"], r["data"]) for r in expected["records"])
        assert sorted(stored()) == want
        out = client.put_record(StreamName=stream, PartitionKey="new", Data=b"after the upgrade")
        assert int(out["SequenceNumber"]) > max(int(r["sequence"]) for r in expected["records"] if r["shard"] == out["ShardId"])
        assert len(stored()) == len(want) + 1
    finally:
        server.cleanup()
