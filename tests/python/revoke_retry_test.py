"""Revoke and retry over HTTP, with the store's group counters following."""
import subprocess
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

    def test_a_whole_group_is_revoked_and_takes_no_more(self):
        # Two long tasks fill both slots; the rest wait in the queue, one for an ETA.
        tasks = [{"kind": "sleep", "payload": {"seconds": 30}} for _ in range(2)]
        tasks += [{"kind": "echo", "payload": i} for i in range(50)]
        tasks.append({"kind": "echo", "payload": "later", "countdown": 600})
        r = requests.post(f"{self.url}/api/v1/tasks", json={"tasks": tasks}, timeout=10)
        self.assertEqual(r.status_code, 201, r.text)
        gid, ids = r.json()["group_id"], r.json()["task_ids"]
        state = lambda tid: requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5).json()["state"]
        wait_until(lambda: state(ids[0]) == "started" and state(ids[1]) == "started", 10, "both sleeps started")
        self.assertEqual(self.group(gid)["revoked_at_ms"], 0)

        r = requests.post(f"{self.url}/api/v1/groups/{gid}/revoke", json={}, timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        reply = r.json()
        self.assertEqual((reply["group"], reply["running"], reply["terminated"], reply["again"]), (gid, 2, 0, False))
        # Everything but the two running tasks ends revoked; the group says so.
        wait_until(lambda: self.group(gid)["revoked"] == 51, 10, "queued and scheduled tasks revoked")
        g = self.group(gid)
        self.assertGreater(g["revoked_at_ms"], 0)
        self.assertEqual((g["running"], g["successful"], g["ready"]), (2, 0, False))
        self.assertEqual(state(ids[-1]), "revoked")
        task = requests.get(f"{self.url}/api/v1/tasks/{ids[5]}", timeout=5).json()
        self.assertEqual(task["error"], "revoked: its group was revoked")
        # A revoked task of a revoked group is not retried.
        self.assertEqual(requests.post(f"{self.url}/api/v1/tasks/{ids[5]}/retry", timeout=10).status_code, 409)

        # From the CLI, with --terminate: the running ones stop.
        start = time.monotonic()
        out = subprocess.run([ClusterTestCase.BINARY, "revoke", "--group", gid, "--terminate",
                              "--router", self.cluster.frontend], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"revoked group {gid}: 2 task(s) now (2 stopped running)", out.stdout)
        wait_until(lambda: self.group(gid)["ready"], 10, "the group finished")
        self.assertLess(time.monotonic() - start, 10)  # not the 30 s of the sleeps
        g = self.group(gid)
        self.assertEqual((g["total"], g["revoked"], g["completed"], g["running"]), (53, 53, 53, 0))
        # Both slots are free again.
        r = requests.post(f"{self.url}/api/v1/tasks", json={"kind": "echo", "payload": 1}, timeout=10)
        wait_until(lambda: state(r.json()["task_id"]) == "succeeded", 10, "the next task ran")
        # A finished group is not revoked again; bad ids and bodies are refused clearly.
        self.assertEqual(requests.post(f"{self.url}/api/v1/groups/{gid}/revoke", timeout=10).status_code, 409)
        r = requests.post(f"{self.url}/api/v1/groups/01a20e2d-f0d8-7000-8000-000000000000/revoke", timeout=10)
        self.assertEqual(r.status_code, 404)
        self.assertEqual(requests.post(f"{self.url}/api/v1/groups/nope/revoke", timeout=10).status_code, 400)
        r = requests.post(f"{self.url}/api/v1/groups/{gid}/revoke", json={"terminate": 1}, timeout=10)
        self.assertEqual(r.status_code, 400)
        r = requests.post(f"{self.url}/api/v1/groups/{gid}/revoke", json={"terminat": True}, timeout=10)
        self.assertEqual(r.status_code, 400)
        self.assertIn("terminate", r.text)

    def test_bad_ids_and_bodies(self):
        self.assertEqual(requests.post(f"{self.url}/api/v1/tasks/nope/retry", timeout=10).status_code, 400)
        r = requests.post(f"{self.url}/api/v1/tasks/01a20e2d-f0d8-7000-8000-000000000000/retry", timeout=10)
        self.assertEqual(r.status_code, 404)
        r = requests.post(f"{self.url}/api/v1/tasks/01a20e2d-f0d8-7000-8000-000000000000/revoke",
                          json={"terminate": "yes"}, timeout=10)
        self.assertEqual(r.status_code, 400)


if __name__ == "__main__":
    unittest.main(verbosity=2)
