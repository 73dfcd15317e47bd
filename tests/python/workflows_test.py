"""Chains, chords and task graphs (docs/WORKFLOWS.md) over HTTP, the command line and the Python
client, against real processes: each dependant runs after what it waits for, with their results
as `inputs` on its handler's stdin; a failure fails the dependants with DependencyFailed and
runs the failure handlers; a chord's callback gets every result of its group; bad graphs are
refused whole; and a router killed with SIGKILL while dependants wait loses none of them."""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

import requests

from cluster import Cluster, config_file, wait_until

BINARY = sys.argv.pop(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import zbatch_client  # noqa: E402

# The `add` kind: its payload's n plus every number its dependencies returned.
ADD = textwrap.dedent("""\
    import json, sys
    task = json.load(sys.stdin)
    inputs = task.get("inputs") or {}
    got = [t.get("result") for t in inputs.get("tasks", [])]
    got += [t.get("result") for t in (inputs.get("group") or {}).get("results", [])]
    total = (task["payload"] or {}).get("n", 0) + sum(r for r in got if isinstance(r, (int, float)))
    print(json.dumps(total))
""")
# The `inputs` kind: its inputs as its result.
INPUTS = "import json, sys; print(json.dumps(json.load(sys.stdin).get('inputs')))"
ENDED = ("succeeded", "failed", "revoked")


def handlers(folder):
    add = os.path.join(folder, "add.py")
    with open(add, "w") as f:
        f.write(ADD)
    return textwrap.dedent(f"""
        [[handler]]
        kind = "add"
        argv = ["/usr/bin/python3", "{add}"]

        [[handler]]
        kind = "inputs"
        argv = ["/usr/bin/python3", "-c", "{INPUTS}"]
    """)


class Api:
    """HTTP helpers over one cluster."""
    url = None
    cluster = None

    def submit(self, body, expect=201):
        r = requests.post(f"{self.url}/api/v1/tasks", json=body, timeout=10)
        self.assertEqual(r.status_code, expect, r.text)
        return r.json()

    def task(self, tid):
        r = requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5)
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()

    def ended(self, tid, timeout=30):
        def done():
            t = requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5)
            return t.json() if t.status_code == 200 and t.json()["state"] in ENDED else None
        wait_until(done, timeout, f"task {tid} to end\n" + self.cluster.logs())
        return done()


class Workflows(Api, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="zbatch-flows-")
        cls.addClassCleanup(cls.tmp.cleanup)
        config = config_file(cls.tmp.name, handlers(cls.tmp.name))
        cls.cluster = Cluster(BINARY, up_args=["--config", config])
        cls.addClassCleanup(cls.cluster.close)
        cls.url = cls.cluster.url

    def cli(self, *args, stdin=None):
        env = dict(os.environ, ZBATCH_ROUTER=self.cluster.frontend)
        return subprocess.run([BINARY, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env)

    def test_a_chain_gives_each_task_the_result_of_the_one_before(self):
        g = self.submit({"kind": "add", "chain": True, "tasks": [{"payload": {"n": n}} for n in (1, 2, 3, 4)]})
        ids = g["task_ids"]
        last = self.ended(ids[-1])
        self.assertEqual(last["state"], "succeeded", last)
        self.assertEqual(last["result"], 10)  # 1, 1+2, 3+3, 6+4
        self.assertEqual([self.task(t)["result"] for t in ids], [1, 3, 6, 10])
        second = self.task(ids[1])
        self.assertEqual(second["depends_on"], [ids[0]])
        self.assertEqual(second["inputs"]["tasks"], [{"id": ids[0], "state": "succeeded", "result": 1}])
        self.assertEqual(second["when"], "success")
        self.assertIsNone(second["depends_on_group"])
        self.assertNotIn("depends_on", self.task(ids[0]))
        # each started only after the one before it had finished
        for before, after in zip(ids, ids[1:]):
            self.assertLessEqual(self.task(before)["finished_ms"], self.task(after)["started_ms"])

    def test_a_graph_names_tasks_of_the_request_by_their_id(self):
        g = self.submit({"kind": "add", "tasks": [
            {"id": "join", "payload": {"n": 0}, "depends_on": ["left", "right"]},  # names later tasks
            {"id": "root", "payload": {"n": 1}},
            {"id": "left", "payload": {"n": 2}, "depends_on": ["root"]},
            {"id": "right", "payload": {"n": 3}, "depends_on": ["root"]},
        ]})
        join = self.ended(g["task_ids"][0])
        self.assertEqual(join["result"], 7, join)  # (1+2) + (1+3)
        self.assertEqual(sorted(join["depends_on"]), sorted(g["task_ids"][2:]))
        # a task of an earlier submission, by its id; the handler sees ids, refs and states
        later = self.submit({"kind": "inputs", "depends_on": [g["task_ids"][1], g["task_ids"][0]]})
        done = self.ended(later["task_id"])
        self.assertEqual(done["state"], "succeeded", done)
        got = {t["ref"]: (t["state"], t["result"]) for t in done["result"]["tasks"]}
        self.assertEqual(got, {"root": ("succeeded", 1), "join": ("succeeded", 7)})

    def test_a_failure_fails_the_dependants_and_runs_the_failure_handlers(self):
        g = self.submit({"tasks": [
            {"id": "build", "kind": "fail", "payload": {"error": "CompileError: no"}, "max_retries": 0},
            {"id": "test", "kind": "add", "depends_on": ["build"]},
            {"id": "deploy", "kind": "add", "depends_on": ["test"]},
            {"id": "alert", "kind": "inputs", "depends_on": ["build"], "when": "failure"},
            {"id": "cleanup", "kind": "add", "payload": {"n": 5}, "depends_on": ["build"], "when": "always"},
            {"id": "party", "kind": "add", "depends_on": ["cleanup"], "when": "failure"},
        ]})
        build, test, deploy, alert, cleanup, party = (self.ended(t) for t in g["task_ids"])
        self.assertEqual(build["state"], "failed")
        self.assertEqual(test["state"], "failed")
        self.assertRegex(test["error"], r"^DependencyFailed: task .* failed: CompileError: no")
        self.assertEqual(deploy["state"], "failed")  # down the chain
        self.assertRegex(deploy["error"], r"^DependencyFailed: task .* failed: DependencyFailed")
        self.assertEqual(test["attempt"], 0)  # never ran
        self.assertEqual(alert["state"], "succeeded", alert)
        self.assertEqual(alert["result"]["tasks"][0]["state"], "failed")
        self.assertIn("CompileError: no", alert["result"]["tasks"][0]["error"])
        self.assertEqual(cleanup["state"], "succeeded")
        self.assertEqual(cleanup["result"], 5)
        self.assertEqual(party["state"], "revoked")  # its trigger was not met
        self.assertRegex(party["error"], "^skipped")
        group = requests.get(f"{self.url}/api/v1/groups/{g['group_id']}", timeout=5).json()
        self.assertTrue(group["ready"], group)
        self.assertEqual((group["successful"], group["failed"], group["revoked"]), (2, 3, 1))

    def test_a_chords_callbacks_get_every_result_of_the_group(self):
        g = self.submit({"kind": "add", "tasks": [{"payload": {"n": n}} for n in range(1, 6)],
                         "callbacks": [{"payload": {"n": 100}}, {"kind": "inputs"},
                                       {"payload": {"n": 1}, "when": "failure"}]})
        self.assertEqual(len(g["callback_ids"]), 3)
        total, inputs, on_failure = (self.ended(c) for c in g["callback_ids"])
        self.assertEqual(total["result"], 115, total)
        self.assertIsNone(total["group_id"])  # not a member: the group counts its own tasks
        self.assertEqual(total["depends_on_group"], g["group_id"])
        group = inputs["result"]["group"]
        self.assertEqual((group["id"], group["total"], group["succeeded"]), (g["group_id"], 5, 5))
        self.assertEqual([r["result"] for r in group["results"]], [1, 2, 3, 4, 5])  # submission order
        self.assertEqual(on_failure["state"], "revoked")
        counters = requests.get(f"{self.url}/api/v1/groups/{g['group_id']}", timeout=5).json()
        self.assertEqual(counters["total"], 5)
        # a single task may wait for a group made earlier
        after = self.submit({"kind": "add", "payload": {"n": 0}, "depends_on_group": g["group_id"]})
        self.assertEqual(self.ended(after["task_id"])["result"], 15)

    def test_a_repeated_submission_answers_the_same_callbacks(self):
        body = {"kind": "add", "tasks": [{"payload": {"n": 1}}], "callbacks": [{"payload": {"n": 2}}]}
        first = requests.post(f"{self.url}/api/v1/tasks", json=body, headers={"Idempotency-Key": "chord-1"}, timeout=10)
        again = requests.post(f"{self.url}/api/v1/tasks", json=body, headers={"Idempotency-Key": "chord-1"}, timeout=10)
        self.assertEqual((first.status_code, again.status_code), (201, 200), again.text)
        self.assertEqual(first.json()["callback_ids"], again.json()["callback_ids"])
        self.assertEqual(self.ended(first.json()["callback_ids"][0])["result"], 3)

    def test_bad_graphs_are_refused_whole(self):
        existing = self.submit({"kind": "add"})["task_id"]
        self.ended(existing)  # in the store's list before it is counted
        cases = [
            ({"tasks": [{"id": "a", "depends_on": ["c"]}, {"id": "b", "depends_on": ["a"]},
                        {"id": "c", "depends_on": ["b"]}]}, 400, "cycle"),
            ({"tasks": [{"id": "a", "depends_on": ["a"]}]}, 400, "itself"),
            ({"tasks": [{"id": "a", "depends_on": ["nobody"]}]}, 400, "neither a task id nor"),
            ({"depends_on": ["0190d1c4-0000-7000-8000-000000000000"]}, 422, "does not exist"),
            ({"depends_on_group": "0190d1c4-0000-7000-8000-000000000000"}, 422, "does not exist"),
            ({"payload": 1, "when": "failure"}, 400, "only with depends_on"),
            ({"depends_on": [existing], "when": "sometimes"}, 400, "success"),
            ({"depends_on": "abc"}, 400, "array"),
            ({"depends_on": [existing] * 10001}, 400, "at most 10000"),
            ({"tasks": [{}], "callbacks": []}, 400, "1..100"),
            ({"tasks": [{}], "callbacks": [{"depends_on": [existing]}]}, 400, "depends_on"),
            ({"tasks": [{}], "chain": "yes"}, 400, "true or false"),
        ]
        before = requests.get(f"{self.url}/api/v1/tasks", params={"limit": 500}, timeout=5).json()["tasks"]
        for body, status, words in cases:
            with self.subTest(body=str(body)[:120]):
                r = requests.post(f"{self.url}/api/v1/tasks", json={"kind": "add", **body}, timeout=10)
                self.assertEqual(r.status_code, status, r.text)
                self.assertIn(words, r.text)
        after = requests.get(f"{self.url}/api/v1/tasks", params={"limit": 500}, timeout=5).json()["tasks"]
        self.assertEqual(len(after), len(before))  # nothing of a refused submission was made

    def test_revoking_a_waiting_task_resolves_its_dependants(self):
        g = self.submit({"tasks": [{"id": "slow", "kind": "sleep", "payload": {"seconds": 30}},
                                   {"id": "next", "kind": "add", "depends_on": ["slow"]},
                                   {"id": "after-next", "kind": "add", "depends_on": ["next"]},
                                   {"id": "anyway", "kind": "add", "payload": {"n": 1}, "depends_on": ["next"],
                                    "when": "always"}]})
        slow, nxt, after_next, anyway = g["task_ids"]
        wait_until(lambda: self.task(nxt)["state"] == "waiting", 10, "the dependant to be waiting")
        r = requests.post(f"{self.url}/api/v1/tasks/{nxt}/revoke", json={}, timeout=5)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["was"], "waiting")
        self.assertEqual(self.ended(nxt)["state"], "revoked")
        self.assertRegex(self.ended(after_next)["error"], "^DependencyFailed: task .* revoked")
        self.assertEqual(self.ended(anyway)["result"], 1)
        self.assertEqual(requests.post(f"{self.url}/api/v1/tasks/{slow}/revoke", json={"terminate": True},
                                       timeout=5).status_code, 200)
        self.assertEqual(self.ended(slow)["state"], "revoked")

    def test_the_command_line_chains_waits_and_calls_back(self):
        lines = '{"n": 1}\n{"n": 2}\n{"n": 3}\n'
        out = self.cli("submit", "--kind", "add", "--chain", "--callback", '{"n": 0}', "--wait", "-", stdin=lines)
        self.assertEqual(out.returncode, 0, out.stderr)
        group_id, callback_result = out.stdout.split()
        self.assertEqual(callback_result, "10")  # 1 + 3 + 6, the chain's results
        first = self.cli("submit", "--kind", "add", '{"n": 4}')
        self.assertEqual(first.returncode, 0, first.stderr)
        a = first.stdout.strip()
        second = self.cli("submit", "--kind", "add", "--after", a, "--wait", '{"n": 1}')
        self.assertEqual((second.returncode, second.stdout.strip()), (0, "5"), second.stderr)
        after_group = self.cli("submit", "--kind", "add", "--after-group", group_id, "--wait", '{"n": 0}')
        self.assertEqual((after_group.returncode, after_group.stdout.strip()), (0, "10"), after_group.stderr)
        status = self.cli("status", self.submit({"kind": "add", "depends_on": [a]})["task_id"])
        self.assertIn(f"waits for: {a} (when success)", status.stdout)
        for args, words in ((["--chain", "{}"], "for a group"), (["--when", "failure", "{}"], "--when needs"),
                            (["--after", "nope", "{}"], "task id"), (["--after-group", a[:8], "-"], "one task")):
            bad = self.cli("submit", "--kind", "add", *args, stdin="{}\n")
            self.assertEqual(bad.returncode, 2, bad.stdout)
            self.assertIn(words, bad.stderr)

    def test_the_python_client_builds_chains_chords_and_graphs(self):
        app = zbatch_client.Client(self.url)
        last = app.chain([{"n": 1}, {"n": 2}], kind="add")
        self.assertEqual(last.get(timeout=30), 3)  # 1, then 2 + 1
        self.assertEqual(len(last.parent), 2)
        merged = app.chord([{"n": 1}, {"n": 2}], zbatch_client.task({"n": 10}), kind="add")
        self.assertEqual(merged.get(timeout=30), 13)
        self.assertEqual(merged.parent.join(timeout=30), [1, 2])
        a = app.apply_async({"n": 2}, kind="add")
        b = app.apply_async({"n": 3}, kind="add", depends_on=[a])
        c = app.apply_async({"n": 0}, kind="add", depends_on_group=merged.parent)
        self.assertEqual((b.get(timeout=30), c.get(timeout=30)), (5, 3))
        g = app.group([zbatch_client.task({"n": 1}, id="x"), zbatch_client.task({"n": 1}, depends_on=["x"])],
                      kind="add")
        self.assertEqual(g.join(timeout=30), [1, 2])
        with self.assertRaises(ValueError):
            app.apply_async({}, depends_on=[a], when="sometimes")
        failing = app.apply_async({"error": "E: x"}, kind="fail", max_retries=0)
        blocked = app.apply_async({}, kind="add", depends_on=[failing])
        with self.assertRaises(zbatch_client.TaskFailed) as caught:
            blocked.get(timeout=30)
        self.assertIn("DependencyFailed", str(caught.exception))


class WorkflowsAcrossCrashes(Api, unittest.TestCase):
    """A separate router, worker and store; the router is killed with SIGKILL."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="zbatch-flows-crash-")
        self.addCleanup(self.tmp.cleanup)
        self.config = config_file(self.tmp.name, handlers(self.tmp.name))
        self.cluster = Cluster(BINARY, split=True, worker_args=["--config", self.config])
        self.addCleanup(self.cluster.close)
        self.url = self.cluster.url

    def restart_router(self):
        c = self.cluster
        c.kill("router", signal.SIGKILL)
        c.start("router", ["router", "--data", c.path("data"), "--frontend", c.frontend, "--backend", c.backend,
                           "--events", c.events])

    def test_dependants_waiting_through_a_router_sigkill_run_once_with_their_inputs(self):
        c = self.cluster
        c.kill("worker0", signal.SIGTERM)  # nothing runs: every dependant is waiting at the kill
        g = self.submit({"kind": "add", "chain": True, "tasks": [{"payload": {"n": n}} for n in range(1, 6)],
                         "callbacks": [{"payload": {"n": 1000}}]})
        self.restart_router()
        c.start("worker0", ["worker", "--router", c.backend, "-c", "2", "--hostname", "w0@test",
                            "--config", self.config])
        ids = g["task_ids"]
        wait_until(lambda: requests.get(f"{self.url}/readyz", timeout=1).status_code == 200, 20, "readyz")
        last = self.ended(ids[-1], timeout=60)
        self.assertEqual(last["result"], 15)  # 1, 2 + 1, 3 + 3, 4 + 6, 5 + 10
        callback = self.ended(g["callback_ids"][0], timeout=60)
        self.assertEqual(callback["result"], 1000 + 1 + 3 + 6 + 10 + 15)
        self.assertEqual([self.task(t)["attempt"] for t in ids], [1] * 5)  # each ran once

    def test_a_dependency_that_ends_around_a_router_sigkill_still_releases_its_dependants(self):
        for round_ in range(3):
            g = self.submit({"tasks": [{"kind": "sleep", "payload": {"seconds": 0.3}},
                                       {"kind": "add", "payload": {"n": round_}}]})
            sleeper, dependant = g["task_ids"]
            follow = self.submit({"kind": "add", "payload": {"n": 1}, "depends_on": [sleeper]})
            wait_until(lambda: self.task(sleeper)["state"] in ("started", "succeeded"), 20, "the sleeper to start")
            self.restart_router()  # the sleeper ends while, or just after, the router is down
            done = self.ended(follow["task_id"], timeout=60)
            self.assertEqual(done["state"], "succeeded", done)
            self.assertEqual(done["result"], 1)  # the sleeper's result is not a number
            self.assertEqual(self.ended(dependant)["result"], round_)


if __name__ == "__main__":
    unittest.main()
