"""Strict HTTP input and honest submission answers, against real processes.

- Unknown and misplaced fields are refused with their path at every level (single task, the
  group form, a seed batch and its task objects, control bodies); the group form's top-level
  fields apply to its tasks, a task's own field overrides them; eta takes RFC 3339 date-times.
- Each of the four kinds' input is checked at submission, and nothing of a refused batch runs.
- Test profiles and MCP servers must be announced by an online worker.
- A test profile whose runner is missing, or that ends non-zero without counts, fails its task.
- Every submission gets an idempotency key (header and body); a router that never received
  the submission is a 503 saying that nothing was accepted."""
import calendar
import datetime
import os
import signal
import sys
import tempfile
import textwrap
import time
import unittest

import requests

from cluster import Cluster, config_file, wait_until

BINARY = sys.argv.pop(1)

# A minimal MCP server over stdio (newline-delimited JSON-RPC 2.0) with one tool, "echo".
MCP_SERVER = r'''
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    method, result = msg.get("method"), None
    if method == "initialize":
        result = {"protocolVersion": "2024-11-05", "capabilities": {"tools": {}},
                  "serverInfo": {"name": "mini", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
    elif method == "tools/call":
        text = "Echo: " + str(msg["params"]["arguments"].get("message", ""))
        result = {"content": [{"type": "text", "text": text}]}
    reply = {"jsonrpc": "2.0", "id": msg["id"]}
    if result is None:
        reply["error"] = {"code": -32601, "message": "no such method"}
    else:
        reply["result"] = result
    print(json.dumps(reply), flush=True)
'''

UNITTESTS = """
import unittest

class T(unittest.TestCase):
    def test_one(self): pass
    def test_two(self): pass
"""


REPORT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="t" tests="3" failures="1" errors="0" skipped="0"><testcase name="x"/></testsuite>
"""


def unix_ms(text):
    """What the store should make of an RFC 3339 date-time, computed independently."""
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


class StrictInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="zbatch-strict-")
        root = cls.tmp.name
        project = os.path.join(root, "project")
        os.makedirs(project)
        with open(os.path.join(project, "test_sample.py"), "w") as f:
            f.write(UNITTESTS)
        with open(os.path.join(project, "report-template.xml"), "w") as f:
            f.write(REPORT)
        cls.project = project
        not_executable = os.path.join(root, "runner.sh")
        with open(not_executable, "w") as f:
            f.write("#!/bin/sh\necho never\n")
        os.chmod(not_executable, 0o644)
        server = os.path.join(root, "mcp_server.py")
        with open(server, "w") as f:
            f.write(MCP_SERVER)
        config = textwrap.dedent(f"""
            [[test_profile]]
            name = "unit"
            argv = ["/usr/bin/python3", "-m", "unittest", "-v"]
            cwd = "{project}"

            [[test_profile]]
            name = "missing"
            argv = ["/nonexistent/zbatch-runner", "--all"]

            [[test_profile]]
            name = "not-executable"
            argv = ["{not_executable}"]

            [[test_profile]]
            name = "not-on-path"
            argv = ["zbatch-no-such-runner"]

            [[test_profile]]
            name = "wrapper"
            argv = ["/bin/sh", "-c", "zbatch-no-such-tool --all"]

            [[test_profile]]
            name = "crash"
            argv = ["/bin/sh", "-c", "echo collector blew up >&2; exit 3"]

            [[test_profile]]
            name = "quiet"
            argv = ["/bin/true"]

            [[test_profile]]
            name = "turns"
            argv = ["/bin/sh", "-c", "echo start >> turns.log; sleep 0.2; cp report-template.xml turns.xml; echo end >> turns.log; exit 1"]
            cwd = "{project}"
            junit = "turns.xml"

            [[mcp_server]]
            name = "mini"
            argv = ["/usr/bin/python3", "-u", "{server}"]
            call_timeout = 10

            [[queue]]
            name = "reviews"
            handler = "validate"
        """)
        path = config_file(root, config)
        cls.cluster = Cluster(BINARY, up_args=["--config", path])
        cls.addClassCleanup(cls.cluster.close)  # also when the rest of setUpClass fails
        cls.url = cls.cluster.url
        # Submissions of test and MCP tasks are checked against what online workers announce.
        wait_until(lambda: any("unit" in w.get("test_profiles", []) for w in requests.get(
            f"{cls.url}/api/v1/inspect/registered", timeout=5).json()["workers"]), 20, "the worker registered")

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()
        cls.tmp.cleanup()

    # --- support ------------------------------------------------------------------------------
    def post(self, path, body, headers=None):
        return requests.post(f"{self.url}{path}", json=body, headers=headers or {}, timeout=30)

    def refused(self, path, body, *fragments, status=400):
        r = self.post(path, body)
        self.assertEqual(r.status_code, status, (body, r.text))
        error = r.json()["error"]
        self.assertEqual(error["code"], {400: "bad_request", 413: "too_large", 422: "unprocessable"}[status])
        for fragment in fragments:
            self.assertIn(fragment, error["message"], body)
        return error["message"]

    def task(self, tid):
        r = requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()

    def scheduled(self):
        return {t["id"]: t for t in requests.get(f"{self.url}/api/v1/inspect/scheduled", timeout=10).json()["tasks"]}

    def finished(self, tid, timeout=30):
        wait_until(lambda: self.task(tid)["state"] in ("succeeded", "failed"), timeout, f"task {tid} finished")
        return self.task(tid)

    def received(self):
        return requests.get(f"{self.url}/api/v1/stats", timeout=10).json()["received"]

    def sentinel(self):
        """Submits a task and waits until the store has it: every earlier event is applied then."""
        r = self.post("/api/v1/tasks", {"kind": "noop"})
        self.assertEqual(r.status_code, 201, r.text)
        tid = r.json()["task_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/tasks?q={tid}", timeout=10).json()["tasks"], 10,
                   "the sentinel in the store")

    def assert_nothing_sent(self, refuse):
        """Between two sentinels, `refuse` (a refused submission) adds no task to the router."""
        self.sentinel()
        before = self.received()
        refuse()
        self.sentinel()
        self.assertEqual(self.received(), before + 1)

    # --- A: unknown and misplaced fields ------------------------------------------------------
    def test_group_level_fields_apply_to_every_task(self):
        # The request: before, these ran at once, on default, as echo.
        r = self.post("/api/v1/tasks", {"queue": "low_priority", "kind": "noop", "countdown": 3600, "priority": 3,
                                        "tasks": [{"id": "inherit-0"}, {"id": "inherit-1", "payload": {"n": 1}}]})
        self.assertEqual(r.status_code, 201, r.text)
        now_ms = time.time() * 1000
        for tid in r.json()["task_ids"]:
            t = self.task(tid)
            self.assertEqual((t["queue"], t["kind"], t["state"]), ("low_priority", "noop", "scheduled"), t)
        sched = {t["ref"]: t for t in self.scheduled().values()}
        for ref in ("inherit-0", "inherit-1"):
            self.assertEqual(sched[ref]["priority"], 3)
            self.assertAlmostEqual(sched[ref]["eta_ms"], now_ms + 3600_000, delta=60_000)

    def test_a_tasks_own_fields_override_the_groups(self):
        r = self.post("/api/v1/tasks", {"queue": "low_priority", "kind": "noop", "countdown": 3600, "tasks": [
            {"id": "own-queue", "queue": "high_priority", "kind": "echo", "payload": 5},
            {"id": "own-eta", "eta": "2099-06-01T12:00:00Z"},
            {"id": "own-countdown", "countdown": 0},
        ]})
        self.assertEqual(r.status_code, 201, r.text)
        own_queue, own_eta, own_countdown = r.json()["task_ids"]
        t = self.task(own_queue)
        self.assertEqual((t["queue"], t["kind"], t["state"]), ("high_priority", "echo", "scheduled"))
        sched = {t["ref"]: t for t in self.scheduled().values()}
        self.assertEqual(sched["own-eta"]["eta_ms"], unix_ms("2099-06-01T12:00:00Z"))
        self.assertEqual(self.task(own_eta)["queue"], "low_priority")
        # countdown 0 replaces the group's hour: the task runs now.
        self.assertEqual(self.finished(own_countdown)["state"], "succeeded")

    def test_unknown_fields_are_named_at_every_level(self):
        for path, body, fragments in [
            ("/api/v1/tasks", {"queu": "low_priority", "kind": "noop"},
             ["queu: unknown field", 'did you mean "queue"?', "a task takes queue, kind, payload"]),
            ("/api/v1/tasks", {"tasks": [{"kind": "noop"}], "paralel": 2},
             ["paralel: unknown field", 'did you mean "parallel"?']),
            ("/api/v1/tasks", {"tasks": [{"kind": "noop"}, {"kind": "noop", "prioirty": 1}]},
             ["tasks[1].prioirty: unknown field", 'did you mean "priority"?']),
            ("/api/v1/tasks", {"kind": "noop", "zzzzzzzz": 1}, ["zzzzzzzz: unknown field (a task takes"]),
            ("/batch/celery/validation", {"tasks": [{"language": "json", "code": "{}"}], "parallell": 3},
             ["parallell: unknown field", 'did you mean "parallel"?']),
            ("/batch/validation", {"tasks": [{"language": "json", "code": "{}", "langauge": "json"}]},
             ["tasks[0].langauge: unknown field", 'did you mean "language"?']),
            ("/api/v1/purge", {"queu": "default"}, ["queu: unknown field"]),
            ("/api/v1/tasks/01a20e2d-f0d8-7000-8000-000000000000/revoke", {"terminat": True},
             ["terminat: unknown field", 'did you mean "terminate"?']),
            ("/api/v1/tasks/01a20e2d-f0d8-7000-8000-000000000000/retry", {"force": True},
             ["force: unknown field (a retry takes no fields)"]),
            ("/api/v1/dead/retry", {"queues": "default"}, ["queues: unknown field", 'did you mean "queue"?']),
            ("/api/v1/workers/nobody/pool", {"delta": 1, "by": 2}, ["by: unknown field"]),
            ("/api/v1/workers/nobody/shutdown", {"now": True}, ["now: unknown field (a worker shutdown takes no fields)"]),
        ]:
            self.refused(path, body, *fragments)

    def test_misplaced_fields_say_where_they_belong(self):
        self.refused("/api/v1/tasks", {"tasks": [{"kind": "noop"}], "payload": {"x": 1}},
                     "payload: each task carries its own payload")
        self.refused("/api/v1/tasks", {"tasks": [{"kind": "noop", "idempotency_key": "k"}]},
                     "tasks[0].idempotency_key: belongs to the whole submission")
        self.refused("/api/v1/tasks", {"kind": "noop", "parallel": 2}, "parallel: only with \"tasks\"")
        self.refused("/batch/tests", {"tasks": [{"profile": "unit"}], "queue": "default"},
                     "queue: this endpoint's queue is tests")
        self.refused("/batch/tests", {"tasks": [{"profile": "unit", "queue": "default"}]},
                     "tasks[0].queue: this endpoint's queue is tests")

    def test_wrong_types_name_the_field_and_the_task_index(self):
        for body, fragment in [
            ({"kind": "noop", "priority": "high"}, "priority: must be an integer 0..255"),
            ({"tasks": [{"kind": "noop"}, {"kind": "noop", "priority": 256}]}, "tasks[1].priority: must be an integer"),
            ({"tasks": [{"kind": "noop"}], "max_retries": -1}, "max_retries: must be a non-negative integer"),
            ({"tasks": [{"kind": "noop"}, {"kind": "noop"}, {"kind": "noop", "countdown": "soon"}]},
             "tasks[2].countdown: must be a number of seconds"),
            ({"kind": "noop", "countdown": 1e300}, "countdown: must be a number of seconds"),
            ({"kind": "noop", "eta": True}, "eta: must be unix seconds or an RFC 3339 date-time"),
            ({"kind": "noop", "time_limit": -5}, "time_limit: must be a number of seconds"),
            ({"kind": 5}, "kind: must be a non-empty string"),
            ({"queue": "", "kind": "noop"}, "queue: must be a non-empty string"),
            ({"tasks": [{"kind": "noop", "id": []}]}, "tasks[0].id: must be a string or an integer"),
            ({"tasks": [{"kind": "noop"}, 7]}, "tasks[1]: each task must be a JSON object"),
            ({"tasks": []}, "tasks: must be a non-empty array"),
            ({"tasks": [{"kind": "noop"}], "parallel": "ten"}, "parallel: must be a non-negative integer"),
            ({"kind": "noop", "soft_time_limit": 5, "time_limit": 1}, "soft time limit must not exceed"),
        ]:
            self.refused("/api/v1/tasks", body, fragment)

    def test_eta_takes_rfc3339_date_times_and_unix_seconds(self):
        forms = {
            "utc": ("2099-12-01T18:00:00Z", unix_ms("2099-12-01T18:00:00+00:00")),
            "offset": ("2099-12-01T20:00:00+02:00", unix_ms("2099-12-01T18:00:00+00:00")),
            "negative-offset": ("2099-12-01T13:30:00-04:30", unix_ms("2099-12-01T18:00:00+00:00")),
            "fraction": ("2099-12-01T18:00:00.250Z", unix_ms("2099-12-01T18:00:00+00:00") + 250),
            "long-fraction": ("2099-12-01T18:00:00.123456789Z", unix_ms("2099-12-01T18:00:00+00:00") + 123),
            "lower-case": ("2099-12-01t18:00:00z", unix_ms("2099-12-01T18:00:00+00:00")),
            "space-no-seconds": ("2099-12-01 18:00Z", unix_ms("2099-12-01T18:00:00+00:00")),
            "leap-day": ("2096-02-29T00:00:00Z", unix_ms("2096-02-29T00:00:00+00:00")),
            "unix-seconds": (4100000000.5, 4100000000500),
        }
        r = self.post("/api/v1/tasks", {"kind": "noop", "tasks": [{"id": f"eta-{name}", "eta": eta}
                                                                  for name, (eta, _) in forms.items()]})
        self.assertEqual(r.status_code, 201, r.text)
        sched = {t["ref"]: t for t in self.scheduled().values()}
        for name, (eta, expected) in forms.items():
            self.assertEqual(sched[f"eta-{name}"]["eta_ms"], expected, (name, eta))
            self.assertEqual(sched[f"eta-{name}"]["state"], "scheduled")
        self.assertEqual(calendar.timegm((2099, 12, 1, 18, 0, 0)) * 1000, forms["utc"][1])

    def test_bad_date_times_are_refused_with_a_reason(self):
        for eta, why in [
            ("2099-13-01T00:00:00Z", "the month is out of range"),
            ("2099-02-29T00:00:00Z", "the day is out of range"),
            ("2099-12-01T25:00:00Z", "the time is out of range"),
            ("2099-12-01T18:00:00", "it needs a time zone"),
            ("2099-12-01T18:00:00+25:00", "the offset is out of range"),
            ("2099-12-01", "a time must follow the date"),
            ("tomorrow", "it must start with a date"),
            ("2099-12-01T18:00:00Z trailing", "unexpected text"),
            ("1969-12-31T23:59:59Z", "before 1970"),
            ("", "it must start with a date"),
        ]:
            message = self.refused("/api/v1/tasks", {"tasks": [{"kind": "noop"}, {"kind": "noop", "eta": eta}]},
                                   "tasks[1].eta: ", "is not a date-time", why)
            self.assertIn(repr(eta) if eta else "''", message)
        self.refused("/api/v1/tasks", {"kind": "noop", "countdown": 5, "eta": "2099-12-01T18:00:00Z"},
                     "eta: give countdown", "not both")
        self.refused("/batch/tests", {"tasks": [{"profile": "unit", "countdown": 1, "eta": 4100000000}]},
                     "tasks[0].eta: give countdown")

    def test_seed_task_objects_take_scheduling_and_their_kinds_fields(self):
        r = self.post("/batch/celery/validation", {"priority": 2, "countdown": 3600, "tasks": [
            {"id": "seed-sched", "language": "json", "code": "{}", "priority": 9, "max_retries": 0},
            {"id": "seed-inherit", "language": "json", "files": ["a.json"]},
        ]})
        self.assertEqual(r.status_code, 200, r.text)
        sched = {t["ref"]: t for t in self.scheduled().values()}
        self.assertEqual(sched["seed-sched"]["priority"], 9)
        self.assertEqual(sched["seed-inherit"]["priority"], 2)
        t = self.task(sched["seed-sched"]["id"])
        self.assertEqual((t["queue"], t["kind"]), ("validation", "validate"))
        self.assertEqual(t["payload"]["code"], "{}")  # the object is handed to the handler whole
        # A kind other than the four takes any field, even on a seed endpoint.
        r = self.post("/batch/tests", {"tasks": [{"id": "custom", "kind": "echo", "anything": [1, 2]}]})
        self.assertEqual(r.status_code, 200, r.text)

    # --- B: each kind's input, checked at submission ------------------------------------------
    def test_agent_input(self):
        self.refused("/batch/celery/agent-tasks", {"tasks": [{"id": "x"}]}, "tasks[0].description: required")
        self.refused("/batch/agent-tasks", {"tasks": [{"description": "ok"}, {"description": ""}]},
                     "tasks[1].description: must be a non-empty string")
        self.refused("/batch/agent-tasks", {"tasks": [{"prompt": "hi"}]}, "tasks[0].prompt:", "\"description\"")
        self.refused("/batch/agent-tasks", {"tasks": [{"description": "d", "files": ["a.py"]}]},
                     "tasks[0].files: must be an object")
        self.refused("/batch/agent-tasks", {"tasks": [{"description": "d", "files": {"a.py": 1}}]},
                     'tasks[0].files["a.py"]: must be a string')
        self.refused("/batch/agent-tasks", {"tasks": [{"description": "d", "model": 3}]}, "tasks[0].model: must be a string")
        self.refused("/batch/agent-tasks", {"tasks": [{"description": "d", "temperature": 0}]},
                     "tasks[0].temperature: unknown field", "an agent task takes description")
        self.refused("/api/v1/tasks", {"queue": "agent_tasks", "payload": {"description": "x", "bogus": 1}},
                     "payload.bogus: unknown field")
        self.refused("/api/v1/tasks", {"kind": "agent"}, "payload: required")
        self.refused("/api/v1/tasks", {"tasks": [{"kind": "agent", "payload": "hello"}]},
                     "tasks[0].payload: must be a JSON object (the input of the agent kind)")
        # Good input is accepted (held an hour: no Ollama runs here).
        r = self.post("/batch/agent-tasks", {"countdown": 3600, "tasks": [
            {"id": "a", "description": "Create hello.py", "model": "m", "system": None, "files": {"x": "y"},
             "options": {"temperature": 0}}]})
        self.assertEqual(r.status_code, 200, r.text)

    def test_validation_input(self):
        tasks = [{"language": "json", "code": "{}"}] * 3 + [{"language": "cobol", "code": "x"}]
        self.refused("/batch/celery/validation", {"tasks": tasks},
                     "tasks[3].language: unknown language 'cobol' (python, javascript, c, cpp, json, toml, yaml, shell)")
        for task, fragment in [
            ({"code": "x = 1"}, "tasks[0].language: required"),
            ({"language": 5, "code": "x"}, "tasks[0].language: must be a string"),
            ({"language": "python"}, "tasks[0]: a validation task needs \"code\""),
            ({"language": "python", "code": 5}, "tasks[0].code: must be a string"),
            ({"language": "python", "code": "x", "files": ["a.py"]}, "tasks[0].files: give code or files, not both"),
            ({"language": "python", "files": []}, "tasks[0].files: must be a non-empty array"),
            ({"language": "python", "files": ["a.py", 3]}, "tasks[0].files[1]: must be a non-empty string"),
            ({"language": "python", "files": ["/etc/passwd"]}, "tasks[0].files[0]: '/etc/passwd' is outside the workspace"),
            ({"language": "python", "files": ["src/../../secret.py"]}, "is outside the workspace"),
            ({"language": "python", "files": ["a.py"], "filename": "b.py"}, "tasks[0].filename: only with \"code\""),
        ]:
            self.refused("/batch/validation", {"tasks": [task]}, fragment)
        # A queue the configuration points at the validate kind is checked the same way: the
        # kind comes from the router's queue declarations.
        self.refused("/api/v1/tasks", {"queue": "reviews", "payload": {"language": "cobol", "code": "x"}},
                     "payload.language: unknown language 'cobol'")
        r = self.post("/api/v1/tasks", {"queue": "reviews", "kind": "echo", "payload": {"language": "cobol"}})
        self.assertEqual(r.status_code, 201, r.text)
        # Good input runs.
        r = self.post("/api/v1/tasks", {"queue": "reviews", "payload": {"language": "json", "code": "[1]"}})
        self.assertEqual(r.status_code, 201, r.text)
        done = self.finished(r.json()["task_id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertTrue(done["result"]["passed"], done)

    def test_test_input_and_known_profiles(self):
        self.refused("/batch/tests", {"tasks": [{"id": "x"}]}, "tasks[0].profile: required")
        self.refused("/batch/tests", {"tasks": [{"profile": "unit"}, {"profile": "rm -rf /"}]},
                     "tasks[1].profile: unknown test profile 'rm -rf /'", "unit", "crash")
        self.refused("/batch/tests", {"tasks": [{"profile": "unit", "argv": ["/bin/sh"]}]},
                     "tasks[0].argv: a test task names a profile of the worker, never a command")
        self.refused("/batch/tests", {"tasks": [{"command": "ls"}]}, "tasks[0].command: a test task names a profile")
        self.refused("/batch/tests", {"tasks": [{"profile": 7}]}, "tasks[0].profile: must be a non-empty string")
        self.refused("/api/v1/tasks", {"queue": "tests", "payload": {"profile": "nope"}},
                     "payload.profile: unknown test profile 'nope'")
        r = self.post("/batch/tests", {"tasks": [{"id": "good", "profile": "unit"}]})
        self.assertEqual(r.status_code, 200, r.text)
        g = r.json()["group_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{g}", timeout=10).json()["ready"], 30, "unit ran")
        t = requests.get(f"{self.url}/api/v1/groups/{g}", timeout=10).json()["tasks"][0]
        self.assertEqual((t["state"], t["result"]["passed"], t["result"]["ok"]), ("succeeded", 2, True), t)

    def test_mcp_input_and_known_servers(self):
        for task, fragment in [
            ({"tool": "echo"}, "tasks[0].server: required"),
            ({"server": "nope", "tool": "echo"}, "tasks[0].server: unknown MCP server 'nope' (mini)"),
            ({"server": "mini"}, "tasks[0].tool: required"),
            ({"server": "mini", "tool": "echo", "arguments": [1]}, "tasks[0].arguments: must be an object"),
            ({"server": "mini", "method": "tools/delete"}, "tasks[0].method: unknown method 'tools/delete'"),
            ({"server": "mini", "tool": "echo", "uri": "file:///x"}, "tasks[0].uri: not a field of a tools/call task"),
            ({"server": "mini", "method": "resources/read"}, "tasks[0].uri: required"),
            ({"server": "mini", "method": "tools/list", "tool": "echo"}, "tasks[0].tool: not a field of a tools/list task"),
            ({"server": "mini", "tool": "echo", "argumnets": {}}, 'did you mean "arguments"?'),
        ]:
            self.refused("/batch/mcp-operations", {"tasks": [task]}, fragment)
        r = self.post("/batch/celery/mcp-operations", {"tasks": [
            {"id": "call", "server": "mini", "tool": "echo", "arguments": {"message": "hi"}},
            {"id": "list", "server": "mini", "method": "tools/list"}]})
        self.assertEqual(r.status_code, 200, r.text)
        g = r.json()["group_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{g}", timeout=10).json()["ready"], 30, "mcp ran")
        by = {t["id"]: t for t in requests.get(f"{self.url}/api/v1/groups/{g}", timeout=10).json()["tasks"]}
        self.assertEqual(by["call"]["result"]["content"][0]["text"], "Echo: hi", by["call"])
        self.assertEqual(by["list"]["result"]["tools"][0]["name"], "echo", by["list"])

    def test_nothing_of_a_refused_batch_is_sent(self):
        good = [{"id": f"ok-{i}", "language": "json", "code": "{}"} for i in range(50)]
        self.assert_nothing_sent(lambda: self.refused(
            "/batch/validation", {"tasks": good + [{"id": "bad", "language": "cobol", "code": "x"}]}, "tasks[50]"))
        self.assert_nothing_sent(lambda: self.refused(
            "/api/v1/tasks", {"tasks": [{"kind": "noop"}] * 20 + [{"kind": "noop", "queu": "x"}]}, "tasks[20].queu"))

    # --- D: a test profile that cannot run, or runs to no result ------------------------------
    def test_a_missing_runner_fails_the_task_with_that_reason(self):
        r = self.post("/api/v1/tasks", {"queue": "tests", "tasks": [
            {"payload": {"profile": p}} for p in ("missing", "not-executable", "not-on-path", "wrapper", "crash", "quiet")]})
        self.assertEqual(r.status_code, 201, r.text)
        missing, not_executable, not_on_path, wrapper, crash, quiet = (self.finished(t) for t in r.json()["task_ids"])
        for t, detail in [(missing, "'/nonexistent/zbatch-runner' does not exist"),
                          (not_executable, "is not executable"),
                          (not_on_path, "'zbatch-no-such-runner' is not on PATH"),
                          (wrapper, "exited with code 127 (command not found)")]:
            self.assertEqual(t["state"], "failed", t)
            self.assertTrue(t["error"].startswith("TestRunnerMissing: "), t["error"])
            self.assertIn(detail, t["error"])
        self.assertEqual(crash["state"], "failed", crash)
        self.assertTrue(crash["error"].startswith("TestRunError: "), crash["error"])
        self.assertIn("exited with code 3 and reported no test counts", crash["error"])
        self.assertIn("collector blew up", crash["error"])
        # Exit 0 without counts is a run that reported nothing: succeeded, ok, source none.
        self.assertEqual(quiet["state"], "succeeded", quiet)
        self.assertEqual((quiet["result"]["ok"], quiet["result"]["total"], quiet["result"]["source"]), (True, 0, "none"))

    def test_runs_writing_one_report_take_turns(self):
        # Two slots, three runs: overlapping, one run's report would be another's counts.
        r = self.post("/batch/tests", {"tasks": [{"id": f"turn-{i}", "profile": "turns"} for i in range(3)]})
        self.assertEqual(r.status_code, 200, r.text)
        gid = r.json()["group_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["ready"], 30, "turns ran")
        for t in requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["tasks"]:
            self.assertEqual(t["state"], "succeeded", t)
            self.assertEqual((t["result"]["source"], t["result"]["total"], t["result"]["failed"]), ("junit", 3, 1), t)
        with open(os.path.join(self.project, "turns.log")) as f:
            self.assertEqual(f.read().split(), ["start", "end"] * 3)

    # --- E: idempotency keys on every submission -----------------------------------------------
    def test_every_submission_gets_a_key_and_a_repeat_with_it_runs_nothing_twice(self):
        r = self.post("/api/v1/tasks", {"kind": "noop"})
        self.assertEqual(r.status_code, 201, r.text)
        key = r.headers["Idempotency-Key"]
        self.assertTrue(key.startswith("http-"), key)
        self.assertEqual(r.json()["idempotency_key"], key)
        again = self.post("/api/v1/tasks", {"kind": "noop"}, headers={"Idempotency-Key": key})
        self.assertEqual(again.status_code, 200, again.text)
        self.assertEqual((again.json()["task_id"], again.json()["duplicate"]), (r.json()["task_id"], True))
        self.assertEqual(again.headers["Idempotency-Key"], key)
        other = self.post("/api/v1/tasks", {"kind": "noop"})
        self.assertNotEqual(other.headers["Idempotency-Key"], key)
        self.assertNotEqual(other.json()["task_id"], r.json()["task_id"])

        # The body's key is echoed the same way, for the group form ...
        r = self.post("/api/v1/tasks", {"tasks": [{"kind": "noop"}] * 3, "idempotency_key": "strict-group-1"})
        self.assertEqual((r.status_code, r.headers["Idempotency-Key"], r.json()["idempotency_key"]),
                         (201, "strict-group-1", "strict-group-1"), r.text)
        again = self.post("/api/v1/tasks", {"tasks": [{"kind": "noop"}] * 3}, headers={"Idempotency-Key": "strict-group-1"})
        self.assertEqual((again.status_code, again.json()["group_id"], again.json()["task_ids"]),
                         (200, r.json()["group_id"], r.json()["task_ids"]))

        # ... and for the seed endpoints, whose answer keeps the guide's fields.
        batch = {"tasks": [{"id": "k1", "profile": "unit"}, {"id": "k2", "profile": "unit"}]}
        r = self.post("/batch/celery/tests", batch)
        self.assertEqual(r.status_code, 200, r.text)
        key = r.headers["Idempotency-Key"]
        self.assertEqual(r.json()["idempotency_key"], key)
        self.assertLessEqual({"backend", "group_id", "status", "total_tasks", "monitor_url"}, set(r.json()))
        again = self.post("/batch/celery/tests", batch, headers={"Idempotency-Key": key})
        self.assertEqual(again.json()["group_id"], r.json()["group_id"])
        gid = r.json()["group_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["ready"], 30, "ran")
        self.assertEqual(requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["total"], 2)

    def test_bad_keys_and_refusals_keep_their_codes(self):
        self.refused("/api/v1/tasks", {"kind": "noop", "idempotency_key": 7}, "idempotency_key: must be a string")
        self.refused("/api/v1/tasks", {"kind": "noop", "idempotency_key": ""}, "must not be empty")
        r = self.post("/api/v1/tasks", {"kind": "noop", "idempotency_key": "a"}, headers={"Idempotency-Key": "b"})
        self.assertEqual(r.status_code, 400)
        self.assertIn("differ", r.json()["error"]["message"])
        # A refusal by the router keeps its code and message, and names the key.
        r = self.post("/api/v1/tasks", {"queue": "nope", "kind": "noop"}, headers={"Idempotency-Key": "strict-422"})
        self.assertEqual(r.status_code, 422, r.text)
        self.assertEqual(r.json()["error"]["idempotency_key"], "strict-422")
        self.assertIn("unknown queue 'nope'", r.json()["error"]["message"])
        self.assertEqual(r.headers["Idempotency-Key"], "strict-422")


class ClusterAnswers(unittest.TestCase):
    def test_profiles_and_servers_follow_the_workers_online(self):
        with tempfile.TemporaryDirectory(prefix="zbatch-strict-") as tmp, \
                Cluster(BINARY, split=True, workers=1) as c:
            wait_until(lambda: len(requests.get(f"{c.url}/api/v1/workers", timeout=5).json()) == 1, 20, "a worker")
            r = requests.post(f"{c.url}/batch/tests", json={"tasks": [{"profile": "late"}]}, timeout=10)
            self.assertEqual(r.status_code, 400, r.text)
            self.assertIn("tasks[0].profile: no worker announces test profiles", r.json()["error"]["message"])
            r = requests.post(f"{c.url}/api/v1/tasks", json={"queue": "mcp_operations",
                                                             "payload": {"server": "s", "tool": "t"}}, timeout=10)
            self.assertEqual(r.status_code, 400, r.text)
            self.assertIn("payload.server: no worker announces MCP servers", r.json()["error"]["message"])

            config = os.path.join(tmp, "late.toml")
            with open(config, "w") as f:
                f.write('[[test_profile]]\nname = "late"\nargv = ["/bin/true"]\n'
                        '[[mcp_server]]\nname = "late-server"\nargv = ["/bin/cat"]\n')
            c.start("late", ["worker", "--router", c.backend, "-c", "1", "--hostname", "late@test", "--config", config])
            registered = lambda: {n for w in requests.get(f"{c.url}/api/v1/inspect/registered", timeout=5).json()["workers"]
                                  for n in w["test_profiles"] + w["mcp_servers"]}
            wait_until(lambda: registered() == {"late", "late-server"}, 20, "the late worker's announcement")
            wait_until(lambda: requests.post(f"{c.url}/batch/tests", json={"tasks": [{"profile": "late"}]},
                                             timeout=10).status_code == 200, 10, "the profile accepted")
            c.kill("late", signal.SIGTERM)
            wait_until(lambda: requests.post(f"{c.url}/batch/tests", json={"tasks": [{"profile": "late"}]},
                                             timeout=10).status_code == 400, 30, "the profile refused again")

    def test_a_router_that_never_got_the_submission_is_503_nothing_accepted(self):
        with Cluster(BINARY, split=True, workers=1) as c:
            r = requests.post(f"{c.url}/api/v1/tasks", json={"kind": "noop"}, timeout=10)
            self.assertEqual(r.status_code, 201, r.text)
            c.kill("router")
            # Until the store's connection has seen the close (a few ms), a request may still be
            # sent into it and is an honest 504; from then on nothing is sent: 503.
            def unavailable():
                r = requests.post(f"{c.url}/api/v1/tasks", json={"kind": "noop"}, timeout=30)
                self.assertIn(r.status_code, (503, 504), r.text)
                return r.status_code == 503
            wait_until(unavailable, 30, "the store noticing the router is gone")
            for path, body in [("/api/v1/tasks", {"kind": "noop"}),
                               ("/api/v1/tasks", {"tasks": [{"kind": "noop"}], "idempotency_key": "down-1"}),
                               ("/batch/celery/validation", {"tasks": [{"language": "json", "code": "{}"}]})]:
                r = requests.post(f"{c.url}{path}", json=body, timeout=30)
                self.assertEqual(r.status_code, 503, (path, r.text))
                error = r.json()["error"]
                self.assertEqual(error["code"], "unavailable")
                self.assertIn("nothing was accepted", error["message"])
                self.assertIn("repeating the request is safe", error["message"])
                self.assertEqual(error["idempotency_key"], r.headers["Idempotency-Key"])
                if "idempotency_key" in body:
                    self.assertEqual(error["idempotency_key"], "down-1")
            self.assertEqual(requests.get(f"{c.url}/healthz", timeout=5).status_code, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
