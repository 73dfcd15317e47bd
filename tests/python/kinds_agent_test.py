"""The agent kind's coding loop end to end: HTTP → store → router → worker → a stand-in Ollama.

Router, worker and store run as separate processes (cluster.py); the stand-in Ollama server
(fake_ollama.py) plays scripted models: tool calls, token counts, 429/503 with Retry-After,
slow streams, stalls, cut streams and hostile replies."""
import json
import os
import sys
import tempfile
import textwrap
import time
import unittest
import uuid

import requests

from cluster import Cluster, config_file, free_port, wait_until
from fake_ollama import FakeOllama

BINARY = sys.argv.pop(1)


def start_cluster(cls, root, config):
    """Router, worker and store as processes of their own with this config (closed at the
    class's end, also when the rest of setUpClass fails), once a worker has registered."""
    path = config_file(root, config)
    cluster = Cluster(BINARY, split=True, router_args=["--config", path], worker_args=["--config", path])
    cls.addClassCleanup(cluster.close)
    wait_until(lambda: requests.get(f"{cluster.url}/api/v1/inspect/registered", timeout=5).json()["workers"], 20,
               "a worker registered")
    return cluster


def call(name, **arguments):
    return {"function": {"name": name, "arguments": arguments}}


class AgentLoop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="zbatch-agent-")
        root = cls.tmp.name
        # Outside every workspace: a file and a folder the seed links to.
        cls.outside = os.path.join(root, "outside")
        os.makedirs(cls.outside)
        cls.secret = os.path.join(cls.outside, "secret.txt")
        with open(cls.secret, "w") as f:
            f.write("do not touch\n")
        seed = os.path.join(root, "seed")
        os.makedirs(seed)
        with open(os.path.join(seed, "README.md"), "w") as f:
            f.write("# demo\n")
        os.symlink(cls.secret, os.path.join(seed, "escape.txt"))
        os.symlink(cls.outside, os.path.join(seed, "escape_dir"))
        cls.ollama = FakeOllama()
        config = textwrap.dedent(f"""
            [ollama]
            host = "{cls.ollama.url}"
            model = "tiny"
            read_timeout = 10
            max_steps = 8
            max_tokens = 100000
            max_seconds = 30
            seed_dir = "{seed}"

            [[test_profile]]
            name = "unittest"
            argv = ["/usr/bin/python3", "-m", "unittest", "-v"]
            env = {{PYTHONDONTWRITEBYTECODE = "1"}}

            [[queue]]
            name = "agent_tasks"
            max_retries = 1
            retry_backoff = 0.05
            retry_jitter = false
        """)
        cls.cluster = start_cluster(cls, root, config)
        cls.url = cls.cluster.url

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()
        cls.ollama.close()
        cls.tmp.cleanup()

    def run_tasks(self, tasks):
        r = requests.post(f"{self.url}/batch/celery/agent-tasks", json={"tasks": tasks}, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        gid = r.json()["group_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["ready"], 60,
                   "agent batch done\n" + self.cluster.logs())
        return {t["id"]: t for t in requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["tasks"]}

    def scripted(self, replies, **task):
        name = uuid.uuid4().hex[:12]
        self.ollama.script(name, replies)
        task.setdefault("description", "do it")
        task["description"] += f" [script:{name}]"
        return name, dict(task, id=name)

    def run_one(self, replies, **task):
        name, t = self.scripted(replies, **task)
        return self.run_tasks([t])[name], name

    def test_writes_a_file_validates_it_runs_tests_and_reports_the_diff(self):
        test_py = "import unittest\nclass T(unittest.TestCase):\n    def test_hi(self): self.assertTrue(True)\n"
        t, name = self.run_one([
            {"content": "I will write it.", "tool_calls": [call("write_file", path="hello.py", content="print('hello')\n")],
             "prompt_eval_count": 30, "eval_count": 12},
            {"tool_calls": [call("validate", path="hello.py")], "prompt_eval_count": 40, "eval_count": 6},
            {"tool_calls": [call("write_file", path="test_hello.py", content=test_py),
                            call("run_test", profile="unittest")], "prompt_eval_count": 50, "eval_count": 9},
            {"content": "Created hello.py.", "prompt_eval_count": 60, "eval_count": 3},
        ], description="Create hello.py", files={"notes.txt": "keep me\n"})
        self.assertEqual(t["state"], "succeeded", t)
        res = t["result"]
        self.assertEqual(res["mode"], "agent")
        self.assertEqual(res["message"], {"role": "assistant", "content": "Created hello.py."})
        self.assertEqual(res["files_changed"], ["hello.py", "test_hello.py"])
        self.assertIn("+++ b/hello.py\n", res["diff"])
        self.assertIn("+print('hello')\n", res["diff"])
        self.assertNotIn("notes.txt", res["diff"])
        self.assertEqual((res["steps"], res["prompt_tokens"], res["completion_tokens"], res["tokens"]), (4, 180, 30, 210))
        self.assertGreaterEqual(res["wall_ms"], 0)
        validate = next(c for c in res["checks"] if c["tool"] == "validate")
        self.assertEqual((validate["path"], validate["passed"]), ("hello.py", True), res["checks"])
        tests = next(c for c in res["checks"] if c["tool"] == "run_test")
        self.assertTrue(tests["ok"], tests)
        self.assertEqual(tests["passed"], 1, tests)
        tools = [e["tool"] for e in res["transcript"] if "tool" in e]
        self.assertEqual(tools, ["write_file", "validate", "write_file", "run_test"])
        self.assertTrue(all(e["ok"] for e in res["transcript"] if "tool" in e), res["transcript"])
        # The model was offered the tools and saw each tool's answer.
        sent = [b for _, b in self.ollama.requests_of(name)]
        self.assertEqual(len(sent), 4)
        self.assertEqual({x["function"]["name"] for x in sent[0]["tools"]},
                         {"list_files", "read_file", "write_file", "validate", "run_test"})
        self.assertIn("--- notes.txt ---\nkeep me", sent[0]["messages"][-1]["content"])
        replies = [m for m in sent[1]["messages"] if m["role"] == "tool"]
        self.assertEqual(replies[0]["tool_name"], "write_file")
        self.assertIn("wrote 15 bytes", replies[0]["content"])

    def test_paths_outside_the_workspace_are_refused(self):
        before = sorted(os.listdir(self.outside))
        absolute = os.path.join(self.outside, "planted.txt")
        t, _ = self.run_one([
            {"tool_calls": [call("write_file", path="../x", content="no"),
                            call("write_file", path=absolute, content="no"),
                            call("read_file", path="/etc/passwd"),
                            call("read_file", path="escape.txt"),
                            call("write_file", path="escape.txt", content="overwritten"),
                            call("write_file", path="escape_dir/planted.txt", content="no"),
                            call("list_files", path="escape_dir"),
                            call("read_file", path="sub/../../x")]},
            {"content": "I could not."},
        ])
        self.assertEqual(t["state"], "succeeded", t)
        entries = [e for e in t["result"]["transcript"] if "tool" in e]
        self.assertEqual(len(entries), 8)
        for e in entries:
            self.assertFalse(e["ok"], e)
            self.assertTrue(e["result"].startswith("error: "), e)
            self.assertNotIn("do not touch", e["result"])
            self.assertNotIn("root:", e["result"])
        self.assertIn("climbs out", entries[0]["result"])
        self.assertIn("absolute path", entries[1]["result"])
        self.assertIn("symbolic link", entries[4]["result"])
        self.assertIn("outside the workspace", entries[3]["result"])
        with open(self.secret) as f:
            self.assertEqual(f.read(), "do not touch\n")
        self.assertEqual(sorted(os.listdir(self.outside)), before)
        self.assertEqual(t["result"]["files_changed"], [])

    def test_each_budget_ends_the_task_with_its_class(self):
        forever = {"tool_calls": [call("list_files")]}
        tasks = {}
        for label, replies, task in [
            ("steps", [forever], {"max_steps": 2}),
            ("tokens", [{"tool_calls": [call("list_files")], "prompt_eval_count": 900, "eval_count": 200}],
             {"max_tokens": 1500}),
            ("stall", [{"stall": 4, "content": "late"}], {"max_seconds": 1}),
            ("slow", [{"slow": 0.4, "content": " ".join(["word"] * 20)}], {"max_seconds": 1}),
        ]:
            name, t = self.scripted(replies, **task)
            tasks[label] = (name, t)
        by = self.run_tasks([t for _, t in tasks.values()])
        steps = by[tasks["steps"][0]]
        self.assertEqual((steps["state"], steps["error"], steps["attempt"]), ("failed", "BudgetExceeded: steps", 1))
        self.assertEqual(steps["result"]["steps"], 2)
        self.assertEqual(len([e for e in steps["result"]["transcript"] if "tool" in e]), 2, "the partial transcript")
        self.assertIn("diff", steps["result"])
        tokens = by[tasks["tokens"][0]]
        self.assertEqual((tokens["state"], tokens["error"]), ("failed", "BudgetExceeded: tokens"))
        self.assertEqual(tokens["result"]["tokens"], 2200)
        for label in ("stall", "slow"):
            t = by[tasks[label][0]]
            self.assertEqual((t["state"], t["error"]), ("failed", "BudgetExceeded: time"), t)
            self.assertLess(t["result"]["wall_ms"], 3500, "the request was aborted at the budget")
        wait_until(lambda: tasks["slow"][0] in self.ollama.aborted, 10, "the slow stream cut off by the worker")

    def read_stream(self, task_id, last_event_id=None, timeout=30):
        """GET /api/v1/tasks/{id}/stream until its `end` frame: [(event, id, data)], each with
        the monotonic time it arrived."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        frames, event, fid, data = [], None, None, []
        with requests.get(f"{self.url}/api/v1/tasks/{task_id}/stream", headers=headers, stream=True,
                          timeout=timeout) as r:
            if r.status_code != 200:  # r.text reads the whole body: only for the message
                self.fail(f"{r.status_code}: {r.text[:500]}")
            self.assertTrue(r.headers["Content-Type"].startswith("text/event-stream"))
            for line in r.iter_lines(chunk_size=1, decode_unicode=True):  # each byte as it comes
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("id: "):
                    fid = int(line[4:])
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and event:
                    frames.append((event, fid, json.loads("\n".join(data)), time.monotonic()))
                    if event == "end":
                        break
                    event, fid, data = None, None, []
        return frames

    def test_live_output_streams_tokens_and_steps_while_the_task_runs(self):
        words = " ".join(f"w{i}" for i in range(20))
        name, t = self.scripted([
            {"content": words, "slow": 0.1,  # two seconds of words: the stream is open well before the end
             "tool_calls": [call("write_file", path="live.txt", content="hi\n")]},
            {"content": "all done", "slow": 0.05},
        ])
        r = requests.post(f"{self.url}/batch/celery/agent-tasks", json={"tasks": [t]}, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        gid = r.json()["group_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["tasks"], 20,
                   "the task listed")
        task_id = requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["tasks"][0]["task_id"]
        frames = self.read_stream(task_id)
        ended = time.monotonic()
        outputs = [f for f in frames if f[0] == "output"]
        self.assertEqual(frames[-1][0], "end")
        self.assertEqual(frames[-1][2]["state"], "succeeded", frames[-1])
        text = "".join(d["text"] for _, _, d, _ in outputs if d["type"] == "text")
        self.assertIn(words, text)
        self.assertIn("all done", text)
        steps = [json.loads(d["text"]) for _, _, d, _ in outputs if d["type"] == "step"]
        self.assertIn("write_file", [s.get("tool") for s in steps], steps)
        # live: the words came over the second the model took to say them, not all at the end
        self.assertGreater(len(outputs), 3, outputs)
        self.assertGreater(ended - outputs[0][3], 0.5, "the first output arrived only at the end")
        positions = [fid for _, fid, _, _ in outputs]
        self.assertEqual(positions, list(range(1, len(positions) + 1)))
        self.assertTrue(all(d["task_id"] == task_id and d["attempt"] == 1 for _, _, d, _ in outputs))
        seqs = [d["seq"] for _, _, d, _ in outputs]
        self.assertEqual(seqs, sorted(seqs))
        # after the end: what is held, after Last-Event-ID, then the end at once
        again = self.read_stream(task_id, last_event_id=2)
        self.assertEqual([fid for e, fid, _, _ in again if e == "output"], positions[2:])
        self.assertEqual(again[-1][0], "end")
        # the finished task keeps its transcript in its result
        done = requests.get(f"{self.url}/api/v1/tasks/{task_id}", timeout=5).json()
        self.assertIn("write_file", [e.get("tool") for e in done["result"]["transcript"]])
        for path, status in ((f"/api/v1/tasks/{uuid.uuid4()}/stream", 404), ("/api/v1/tasks/nope/stream", 400)):
            self.assertEqual(requests.get(self.url + path, timeout=5).status_code, status, path)
        bad = requests.get(f"{self.url}/api/v1/tasks/{task_id}/stream", headers={"Last-Event-ID": "-1"}, timeout=5)
        self.assertEqual(bad.status_code, 400, bad.text)

    def test_a_batch_budget_stops_the_batch_once_its_tasks_have_spent_it(self):
        scripted = [self.scripted([{"content": "ok", "prompt_eval_count": 60, "eval_count": 40}], mode="chat")
                    for _ in range(5)]
        body = {"tasks": [t for _, t in scripted], "parallel": 1, "budget": {"tokens": 250}}
        r = requests.post(f"{self.url}/batch/celery/agent-tasks", json=body, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        gid = r.json()["group_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["ready"], 60,
                   "the batch ended\n" + self.cluster.logs())
        g = requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()
        by_id = {t["id"]: t for t in g["tasks"]}
        states = [by_id[name]["state"] for name, _ in scripted]
        # 100 tokens each: the third brings the batch to 300 of its 250; nothing starts after it.
        self.assertEqual(states, ["succeeded"] * 3 + ["revoked"] * 2, g)
        for name, _ in scripted[3:]:
            task = requests.get(f"{self.url}/api/v1/tasks/{by_id[name]['task_id']}", timeout=5).json()
            self.assertEqual(task["error"], "BudgetExceeded: batch tokens: its group's tasks spent 300 of its 250 tokens")
            self.assertEqual(task["attempt"], 0)  # never ran
            self.assertEqual(self.ollama.requests_of(name), [])
        self.assertEqual(g["budget"]["tokens"], 250)
        self.assertEqual(g["budget"]["spent_tokens"], 300)
        self.assertIsNotNone(g["budget"]["spent_at_ms"])
        self.assertGreater(g["revoked_at_ms"], 0)
        # run time: tasks of 0.3 s against 0.5 s in all, one at a time
        r = requests.post(f"{self.url}/api/v1/tasks", json={"kind": "sleep", "parallel": 1, "budget": {"run_seconds": 0.5},
                                                             "tasks": [{"payload": {"seconds": 0.3}}] * 5}, timeout=10)
        self.assertEqual(r.status_code, 201, r.text)
        gid = r.json()["group_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["ready"], 30, "the sleeps")
        g = requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()
        self.assertEqual((g["successful"], g["revoked"]), (2, 3), g)
        self.assertGreaterEqual(g["budget"]["spent_run_seconds"], 0.5)
        for bad, words in (({"tokens": 0}, "budget.tokens"), ({"tokens": "9"}, "budget.tokens"), ({}, "give tokens"),
                           ({"run_seconds": -1}, "budget.run_seconds"), ({"coins": 3}, "budget.coins"), (7, "budget")):
            r = requests.post(f"{self.url}/api/v1/tasks", json={"tasks": [{}], "budget": bad}, timeout=10)
            self.assertEqual(r.status_code, 400, r.text)
            self.assertIn(words, r.text)

    def test_revoke_stops_the_loop_and_aborts_the_request_in_flight(self):
        name, t = self.scripted([{"slow": 0.5, "content": " ".join(["word"] * 60)}])
        r = requests.post(f"{self.url}/batch/celery/agent-tasks", json={"tasks": [t]}, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        gid = r.json()["group_id"]
        task_id = lambda: requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["tasks"][0]["task_id"]
        wait_until(lambda: self.ollama.requests_of(name), 20, "the model asked")
        wait_until(lambda: requests.get(f"{self.url}/api/v1/tasks/{task_id()}", timeout=5).json()["state"] == "started",
                   20, "the task started")
        r = requests.post(f"{self.url}/api/v1/tasks/{task_id()}/revoke", json={"terminate": True}, timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        wait_until(lambda: name in self.ollama.aborted, 10, "the stream cut off by the worker (it lasts 30 s)")
        wait_until(lambda: requests.get(f"{self.url}/api/v1/tasks/{task_id()}", timeout=5).json()["state"] == "revoked",
                   20, "revoked")

    def test_retry_after_of_429_and_503_sets_the_retry_delay(self):
        tasks = {}
        for label, replies in [
            ("429", [{"status": 429, "retry_after": "2", "error": "too many requests"}, {"content": "done"}]),
            ("503", [{"status": 503, "retry_after": "1", "error": "server busy"}, {"content": "done"}]),
            ("plain503", [{"status": 503, "error": "server busy"}, {"content": "done"}]),
            ("cut", [{"content": "half way", "cut": True}, {"content": "done"}]),
        ]:
            tasks[label] = self.scripted(replies)
        by = self.run_tasks([t for _, t in tasks.values()])
        gaps = {}
        for label, (name, _) in tasks.items():
            t = by[name]
            self.assertEqual((t["state"], t["attempt"]), ("succeeded", 2), (label, t))
            arrivals = [a for a, _ in self.ollama.requests_of(name)]
            self.assertEqual(len(arrivals), 2, label)
            gaps[label] = arrivals[1] - arrivals[0]
        self.assertGreaterEqual(gaps["429"], 1.9, gaps)
        self.assertGreaterEqual(gaps["503"], 0.9, gaps)
        self.assertLess(gaps["plain503"], 0.9, "no Retry-After: the queue's 50 ms backoff")

    def test_hostile_model_replies_get_clear_errors_and_the_worker_keeps_running(self):
        huge = "x" * (5 << 20)
        t, _ = self.run_one([
            {"tool_calls": [{"function": {"name": "write_file", "arguments": "not json"}},
                            {"function": {"name": "write_file", "arguments": [1, 2]}},
                            {"function": {"name": "rm_rf", "arguments": {}}},
                            {"function": {"name": "write_file", "arguments": {"path": "big.txt", "content": huge}}},
                            {"function": {"name": "read_file", "arguments": {"path": 7}}},
                            "just a string",
                            {"function": "nope"}]},
            {"tool_calls": {"function": {"name": "list_files", "arguments": {}}}},
            {"content": "giving up"},
        ])
        self.assertEqual(t["state"], "succeeded", t)
        entries = [e for e in t["result"]["transcript"] if "ok" in e]
        self.assertEqual(len(entries), 8, entries)
        self.assertTrue(all(not e["ok"] for e in entries[:7]), entries)
        self.assertIn("must be a JSON object", entries[0]["result"])
        self.assertIn("not array", entries[1]["result"])
        self.assertIn("unknown tool 'rm_rf'", entries[2]["result"])
        self.assertIn("more than", entries[3]["result"])
        self.assertIn("\"path\" must be a string", entries[4]["result"])
        self.assertIn("must be an object", entries[5]["result"])
        self.assertTrue(entries[7]["ok"], "a tool_calls object, not an array, is read as one call")
        self.assertLess(len(json.dumps(t["result"])), 200000, "the transcript is clipped")
        self.assertIn("truncated", entries[3]["arguments"])
        bad, _ = self.run_one([{"raw": "{not json\n"}])
        self.assertEqual(bad["state"], "failed")
        self.assertTrue(bad["error"].startswith("OllamaBadReply"), bad["error"])
        # Still serving: a chat-mode task runs as before.
        by = self.run_tasks([{"id": "chat1", "description": "Say hi", "mode": "chat"}])
        self.assertEqual(by["chat1"]["state"], "succeeded", by["chat1"])
        self.assertEqual(by["chat1"]["result"]["message"]["content"], "You said: Say hi")
        self.assertNotIn("diff", by["chat1"]["result"])
        self.assertIsNone(self.cluster.procs["worker0"].poll())

    def test_bad_budgets_and_modes_are_refused_at_submission(self):
        for field, value in [("mode", "loop"), ("max_steps", 0), ("max_tokens", -1), ("max_seconds", "ten")]:
            r = requests.post(f"{self.url}/batch/celery/agent-tasks",
                              json={"tasks": [{"id": "b", "description": "d", field: value}]}, timeout=30)
            self.assertEqual(r.status_code, 400, (field, r.text))
            self.assertIn(f"tasks[0].{field}", r.json()["error"]["message"])



class SeveralHosts(unittest.TestCase):
    """[ollama] hosts: requests go round the servers; one that refuses the connection, or
    answers 503 with Retry-After, cools down and the next one takes the request in the same
    attempt."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="zbatch-agent-hosts-")
        cls.a, cls.b = FakeOllama(), FakeOllama()
        cls.dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        config = textwrap.dedent(f"""
            [ollama]
            hosts = ["{cls.dead}", "{cls.a.url}", "{cls.b.url}"]
            model = "tiny"
            connect_timeout = 2
            read_timeout = 10

            [[queue]]
            name = "agent_tasks"
            max_retries = 1
            retry_backoff = 0.05
            retry_jitter = false
        """)
        cls.cluster = start_cluster(cls, cls.tmp.name, config)
        cls.url = cls.cluster.url

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()
        cls.a.close()
        cls.b.close()
        cls.tmp.cleanup()

    def run_task(self, name):
        r = requests.post(f"{self.url}/batch/celery/agent-tasks",
                          json={"tasks": [{"id": name, "description": f"do it [script:{name}]"}]}, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        gid = r.json()["group_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["ready"], 60,
                   "agent task done\n" + self.cluster.logs())
        return requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["tasks"][0]

    def test_a_refusing_host_is_passed_over_and_a_busy_one_cools_down(self):
        for fake in (self.a, self.b):
            fake.script("spread", [{"content": "done"}])
        for _ in range(4):
            t = self.run_task("spread")
            self.assertEqual((t["state"], t["attempt"]), ("succeeded", 1), t)
        # The refusing server cost no attempt, and the others took turns.
        self.assertGreater(len(self.a.requests_of("spread")), 0)
        self.assertGreater(len(self.b.requests_of("spread")), 0)
        self.assertIn(f"agent ollama host={self.dead} cooling down", self.cluster.logs())
        # A answers 503 with a Retry-After of a minute: B takes that request, and the next ones.
        self.a.script("busy", [{"status": 503, "retry_after": "60", "error": "queue full"}])
        self.b.script("busy", [{"content": "done"}])
        for _ in range(3):
            t = self.run_task("busy")
            self.assertEqual((t["state"], t["attempt"]), ("succeeded", 1), t)
        self.assertEqual(len(self.a.requests_of("busy")), 1, "asked once in its turn, then cooling down")
        self.assertEqual(len(self.b.requests_of("busy")), 3)

if __name__ == "__main__":
    unittest.main()
