"""Requested stops of the store and of `zbatch up`, and ports that cannot be bound.

SIGTERM/SIGINT: the process stops taking work, finishes what is in flight, exits 0 within its
bound; nothing accepted is lost (a restart on the same data completes every task once).
A port already in use is a start-up error naming the port, never a second listener.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import requests

from cluster import Cluster, free_port, wait_until

BINARY = None


def batch(url, n, seconds):
    r = requests.post(url + "/api/v1/tasks",
                      json={"tasks": [{"queue": "default", "kind": "sleep", "payload": {"seconds": seconds}}
                                      for _ in range(n)]}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["group_id"]


def group(url, gid):
    return requests.get(f"{url}/api/v1/groups/{gid}", timeout=5).json()


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def stop(proc, sig, timeout):
    """Signals the process group; returns (exit status, seconds it took)."""
    started = time.monotonic()
    os.killpg(proc.pid, sig)
    rc = proc.wait(timeout=timeout)
    return rc, time.monotonic() - started


class StoreStops(unittest.TestCase):
    def test_sigterm_finishes_requests_in_flight_and_exits_0(self):
        with Cluster(BINARY, split=True) as c:
            gid = batch(c.url, 200, 0.01)
            errors, answered = [], [0]
            done = threading.Event()

            def reader():
                # Requests keep arriving while the store stops: each one is either answered
                # in full or refused at connect, never cut off half way with a 5xx.
                while not done.is_set():
                    try:
                        r = requests.get(f"{c.url}/api/v1/groups/{gid}", timeout=5)
                        if r.status_code != 200:
                            errors.append(r.status_code)
                        else:
                            answered[0] += 1
                    except requests.ConnectionError:
                        pass
            threads = [threading.Thread(target=reader) for _ in range(4)]
            for t in threads:
                t.start()
            wait_until(lambda: answered[0] >= 20, 10, "requests answered")
            rc, took = stop(c.procs["store"], signal.SIGTERM, 15)
            done.set()
            for t in threads:
                t.join()
            self.assertEqual(rc, 0, c.logs())
            self.assertLess(took, 6)
            self.assertEqual(errors, [])
            log = read(c.path("store.log"))
            self.assertNotIn("terminate called", log)
            self.assertIn("store stopped", log)
            # Restarted on the same data, it catches up: every task of the group, once.
            c.start_store()
            c.wait_ready()
            wait_until(lambda: group(c.url, gid)["ready"], 30, "group ready")
            g = group(c.url, gid)
            self.assertEqual((g["total"], g["successful"], g["failed"]), (200, 200, 0))

    def test_sigint_is_a_stop_too(self):
        with Cluster(BINARY, split=True) as c:
            rc, took = stop(c.procs["store"], signal.SIGINT, 15)
            self.assertEqual(rc, 0, c.logs())
            self.assertLess(took, 6)


class UpStops(unittest.TestCase):
    def test_sigterm_mid_batch_drains_in_order_and_a_restart_completes_everything(self):
        with Cluster(BINARY, up_args=["--shutdown-timeout", "1"]) as c:
            gid = batch(c.url, 60, 0.2)  # 2 slots: about 6 s of work
            wait_until(lambda: group(c.url, gid)["completed"] >= 4, 15, "tasks running")
            rc, took = stop(c.procs["up"], signal.SIGTERM, 20)
            self.assertEqual(rc, 0, c.logs())
            self.assertLess(took, 8)  # the 1 s shutdown timeout plus the goodbyes
            log = read(c.path("up.log"))
            self.assertIn("worker warm shutdown", log)
            self.assertIn("router stopped", log)
            self.assertLess(log.index("worker stopped"), log.index("router stopped"),
                            "the router stops after its workers")
            # The same data folder again: what was handed back runs now; nothing failed.
            c.start("up2", ["up", "--data", c.path("data"), "--http", f"127.0.0.1:{c.http_port}",
                            "--frontend", c.frontend, "--backend", c.backend, "--events", c.events, "-c", "2"])
            c.wait_ready()
            wait_until(lambda: group(c.url, gid)["ready"], 60, "group ready after restart")
            g = group(c.url, gid)
            self.assertEqual((g["total"], g["successful"], g["failed"], g["revoked"]), (60, 60, 0, 0))

    def test_second_sigint_is_cold(self):
        with Cluster(BINARY) as c:  # default shutdown timeout: 30 s
            batch(c.url, 2, 60)
            wait_until(lambda: requests.get(c.url + "/api/v1/workers", timeout=5).json()[0]["busy"] == 2,
                       15, "both slots busy")
            started = time.monotonic()
            os.killpg(c.procs["up"].pid, signal.SIGINT)
            wait_until(lambda: "worker warm shutdown" in read(c.path("up.log")), 5, "warm shutdown")
            self.assertIsNone(c.procs["up"].poll(), "a warm shutdown waits for the running tasks")
            os.killpg(c.procs["up"].pid, signal.SIGINT)
            rc = c.procs["up"].wait(timeout=20)
            self.assertEqual(rc, 0, c.logs())
            self.assertLess(time.monotonic() - started, 8)


class Ports(unittest.TestCase):
    def run_zbatch(self, args, timeout=15):
        return subprocess.run([BINARY] + args, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def test_second_up_on_a_taken_http_port_fails_naming_it(self):
        with Cluster(BINARY) as c:
            other = [f"tcp://127.0.0.1:{free_port()}" for _ in range(3)]
            r = self.run_zbatch(["up", "--data", c.path("data2"), "--http", f"127.0.0.1:{c.http_port}",
                                 "--frontend", other[0], "--backend", other[1], "--events", other[2]])
            self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn(str(c.http_port), r.stderr)
            self.assertIn("in use", r.stderr)
            # The first cluster still answers every request alone.
            for _ in range(20):
                self.assertEqual(requests.get(c.url + "/readyz", timeout=5).status_code, 200)

    def test_taken_router_ports_fail_at_start(self):
        with Cluster(BINARY, split=True) as c:
            for flag, taken in (("--frontend", c.frontend), ("--backend", c.backend), ("--events", c.events)):
                eps = {"--frontend": f"tcp://127.0.0.1:{free_port()}", "--backend": f"tcp://127.0.0.1:{free_port()}",
                       "--events": f"tcp://127.0.0.1:{free_port()}"}
                eps[flag] = taken
                r = self.run_zbatch(["router", "--data", c.path("other-" + flag.strip("-"))] +
                                    [x for kv in eps.items() for x in kv])
                self.assertNotEqual(r.returncode, 0, flag)
                self.assertIn(taken, r.stderr, flag)
                self.assertIn("in use", r.stderr, flag)

    def test_store_on_a_taken_port_fails(self):
        with socket.socket() as s, tempfile.TemporaryDirectory(prefix="zbatch-port-") as data:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            r = self.run_zbatch(["store", "--router", f"tcp://127.0.0.1:{free_port()}",
                                 "--events", f"tcp://127.0.0.1:{free_port()}", "--data", data,
                                 "--http", f"127.0.0.1:{port}"])
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(f"127.0.0.1:{port}", r.stderr)
            self.assertIn("in use", r.stderr)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
