"""Trace context and unique tasks over HTTP and the command line, against a real `zbatch up`:
a W3C traceparent reaches an exec handler's environment, a pool child's task JSON, the
agent kind's request to (the stand-in) Ollama, the worker's log and the task's JSON; a unique
key refuses or answers a second task while the first has not ended, and is released when it
ends."""
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

import requests

from cluster import Cluster, config_file, wait_until
from fake_ollama import FakeOllama

BINARY = sys.argv.pop(1)
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
BAD_TRACES = ["banana", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
              "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
              "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
              "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
              "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
              TRACE + "-more"]
POOL_CHILD = ("import json, sys\n"
              "for line in sys.stdin:\n"
              "    task = json.loads(line)\n"
              "    print(json.dumps({'result': task.get('traceparent')}), flush=True)\n")


class TraceAndUnique(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="zbatch-trace-")
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.ollama = FakeOllama()
        cls.addClassCleanup(cls.ollama.close)
        child = os.path.join(cls.tmp.name, "pool_child.py")
        with open(child, "w") as f:
            f.write(POOL_CHILD)
        config = config_file(cls.tmp.name, textwrap.dedent(f"""
            [ollama]
            host = "{cls.ollama.url}"
            model = "tiny"

            [[handler]]
            kind = "trace_env"
            argv = ["/bin/sh", "-c", "printf '{{\\"env\\": \\"%s\\"}}' \\"$TRACEPARENT\\""]

            [[handler]]
            kind = "trace_pool"
            type = "pool"
            argv = ["/usr/bin/python3", "-u", "{child}"]
        """))
        cls.cluster = Cluster(BINARY, up_args=["--config", config])
        cls.addClassCleanup(cls.cluster.close)
        cls.url = cls.cluster.url

    def submit(self, body, headers=None, expect=201):
        r = requests.post(f"{self.url}/api/v1/tasks", json=body, headers=headers or {}, timeout=10)
        self.assertEqual(r.status_code, expect, r.text)
        return r.json()

    def finished(self, tid, timeout=30):
        def done():
            t = requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5).json()
            return t if t["state"] in ("succeeded", "failed", "revoked") else None
        wait_until(done, timeout, f"task {tid} to finish\n" + self.cluster.logs())
        return done()

    def cli(self, *args, env=None):
        e = dict(os.environ, ZBATCH_ROUTER=self.cluster.frontend)
        e.pop("TRACEPARENT", None)
        e.update(env or {})
        return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=60, env=e)

    # --- trace context ------------------------------------------------------------------------
    def test_a_traceparent_header_reaches_the_handlers_ollama_the_log_and_the_task(self):
        env_task = self.submit({"kind": "trace_env"}, headers={"traceparent": TRACE})["task_id"]
        t = self.finished(env_task)
        self.assertEqual(t["state"], "succeeded", t)
        self.assertEqual(t["result"], {"env": TRACE}, "an exec child has TRACEPARENT")
        self.assertEqual((t["traceparent"], t["trace_id"]), (TRACE, TRACE[3:35]))

        pool_task = self.submit({"kind": "trace_pool", "traceparent": OTHER})["task_id"]
        self.assertEqual(self.finished(pool_task)["result"], OTHER, "a pool child reads it in the task JSON")

        agent = self.submit({"kind": "agent", "traceparent": TRACE,
                             "payload": {"description": "say hi", "mode": "chat"}})["task_id"]
        self.assertEqual(self.finished(agent)["state"], "succeeded", self.cluster.logs())
        sent = [h.get("traceparent") for h in self.ollama.request_headers]
        self.assertIn(TRACE, sent, "the request to Ollama carries the task's traceparent")

        wait_until(lambda: f"task={env_task}" in self.cluster.logs() and TRACE in self.cluster.logs(), 10,
                   "the worker's log line of the traced task")

        plain = self.submit({"kind": "trace_env"})["task_id"]
        t = self.finished(plain)
        self.assertEqual(t["result"], {"env": ""}, "no trace: no TRACEPARENT")
        self.assertIsNone(t["traceparent"])
        self.assertIsNone(t["trace_id"])

    def test_a_tasks_own_traceparent_wins_over_the_header_and_bad_ones_are_refused(self):
        group = self.submit({"tasks": [{"kind": "noop"}, {"kind": "noop", "traceparent": OTHER}]},
                            headers={"traceparent": TRACE})
        traces = [self.finished(tid)["traceparent"] for tid in group["task_ids"]]
        self.assertEqual(traces, [TRACE, OTHER])
        top = self.submit({"tasks": [{"kind": "noop"}], "traceparent": OTHER})
        self.assertEqual(self.finished(top["task_ids"][0])["traceparent"], OTHER, "the group's field")
        seed = requests.post(f"{self.url}/batch/validation", json={"tasks": [{"language": "json", "code": "{}"}]},
                             headers={"traceparent": TRACE}, timeout=10)
        self.assertEqual(seed.status_code, 200, seed.text)

        for bad in BAD_TRACES:
            r = requests.post(f"{self.url}/api/v1/tasks", json={"kind": "noop"}, headers={"traceparent": bad}, timeout=10)
            self.assertEqual(r.status_code, 400, (bad, r.text))
            self.assertIn("traceparent", r.json()["error"]["message"])
            r = requests.post(f"{self.url}/api/v1/tasks", json={"kind": "noop", "traceparent": bad}, timeout=10)
            self.assertEqual(r.status_code, 400, (bad, r.text))
        for wrong in (7, ["x"], {"a": 1}, True):
            r = requests.post(f"{self.url}/api/v1/tasks", json={"kind": "noop", "traceparent": wrong}, timeout=10)
            self.assertEqual(r.status_code, 400, (wrong, r.text))

    def test_the_command_line_takes_a_flag_or_the_environment(self):
        r = self.cli("submit", "--kind", "trace_env", "--traceparent", TRACE, "--wait", "{}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(TRACE, r.stdout)
        r = self.cli("submit", "--kind", "trace_env", "--wait", "{}", env={"TRACEPARENT": OTHER})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(OTHER, r.stdout, "a traced process's submissions join its trace")
        r = self.cli("submit", "--kind", "noop", "--traceparent", "banana", "{}")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("traceparent", r.stderr)
        r = self.cli("submit", "--kind", "trace_env", "--wait", "{}", env={"TRACEPARENT": "junk"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ignoring TRACEPARENT", r.stderr)
        tid = self.cli("submit", "--kind", "noop", "--traceparent", TRACE, "{}").stdout.strip()
        self.finished(tid)
        shown = self.cli("status", tid)
        self.assertIn("traceparent: " + TRACE, shown.stdout)

    # --- unique tasks -------------------------------------------------------------------------
    def test_a_unique_key_refuses_or_answers_a_second_task_until_the_first_ends(self):
        body = {"kind": "sleep", "payload": {"seconds": 30}, "unique_key": "lint:src/app.py"}
        first = self.submit(body)["task_id"]
        refused = requests.post(f"{self.url}/api/v1/tasks", json=body, timeout=10)
        self.assertEqual(refused.status_code, 409, refused.text)
        self.assertIn(first, refused.json()["error"]["message"], "the holder is named")
        answered = self.submit({**body, "on_duplicate": "existing"}, expect=200)
        self.assertEqual((answered["task_id"], answered["existing"], answered["duplicate"]), (first, True, False))
        other_queue = self.submit({**body, "queue": "low_priority"})
        self.assertNotEqual(other_queue["task_id"], first, "keys are per queue")
        self.assertEqual(requests.get(f"{self.url}/api/v1/tasks/{first}", timeout=5).json()["unique_key"],
                         "lint:src/app.py")

        r = requests.post(f"{self.url}/api/v1/tasks/{first}/revoke", json={"terminate": True}, timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        requests.post(f"{self.url}/api/v1/tasks/{other_queue['task_id']}/revoke", json={"terminate": True}, timeout=10)
        self.finished(first)
        again = self.submit({**body, "payload": {"seconds": 0}})
        self.assertNotEqual(again["task_id"], first, "released once the first ended")
        self.finished(again["task_id"])

    def test_a_group_with_a_taken_or_repeated_key_is_refused_whole(self):
        hold = self.submit({"kind": "sleep", "payload": {"seconds": 30}, "unique_key": "g-held"})["task_id"]
        for tasks in ([{"kind": "noop", "unique_key": "g-held", "on_duplicate": "existing"}, {"kind": "noop"}],
                      [{"kind": "noop", "unique_key": "g-twice"}, {"kind": "noop", "unique_key": "g-twice"}]):
            r = requests.post(f"{self.url}/api/v1/tasks", json={"tasks": tasks}, timeout=10)
            self.assertEqual(r.status_code, 409, r.text)
        ok = self.submit({"kind": "noop", "unique_key": "g-twice"})
        self.finished(ok["task_id"])
        requests.post(f"{self.url}/api/v1/tasks/{hold}/revoke", json={"terminate": True}, timeout=10)

    def test_bad_unique_fields_are_refused(self):
        for body, reason in [({"kind": "noop", "unique_key": ""}, "unique_key"),
                             ({"kind": "noop", "unique_key": 5}, "unique_key"),
                             ({"kind": "noop", "unique_key": "k" * 257}, "unique_key"),
                             ({"kind": "noop", "unique_key": "k", "on_duplicate": "maybe"}, "on_duplicate"),
                             ({"kind": "noop", "on_duplicate": "existing"}, "only with"),
                             ({"tasks": [{"kind": "noop"}], "unique_key": "k"}, "unique_key")]:
            r = requests.post(f"{self.url}/api/v1/tasks", json=body, timeout=10)
            self.assertEqual(r.status_code, 400, (body, r.text))
            self.assertIn(reason, r.json()["error"]["message"])

    def test_the_command_line_refuses_or_prints_the_holder(self):
        first = self.cli("submit", "--kind", "sleep", "--unique-key", "cli-key", '{"seconds": 30}')
        self.assertEqual(first.returncode, 0, first.stderr)
        tid = first.stdout.strip()
        refused = self.cli("submit", "--kind", "sleep", "--unique-key", "cli-key", '{"seconds": 30}')
        self.assertEqual(refused.returncode, 1, refused.stderr)
        self.assertIn(tid, refused.stderr)
        same = self.cli("submit", "--kind", "sleep", "--unique-key", "cli-key", "--on-duplicate", "existing",
                        '{"seconds": 30}')
        self.assertEqual((same.returncode, same.stdout.strip()), (0, tid), same.stderr)
        r = self.cli("submit", "--kind", "noop", "--unique-key", "x", "-")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.cli("revoke", "--terminate", tid)


if __name__ == "__main__":
    unittest.main()
