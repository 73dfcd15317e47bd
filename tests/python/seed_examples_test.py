"""The batch guide's curl and Python examples, run as written against `zbatch up`
(only the port differs)."""
import json
import subprocess
import sys
import time
import unittest

import requests

from cluster import Cluster, wait_until
from fake_ollama import FakeOllama

BINARY = sys.argv.pop(1)


class SeedExamples(unittest.TestCase):
    def setUp(self):
        # Agent tasks go to Ollama; the test's stand-in plays the server (OLLAMA_HOST).
        self.ollama = FakeOllama()
        self.addCleanup(self.ollama.close)
        self.cluster = Cluster(BINARY, env={"OLLAMA_HOST": self.ollama.url})
        self.addCleanup(self.cluster.close)

    def test_curl_example_submits_and_group_completes(self):
        url = self.cluster.url
        out = subprocess.run(
            ["curl", "-s", "-X", "POST", f"{url}/batch/celery/agent-tasks",
             "-H", "Content-Type: application/json",
             "-d", """{
    "tasks": [
      {"id": "task1", "description": "Create hello.py"},
      {"id": "task2", "description": "Add tests"}
    ],
    "parallel": 3
  }"""], capture_output=True, text=True, timeout=30)
        reply = json.loads(out.stdout)
        # The guide's fields, and the idempotency key that makes a repeat of the request safe.
        self.assertEqual(set(reply), {"backend", "group_id", "status", "total_tasks", "monitor_url", "idempotency_key"})
        self.assertEqual(reply["status"], "submitted")
        self.assertEqual(reply["total_tasks"], 2)
        self.assertEqual(reply["monitor_url"], "/batch/celery/group/" + reply["group_id"])

        def done():
            g = requests.get(url + reply["monitor_url"], timeout=5).json()
            return g if g["ready"] else None
        wait_until(done, 20, "group ready")
        g = done()
        for key in ("group_id", "total", "completed", "successful", "failed", "progress", "ready", "results"):
            self.assertIn(key, g)
        self.assertEqual((g["total"], g["completed"], g["successful"], g["failed"]), (2, 2, 2, 0))
        self.assertEqual(g["progress"], 100.0)
        self.assertEqual([r["status"] for r in g["results"]], ["completed", "completed"])
        # The caller's ids are kept, and each result is the model's reply.
        self.assertEqual([r["id"] for r in g["results"]], ["task1", "task2"])
        result = g["results"][0]["result"]
        self.assertEqual(result["message"], {"role": "assistant", "content": "You said: Create hello.py"})
        self.assertEqual(result["id"], "task1")
        self.assertGreater(result["completion_tokens"], 0)
        self.assertEqual(len(self.ollama.requests), 2)
        # The same under /batch/ without celery/, and the single-task endpoint.
        g2 = requests.get(f"{url}/batch/group/{reply['group_id']}", timeout=5).json()
        self.assertEqual(g2["successful"], 2)
        t = requests.get(f"{url}/batch/celery/task/{g['results'][0]['task_id']}", timeout=5).json()
        self.assertEqual(t["status"], "completed")
        self.assertEqual(t["id"], "task1")

    def test_python_example_1000_tasks(self):
        base = self.cluster.url
        # --- the guide's Example 1, as written (the port aside) ---
        tasks = [
            {"id": f"task-{i}", "description": f"Process item {i}"}
            for i in range(1000)
        ]
        response = requests.post(
            f"{base}/batch/celery/agent-tasks",
            json={"tasks": tasks, "parallel": 10}
        )
        group_id = response.json()["group_id"]
        print(f"Submitted {len(tasks)} tasks to Celery")
        print(f"Group ID: {group_id}")
        # --- then poll the group until ready, as the guide's monitoring section does ---
        deadline = time.monotonic() + 120
        while True:
            status = requests.get(f"{base}/batch/celery/group/{group_id}").json()
            if status["ready"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # the polling interval of the guide's monitoring loop
        self.assertTrue(status["ready"], self.cluster.logs())
        self.assertEqual(status["total"], 1000)
        self.assertEqual(status["successful"], 1000)
        self.assertEqual(status["progress"], 100.0)
        self.assertEqual(len(status["results"]), 1000)
        self.assertEqual(status["results"][999]["id"], "task-999")
        self.assertEqual(status["parallel"], 10)

    def test_each_endpoint_routes_to_its_queue(self):
        base = self.cluster.url
        for path, queue in (("agent-tasks", "agent_tasks"), ("validation", "validation"),
                            ("tests", "tests"), ("mcp-operations", "mcp_operations")):
            for prefix in ("/batch/celery/", "/batch/"):
                # echo: the endpoint's own kind would check the task's input (strict_input_test).
                r = requests.post(base + prefix + path, json={"tasks": [{"id": "x", "kind": "echo"}]}, timeout=10)
                self.assertEqual(r.status_code, 200, r.text)
                gid = r.json()["group_id"]
                wait_until(lambda: requests.get(f"{base}/api/v1/groups/{gid}", timeout=5).json()["ready"], 20, "ready")
                task = requests.get(f"{base}/api/v1/groups/{gid}", timeout=5).json()["tasks"][0]
                self.assertEqual(task["queue"], queue)


if __name__ == "__main__":
    unittest.main(verbosity=2)
