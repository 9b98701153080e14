"""Node membership changes through the admin API, as an operator makes them: drain a node (its
replicas move away), remove it, stop it and wipe its data, then start it as a new member that
joins the running cluster (`kinesin server --join`), onto which replicas are rebalanced.

Every step is recorded in the history as a nemesis event (process `nemesis`, type `info`, f
`membership`, value a sentence), so a run's history tells what the cluster went through.

The admin API (on each node's Kinesis port): `GET /admin/v1/cluster` (the members, each with its
state, whether it drains and how many replicas it holds), `POST /admin/v1/nodes/{id}/drain`,
`DELETE /admin/v1/nodes/{id}` (409 until the node is drained and holds nothing). A cluster class
provides `stop(node)`, `wipe(node)` and `join(node, via)` (start it with `--join` through node
`via`'s API and wait until it is healthy).
"""

import threading
import time

MIN_MEMBERS = 3
# How long an admin request waits for any node to answer (see `Membership.ask`).
ASK_PATIENCE = 30.0


class Membership:
    def __init__(self, cluster, history):
        self.cluster = cluster
        self.history = history
        self.leaving = set()  # nodes between their drain and their rejoin
        self.rejoining = set()  # of those, the ones wiped and started with --join
        self.drained_since = {}  # node -> when its drain was asked for (monotonic)
        self.lock = threading.Lock()  # one leave-and-rejoin at a time; heal waits for it
        # Choosing a departing node and reserving it is one step: two nemeses (membership and
        # corrupt) once both saw four members and drained two at once, which can never finish.
        self.choosing = threading.Lock()

    def step(self, text):
        self.history.record("nemesis", "info", "membership", text)

    # -- the admin API, through whichever node answers -------------------------------------------
    def reachable(self, exclude=()):
        paused = getattr(self.cluster, "paused", set())
        return [n for n in self.cluster.nodes()
                if n not in exclude and n not in paused and n not in self.leaving and self.cluster.running(n)]

    def first_reachable(self, exclude, deadline):
        """A node to go through, waiting until `deadline` while every other one is paused, down
        or leaving (a soak once found none for an instant, and the node it was rejoining stayed
        out for the remaining 24 minutes)."""
        while True:
            nodes = self.reachable(exclude)
            if nodes:
                return nodes[0]
            if time.monotonic() > deadline:
                raise RuntimeError(f"no node to go through (all but {sorted(exclude)} paused, down or leaving)")
            time.sleep(0.5)

    def ask(self, method, path, exclude=(), ok=(200,)):
        """`(node asked, status, answer)` from the first node that gives a status in `ok` (or the
        last answer any node gave). While no node answers at all (a power cut took every other node
        down for a moment) it asks again for up to ASK_PATIENCE seconds, then raises: a soak's drain
        request once found none for an instant, and the node it was for stayed out for 20 minutes."""
        deadline = time.monotonic() + ASK_PATIENCE
        while True:
            last = None
            for node in self.reachable(exclude):
                try:
                    status, body = self.cluster.admin_request(node, method, path)
                except OSError as exc:
                    last = last or exc
                    continue
                last = (node, status, body)
                if status in ok:
                    break
            if last is not None and not isinstance(last, OSError):
                return last
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path}: no node answered ({last})")
            time.sleep(0.5)

    def members(self):
        """`{node id: its entry}` of GET /admin/v1/cluster."""
        _, status, body = self.ask("GET", "/admin/v1/cluster")
        if status != 200:
            raise RuntimeError(f"GET /admin/v1/cluster answered {status}: {body}")
        return {entry["id"]: entry for entry in body["nodes"]}

    # -- leaving and rejoining -------------------------------------------------------------------
    def start_leave(self, rng, nodes):
        """Drains a random one of `nodes` (never the disk-full node) whose departure leaves at
        least MIN_MEMBERS, and returns it."""
        node = self.choose_departing(rng, [n for n in self.reachable(exclude={getattr(self.cluster, "disk_node", None)})
                                           if n in nodes])
        try:
            self.drain(node, "draining")
        except Exception:
            self.leaving.discard(node)
            raise
        return node

    def choose_departing(self, rng, nodes):
        """Reserves (as leaving) and returns a random healthy one of `nodes` whose departure
        leaves at least MIN_MEMBERS (so the others can take its replicas). A caller that does not
        go on to drain it gives it back with `leaving.discard`."""
        with self.choosing:
            members = self.members()
            staying = [n for n, entry in members.items() if not entry.get("draining") and n not in self.leaving]
            if len(staying) - 1 < MIN_MEMBERS:
                raise RuntimeError(f"only {len(staying)} members not draining: none may leave")
            candidates = [n for n in nodes if n in staying and self.cluster.healthy(n)]
            if not candidates:
                raise RuntimeError(f"no healthy member free to leave among {nodes}")
            node = rng.choice(candidates)
            self.leaving.add(node)
            return node

    def start_rebuild(self, node):
        """Starts rebuilding a node that cannot start (a corrupt data directory): its replicas
        are moved to the others, then `finish` removes it, wipes it and joins it again."""
        self.drain(node, "rebuilding from its peers, draining")

    def drain(self, node, doing):
        """Drains `node` (reserved by `choose_departing`)."""
        via, status, body = self.ask("POST", f"/admin/v1/nodes/{node}/drain", exclude={node})
        if status != 200:
            raise RuntimeError(f"drain of n{node} answered {status}: {body}")
        self.drained_since[node] = time.monotonic()
        self.step(f"n{node} {doing} (asked n{via}): {body.get('replicas')} replicas to move")

    def finish(self, node, timeout):
        """Completes node's leave (drained, removed, stopped, wiped) and its rejoin as a new member.
        Each step looks at the cluster first, so a cycle cut short (a deadline, the run's end) is
        finished by calling this again."""
        with self.lock:
            if node not in self.leaving:
                return  # finished meanwhile
            deadline = time.monotonic() + timeout
            if node not in self.rejoining:
                entry = self.members().get(node)
                if entry is not None and not entry.get("draining"):
                    self.drain(node, "draining at last")  # reserved, but its drain never started
                members = self.wait(lambda m: node not in m or m[node].get("replicas", 0) == 0, deadline,
                                    f"n{node} still holds replicas")
                if node in members:  # still a member, drained now: remove it
                    self.step(f"n{node} drained, {time.monotonic() - self.drained_since[node]:.1f} s after the request")
                    # remove() asks for the removal again at each poll until it is done
                    self.wait(lambda m: node not in m or self.remove(node), deadline, f"n{node} not removed")
                    self.step(f"n{node} removed")
                self.cluster.stop(node)
                self.cluster.wipe(node)
                self.rejoining.add(node)
                self.step(f"n{node} stopped, data wiped")
                via = self.first_reachable({node}, deadline)
                self.step(f"n{node} joining through n{via}")
                self.cluster.join(node, via)
            elif not self.cluster.running(node):
                self.cluster.restart(node)  # with --join again: harmless once it has joined
            self.wait(lambda m: node in m and m[node].get("state") == "up" and not m[node].get("draining"),
                      deadline, f"n{node} not an active member after joining")
            self.leaving.discard(node)
            self.rejoining.discard(node)
            self.step(f"n{node} joined: {self.members()[node].get('replicas')} replicas so far")

    def remove(self, node):
        _, status, body = self.ask("DELETE", f"/admin/v1/nodes/{node}", exclude={node}, ok=(200, 404))
        if status == 409:
            return False  # not drained yet (a replica still moving): ask again
        if status not in (200, 404):
            raise RuntimeError(f"remove of n{node} answered {status}: {body}")
        return True

    def wait(self, done, deadline, failure):
        """Polls the members until `done(members)`, and returns them."""
        while True:
            try:
                members = self.members()
                if done(members):
                    return members
            except (RuntimeError, OSError, KeyError, ValueError) as exc:
                members = exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"{failure} (last answer: {members})")
            time.sleep(0.5)

    # -- healing ---------------------------------------------------------------------------------
    def heal(self, timeout=180, per_replica=4.0):
        """Finishes every cut-short cycle, then requires every node to be an active member. A
        node still holding many replicas gets `per_replica` seconds for each: after a long run a
        drain moves hundreds (the 30-minute soak's moved about one every 3 s in a debug build)."""
        for node in sorted(self.leaving):
            try:
                held = self.members().get(node, {}).get("replicas", 0)
            except (RuntimeError, OSError):
                held = 0
            self.finish(node, max(timeout, held * per_replica))
        nodes = set(self.cluster.nodes())
        return self.wait(lambda m: nodes <= set(m) and all(m[n].get("state") == "up" and not m[n].get("draining") for n in nodes),
                         time.monotonic() + 60, "not every node is an active member after healing")
