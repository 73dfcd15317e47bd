"""Event-stream helpers for the tests: a raw-socket SSE reader (its receive buffer as small as a
test wants, read as slowly as it wants), a split cluster whose store takes extra flags, and the
check that a stream never skips in silence."""
import json
import socket
import time

import requests

from cluster import Cluster, wait_until


class StoreArgsCluster(Cluster):
    """Router, workers and store as separate processes; the store gets `store_args`."""

    def __init__(self, binary, store_args=(), **kw):
        self.store_args = list(store_args)
        super().__init__(binary, split=True, **kw)

    def start_store(self):
        self.start("store", ["store", "--router", self.frontend, "--events", self.events,
                             "--data", self.path("data"), "--http", f"127.0.0.1:{self.http_port}",
                             *self.store_args])

    def restart_store(self):
        self.kill("store", __import__("signal").SIGTERM)
        self.start_store()
        self.wait_ready()

    def applied(self):
        return requests.get(self.url + "/readyz", timeout=5).json()["applied_seq"]

    def settle(self, finished, timeout=60):
        """Waits until `finished` tasks are done and the store applied all the router wrote."""
        def done():
            r = requests.get(self.url + "/readyz", timeout=5).json()
            stats = requests.get(self.url + "/api/v1/stats", timeout=5).json()
            return r["applied_seq"] >= r["router_head_seq"] and stats["succeeded"] + stats["failed"] >= finished
        wait_until(done, timeout, "the store to catch up")
        return self.applied()


class RawSse:
    """GET /api/v1/events over a plain socket: chunked transfer decoded, frames parsed."""

    def __init__(self, port, query="", last_event_id=None, rcvbuf=None, timeout=30):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
        self.sock.sendall(f"GET /api/v1/events{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Accept: text/event-stream\r\n{extra}\r\n".encode())
        self.raw = b""
        self.head = None
        self.body = b""
        self.closed = False
        self.frames = []

    def read(self, n=65536):
        """Reads at most n bytes (blocking); False once the server closed."""
        try:
            data = self.sock.recv(n)
        except socket.timeout:
            return True
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.raw += data
        self._decode()
        return True

    def _decode(self):
        if self.head is None:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head, self.raw = self.raw[:end].decode(), self.raw[end + 4:]
        while True:
            line_end = self.raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(self.raw[:line_end].split(b";")[0], 16)
            if len(self.raw) < line_end + 2 + size + 2:
                break
            self.body += self.raw[line_end + 2:line_end + 2 + size]
            self.raw = self.raw[line_end + 2 + size + 2:]
        while b"\n\n" in self.body:
            frame, self.body = self.body.split(b"\n\n", 1)
            fields = {}
            for line in frame.decode().split("\n"):
                if line.startswith(":"):
                    continue
                key, _, value = line.partition(": ")
                fields[key] = value
            if "data" in fields:
                self.frames.append({"id": int(fields["id"]), "event": fields.get("event"),
                                    "data": json.loads(fields["data"])})

    def read_until(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while not predicate(self.frames):
            if time.monotonic() > deadline:
                raise AssertionError(f"stream: timed out; last frames {self.frames[-3:]}")
            if not self.read():
                raise AssertionError(f"stream closed; last frames {self.frames[-3:]}")

    def shutdown(self):
        """Wakes a reader blocked in read() (it returns False)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self):
        self.shutdown()
        self.sock.close()


def last_id(frames):
    return frames[-1]["id"] if frames else 0


def check_no_silent_skip(test, frames, after):
    """Every event follows the one before it, or an `event: gap` names exactly what is missing.
    Returns the gaps seen."""
    prev, gaps = after, []
    for f in frames:
        if f["event"] == "gap":
            d = f["data"]
            test.assertEqual(d["first_missing"], prev + 1, f)
            test.assertGreater(d["resume_seq"], d["first_missing"], f)
            test.assertEqual(f["id"], d["resume_seq"] - 1, f)
            test.assertIn("counts", d["snapshot"], f)
            gaps.append(d)
        else:
            test.assertEqual(f["id"], prev + 1, f"silent skip after {prev}: {f}")
            test.assertEqual(f["data"]["seq"], f["id"])
        prev = f["id"]
    return gaps
