"""The cluster under test as the operators run it: the docker compose deployment of `deploy/`, grown
to N nodes, with faults injected from outside the processes.

- kill -9: `docker kill -s KILL`, then `docker start` (same container, same data volume);
- pause: `docker pause` / `docker unpause` (the freezer cgroup: the process sees no time pass);
- partitions: iptables DROP rules inside the containers (they have NET_ADMIN), on the cluster
  network only, so the host's clients still reach every node;
- clock jumps: every server runs under libfaketime, whose offset file the harness rewrites (wall
  clock only; the monotonic clock the timers use is left alone, as an NTP step would);
- disk full: one node's data directory is a small ext4 file system on a loop device (root only),
  filled by a file the harness creates and removes.

The compose file is generated into the run's store from `deploy/docker-compose.yml`'s node
definition, so the deployment under test is the one we ship.
"""

import copy
import json
import os
import shutil
import subprocess
import threading
import time

import yaml

from .endpoints import NodeEndpoints
from .local import free_ports

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(REPO, "deploy")
FAKETIME_HOST_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
FAKETIME_LIB = "/usr/local/lib/faketime/libfaketimeMT.so.1"
CLOCK_DIR = "/run/kinesin-clock"
DATA_DIR = "/var/lib/kinesin"
SERVER_UID = 10001


def run(cmd, timeout=300, check=True, **kwargs):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {out.returncode}: {out.stderr.strip() or out.stdout.strip()}")
    return out


def compose_command():
    if run(["docker", "compose", "version"], check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed")


def build_image(binary, tag):
    """The image under test: deploy/build-image.sh's image of `binary`, plus libfaketime."""
    base = f"{tag}-base"
    run([os.path.join(DEPLOY, "build-image.sh"), "--binary", binary, "--tag", base], timeout=900)
    if not os.path.exists(FAKETIME_HOST_LIB):
        raise RuntimeError(f"libfaketime is missing ({FAKETIME_HOST_LIB}); scripts/setup.sh installs it")
    context = os.path.join(DEPLOY, ".build", f"jepsen-{tag.replace(':', '-')}")
    os.makedirs(context, exist_ok=True)
    try:
        shutil.copy(FAKETIME_HOST_LIB, os.path.join(context, "libfaketimeMT.so.1"))
        with open(os.path.join(context, "Dockerfile"), "w") as f:
            f.write(f"FROM {base}\nCOPY libfaketimeMT.so.1 {FAKETIME_LIB}\n")
        run(["docker", "build", "--quiet", "-t", tag, context], timeout=300)
    finally:
        shutil.rmtree(context, ignore_errors=True)
        run(["docker", "rmi", base], check=False)
    return tag


class DockerCluster(NodeEndpoints):
    def __init__(self, image, nodes, store, project, disk_node=None, disk_mb=512, extra_env=None):
        self.image = image
        self.count = nodes
        self.store = store
        self.project = project
        self.compose = compose_command()
        self.api = dict(zip(range(1, nodes + 1), free_ports(nodes)))
        self.disk_node = disk_node
        self.disk_mb = disk_mb
        self.extra_env = dict(extra_env or {})
        self.paused = set()
        # Nemeses run in several threads; container state and iptables rules change under this.
        self.lock = threading.RLock()
        self.containers = {}
        self.ips = {}
        self.joined = {}  # node -> the node whose API it joined through (its container runs --join)
        self.generations = {}  # node -> containers removed by `wipe` (their logs are kept)
        self.blocked = {}  # node -> set of nodes whose packets it drops
        self.compose_file = os.path.join(store, "docker-compose.yml")
        self.disk_mount = os.path.join(store, f"node{disk_node}-disk") if disk_node else None
        self.disk_image = os.path.join(store, f"node{disk_node}-disk.img") if disk_node else None

    # -- setup -----------------------------------------------------------------------------------
    def _compose_file(self):
        """Writes the compose file: the shipped node definition for every node; a node that
        rejoined (see `join`) starts with --join instead of the peer list."""
        with open(os.path.join(DEPLOY, "docker-compose.yml")) as f:
            shipped = yaml.safe_load(f)
        template = shipped["services"]["node1"]
        peers = ",".join(f"{n}@node{n}:7000" for n in self.nodes())
        services, volumes = {}, {}
        for n in self.nodes():
            service = copy.deepcopy(template)
            service["image"] = self.image
            service["hostname"] = f"node{n}"
            service["environment"] = {
                # No TLS: the checker talks plain HTTP and no certificates are mounted here.
                **{k: str(v) for k, v in template["environment"].items() if not k.startswith("KINESIN_TLS_")},
                "KINESIN_NODE_ID": str(n),
                "KINESIN_PEERS": peers,
                "KINESIN_REPLICATION_FACTOR": "3",
                "RUST_LOG": "info,openraft=warn",
                "LD_PRELOAD": FAKETIME_LIB,
                "FAKETIME_TIMESTAMP_FILE": f"{CLOCK_DIR}/offset",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                "FAKETIME_CACHE_DURATION": "1",
                **self.extra_env,
            }
            if n in self.joined:
                del service["environment"]["KINESIN_PEERS"]
                service["command"] = ["server", "--join", f"http://node{self.joined[n]}:4567",
                                      "--cluster-advertise", f"node{n}:7000"]
            service["ports"] = [f"127.0.0.1:{self.api[n]}:4567"]
            if n == self.disk_node:
                # No preallocation and small memtables: the node's WAL grows block by block and
                # new table files come often, so a disk that fills under the running node is
                # noticed within seconds, not at the end of a preallocated WAL minutes on.
                service["environment"]["KINESIN_STORAGE_ROCKSDB_OPTIONS"] = \
                    "write_buffer_size=262144;db.allow_fallocate=false"
            data = self.disk_mount if n == self.disk_node else f"node{n}-data"
            if n != self.disk_node:
                volumes[f"node{n}-data"] = {}
            service["volumes"] = [f"{data}:{DATA_DIR}", f"{self._clock_dir(n)}:{CLOCK_DIR}:ro"]
            services[f"node{n}"] = service
        spec = {"version": "2.4", "services": services, "networks": shipped["networks"], "volumes": volumes}
        if self.compose[0] == "docker":
            del spec["version"]  # the compose plugin warns that it is obsolete
        with open(self.compose_file, "w") as f:
            json.dump(spec, f, indent=2)  # JSON is YAML

    def _clock_dir(self, node):
        return os.path.join(self.store, f"node{node}-clock")

    def _make_disk(self):
        """A small ext4 file system on a loop device for the disk-full node (needs root)."""
        if os.geteuid() != 0:
            raise RuntimeError("the disk nemesis mounts a loop device: run as root, or leave `disk` out of --nemesis")
        os.makedirs(self.disk_mount, exist_ok=True)
        with open(self.disk_image, "wb") as f:
            f.truncate(self.disk_mb * 1024 * 1024)
        run(["mkfs.ext4", "-q", "-F", self.disk_image])
        run(["mount", "-o", "loop", self.disk_image, self.disk_mount])
        os.chown(self.disk_mount, SERVER_UID, SERVER_UID)

    def _compose(self, *args, timeout=300, check=True):
        return run([*self.compose, "-p", self.project, "-f", self.compose_file, *args], timeout=timeout, check=check)

    def _container(self, node):
        return self._compose("ps", "-q", f"node{node}").stdout.strip()

    def start_all(self, timeout=180):
        for n in self.nodes():
            os.makedirs(self._clock_dir(n), exist_ok=True)
            self.set_clock_offset(n, 0)
        if self.disk_node:
            self._make_disk()
        self._compose_file()
        self._compose("up", "-d", timeout=timeout)
        for n in self.nodes():
            self.containers[n] = self._container(n)
        self.wait_healthy(self.nodes(), timeout)
        for n in self.nodes():
            self.ips[n] = self._ip(n)

    # -- what the clients see --------------------------------------------------------------------
    def nodes(self):
        return list(range(1, self.count + 1))

    def endpoint(self, node):
        return f"http://127.0.0.1:{self.api[node]}"

    # -- process faults --------------------------------------------------------------------------
    def running(self, node):
        out = run(["docker", "inspect", "-f", "{{.State.Running}}", self.containers[node]], check=False)
        return out.stdout.strip() == "true"

    def kill(self, node):
        with self.lock:
            run(["docker", "kill", "-s", "KILL", self.containers[node]], check=False)

    def restart(self, node, timeout=120):
        with self.lock:
            run(["docker", "start", self.containers[node]])
            # A restarted container may come back with another address on the network.
            self.ips[node] = self._ip(node)
            self._apply_rules()  # its network namespace is new: the partition applies to it again
        deadline = time.monotonic() + timeout
        while not self.healthy(node):
            if not self.running(node):
                raise RuntimeError(f"node {node} exited while starting (see node{node}.log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {node} not healthy after {timeout} s")
            time.sleep(0.2)

    def wait_exit(self, node, timeout):
        """The container's exit status once it stops by itself, or None if it still runs after
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.running(node):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
        out = run(["docker", "inspect", "-f", "{{.State.ExitCode}}", self.containers[node]], check=False)
        return int(out.stdout.strip()) if out.stdout.strip().isdigit() else None

    def start_without_waiting(self, node):
        with self.lock:
            run(["docker", "start", self.containers[node]], check=False)

    def _ip(self, node):
        return run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                    self.containers[node]]).stdout.strip()

    def pause(self, node):
        with self.lock:
            run(["docker", "pause", self.containers[node]])
            self.paused.add(node)

    def resume(self, node):
        with self.lock:
            run(["docker", "unpause", self.containers[node]], check=False)
            self.paused.discard(node)
            if self.blocked:
                self._apply_rules()  # a partition made while it was frozen applies to it too

    # -- membership --------------------------------------------------------------------------------
    def stop(self, node):
        with self.lock:
            run(["docker", "stop", "-t", "10", self.containers[node]], check=False)

    def wipe(self, node):
        """Removes node's container and its data volume (its log is kept as nodeN-gK.log)."""
        if node == self.disk_node:
            raise RuntimeError("the disk-full node's data is a mounted file system: it is not wiped")
        with self.lock:
            container = self.containers[node]
            if not container:
                return
            mounts = "{{range .Mounts}}{{if eq .Destination \"" + DATA_DIR + "\"}}{{.Name}}{{end}}{{end}}"
            volumes = run(["docker", "inspect", "-f", mounts, container]).stdout.split()
            generation = self.generations[node] = self.generations.get(node, 0) + 1
            self._save_log(node, container, f"node{node}-g{generation}.log")
            run(["docker", "rm", "-f", container])
            for volume in volumes:
                run(["docker", "volume", "rm", volume])
            self.containers[node] = ""

    def join(self, node, via, timeout=120):
        """Starts node (wiped) as a new member joining through node `via`'s API: its service is
        the shipped one with --join and --cluster-advertise instead of the peer list."""
        with self.lock:
            self.joined[node] = via
            self._compose_file()
            self._compose("up", "-d", "--no-deps", f"node{node}")
            self.containers[node] = self._container(node)
        self.restart(node, timeout)  # the container runs: restart's `docker start` is a no-op

    # -- network faults --------------------------------------------------------------------------
    def drop(self, pairs):
        """Drops packets for each (sender, receiver) pair: the receiver's INPUT chain drops them."""
        with self.lock:
            for sender, receiver in pairs:
                self.blocked.setdefault(receiver, set()).add(sender)
            self._apply_rules()

    def partition(self, groups):
        """Cuts the cluster into `groups` (lists of nodes): no packet crosses between two groups."""
        where = {n: i for i, group in enumerate(groups) for n in group}
        self.drop([(a, b) for a in self.nodes() for b in self.nodes()
                   if a != b and where.get(a) != where.get(b)])

    def heal_network(self):
        with self.lock:
            self.blocked.clear()
            self._apply_rules()

    def _apply_rules(self):
        for node in self.nodes():
            if node in self.paused or not self.running(node):
                continue
            rules = ["iptables -F INPUT"]
            rules += [f"iptables -A INPUT -s {self.ips[s]} -j DROP" for s in sorted(self.blocked.get(node, ())) if self.ips.get(s)]
            run(["docker", "exec", "-u", "0", self.containers[node], "sh", "-c", " && ".join(rules)])

    # -- clock and disk faults -------------------------------------------------------------------
    def set_clock_offset(self, node, seconds):
        """Steps node's wall clock by `seconds` from true time (libfaketime re-reads within 1 s)."""
        path = os.path.join(self._clock_dir(node), "offset")
        with open(path + ".tmp", "w") as f:
            f.write(f"{int(seconds):+d}\n")
        os.replace(path + ".tmp", path)

    def fill_disk(self):
        stat = os.statvfs(self.disk_mount)
        free = stat.f_bavail * stat.f_frsize
        with open(os.path.join(self.disk_mount, "jepsen-fill"), "wb") as f:
            os.posix_fallocate(f.fileno(), 0, max(free - 4096, 1))

    def free_disk(self):
        try:
            os.remove(os.path.join(self.disk_mount, "jepsen-fill"))
        except FileNotFoundError:
            pass

    # -- teardown --------------------------------------------------------------------------------
    def _save_log(self, node, container, name):
        with open(os.path.join(self.store, name), "w") as f:
            subprocess.run(["docker", "logs", "-t", container], stdout=f, stderr=subprocess.STDOUT, timeout=120)

    def save_logs(self):
        for n, container in self.containers.items():
            if container:
                self._save_log(n, container, f"node{n}.log")

    def stop_all(self):
        for node in list(self.paused):
            self.resume(node)
        if self.containers:
            self.save_logs()
        if os.path.exists(self.compose_file):
            self._compose("down", "--volumes", "--timeout", "10", timeout=300, check=False)
        if self.disk_mount and os.path.ismount(self.disk_mount):
            run(["umount", self.disk_mount], check=False)
        if self.disk_image and os.path.exists(self.disk_image):
            os.remove(self.disk_image)

    def remove_image(self):
        run(["docker", "rmi", self.image], check=False)
