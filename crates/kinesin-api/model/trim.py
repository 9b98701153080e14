#!/usr/bin/env python3
"""Trim botocore's Kinesis service model down to what kinesin-api embeds.

Usage: python3 trim.py [path/to/botocore/data/kinesis/2013-12-02/service-2.json]
Writes kinesis-2013-12-02.json next to this script.

Keeps: metadata, the 39 stream operations, and every shape reachable from
their inputs, outputs and errors. Drops: every `documentation` string, the
Queue/Channel operations and shapes only they use. Member order is kept as in
the source (the validator reports violations in model order).
"""
import json
import os
import sys

STREAM_OPERATIONS = """
AddTagsToStream CreateStream DecreaseStreamRetentionPeriod DeleteResourcePolicy
DeleteStream DeregisterStreamConsumer DescribeAccountSettings DescribeLimits
DescribeStream DescribeStreamConsumer DescribeStreamSummary
DisableEnhancedMonitoring EnableEnhancedMonitoring GetRecords GetResourcePolicy
GetShardIterator IncreaseStreamRetentionPeriod ListShards ListStreamConsumers
ListStreams ListTagsForResource ListTagsForStream MergeShards PutRecord
PutRecords PutResourcePolicy RegisterStreamConsumer RemoveTagsFromStream
SplitShard StartStreamEncryption StopStreamEncryption SubscribeToShard
TagResource UntagResource UpdateAccountSettings UpdateMaxRecordSize
UpdateShardCount UpdateStreamMode UpdateStreamWarmThroughput
""".split()

DROP_KEYS = {"documentation", "documentationUrl", "examples"}


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k not in DROP_KEYS}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/tmp/kinesis-service-2.json"
    with open(src) as f:
        model = json.load(f)

    missing = [op for op in STREAM_OPERATIONS if op not in model["operations"]]
    if missing:
        sys.exit("operations missing from the source model: %s" % missing)

    reachable = []
    seen = set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        reachable.append(name)
        shape = model["shapes"][name]
        for key in ("member", "key", "value"):
            if key in shape:
                visit(shape[key]["shape"])
        for member in shape.get("members", {}).values():
            visit(member["shape"])

    operations = {}
    for op in STREAM_OPERATIONS:
        definition = model["operations"][op]
        operations[op] = strip(definition)
        for key in ("input", "output"):
            if key in definition:
                visit(definition[key]["shape"])
        for err in definition.get("errors", []):
            visit(err["shape"])

    out = {
        "version": model.get("version", "2.0"),
        "metadata": strip(model["metadata"]),
        "operations": operations,
        "shapes": {name: strip(model["shapes"][name]) for name in sorted(reachable)},
    }
    dst = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kinesis-2013-12-02.json")
    with open(dst, "w") as f:
        json.dump(out, f, indent=1, sort_keys=False)
        f.write("\n")
    print("wrote %s: %d operations, %d shapes" % (dst, len(operations), len(out["shapes"])))


if __name__ == "__main__":
    main()
