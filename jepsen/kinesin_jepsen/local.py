"""A cluster of real `kinesin` processes on loopback: the harness's first cluster under test, before
the docker compose one. Faults come from outside the processes: SIGKILL, SIGSTOP / SIGCONT, and
membership changes (a node stopped, its data directory deleted, started again with `--join`).

With `forgetful=True` each node's data directory is a forgetting file system (forgetfs.py): what
a node wrote but did not fsync is lost when the nemesis cuts its power (`lose_unsynced`), fsyncs
can be made slow, and the disk can fill up under a running node."""

import os
import shutil
import signal
import socket
import subprocess
import time

from .endpoints import NodeEndpoints
from .forgetfs import ForgetFs


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class LocalCluster(NodeEndpoints):
    def __init__(self, binary, nodes, directory, extra_args=(), extra_env=None, forgetful=False, seed=0):
        self.binary = binary
        self.extra_args = list(extra_args)
        self.extra_env = dict(extra_env or {})
        self.directory = directory
        ports = free_ports(2 * nodes)
        self.api = {i + 1: ports[i] for i in range(nodes)}
        self.cluster = {i + 1: ports[nodes + i] for i in range(nodes)}
        self.peers = ",".join(f"{n}@127.0.0.1:{p}" for n, p in self.cluster.items())
        self.procs = {}
        self.paused = set()
        self.joined = {}  # node -> the node whose API it joined through (it starts with --join)
        self.self_repairing = set()  # nodes started with --rebuild-corrupt (the corrupt nemesis)
        self.disks = {}
        if forgetful:
            for node in self.nodes():
                self.disks[node] = ForgetFs(
                    backing=os.path.join(directory, f"node{node}-disk"), mount=self.data_dir(node),
                    control=os.path.join(directory, f"node{node}-forgetfs.sock"), seed=seed * 100 + node,
                    log=os.path.join(directory, f"node{node}-forgetfs.log"))

    def endpoint(self, node):
        return f"http://127.0.0.1:{self.api[node]}"

    def nodes(self):
        return sorted(self.api)

    def data_dir(self, node):
        return os.path.join(self.directory, f"node{node}-data")

    def start(self, node):
        log = open(os.path.join(self.directory, f"node{node}.log"), "ab")
        if node in self.joined:
            members = ["--join", self.endpoint(self.joined[node]), "--cluster-advertise", f"127.0.0.1:{self.cluster[node]}"]
        else:
            members = ["--peers", self.peers]
        self.procs[node] = subprocess.Popen(
            [
                self.binary, "server",
                "--node-id", str(node),
                "--data-dir", self.data_dir(node),
                "--listen", f"127.0.0.1:{self.api[node]}",
                "--cluster-listen", f"127.0.0.1:{self.cluster[node]}",
                *members,
                *self.extra_args,
            ],
            stdout=log, stderr=subprocess.STDOUT,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("KINESIN_")}, **self.extra_env,
                 **({"KINESIN_REBUILD_CORRUPT": "true"} if node in self.self_repairing else {})},
        )

    def start_all(self, timeout=120):
        for disk in self.disks.values():
            disk.start()
        for node in self.nodes():
            self.start(node)
        self.wait_healthy(self.nodes(), timeout)

    def wait_exit_or_healthy(self, node, timeout):
        """`exit N` once the node stops by itself, `healthy` once it serves, whichever comes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.procs[node].poll()
            if code is not None:
                return f"exit {code}"
            if self.healthy(node):
                return "healthy"
            time.sleep(0.2)
        return f"neither exited nor healthy after {timeout} s"

    def wait_exit(self, node, timeout):
        """The node's exit status once it stops by itself, or None if it still runs after `timeout`."""
        try:
            return self.procs[node].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    # -- the forgetting disks (forgetful=True) ---------------------------------------------------
    def lose_unsynced(self, nodes):
        """A power cut: every node in `nodes` dies at once (kill -9), then its disk forgets what
        was not fsynced (tearing the last such write of each file). Returns each disk's account."""
        for node in nodes:
            proc = self.procs.get(node)
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for node in nodes:
            self.kill(node)  # reaps it
        return {node: self.disks[node].lose() for node in nodes}

    def set_fsync_delay(self, node, seconds):
        self.disks[node].set_fsync_delay(seconds)

    def set_disk_full(self, node, full):
        self.disks[node].set_full(full)

    def heal_disks(self):
        for disk in self.disks.values():
            disk.set_fsync_delay(0)
            disk.set_full(False)

    def kill(self, node):
        proc = self.procs.get(node)
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def running(self, node):
        proc = self.procs.get(node)
        return proc is not None and proc.poll() is None

    def restart(self, node):
        self.restart_many([node])

    def restart_many(self, nodes):
        """Starts every node of `nodes` before waiting for any: after a power cut of a majority,
        no node can become healthy alone."""
        for node in nodes:
            self.start(node)
        self.wait_healthy(nodes)

    def stop(self, node):
        proc = self.procs.get(node)
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill(node)

    def wipe(self, node):
        shutil.rmtree(self.data_dir(node), ignore_errors=True)

    def join(self, node, via):
        """Starts node as a new member joining through node `via`'s API; waits until it is healthy."""
        self.joined[node] = via
        self.restart(node)

    def pause(self, node):
        self.procs[node].send_signal(signal.SIGSTOP)
        self.paused.add(node)

    def resume(self, node):
        self.procs[node].send_signal(signal.SIGCONT)
        self.paused.discard(node)

    def stop_all(self):
        for node in list(self.paused):
            self.resume(node)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for node in self.procs:
            self.stop(node)
        for disk in self.disks.values():
            disk.stop()
