"""Execution semantics over HTTP: idempotency keys, dead letters, per-task time limits,
result expiry in the store, and bad input to each."""
import sys
import unittest

import requests

from cluster import Cluster, ClusterTestCase, wait_until

ClusterTestCase.BINARY = sys.argv.pop(1)


def task(url, tid):
    return requests.get(f"{url}/api/v1/tasks/{tid}", timeout=10)


class Semantics(ClusterTestCase):
    def test_idempotency_key_header_returns_the_first_submission(self):
        body = {"kind": "noop", "payload": {}}
        first = requests.post(f"{self.url}/api/v1/tasks", json=body, headers={"Idempotency-Key": "job-1"}, timeout=10)
        again = requests.post(f"{self.url}/api/v1/tasks", json=body, headers={"Idempotency-Key": "job-1"}, timeout=10)
        self.assertEqual(first.status_code, 201, first.text)
        self.assertEqual(again.status_code, 200, again.text)
        self.assertEqual(first.json()["task_id"], again.json()["task_id"])
        self.assertFalse(first.json()["duplicate"])
        self.assertTrue(again.json()["duplicate"])

        batch = {"tasks": [{"kind": "noop"} for _ in range(3)], "idempotency_key": "batch-1"}
        a = requests.post(f"{self.url}/api/v1/tasks", json=batch, timeout=10)
        b = requests.post(f"{self.url}/api/v1/tasks", json=batch, timeout=10)
        self.assertEqual((a.status_code, b.status_code), (201, 200), b.text)
        self.assertEqual(a.json()["group_id"], b.json()["group_id"])
        self.assertEqual(a.json()["task_ids"], b.json()["task_ids"])

    def test_dead_letters_are_listed_and_retried_in_bulk(self):
        r = requests.post(f"{self.url}/api/v1/tasks", json={"tasks": [
            {"queue": "low_priority", "kind": "fail", "payload": {"error": "Broken: n"}, "max_retries": 0}
            for _ in range(3)]}, timeout=10)
        self.assertEqual(r.status_code, 201, r.text)
        ids = set(r.json()["task_ids"])
        wait_until(lambda: ids <= {t["id"] for t in requests.get(
            f"{self.url}/api/v1/dead?queue=low_priority&limit=1000", timeout=10).json()["tasks"]}, 10, "dead letters")
        dead = requests.get(f"{self.url}/api/v1/dead?queue=low_priority", timeout=10).json()
        self.assertGreaterEqual(dead["total"], 3)
        entry = next(t for t in dead["tasks"] if t["id"] in ids)
        self.assertEqual((entry["state"], entry["error"], entry["attempt"]), ("failed", "Broken: n", 1))
        page = requests.get(f"{self.url}/api/v1/dead?queue=low_priority&limit=1", timeout=10).json()
        self.assertEqual(len(page["tasks"]), 1)
        self.assertIn("next", page)

        r = requests.post(f"{self.url}/api/v1/dead/retry", json={"queue": "low_priority"}, timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertGreaterEqual(r.json()["retried"], 3)
        for tid in ids:
            wait_until(lambda: task(self.url, tid).json()["attempt"] == 2
                       and task(self.url, tid).json()["state"] == "failed", 10, "second attempt")

    def test_per_task_soft_time_limit(self):
        r = requests.post(f"{self.url}/api/v1/tasks", json={
            "kind": "sleep", "payload": {"seconds": 30}, "soft_time_limit": 0.2, "time_limit": 2}, timeout=10)
        self.assertEqual(r.status_code, 201, r.text)
        tid = r.json()["task_id"]
        wait_until(lambda: task(self.url, tid).json()["state"] == "failed", 10, "the soft limit")
        self.assertTrue(task(self.url, tid).json()["error"].startswith("SoftTimeLimitExceeded"))

    def test_bad_input_is_refused_with_a_reason(self):
        cases = [
            ({"kind": "noop"}, {"Idempotency-Key": "k" * 300}, "at most 200 bytes"),
            ({"kind": "noop", "idempotency_key": 7}, {}, "idempotency_key: must be a string"),
            ({"kind": "noop", "time_limit": "soon"}, {}, "time_limit: must be a number"),
            ({"kind": "noop", "soft_time_limit": -1}, {}, "soft_time_limit: must be a number"),
            ({"kind": "noop", "soft_time_limit": 5, "time_limit": 1}, {}, "soft time limit must not exceed"),
        ]
        for body, headers, reason in cases:
            r = requests.post(f"{self.url}/api/v1/tasks", json=body, headers=headers, timeout=10)
            self.assertEqual(r.status_code, 400, (body, r.text))
            self.assertIn(reason, r.json()["error"]["message"])
        self.assertEqual(requests.get(f"{self.url}/api/v1/dead?limit=0", timeout=10).status_code, 400)
        self.assertEqual(requests.get(f"{self.url}/api/v1/dead?limit=x", timeout=10).status_code, 400)
        self.assertEqual(requests.get(f"{self.url}/api/v1/dead?after=nope", timeout=10).status_code, 400)
        self.assertEqual(requests.get(f"{self.url}/api/v1/dead?queue=nope", timeout=10).status_code, 422)
        for body in ([1, 2], {"limit": -1}, {"limit": "all"}, {"queue": 5}):
            r = requests.post(f"{self.url}/api/v1/dead/retry", json=body, timeout=10)
            self.assertEqual(r.status_code, 400, (body, r.text))
        r = requests.post(f"{self.url}/api/v1/dead/retry", data="{nope", timeout=10,
                          headers={"Content-Type": "application/json"})
        self.assertEqual(r.status_code, 400)


class Expiry(unittest.TestCase):
    def test_results_expire_in_router_and_store(self):
        with Cluster(ClusterTestCase.BINARY, split=True, router_args=["--result-ttl", "1"]) as c:
            r = requests.post(f"{c.url}/api/v1/tasks", json={"tasks": [{"kind": "echo", "payload": i} for i in range(50)]},
                              timeout=10)
            self.assertEqual(r.status_code, 201, r.text)
            gid, tids = r.json()["group_id"], r.json()["task_ids"]
            wait_until(lambda: requests.get(f"{c.url}/api/v1/groups/{gid}", timeout=10).json().get("ready"), 10,
                       "the group finished")
            self.assertEqual(task(c.url, tids[0]).json()["result"], 0)
            wait_until(lambda: task(c.url, tids[-1]).status_code == 404, 15, "the task expired: " + c.logs())
            wait_until(lambda: requests.get(f"{c.url}/api/v1/groups/{gid}", timeout=10).status_code == 404, 15,
                       "the group expired")
            for tid in tids:
                self.assertEqual(task(c.url, tid).status_code, 404)


if __name__ == "__main__":
    unittest.main(verbosity=2)
