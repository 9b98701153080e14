"""Nemeses: faults injected from outside the processes, on a schedule that follows from a seed.

A schedule alternates a quiet period (no fault of its own) and one fault: it picks the next kind
from the enabled ones (each in turn, in a seeded order, so every kind is exercised), starts the
fault (recorded in the history as process `nemesis`, f `start`, value the fault's name), holds it
for a random while, and stops it (f `stop`, same name). `--concurrent-faults N` runs N schedules
at once, so faults of different kinds overlap as they do in production; with 1 there are quiet
stretches in which the cluster must recover.

Kinds (`--nemesis`, comma-separated):
- `kill`: kill -9 of a minority of the nodes (one, or up to (n-1)/2), then restart;
- `pause`: freeze one node (SIGSTOP / the docker freezer), then thaw it;
- `partition` (docker): one of: `halves` (a random minority cut from the majority), `leader` (the
  node leading the most shards cut from the rest), `bridge` (two sides that only one node sees
  both of), `ring` (each node sees only its two ring neighbours: every node is in a majority, no
  two agree which), `one-way` (a node stops hearing the others, or they stop hearing it);
- `clock` (docker): one node's wall clock steps by up to ±5 minutes, then back;
- `disk` (docker, root): the disk-full node's file system fills up while it runs: it must stop by
  itself (exit status 74, recorded as an `exit` event); it is then started on the full disk (it
  must refuse to start); then the disk is freed and the node restarted;
- `lose-unsynced` (local, forgetful disks): a power cut: a minority, a majority or every node (in
  turn) dies at once (kill -9) and its disk forgets every write not yet fsynced, tearing the last one of each
  file; then they start again. Acknowledged records were fsynced on a majority, so none may be lost;
- `slow-fsync` (local, forgetful disks): one node's fsyncs take 0.5 to 3 s; the shards it does not
  lead must keep their pace;
- `fill-disk` (local, forgetful disks): one node's disk fills up while it runs: it must stop on its
  own (exit status 74, never serve from a disk it cannot write), and start again once space is free;
- `corrupt` (local, 4 nodes or more): a stopped node's database is damaged — a bit flipped or a
  4 KiB block zeroed in a WAL, table, blob or MANIFEST file — and the node started again: it must
  refuse to start (exit status 65) rather than serve or replicate the damage; it is then rebuilt
  from its peers as an operator would (drained, removed, wiped, joined again: see membership.py).
  Every other time the node is started with `--rebuild-corrupt` instead and must rebuild itself:
  healthy again under its id, in a new life (the admin API's `life`) when the damage was found;
- `membership`: a node (never the disk-full one, never one whose departure would leave fewer than
  3 members) is drained through another node's admin API; when its replicas have moved it is
  removed, stopped and its data wiped, and it comes back as a new member with `--join` (steps
  recorded as f `membership`, see membership.py).

Kill, pause, clock and membership act on nodes no other of them is acting on (this matters only
with `--concurrent-faults` above 1): a node being restarted is not drained, a leaving node not
killed.
"""

import os
import random
import threading

from .membership import Membership

KINDS = ("kill", "pause", "partition", "clock", "disk", "membership", "lose-unsynced", "slow-fsync", "fill-disk",
         "corrupt")
DOCKER_ONLY = {"partition", "clock", "disk"}
FORGETFUL_DISKS = {"lose-unsynced", "slow-fsync", "fill-disk"}  # local clusters over forgetfs
LOCAL_ONLY = FORGETFUL_DISKS | {"corrupt"}
DATA_CORRUPT_EXIT = 65  # the node's exit status when its data directory is found corrupt
PARTITIONS = ("halves", "leader", "bridge", "ring", "one-way")


def _set(nodes):
    return "{" + ",".join(map(str, sorted(nodes))) + "}"


class Nemesis:
    def __init__(self, kinds, cluster, history, seed, stop, leader_of_most=None, shard_leaders=None,
                 shapes=PARTITIONS, concurrent=1, quiet=(3.0, 6.0), hold=(3.0, 8.0)):
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown nemesis {unknown}; choose from {', '.join(KINDS)}")
        self.kinds = list(kinds)
        self.shapes = list(shapes)
        self.cluster = cluster
        self.history = history
        self.seed = seed
        self.stop = stop
        self.leader_of_most = leader_of_most or (lambda: None)
        self.shard_leaders = shard_leaders or dict
        self.concurrent = concurrent
        self.quiet = quiet
        self.hold = hold
        self.threads = []
        self.counts = {}
        self.busy = set()  # kinds with a fault in force: two schedules never run the same kind at once
        self.lock = threading.Lock()
        self.membership = Membership(cluster, history)
        self.held = set()  # nodes a kill, pause, clock or membership fault is acting on
        self.power_cuts = 0
        self.corruptions = 0

    def start(self):
        if not self.kinds:
            return
        for schedule in range(self.concurrent):
            thread = threading.Thread(target=self._schedule, args=(schedule,), name=f"nemesis-{schedule}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def join(self, timeout=120):
        for thread in self.threads:
            thread.join(timeout)

    def _next_kind(self, rng, order):
        with self.lock:
            for _ in range(len(order)):
                kind = order.pop(0)
                order.append(kind)
                if kind not in self.busy:
                    self.busy.add(kind)
                    return kind
        return None

    def _schedule(self, schedule):
        rng = random.Random(f"{self.seed}-{schedule}")
        order = rng.sample(self.kinds, len(self.kinds))
        while not self.stop.wait(rng.uniform(*self.quiet)):
            kind = self._next_kind(rng, order)
            if kind is None:
                continue
            try:
                self._inflict(kind, rng)
            finally:
                with self.lock:
                    self.busy.discard(kind)

    def _inflict(self, kind, rng):
        try:
            name, undo = getattr(self, f"_start_{kind.replace('-', '_')}")(rng)
        except Exception as exc:  # noqa: BLE001 - a fault that could not start is reported, not fatal
            self.history.record("nemesis", "info", "error", f"{kind}: {exc}")
            return
        self.history.record("nemesis", "info", "start", name)
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
        self.stop.wait(rng.uniform(*self.hold))
        try:
            undo()
        except Exception as exc:  # noqa: BLE001 - the final heal restores what this could not
            self.history.record("nemesis", "info", "error", f"{name}: {exc}")
        self.history.record("nemesis", "info", "stop", name)

    def _hold(self, choose):
        """`choose(free nodes)` picks the victims among the nodes no other fault acts on; they are
        held until `release` (the wrapped undo) has run."""
        with self.lock:
            victims = choose([n for n in self.cluster.nodes() if n not in self.held and n not in self.membership.leaving])
            self.held.update(victims)
        return victims

    def _release(self, victims, undo):
        def release():
            try:
                undo()
            finally:
                with self.lock:
                    self.held.difference_update(victims)
        return release

    # -- the faults: each returns (name, undo) -----------------------------------------------------
    def _start_kill(self, rng):
        victims = self._hold(lambda nodes: rng.sample(nodes, rng.randint(1, max(1, (len(nodes) - 1) // 2))))
        for node in victims:
            self.cluster.kill(node)

        def undo():
            for node in victims:
                self.cluster.restart(node)
        return f"kill {_set(victims)}", self._release(victims, undo)

    def _start_pause(self, rng):
        victims = self._hold(lambda nodes: [rng.choice(nodes)])
        node = victims[0]
        self.cluster.pause(node)
        return f"pause n{node}", self._release(victims, lambda: self.cluster.resume(node))

    def _start_partition(self, rng):
        nodes = self.cluster.nodes()
        shape = rng.choice(self.shapes)
        order = rng.sample(nodes, len(nodes))
        if shape == "halves":
            cut = rng.randint(1, len(nodes) // 2)
            groups = [order[:cut], order[cut:]]
            self.cluster.partition(groups)
            name = f"partition-halves {_set(groups[0])}|{_set(groups[1])}"
        elif shape == "leader":
            leader = self.leader_of_most() or order[0]
            groups = [[leader], [n for n in nodes if n != leader]]
            self.cluster.partition(groups)
            name = f"partition-leader n{leader}"
        elif shape == "bridge":
            bridge, rest = order[0], order[1:]
            left, right = rest[: len(rest) // 2], rest[len(rest) // 2:]
            self.cluster.drop([(a, b) for a in left for b in right] + [(b, a) for a in left for b in right])
            name = f"partition-bridge {_set(left)}<n{bridge}>{_set(right)}"
        elif shape == "ring":
            n = len(order)
            neighbours = {order[i]: {order[(i - 1) % n], order[(i + 1) % n]} for i in range(n)}
            self.cluster.drop([(a, b) for a in nodes for b in nodes if a != b and a not in neighbours[b]])
            name = "partition-ring " + "-".join(map(str, order))
        else:
            node, others = order[0], order[1:]
            if rng.random() < 0.5:
                self.cluster.drop([(o, node) for o in others])
                name = f"partition-one-way n{node} deaf"
            else:
                self.cluster.drop([(node, o) for o in others])
                name = f"partition-one-way n{node} mute"
        return name, self.cluster.heal_network

    def _start_clock(self, rng):
        victims = self._hold(lambda nodes: [rng.choice(nodes)])
        node = victims[0]
        offset = rng.choice([-1, 1]) * rng.randint(1, 300)
        self.cluster.set_clock_offset(node, offset)
        return f"clock n{node} {offset:+d}s", self._release(victims, lambda: self.cluster.set_clock_offset(node, 0))

    def _start_disk(self, rng):
        # The disk fills under the running node, which must stop by itself (exit status 74); it
        # is then started on the full disk, where it must refuse to start, not start damaged.
        node = self.cluster.disk_node
        self.cluster.fill_disk()
        code = self.cluster.wait_exit(node, timeout=45)
        self.history.record("nemesis", "info", "exit", f"disk-full n{node} exit {code}")
        self.cluster.kill(node)  # if it did not stop by itself
        self.cluster.start_without_waiting(node)

        def undo():
            self.cluster.free_disk()
            self.cluster.kill(node)  # whether it failed to start or is still trying
            self.cluster.restart(node)
        return f"disk-full n{node}", undo

    def _start_lose_unsynced(self, rng):
        # Cuts take in turn a minority, a majority and the whole cluster: the last two lose
        # acknowledged writes when a broker acknowledges before its fsync.
        scope = self.power_cuts % 3
        self.power_cuts += 1

        def choose(nodes):
            count = {0: rng.randint(1, max(1, (len(nodes) - 1) // 2)),
                     1: rng.randint(len(nodes) // 2 + 1, len(nodes)),
                     2: len(nodes)}[scope]
            return rng.sample(nodes, min(count, len(nodes)))
        victims = self._hold(choose)
        lost = self.cluster.lose_unsynced(victims)
        summary = ",".join(f"n{n}:{a.get('lost_bytes', 0)}B/{a.get('torn_bytes', 0)}B" for n, a in sorted(lost.items()))
        return (f"lose-unsynced {_set(victims)} lost/torn {summary}",
                self._release(victims, lambda: self.cluster.restart_many(victims)))

    def _start_slow_fsync(self, rng):
        victims = self._hold(lambda nodes: [rng.choice(nodes)])
        node = victims[0]
        delay = round(rng.uniform(0.5, 3.0), 1)
        self.history.record("nemesis", "info", "leaders", {"node": node, "leaders": self.shard_leaders()})
        self.cluster.set_fsync_delay(node, delay)
        return f"slow-fsync n{node} {delay}s", self._release(victims, lambda: self.cluster.set_fsync_delay(node, 0))

    def _start_fill_disk(self, rng):
        victims = self._hold(lambda nodes: [rng.choice(nodes)])
        node = victims[0]
        self.cluster.set_disk_full(node, True)
        code = self.cluster.wait_exit(node, timeout=60)
        self.history.record("nemesis", "info", "exit", f"fill-disk n{node} exit {code}")

        def undo():
            self.cluster.set_disk_full(node, False)
            self.cluster.kill(node)  # if it did not stop by itself, it is stopped now
            self.cluster.restart(node)
        return f"fill-disk n{node}", self._release(victims, undo)

    def _start_corrupt(self, rng):
        victims = self._hold(lambda nodes: [self.membership.choose_departing(rng, nodes)])
        node = victims[0]
        try:
            self.cluster.kill(node)
            damage = corrupt_database(os.path.join(self.cluster.data_dir(node), "db"), rng, self.corruptions)
            self_repair = self.corruptions % 2 == 1
            self.corruptions += 1
            if self_repair:
                return self._self_repair(victims, node, damage)
            self.cluster.start(node)
            outcome = self.cluster.wait_exit_or_healthy(node, timeout=90)
            self.history.record("nemesis", "info", "corrupt", f"n{node} {damage}: {outcome}")
            if outcome != f"exit {DATA_CORRUPT_EXIT}":
                self.membership.leaving.discard(node)
                return f"corrupt n{node} {damage} ({outcome})", self._release(victims, lambda: None)
            self.membership.start_rebuild(node)
        except Exception:
            # A node that runs is given back; one left down with its damage stays leaving, and the
            # next membership fault (or healing) rebuilds it (`Membership.finish` drains it
            # first). Either way no fault holds it any more: held, it was out of every fault's
            # reach and of the next membership fault's too, and a soak ran its last 20 minutes
            # with one node down.
            if self.cluster.running(node):
                self.membership.leaving.discard(node)
            with self.lock:
                self.held.difference_update(victims)
            raise
        return (f"corrupt n{node} {damage}",
                self._release(victims, lambda: self.membership.finish(node, timeout=120)))

    def _self_repair(self, victims, node, damage):
        """Starts the damaged `node` with --rebuild-corrupt: it must come back healthy by itself."""
        life_before = self._life(node)
        self.cluster.self_repairing.add(node)
        try:
            self.cluster.start(node)
            outcome = self.cluster.wait_exit_or_healthy(node, timeout=120)
        finally:
            self.cluster.self_repairing.discard(node)
        life_after = self._life(node)
        self.history.record("nemesis", "info", "corrupt",
                            f"n{node} {damage}, self-repair: {outcome} (life {life_before} -> {life_after})")
        self.membership.leaving.discard(node)
        if outcome != "healthy":
            raise RuntimeError(f"n{node} did not rebuild itself after {damage}: {outcome}")
        return (f"corrupt n{node} {damage}, rebuilt itself (life {life_before} -> {life_after})",
                self._release(victims, lambda: None))

    def _life(self, node):
        try:
            return self.membership.members().get(node, {}).get("life")
        except (RuntimeError, OSError, ValueError):
            return None

    def _start_membership(self, rng):
        # A cycle cut short (its node left out, nothing to join through at that moment) is
        # finished first, so a run does not go on with one node fewer.
        with self.lock:
            stale = self.membership.leaving - self.held
        for node in sorted(stale):
            self.membership.finish(node, timeout=90)
        victims = self._hold(lambda nodes: [self.membership.start_leave(rng, nodes)])
        node = victims[0]
        return f"membership n{node}", self._release(victims, lambda: self.membership.finish(node, timeout=90))


CORRUPTIBLE = {
    "table": lambda name: name.endswith(".sst"),
    "wal": lambda name: name.endswith(".log"),
    "blob": lambda name: name.endswith(".blob"),
    "manifest": lambda name: name.startswith("MANIFEST-"),
}


def corrupt_database(db_dir, rng, turn=0):
    """Damages one of RocksDB's files under `db_dir` (durably: fsynced) and says how. The kind of
    file goes round CORRUPTIBLE with `turn`, skipping kinds the database has none of."""
    present = {kind: sorted(n for n in os.listdir(db_dir) if match(n) and os.path.getsize(os.path.join(db_dir, n)) > 0)
               for kind, match in CORRUPTIBLE.items()}
    kinds = [k for k in CORRUPTIBLE if present[k]]
    kind = kinds[turn % len(kinds)]
    name = rng.choice(present[kind])
    path = os.path.join(db_dir, name)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        if rng.random() < 0.5 or size < 8192:
            offset = rng.randrange(size)
            f.seek(offset)
            byte = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([byte ^ (1 << rng.randrange(8))]))
            how = f"bit flipped at {offset}"
        else:
            offset = rng.randrange(size - 4096) // 4096 * 4096
            f.seek(offset)
            f.write(bytes(4096))
            how = f"4 KiB zeroed at {offset}"
        f.flush()
        os.fsync(f.fileno())
    return f"{kind} {name} ({size} B) {how}"
