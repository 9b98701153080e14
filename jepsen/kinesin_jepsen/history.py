"""The history: every operation as invoke and then ok / fail / info, appended as JSON lines."""

import json
import threading
import time


class History:
    def __init__(self, path):
        self._file = open(path, "w", buffering=1)
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self.ops = []

    def now(self):
        return round(time.monotonic() - self._start, 6)

    def record(self, process, type_, f, value):
        op = {"process": process, "type": type_, "f": f, "time": self.now(), "value": value}
        with self._lock:
            self.ops.append(op)
            self._file.write(json.dumps(op) + "\n")
        return op

    def close(self):
        self._file.close()
