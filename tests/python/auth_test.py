"""Authentication of the API and the dashboard: bearer token (header and cookie), basic,
probes left open, a non-loopback bind refused without authentication unless --no-auth."""
import subprocess
import sys
import unittest

import requests

from cluster import Cluster, free_port, wait_until

BINARY = sys.argv.pop(1)
TOKEN = "t0ken-for-the-tests-0123456789"


class Auth(unittest.TestCase):
    def test_bearer_token_header_and_cookie(self):
        with Cluster(BINARY, up_args=["--auth-token", TOKEN]) as c:
            self.assertEqual(requests.get(f"{c.url}/healthz", timeout=5).status_code, 200)
            r = requests.get(f"{c.url}/api/v1/queues", timeout=5)
            self.assertEqual(r.status_code, 401)
            self.assertEqual(r.json()["error"]["code"], "unauthorized")
            self.assertNotIn("WWW-Authenticate", r.headers)  # no basic auth configured: no browser prompt
            ok = {"Authorization": f"Bearer {TOKEN}"}
            self.assertEqual(requests.get(f"{c.url}/api/v1/queues", headers=ok, timeout=5).status_code, 200)
            self.assertEqual(requests.get(f"{c.url}/", cookies={"zbatch_token": TOKEN}, timeout=5).status_code, 200)
            for bad in ({"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer "},
                        {"Authorization": f"Basic {TOKEN}"}, {"Cookie": "zbatch_token=nope"}):
                self.assertEqual(requests.get(f"{c.url}/api/v1/queues", headers=bad, timeout=5).status_code, 401, bad)
            r = requests.post(f"{c.url}/api/v1/tasks", json={"kind": "noop"}, timeout=5)
            self.assertEqual(r.status_code, 401, "submissions need it too")
            self.assertNotIn(TOKEN, c.logs(), "credentials are never logged")

    def test_basic_auth_challenges_browsers(self):
        with Cluster(BINARY, up_args=["--auth-basic", "ops:correct-horse"]) as c:
            r = requests.get(f"{c.url}/", timeout=5)
            self.assertEqual(r.status_code, 401)
            self.assertIn("Basic", r.headers["WWW-Authenticate"])
            self.assertEqual(requests.get(f"{c.url}/", auth=("ops", "correct-horse"), timeout=5).status_code, 200)
            self.assertEqual(requests.get(f"{c.url}/", auth=("ops", "wrong"), timeout=5).status_code, 401)
            self.assertNotIn("correct-horse", c.logs())

    def test_non_loopback_bind_needs_auth_or_no_auth(self):
        port = free_port()
        base = [BINARY, "store", "--router", f"tcp://127.0.0.1:{free_port()}", "--events",
                f"tcp://127.0.0.1:{free_port()}", "--http", f"0.0.0.0:{port}"]
        with self.subTest("refused"):
            r = subprocess.run(base + ["--data", "/nonexistent-never-created"], capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("--auth-basic", r.stderr)
            self.assertIn("--no-auth", r.stderr)
        for bad, message in ((["--auth-basic", "nocolon"], "USER:PASSWORD"), (["--auth-token", "short"], "16 characters")):
            r = subprocess.run(base + bad, capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(message, r.stderr)
        with self.subTest("explicitly open"):
            import tempfile
            with tempfile.TemporaryDirectory() as d:
                p = subprocess.Popen(base + ["--no-auth", "--data", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200,
                               10, "store with --no-auth")
                    self.assertEqual(requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code, 200)
                finally:
                    p.terminate()
                    p.wait(timeout=10)


if __name__ == "__main__":
    unittest.main(verbosity=2)
