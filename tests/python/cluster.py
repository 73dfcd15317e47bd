"""Starts real zbatch processes on free ports for the HTTP tests, and always stops them."""
import os
import signal
import socket
import subprocess
import tempfile
import time

import unittest

import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Sanitizer builds run every process several times slower (tests/CMakeLists.txt sets this).
SLOWDOWN = float(os.environ.get("ZBATCH_TEST_SLOWDOWN", "1"))


def config_file(folder, text):
    """Writes `text` as folder/zbatch.toml and returns its path."""
    path = os.path.join(folder, "zbatch.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def wait_until(predicate, timeout, what):
    timeout *= SLOWDOWN
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except requests.RequestException:
            pass
        time.sleep(0.02)  # the polling interval of a deadline-bounded wait
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Cluster:
    """`zbatch up`, or separate router/worker/store processes (split=True)."""

    def __init__(self, binary, split=False, workers=1, router_args=(), up_args=(), env=None, worker_args=()):
        self.binary = binary
        self.dir = tempfile.TemporaryDirectory(prefix="zbatch-http-")
        self.frontend = f"tcp://127.0.0.1:{free_port()}"
        self.backend = f"tcp://127.0.0.1:{free_port()}"
        self.events = f"tcp://127.0.0.1:{free_port()}"
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.procs = {}
        self.env = dict(os.environ, **(env or {}))
        try:
            if split:
                self.start("router", ["router", "--data", self.path("data"), "--frontend", self.frontend,
                                      "--backend", self.backend, "--events", self.events, *router_args])
                for i in range(workers):
                    self.start(f"worker{i}", ["worker", "--router", self.backend, "-c", "2",
                                              "--hostname", f"w{i}@test", *worker_args])
                self.start_store()
            else:
                self.start("up", ["up", "--data", self.path("data"), "--http", f"127.0.0.1:{self.http_port}",
                                  "--frontend", self.frontend, "--backend", self.backend, "--events", self.events,
                                  "-c", "2", *up_args])
            self.wait_ready()
        except BaseException:
            self.close()  # nothing it started outlives a failed start
            raise

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def start(self, name, args):
        with open(self.path(name + ".log"), "ab") as log:
            self.procs[name] = subprocess.Popen([self.binary] + args, stdout=log, stderr=log,
                                                stdin=subprocess.DEVNULL, start_new_session=True,
                                                env=self.env)

    def start_store(self):
        self.start("store", ["store", "--router", self.frontend, "--events", self.events,
                             "--data", self.path("data"), "--http", f"127.0.0.1:{self.http_port}"])

    def wait_ready(self, timeout=20):
        wait_until(lambda: requests.get(self.url + "/readyz", timeout=1).status_code == 200, timeout, "readyz")

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs[name]
        os.killpg(p.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            p.wait(timeout=10)

    def logs(self):
        out = []
        for name in self.procs:
            with open(self.path(name + ".log"), errors="replace") as f:
                out.append(f"--- {name}\n{f.read()[-3000:]}")
        return "\n".join(out)

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(timeout=10)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=10)
        self.dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ClusterTestCase(unittest.TestCase):
    """Tests sharing one `zbatch up` for the class; set BINARY before unittest.main()."""
    BINARY = None

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(ClusterTestCase.BINARY)
        cls.url = cls.cluster.url

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()
