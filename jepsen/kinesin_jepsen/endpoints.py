"""What every cluster under test offers the harness over each node's Kinesis endpoint: health and
the admin API. A cluster class provides `endpoint(node)` and inherits these."""

import json
import time
import urllib.request


class NodeEndpoints:
    def endpoint(self, node):
        raise NotImplementedError

    def healthy(self, node):
        try:
            return urllib.request.urlopen(f"{self.endpoint(node)}/healthz", timeout=1).status == 200
        except OSError:
            return False

    def wait_healthy(self, nodes, timeout=120):
        deadline = time.monotonic() + timeout
        while not all(self.healthy(n) for n in nodes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nodes {nodes} not healthy after {timeout} s")
            time.sleep(0.1)

    def admin(self, node, path):
        with urllib.request.urlopen(f"{self.endpoint(node)}{path}", timeout=5) as r:
            return json.loads(r.read())
