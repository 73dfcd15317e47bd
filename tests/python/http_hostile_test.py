"""Hostile and malformed HTTP: clear JSON errors, and the server keeps serving."""
import socket
import sys
import time
import unittest

import requests

from cluster import ClusterTestCase

ClusterTestCase.BINARY = sys.argv.pop(1)


class HostileHttp(ClusterTestCase):
    def tearDown(self):
        # After every hostile request the server still answers a real one.
        r = requests.post(f"{self.url}/api/v1/tasks", json={"kind": "echo", "payload": {"ok": 1}}, timeout=10)
        self.assertEqual(r.status_code, 201, r.text)

    def error(self, r, status, code):
        self.assertEqual(r.status_code, status, r.text)
        body = r.json()
        self.assertEqual(body["error"]["code"], code, body)
        self.assertTrue(body["error"]["message"])

    def test_invalid_json(self):
        r = requests.post(f"{self.url}/batch/celery/agent-tasks", data="{not json",
                          headers={"Content-Type": "application/json"}, timeout=10)
        self.error(r, 400, "bad_request")

    def test_deep_nesting(self):
        body = '{"tasks":' + "[" * 100000 + "]" * 100000 + "}"
        r = requests.post(f"{self.url}/batch/celery/agent-tasks", data=body, timeout=10)
        self.error(r, 400, "bad_request")
        self.assertIn("nested", r.json()["error"]["message"])

    def test_wrong_types(self):
        for body in ({"tasks": "nope"}, {"tasks": []}, {"tasks": [1, 2]}, {"tasks": [{"id": []}]},
                     {"tasks": [{"id": "a"}], "parallel": "ten"}, {"tasks": [{"id": "a"}], "parallel": -1},
                     [1, 2, 3]):
            r = requests.post(f"{self.url}/batch/celery/validation", json=body, timeout=10)
            self.error(r, 400, "bad_request")
        r = requests.post(f"{self.url}/api/v1/tasks", json={"priority": 999}, timeout=10)
        self.error(r, 400, "bad_request")

    def test_unknown_queue_is_422(self):
        r = requests.post(f"{self.url}/api/v1/tasks", json={"queue": "nope", "payload": {}}, timeout=10)
        self.error(r, 422, "unprocessable")

    def test_huge_body_is_413(self):
        r = requests.post(f"{self.url}/api/v1/tasks", data=b"x" * (33 << 20),
                          headers={"Content-Type": "application/json"}, timeout=30)
        self.error(r, 413, "too_large")

    def test_too_many_tasks_is_413(self):
        r = requests.post(f"{self.url}/batch/tests", json={"tasks": [{}] * 100001}, timeout=30)
        self.error(r, 413, "too_large")

    def test_chunked_body_is_refused(self):
        def gen():
            yield b'{"tasks":'
            yield b"[]}"
        r = requests.post(f"{self.url}/batch/tests", data=gen(), timeout=10)
        self.error(r, 400, "bad_request")

    def test_unknown_paths_and_ids(self):
        self.error(requests.get(f"{self.url}/nowhere", timeout=10), 404, "not_found")
        self.error(requests.get(f"{self.url}/batch/celery/group/not-an-id", timeout=10), 404, "not_found")
        self.error(requests.get(f"{self.url}/batch/celery/task/01a20e2d-f0d8-7000-8000-54cac28e3fb9", timeout=10),
                   404, "not_found")
        self.error(requests.delete(f"{self.url}/batch/celery/agent-tasks", timeout=10), 404, "not_found")
        self.error(requests.get(f"{self.url}/api/v1/groups/01a20e2d-f0d8-7000-8000-54cac28e3fb9?limit=x", timeout=10),
                   400, "bad_request")

    def test_slow_client_does_not_block_others(self):
        s = socket.create_connection(("127.0.0.1", self.cluster.http_port))
        try:
            s.sendall(b"POST /batch/tests HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            start = time.monotonic()
            r = requests.get(f"{self.url}/healthz", timeout=10)
            self.assertEqual(r.status_code, 200)
            self.assertLess(time.monotonic() - start, 2)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
