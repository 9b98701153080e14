"""Crash and restart: every acknowledged write survives SIGKILL, exactly once, unchanged.

Writers record what the server acknowledged (shard, sequence number, data). A request that fails
with a connection error has an unknown outcome: its records may or may not be there, but never
twice and never altered. Nothing that was never sent may appear."""

import threading
import time
import uuid

import botocore.exceptions

from conftest import create_stream, error_code, list_all_shards, make_client, read_shard, wait_active

WRITERS = 4
BATCH = 10
KILL_AFTER_ACKS = 1500  # SIGKILL once this many records are acknowledged in a phase
PHASE_DEADLINE_SECS = 60
MAX_BATCHES_PER_WRITER = 2000  # hard bound on every writer loop


class Ledger:
    """What the writers sent and what the server acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = set()  # every payload ever put on the wire
        self.acked = {}  # payload -> (shard_id, sequence_number)
        self.unknown = set()  # payloads of requests whose outcome is unknown (connection error)
        self.rejected = set()  # payloads the server reported as failed (per-entry ErrorCode)
        self.errors = []  # unexpected (non-connection) errors

    def ack_count(self):
        with self.lock:
            return len(self.acked)


def writer(endpoint, stream, wid, phase, ledger, stop, acked_event):
    client = make_client(endpoint, connect_timeout=3, read_timeout=10)
    for b in range(MAX_BATCHES_PER_WRITER):
        if stop.is_set():
            return
        payloads = [f"p{phase}-w{wid}-b{b}-r{i}-{uuid.uuid4().hex}".encode() for i in range(BATCH)]
        entries = [{"Data": p, "PartitionKey": f"pk-{wid}-{b}-{i}"} for i, p in enumerate(payloads)]
        with ledger.lock:
            ledger.sent.update(payloads)
        try:
            resp = client.put_records(StreamName=stream, Records=entries)
        except (botocore.exceptions.ClientError,) as e:
            # A 4xx/5xx answer: nothing acknowledged. Throttling is an acceptable answer.
            with ledger.lock:
                ledger.unknown.update(payloads)
                if error_code(e) not in ("ProvisionedThroughputExceededException", "InternalFailure", "ServiceUnavailable"):
                    ledger.errors.append(repr(e))
            continue
        except Exception:  # connection refused/reset, timeouts: unknown outcome
            with ledger.lock:
                ledger.unknown.update(payloads)
            if stop.is_set():
                return
            time.sleep(0.05)
            continue
        with ledger.lock:
            if len(resp["Records"]) != len(entries):
                ledger.errors.append(f"PutRecords answered {len(resp['Records'])} results for {len(entries)} entries")
                ledger.unknown.update(payloads)
                continue
            for p, r in zip(payloads, resp["Records"]):
                if "ErrorCode" in r:
                    ledger.rejected.add(p)
                else:
                    ledger.acked[p] = (r["ShardId"], r["SequenceNumber"])
            if len(ledger.acked) >= acked_event.threshold:
                acked_event.set()


class Threshold(threading.Event):
    def __init__(self, threshold):
        super().__init__()
        self.threshold = threshold


def run_phase_and_kill(server, stream, phase, ledger):
    """Start writers, SIGKILL the server while they are writing, stop the writers."""
    stop = threading.Event()
    reached = Threshold(ledger.ack_count() + KILL_AFTER_ACKS)
    threads = [
        threading.Thread(target=writer, args=(server.endpoint, stream, w, phase, ledger, stop, reached), daemon=True)
        for w in range(WRITERS)
    ]
    for t in threads:
        t.start()
    try:
        assert reached.wait(PHASE_DEADLINE_SECS), (
            f"phase {phase}: only {ledger.ack_count()} acknowledged records within {PHASE_DEADLINE_SECS}s; "
            f"errors: {ledger.errors[:5]}"
        )
        # Kill while the writers are still in flight.
        assert all(t.is_alive() for t in threads), "writers finished before the kill"
        server.kill9()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a writer did not stop"
    assert not ledger.errors, ledger.errors[:5]
    with ledger.lock:
        print(
            f"phase {phase}: sent {len(ledger.sent)}, acknowledged {len(ledger.acked)}, "
            f"unknown outcome {len(ledger.unknown)}, rejected {len(ledger.rejected)}"
        )


def read_everything(client, stream):
    """{shard_id: [records]} for every shard, from TRIM_HORIZON to the end."""
    return {s["ShardId"]: read_shard(client, stream, s["ShardId"], max_calls=5000) for s in list_all_shards(client, stream)}


def verify(client, stream, ledger):
    by_shard = read_everything(client, stream)
    assert len(by_shard) == 2
    seen = {}
    for shard_id, recs in by_shard.items():
        seqs = [int(r["SequenceNumber"]) for r in recs]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), f"{shard_id}: sequence numbers not strictly increasing"
        for r in recs:
            data = r["Data"]
            assert data in ledger.sent, f"{shard_id} holds a record that was never sent: {data[:80]!r}"
            assert data not in seen, f"record {data[:80]!r} appears twice: {seen[data]} and {(shard_id, r['SequenceNumber'])}"
            seen[data] = (shard_id, r["SequenceNumber"])
    missing = [p for p in ledger.acked if p not in seen]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"
    moved = [(p, ledger.acked[p], seen[p]) for p in ledger.acked if seen[p] != ledger.acked[p]]
    assert not moved, f"{len(moved)} acknowledged records at a different (shard, sequence number), e.g. {moved[:3]}"
    extra = set(seen) - set(ledger.acked)
    assert extra <= (ledger.unknown | ledger.rejected), "records present that were neither acknowledged nor in doubt"
    return seen


def test_acknowledged_writes_survive_sigkill_twice(fresh_server):
    crash_twice_and_verify(fresh_server)


def test_acknowledged_writes_survive_sigkill_with_snapshots_and_purges(server_factory):
    # The log behind each snapshot is purged, and applied records are written unsynced (a later
    # WAL fsync covers them). A snapshot every 10 entries with no log kept behind it purges all the
    # time while the writers run: a snapshot of state that was not yet durable, or a purge ahead
    # of it, would lose acknowledged records at the kill.
    crash_twice_and_verify(server_factory(extra_args=["--raft-snapshot-every", "10", "--raft-logs-kept", "0"]))


def crash_twice_and_verify(srv):
    client = srv.client()
    stream = create_stream(client, shards=2)
    ledger = Ledger()

    # Phase 1: write, crash, restart, verify.
    run_phase_and_kill(srv, stream, 1, ledger)
    srv.start()
    client = srv.client()
    wait_active(client, stream)
    seen1 = verify(client, stream, ledger)
    assert len(seen1) >= KILL_AFTER_ACKS

    # Phase 2: write more on the restarted server, crash again, restart, verify all of it.
    run_phase_and_kill(srv, stream, 2, ledger)
    srv.start()
    client = srv.client()
    wait_active(client, stream)
    seen2 = verify(client, stream, ledger)
    assert len(seen2) >= 2 * KILL_AFTER_ACKS
    # What survived the first crash is still where it was.
    for p, loc in seen1.items():
        assert seen2.get(p) == loc

    # The stream still takes writes, with sequence numbers above everything before the crashes.
    last = {}
    for shard_id, seq in seen2.values():
        last[shard_id] = max(last.get(shard_id, 0), int(seq))
    for i in range(20):
        r = client.put_records(StreamName=stream, Records=[{"Data": f"post-{i}".encode(), "PartitionKey": f"post-{i}"}])
        assert r["FailedRecordCount"] == 0
        rec = r["Records"][0]
        assert int(rec["SequenceNumber"]) > last.get(rec["ShardId"], 0), "sequence number reused after restart"
        last[rec["ShardId"]] = int(rec["SequenceNumber"])


def test_stream_metadata_survives_sigkill(fresh_server):
    srv = fresh_server
    client = srv.client()
    a = create_stream(client, shards=3, Tags={"k": "v"})
    client.increase_stream_retention_period(StreamName=a, RetentionPeriodHours=72)
    b = create_stream(client, shards=1)
    client.delete_stream(StreamName=b)
    # b's delete was acknowledged: whether or not it finished, it must not come back ACTIVE.
    srv.kill9()
    srv.start()
    client = srv.client()
    s = wait_active(client, a)
    assert s["OpenShardCount"] == 3 and s["RetentionPeriodHours"] == 72
    assert client.list_tags_for_stream(StreamName=a)["Tags"] == [{"Key": "k", "Value": "v"}]
    try:
        st = client.describe_stream_summary(StreamName=b)["StreamDescriptionSummary"]["StreamStatus"]
        assert st == "DELETING", f"deleted stream came back as {st}"
    except botocore.exceptions.ClientError as e:
        assert error_code(e) == "ResourceNotFoundException"


def test_graceful_stop_exits_zero_and_keeps_data(fresh_server):
    srv = fresh_server
    client = srv.client()
    stream = create_stream(client, shards=2)
    acked = {}
    for i in range(50):
        r = client.put_record(StreamName=stream, Data=f"graceful-{i}".encode(), PartitionKey=f"k{i}")
        acked[f"graceful-{i}".encode()] = (r["ShardId"], r["SequenceNumber"])

    t0 = time.monotonic()
    code = srv.stop(timeout=30)
    elapsed = time.monotonic() - t0
    assert code == 0, f"kinesin exited with {code} on SIGTERM (None = had to be killed after 30 s)"
    assert elapsed < 30
    assert not srv.healthy()

    srv.start()
    client = srv.client()
    wait_active(client, stream)
    got = {}
    for shard_id, recs in read_everything(client, stream).items():
        for r in recs:
            got[r["Data"]] = (shard_id, r["SequenceNumber"])
    assert got == acked


def test_every_shard_takes_writes_as_soon_as_healthz_answers_after_a_restart(fresh_server):
    """/healthz must mean ready: after a restart (graceful or crash) the first write to every shard
    succeeds without a client retry, even though each shard's Raft group has just restarted."""
    client = fresh_server.client()
    stream = create_stream(client, shards=4)
    shards = list_all_shards(client, stream)
    for restart in (fresh_server.restart, lambda: (fresh_server.kill9(), fresh_server.start())):
        restart()
        client = fresh_server.client()  # no retries (total_max_attempts=1)
        for shard in shards:
            out = client.put_record(
                StreamName=stream,
                Data=b"first after restart",
                PartitionKey="k",
                ExplicitHashKey=shard["HashKeyRange"]["StartingHashKey"],
            )
            assert out["ShardId"] == shard["ShardId"]
