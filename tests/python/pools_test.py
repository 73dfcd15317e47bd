"""Model pools end to end: the router counts each Ollama server's places across the cluster,
tells the worker which server and model to use, cools down a server that refuses a task and
moves the task to another one without spending a retry; a fair queue lets a small batch run
beside a big one.

Router, two workers and the store run as separate processes (cluster.py); the Ollama servers
are stand-ins (fake_ollama.py) that count how many requests they answer at once."""
import sys
import tempfile
import textwrap
import unittest
import uuid

import requests

from cluster import Cluster, config_file, free_port, wait_until
from fake_ollama import FakeOllama

BINARY = sys.argv.pop(1)


def start_cluster(cls, config):
    cls.tmp = tempfile.TemporaryDirectory(prefix="zbatch-pools-")
    cls.addClassCleanup(cls.tmp.cleanup)
    path = cls.config_path = config_file(cls.tmp.name, config)
    cluster = Cluster(BINARY, split=True, workers=2, router_args=["--config", path], worker_args=["--config", path])
    cls.addClassCleanup(cluster.close)
    wait_until(lambda: len(requests.get(f"{cluster.url}/api/v1/inspect/registered", timeout=5).json()["workers"]) == 2,
               20, "both workers registered")
    return cluster


def pool_config(hosts, parallel, ollama_line):
    """agent_tasks on the pool "coder" of these servers, with no retry to spend."""
    listed = ", ".join(f'"{h}"' for h in hosts)
    return textwrap.dedent(f"""
        [ollama]
        model = "tiny"
        read_timeout = 10
        {ollama_line}

        [[pool]]
        name = "coder"
        model = "pool-model"
        hosts = [{listed}]
        parallel = {parallel}

        [[queue]]
        name = "agent_tasks"
        pool = "coder"
        max_retries = 0
    """)


class Pools(unittest.TestCase):
    def run_batch(self, tasks, wait=True):
        r = requests.post(f"{self.url}/batch/celery/agent-tasks", json={"tasks": tasks}, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        gid = r.json()["group_id"]
        if wait:
            self.wait_group(gid)
        return gid

    def wait_group(self, gid):
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["ready"], 60,
                   "batch done\n" + self.cluster.logs())
        return {t["id"]: t for t in requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["tasks"]}

    def queue(self, name="agent_tasks"):
        rows = requests.get(f"{self.url}/api/v1/queues", timeout=10).json()
        return next(q for q in rows if q["name"] == name)

    @staticmethod
    def chat(name, i, model="tiny"):
        return {"id": f"{name}-{i}", "description": f"say it [script:{name}]", "mode": "chat", "model": model}


class TwoServers(Pools):
    @classmethod
    def setUpClass(cls):
        cls.a, cls.b = FakeOllama(), FakeOllama()
        cls.addClassCleanup(cls.a.close)
        cls.addClassCleanup(cls.b.close)
        # [ollama] host is not used: the pool's servers are.
        cls.cluster = start_cluster(cls, pool_config([cls.a.url, cls.b.url], 1, f'host = "http://127.0.0.1:{free_port()}"'))
        cls.url = cls.cluster.url

    def setUp(self):
        # A server that cooled down in an earlier test takes tasks again first.
        wait_until(lambda: all(h["cooling_ms"] == 0 for h in self.queue()["hosts"]), 30, "no server cools down")

    def test_each_server_answers_no_more_than_its_places_across_all_workers(self):
        name = uuid.uuid4().hex[:10]
        for fake in (self.a, self.b):
            fake.script(name, [{"content": "one two three four", "slow": 0.05}])
            fake.max_active = 0
        tasks = self.wait_group(self.run_batch([self.chat(name, i, model="other") for i in range(10)], wait=False))
        self.assertEqual({t["state"] for t in tasks.values()}, {"succeeded"}, tasks)
        # Four slots on two workers, two places in the pool: one request per server at a time.
        self.assertEqual(self.a.max_active, 1)
        self.assertEqual(self.b.max_active, 1)
        served_a, served_b = len(self.a.requests_of(name)), len(self.b.requests_of(name))
        self.assertEqual(served_a + served_b, 10)
        self.assertGreaterEqual(min(served_a, served_b), 3, (served_a, served_b))
        # The pool's model, not the task's.
        self.assertEqual({b["model"] for _, b in self.a.requests_of(name) + self.b.requests_of(name)}, {"pool-model"})
        q = self.queue()
        self.assertEqual((q["pool"], q["model"], q["fair"]), ("coder", "pool-model", True))
        self.assertEqual([(h["host"], h["parallel"], h["running"]) for h in q["hosts"]],
                         [(self.a.url, 1, 0), (self.b.url, 1, 0)])

    def test_a_busy_server_cools_down_and_its_task_moves_on_without_spending_a_retry(self):
        name = uuid.uuid4().hex[:10]
        self.a.script(name, [{"status": 503, "retry_after": "3", "error": "server busy"}])
        self.b.script(name, [{"content": "done"}])
        tasks = self.wait_group(self.run_batch([self.chat(name, i) for i in range(4)], wait=False))
        # max_retries = 0: a retry spent would have failed the task.
        self.assertEqual({t["state"] for t in tasks.values()}, {"succeeded"}, tasks)
        self.assertEqual(len(self.a.requests_of(name)), 1, "asked once, then cooling down")
        self.assertEqual(len(self.b.requests_of(name)), 4)
        self.assertEqual(sorted(t["attempt"] for t in tasks.values()), [1, 1, 1, 2])
        self.assertIn(f"router pool host={self.a.url} model=pool-model cools down 3000 ms", self.cluster.logs())
        # The cool-down ends by itself.
        wait_until(lambda: all(h["cooling_ms"] == 0 for h in self.queue()["hosts"]), 10, "A cooled down")

    def test_a_router_killed_while_pooled_tasks_run_counts_their_places_again(self):
        name = uuid.uuid4().hex[:10]
        for fake in (self.a, self.b):
            fake.script(name, [{"content": " ".join(["word"] * 8), "slow": 0.3}])  # about 2.4 s each
            fake.max_active = 0
        requests_before = len(self.a.requests_of(name)) + len(self.b.requests_of(name))
        gid = self.run_batch([self.chat(name, i) for i in range(6)], wait=False)
        wait_until(lambda: self.a.active == 1 and self.b.active == 1, 20, "both servers busy")
        self.cluster.kill("router")
        self.cluster.start("router", ["router", "--data", self.cluster.path("data"), "--frontend",
                                      self.cluster.frontend, "--backend", self.cluster.backend, "--events",
                                      self.cluster.events, "--config", self.config_path])
        tasks = self.wait_group(gid)
        self.assertEqual({t["state"] for t in tasks.values()}, {"succeeded"}, tasks)
        # The leases of the tasks running through the kill kept their places: the restarted
        # router gave no server a second request while they ran, and nothing ran twice.
        self.assertEqual(self.a.max_active, 1)
        self.assertEqual(self.b.max_active, 1)
        self.assertEqual(len(self.a.requests_of(name)) + len(self.b.requests_of(name)) - requests_before, 6)
        self.assertEqual({t["attempt"] for t in tasks.values()}, {1}, tasks)

    def test_a_small_batch_runs_beside_a_big_one_submitted_before_it(self):
        big, small = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
        for fake in (self.a, self.b):
            fake.script(big, [{"content": "one two three", "slow": 0.05}])
            fake.script(small, [{"content": "one", "slow": 0.05}])
        big_gid = self.run_batch([self.chat(big, i) for i in range(12)], wait=False)
        small_gid = self.run_batch([self.chat(small, i) for i in range(2)], wait=False)
        self.wait_group(small_gid)
        self.wait_group(big_gid)
        order = sorted((f for fake in (self.a, self.b) for f in fake.finished), key=lambda f: f[0])
        names = ["small" if any(f"[script:{small}]" in m.get("content", "") for m in b["messages"]) else
                 "big" if any(f"[script:{big}]" in m.get("content", "") for m in b["messages"]) else None
                 for _, b in order]
        names = [n for n in names if n]
        self.assertEqual(len(names), 14)
        last_small = max(i for i, n in enumerate(names) if n == "small")
        # FIFO would finish all 12 of the big batch first; turns let the small one in at once.
        self.assertLess(last_small, 7, names)


class ADeadServer(Pools):
    @classmethod
    def setUpClass(cls):
        cls.a = FakeOllama()
        cls.addClassCleanup(cls.a.close)
        cls.dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        cls.cluster = start_cluster(cls, pool_config([cls.dead, cls.a.url], 2, "connect_timeout = 2"))
        cls.url = cls.cluster.url

    def test_a_server_that_refuses_the_connection_is_passed_over(self):
        name = uuid.uuid4().hex[:10]
        self.a.script(name, [{"content": "done"}])
        tasks = self.wait_group(self.run_batch([self.chat(name, i) for i in range(6)], wait=False))
        self.assertEqual({t["state"] for t in tasks.values()}, {"succeeded"}, tasks)
        self.assertEqual(len(self.a.requests_of(name)), 6)
        self.assertIn(f"router pool host={self.dead} model=pool-model cools down 5000 ms", self.cluster.logs())
        self.assertIn(2, [t["attempt"] for t in tasks.values()], "the refused task ran again, on the other server")


if __name__ == "__main__":
    unittest.main()
