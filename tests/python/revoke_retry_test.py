"""Revoke and retry over HTTP, with the store's group counters following."""
import sys
import time
import unittest

import requests

from cluster import ClusterTestCase, wait_until

ClusterTestCase.BINARY = sys.argv.pop(1)


class RevokeRetry(ClusterTestCase):
    def group(self, gid):
        return requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()

    def test_scheduled_task_revoked_then_retried_runs(self):
        r = requests.post(f"{self.url}/api/v1/tasks",
                          json={"tasks": [{"kind": "echo", "payload": {"x": 1}, "countdown": 600}]}, timeout=10)
        self.assertEqual(r.status_code, 201, r.text)
        gid, tid = r.json()["group_id"], r.json()["task_ids"][0]
        r = requests.post(f"{self.url}/api/v1/tasks/{tid}/revoke", json={}, timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["was"], "scheduled")
        wait_until(lambda: self.group(gid)["revoked"] == 1, 10, "store sees the revoke")
        self.assertTrue(self.group(gid)["ready"])
        again = requests.post(f"{self.url}/api/v1/tasks/{tid}/revoke", json={}, timeout=10)
        self.assertEqual(again.status_code, 409)
        self.assertEqual(again.json()["error"]["code"], "conflict")

        r = requests.post(f"{self.url}/api/v1/tasks/{tid}/retry", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        wait_until(lambda: self.group(gid)["successful"] == 1, 10, "the retried task ran")
        g = self.group(gid)
        self.assertEqual((g["total"], g["successful"], g["failed"], g["revoked"]), (1, 1, 0, 0))
        self.assertEqual(g["tasks"][0]["result"], {"x": 1})

    def test_running_task_needs_terminate(self):
        r = requests.post(f"{self.url}/api/v1/tasks", json={"kind": "sleep", "payload": {"seconds": 30}}, timeout=10)
        tid = r.json()["task_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5).json()["state"] == "started",
                   10, "started")
        r = requests.post(f"{self.url}/api/v1/tasks/{tid}/revoke", json={}, timeout=10)
        self.assertEqual(r.status_code, 409, r.text)
        start = time.monotonic()
        r = requests.post(f"{self.url}/api/v1/tasks/{tid}/revoke", json={"terminate": True}, timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["was"], "terminated")
        wait_until(lambda: requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5).json()["state"] == "revoked",
                   10, "revoked")
        # The slot is free again well before the 30 s sleep would have ended.
        r = requests.post(f"{self.url}/api/v1/tasks", json={"kind": "echo", "payload": 7}, timeout=10)
        t2 = r.json()["task_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/tasks/{t2}", timeout=5).json()["state"] == "succeeded",
                   10, "next task ran")
        self.assertLess(time.monotonic() - start, 10)

    def test_bad_ids_and_bodies(self):
        self.assertEqual(requests.post(f"{self.url}/api/v1/tasks/nope/retry", timeout=10).status_code, 400)
        r = requests.post(f"{self.url}/api/v1/tasks/01a20e2d-f0d8-7000-8000-000000000000/retry", timeout=10)
        self.assertEqual(r.status_code, 404)
        r = requests.post(f"{self.url}/api/v1/tasks/01a20e2d-f0d8-7000-8000-000000000000/revoke",
                          json={"terminate": "yes"}, timeout=10)
        self.assertEqual(r.status_code, 400)


if __name__ == "__main__":
    unittest.main(verbosity=2)
