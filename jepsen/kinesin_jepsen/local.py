"""A cluster of real `kinesin` processes on loopback: the harness's first cluster under test, before
the docker compose one. Faults come from outside the processes: SIGKILL, SIGSTOP / SIGCONT, and
membership changes (a node stopped, its data directory deleted, started again with `--join`)."""

import os
import shutil
import signal
import socket
import subprocess

from .endpoints import NodeEndpoints


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class LocalCluster(NodeEndpoints):
    def __init__(self, binary, nodes, directory, extra_args=()):
        self.binary = binary
        self.extra_args = list(extra_args)
        self.directory = directory
        ports = free_ports(2 * nodes)
        self.api = {i + 1: ports[i] for i in range(nodes)}
        self.cluster = {i + 1: ports[nodes + i] for i in range(nodes)}
        self.peers = ",".join(f"{n}@127.0.0.1:{p}" for n, p in self.cluster.items())
        self.procs = {}
        self.paused = set()
        self.joined = {}  # node -> the node whose API it joined through (it starts with --join)

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
            env={k: v for k, v in os.environ.items() if not k.startswith("KINESIN_")},
        )

    def start_all(self, timeout=120):
        for node in self.nodes():
            self.start(node)
        self.wait_healthy(self.nodes(), timeout)

    def kill(self, node):
        proc = self.procs.get(node)
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def running(self, node):
        proc = self.procs.get(node)
        return proc is not None and proc.poll() is None

    def restart(self, node):
        self.start(node)
        self.wait_healthy([node])

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
