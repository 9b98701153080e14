"""OpenTelemetry over OTLP: three real nodes send their traces and metrics (`--otlp-endpoint`) to an
OTLP/gRPC receiver run by the test, whose requests opentelemetry-proto decodes.

A PutRecords taken by a node that does not lead the shard is one trace across two nodes: the
gateway's `request` span (carrying the x-amzn-RequestId the client got), its `cluster.forward` to
the leader, and on the leader `cluster.proposal` (a child of the forward, through the trace
context the cluster transport carries) and `raft.write` (committed and applied)."""

import threading
import uuid
from concurrent import futures

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from conftest import free_port, poll, wait_active
from test_cluster import admin, start_cluster


class Receiver(trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    """An OTLP/gRPC receiver that keeps every span and every metrics export it is sent."""

    def __init__(self):
        self.lock = threading.Lock()
        self.spans = []  # (node, span)
        self.metrics = []  # (node, metric)
        self.port = free_port()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def node_of(resource):
        attributes = {a.key: a.value.string_value for a in resource.attributes}
        assert attributes["service.name"] == "kinesin", attributes
        return attributes["service.instance.id"]

    def Export(self, request, context):  # noqa: N802 (the gRPC method's name)
        with self.lock:
            if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                for resource_spans in request.resource_spans:
                    node = self.node_of(resource_spans.resource)
                    for scope in resource_spans.scope_spans:
                        self.spans += [(node, span) for span in scope.spans]
                return trace_service_pb2.ExportTraceServiceResponse()
            for resource_metrics in request.resource_metrics:
                node = self.node_of(resource_metrics.resource)
                for scope in resource_metrics.scope_metrics:
                    self.metrics += [(node, metric) for metric in scope.metrics]
            return metrics_service_pb2.ExportMetricsServiceResponse()

    def stop(self):
        self.server.stop(grace=None)


def scrape(server):
    """{(name, ((label, value), ...)): value} of a node's /metrics (labels without quotes in them)."""
    import re
    import urllib.request
    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=10) as r:
        text = r.read().decode()
    figures = {}
    for line in text.splitlines():
        match = re.fullmatch(r'([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)', line)
        if match and not line.startswith("#"):
            name, labels, value = match.groups()
            pairs = tuple(re.findall(r'(\w+)="([^"]*)"', labels or ""))
            figures[(name, pairs)] = float(value)
    return figures


def attributes(span):
    out = {}
    for a in span.attributes:
        value = a.value
        out[a.key] = value.string_value if value.HasField("string_value") else value.int_value
    return out


def test_a_forwarded_put_is_one_trace_across_two_nodes_and_metrics_go_over_otlp(tmp_path):
    receiver = Receiver()
    servers = start_cluster(tmp_path, extra_args=["--otlp-endpoint", receiver.endpoint, "--otlp-metrics-secs", "1"])
    try:
        stream = f"otel-{uuid.uuid4().hex[:8]}"
        client = servers[0].client()
        client.create_stream(StreamName=stream, ShardCount=1)
        wait_active(client, stream)
        shard = poll(lambda: (admin(servers[0], f"/admin/v1/streams/{stream}/shards")["shards"] or [None])[0],
                     what="the shard's view")
        poll(lambda: admin(servers[0], f"/admin/v1/streams/{stream}/shards")["shards"][0].get("leader"),
             what="a leader for the shard")
        leader = admin(servers[0], f"/admin/v1/streams/{stream}/shards")["shards"][0]["leader"]
        taker = next(s for s in servers if s.node_id != leader)
        assert shard is not None

        out = taker.client().put_records(
            StreamName=stream,
            Records=[{"Data": f"r{i}".encode(), "PartitionKey": f"k{i}"} for i in range(5)],
        )
        assert out.get("FailedRecordCount", 0) == 0, out
        request_id = out["ResponseMetadata"]["RequestId"]

        def the_trace():
            with receiver.lock:
                spans = list(receiver.spans)
            roots = [(node, s) for node, s in spans
                     if s.name == "request" and attributes(s).get("request_id") == request_id]
            if not roots:
                return None
            trace_id = roots[0][1].trace_id
            in_trace = [(node, s) for node, s in spans if s.trace_id == trace_id]
            names = {s.name for _, s in in_trace}
            return in_trace if {"request", "cluster.forward", "cluster.proposal", "raft.write"} <= names else None

        trace = poll(the_trace, timeout=30, what="the PutRecords' trace, from both nodes")
        by_name = {}
        for node, span in trace:
            by_name.setdefault(span.name, []).append((node, span))
        (request_node, request), = by_name["request"]
        assert request_node == f"node-{taker.node_id}"
        assert attributes(request)["op"] == "PutRecords"
        assert request.parent_span_id == b"", "the request is the trace's root"
        forward_node, forward = next((n, s) for n, s in by_name["cluster.forward"] if n == request_node)
        assert attributes(forward)["peer"] == f"127.0.0.1:{next(s for s in servers if s.node_id == leader).cluster_port}"
        proposal_node, proposal = by_name["cluster.proposal"][0]
        assert proposal_node == f"node-{leader}", "the proposal is served by the shard's leader"
        assert proposal.parent_span_id == forward.span_id, "a child of the forward, across nodes"
        write_node, write = next((n, s) for n, s in by_name["raft.write"] if s.parent_span_id == proposal.span_id)
        assert write_node == proposal_node
        assert proposal.start_time_unix_nano <= write.start_time_unix_nano <= write.end_time_unix_nano
        assert request.start_time_unix_nano <= forward.start_time_unix_nano
        assert forward.end_time_unix_nano <= request.end_time_unix_nano

        # The metrics: /metrics' figures under the same names and labels, from every node.
        def incoming_records():
            latest = {}
            with receiver.lock:
                exported = list(receiver.metrics)
            for node, metric in exported:
                if metric.name != "kinesis_IncomingRecords_total":
                    continue
                assert metric.sum.is_monotonic
                for point in metric.sum.data_points:
                    if attributes(point).get("stream") == stream:
                        latest[node] = point.as_double
            return latest

        poll(lambda: sum(incoming_records().values()) == 5, timeout=30,
             what="IncomingRecords over OTLP to add up to the 5 records put")
        with receiver.lock:
            nodes_reporting = {node for node, _ in receiver.metrics}
        assert nodes_reporting == {f"node-{s.node_id}" for s in servers}

        # The cluster's own figures, from /metrics: the groups (the controller's and the shard's)
        # are led once each, the shard's leader committed the write and tracks both followers'
        # lag, RocksDB holds something, nothing is stalled or moving.
        figures = {s.node_id: scrape(s) for s in servers}
        assert sum(f[("kinesin_raft_groups_led", ())] for f in figures.values()) == 2, figures
        on_leader = figures[leader]
        assert on_leader[("kinesin_raft_commits_total", ())] >= 1
        assert on_leader[("kinesin_raft_commit_seconds_sum", ())] > 0
        lagging = {labels for name, labels in on_leader if name == "kinesin_raft_replication_lag_entries"}
        assert lagging == {(("peer", str(s.node_id)),) for s in servers if s.node_id != leader}, lagging
        for f in figures.values():
            assert f[("kinesin_storage_memtable_bytes", ())] > 0
            assert f[("kinesin_storage_writes_stopped", ())] == 0
            assert f[("kinesin_procedures_replica_moves", ())] == 0
            assert f[("kinesin_cluster_version", ())] == 2
    finally:
        for s in servers:
            s.cleanup()
        receiver.stop()
