"""Bytes that are not UTF-8 from a task's child process or a worker's name, against real
processes: the router, the store and the command line pass them on as U+FFFD and keep running.

A failing exec handler whose stderr holds 0xff used to make `inspect.failed` throw in the router
loop (ending the router), `zbatch status --json` abort, and GET /api/v1/tasks/{id} answer 500."""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

import requests

from cluster import Cluster, wait_until

BINARY = sys.argv.pop(1)
REPLACEMENT = "\ufffd"


class HostileText(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="zbatch-text-")
        cls.addClassCleanup(cls.tmp.cleanup)
        config = os.path.join(cls.tmp.name, "zbatch.toml")
        with open(config, "w") as f:
            f.write(textwrap.dedent("""
                [[handler]]
                kind = "bad_bytes"
                argv = ["/bin/sh", "-c", "printf 'broken \\\\377\\\\376 tail' >&2; exit 1"]

                [[handler]]
                kind = "bad_result"
                argv = ["/bin/sh", "-c", "printf '{\\"text\\": \\"\\\\377\\"}'"]
            """))
        cls.cluster = Cluster(BINARY, up_args=["--config", config])
        cls.addClassCleanup(cls.cluster.close)  # also when the rest of setUpClass fails
        cls.url = cls.cluster.url
        # A second worker whose name itself is not UTF-8.
        cls.cluster.start("odd-worker", ["worker", "--router", cls.cluster.backend, "-c", "1",
                                         "--hostname", b"odd\xff@test".decode("utf-8", "surrogateescape"),
                                         "--config", config])  # the same handlers, whichever runs a task
        wait_until(lambda: len(requests.get(f"{cls.url}/api/v1/inspect/stats", timeout=5).json()["workers"]) == 2,
                   20, "both workers registered\n" + cls.cluster.logs())

    def cli(self, *args):
        env = dict(os.environ, ZBATCH_ROUTER=self.cluster.frontend)
        return subprocess.run([BINARY, *args], capture_output=True, timeout=60, env=env)

    def run_task(self, kind):
        r = requests.post(f"{self.url}/api/v1/tasks", json={"kind": kind}, timeout=30)
        self.assertEqual(r.status_code, 201, r.text)
        tid = r.json()["task_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5).json()["state"]
                   in ("succeeded", "failed"), 30, f"task {tid}\n" + self.cluster.logs())
        return tid

    def assert_alive(self):
        self.assertIsNone(self.cluster.procs["up"].poll(), self.cluster.logs())
        self.assertEqual(self.cli("ping").returncode, 0, self.cluster.logs())

    def test_a_failed_tasks_error_with_invalid_bytes_reads_everywhere(self):
        tid = self.run_task("bad_bytes")
        r = requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["state"], "failed")
        self.assertIn("broken " + REPLACEMENT, r.json()["error"])

        failed = self.cli("inspect", "failed")
        self.assertEqual(failed.returncode, 0, failed.stderr)
        self.assertIn(tid, failed.stdout.decode())

        status = self.cli("status", "--json", tid)
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertIn(REPLACEMENT, json.loads(status.stdout)["error"])

        page = requests.get(f"{self.url}/api/v1/inspect/failed", timeout=5)
        self.assertEqual(page.status_code, 200, page.text)
        self.assert_alive()

    def test_a_result_with_invalid_bytes_is_stored_and_served(self):
        tid = self.run_task("bad_result")
        r = requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5)
        self.assertEqual(r.status_code, 200, r.text)
        status = self.cli("status", "--json", tid)
        self.assertEqual(status.returncode, 0, status.stderr)
        json.loads(status.stdout)
        self.assert_alive()

    def test_a_worker_name_with_invalid_bytes_is_listed(self):
        for what in ("stats", "active", "registered"):
            r = requests.get(f"{self.url}/api/v1/inspect/{what}", timeout=5)
            self.assertEqual(r.status_code, 200, r.text)
        names = [w["name"] for w in requests.get(f"{self.url}/api/v1/inspect/stats", timeout=5).json()["workers"]]
        self.assertIn("odd" + REPLACEMENT + "@test", names)
        out = self.cli("inspect", "stats")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assert_alive()


if __name__ == "__main__":
    unittest.main()
