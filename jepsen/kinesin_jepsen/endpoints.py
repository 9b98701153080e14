"""What every cluster under test offers the harness over each node's Kinesis endpoint: health and
the admin API. A cluster class provides `endpoint(node)` and inherits these."""

import json
import time
import urllib.error
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

    def admin_request(self, node, method, path, body=None, timeout=5):
        """`(HTTP status, JSON answer)` of an admin API request; an error status is an answer too
        (a connection that fails raises OSError)."""
        request = urllib.request.Request(f"{self.endpoint(node)}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"error": text.decode(errors="replace")}
