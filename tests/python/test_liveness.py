"""Node liveness on real processes: a paused node (SIGSTOP), the fault a long GC pause, a stuck disk
or an overloaded VM produces. Its peers must replace it as leader of the shards it led (one
follower each campaigns once its pings stop), leave the shards it merely followed alone, and when
it resumes it must learn the new leaders without an election of its own: for a moment after
SIGCONT every peer looks silent to it, and if it campaigned then it would unseat the leaders
elected meanwhile (flapping). The one change that may follow is planned: the controller hands
each shard back to its preferred leader with a leadership transfer."""

import os
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


def test_a_paused_leader_is_replaced_once_and_learns_it_without_an_election_when_resumed(tmp_path):
    servers = start_cluster(tmp_path)
    try:
        client = servers[0].client()
        stream = f"pause-{uuid.uuid4().hex[:8]}"
        client.create_stream(StreamName=stream, ShardCount=SHARDS)
        wait_active(client, stream)
        before = poll(lambda: settled(servers, stream), timeout=60, what="every shard quiet and agreed")

        victim_id = Counter(leader for leader, _ in before.values()).most_common(1)[0][0]
        victim = servers[victim_id - 1]
        survivors = [s for s in servers if s is not victim]
        led = {shard for shard, (leader, _) in before.items() if leader == victim_id}
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
