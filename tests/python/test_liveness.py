"""Node liveness on real processes: a paused node (SIGSTOP), the fault a long GC pause, a stuck disk
or an overloaded VM produces. Its peers must replace it as leader of the shards it led (one
follower each campaigns once its pings stop), leave the shards it merely followed alone, and when
it resumes it must learn the new leaders without an election of its own: for a moment after
SIGCONT every peer looks silent to it, and if it campaigned then it would unseat the leaders
elected meanwhile (flapping). The one change that may follow is planned: the controller hands
each shard back to its preferred leader with a leadership transfer."""

import os
import re
import signal
import time
import uuid
from collections import Counter

from conftest import poll, wait_active
from test_cluster import admin, start_cluster

SHARDS = 12
PAUSE_SECS = 3.0  # the fault: well beyond liveness's one second and the leader lease


def shards_seen(server, stream):
    return admin(server, f"/admin/v1/streams/{stream}/shards")["shards"]


def leaders_and_terms(views):
    """{shard: (leader, term)} when every view agrees on both, else None."""
    agreed = {}
    for view in views:
        for shard in view:
            seen = (shard["leader"], shard["term"])
            if shard["leader"] is None or agreed.setdefault(shard["shard_id"], seen) != seen:
                return None
    return agreed


def settled(servers, stream):
    """Every replica quiet, and every node agrees on each shard's leader and term."""
    views = [shards_seen(s, stream) for s in servers]
    if not all(shard["quiet"] for view in views for shard in view):
        return None
    return leaders_and_terms(views)


def settled_stream_and_busiest_leader(servers, prefix):
    """A new stream of SHARDS shards, once settled: (stream, {shard: (leader, term)}, the node
    leading the most shards, the shards it leads)."""
    client = servers[0].client()
    stream = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=stream, ShardCount=SHARDS)
    wait_active(client, stream)
    before = poll(lambda: settled(servers, stream), timeout=60, what="every shard quiet and agreed")
    busiest = Counter(leader for leader, _ in before.values()).most_common(1)[0][0]
    led = {shard for shard, (leader, _) in before.items() if leader == busiest}
    return stream, before, busiest, led


def test_a_paused_leader_is_replaced_once_and_learns_it_without_an_election_when_resumed(tmp_path):
    servers = start_cluster(tmp_path)
    try:
        stream, before, victim_id, led = settled_stream_and_busiest_leader(servers, "pause")
        victim = servers[victim_id - 1]
        survivors = [s for s in servers if s is not victim]
        layout = shards_seen(survivors[0], stream)
        ranges = {sh["shard_id"]: int(sh["starting_hash_key"]) for sh in layout}
        preferred = {sh["shard_id"]: sh["replicas"][0] for sh in layout}

        os.kill(victim.proc.pid, signal.SIGSTOP)
        paused_at = time.monotonic()
        try:
            def replaced():
                agreed = leaders_and_terms([shards_seen(s, stream) for s in survivors])
                return agreed if agreed and all(agreed[shard][0] != victim_id for shard in led) else None

            during = poll(replaced, timeout=30, what="new leaders for the paused node's shards")
            writer = survivors[0].client()
            for shard in sorted(led):
                out = writer.put_record(StreamName=stream, Data=b"while paused", PartitionKey="p",
                                        ExplicitHashKey=str(ranges[shard]))
                assert out["ShardId"] == shard
            time.sleep(max(0.0, PAUSE_SECS - (time.monotonic() - paused_at)))  # the fault lasts
        finally:
            os.kill(victim.proc.pid, signal.SIGCONT)

        after = poll(lambda: settled(servers, stream), timeout=60, what="every shard quiet and agreed again")
        for shard in led:
            # One election each: one follower campaigned, with a pre-vote, and won.
            assert during[shard][1] == before[shard][1] + 1, (shard, before[shard], during[shard])
        for shard, (leader, term) in after.items():
            if shard not in led:
                # Shards the paused node only followed never saw an election.
                assert (leader, term) == before[shard], (shard, before[shard], after[shard])
            elif (leader, term) != during[shard]:
                # The only change allowed since: the new leader handing the shard back to its
                # preferred leader (the controller spreads leaderships), one transfer, one term.
                assert (leader, term) == (preferred[shard], during[shard][1] + 1), (shard, during[shard], after[shard])
    finally:
        for s in servers:
            s.cleanup()


def test_a_node_stopped_gracefully_hands_its_shards_over_before_it_exits(tmp_path):
    """SIGTERM: the node hands each group it leads to an up-to-date follower (a leadership
    transfer) and exits only then, so its shards never wait for their followers to notice it gone
    and elect (a rolling restart would otherwise stall each shard's writers once per node)."""
    servers = start_cluster(tmp_path)
    try:
        stream, before, victim_id, led = settled_stream_and_busiest_leader(servers, "pause")
        victim = servers[victim_id - 1]
        survivors = [s for s in servers if s is not victim]

        assert victim.stop() == 0, victim.log_tail()
        log = re.sub(r"\x1b\[[0-9;]*m", "", open(victim.log_path).read())
        handed = re.findall(r"leadership handed over before stopping led=(\d+) handed=(\d+)", log)
        assert handed, log[-3000:]
        led_count, handed_count = map(int, handed[-1])
        assert led_count >= len(led) and handed_count == led_count, handed

        # The new leaders were elected by the transfers, before the node exited: each in the
        # term after the one it had, and the survivors agree on them.
        after = poll(lambda: leaders_and_terms([shards_seen(s, stream) for s in survivors]),
                     what="the survivors to agree on every shard's leader")
        for shard in led:
            leader, term = after[shard]
            assert leader != victim_id
            assert term == before[shard][1] + 1, (shard, before[shard], after[shard])
        writer = survivors[0].client()
        for shard in sorted(led):
            writer.put_record(StreamName=stream, Data=b"x", PartitionKey="k",
                              ExplicitHashKey=str(int(next(sh["starting_hash_key"] for sh in shards_seen(survivors[0], stream)
                                                           if sh["shard_id"] == shard))))
    finally:
        for s in servers:
            s.cleanup()
