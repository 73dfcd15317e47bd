"""HTTPS with --tls-cert/--tls-key: a certificate made here with `openssl req -x509`, checked by
real clients (Python requests with verify=, curl --cacert), the API, the dashboard and the
event stream over it, plain HTTP to the HTTPS port told what to do, and bad files refused at
start-up. Off loopback with TLS and credentials there is no clear-text warning."""
import subprocess
import sys
import tempfile
import unittest

import requests

from cluster import free_port
from http_support import TOKENS, Up, bearer, make_certificate, run_store, token_args

BINARY = sys.argv.pop(1)


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.files = tempfile.TemporaryDirectory(prefix="zbatch-tls-")
        cls.cert, cls.key = make_certificate(cls.files.name)
        cls.up = Up(BINARY, [*token_args(), "--tls-cert", cls.cert, "--tls-key", cls.key], scheme="https",
                    verify=cls.cert)

    @classmethod
    def tearDownClass(cls):
        cls.up.close()
        cls.files.cleanup()

    def test_requests_checks_the_certificate_and_talks_to_the_api(self):
        url = self.up.url
        self.assertEqual(requests.get(f"{url}/healthz", verify=self.cert, timeout=10).json(), {"status": "ok"})
        self.assertEqual(requests.get(f"{url}/api/v1/queues", verify=self.cert, timeout=10).status_code, 401)
        r = requests.post(f"{url}/api/v1/tasks", json={"kind": "echo", "payload": {"over": "tls"}}, verify=self.cert,
                          headers=bearer("submit"), timeout=10)
        self.assertEqual(r.status_code, 201, r.text)
        task = r.json()["task_id"]
        r = requests.get(f"{url}/api/v1/tasks/{task}", verify=self.cert, headers=bearer("read"), timeout=10)
        self.assertEqual(r.json()["task_id"], task)
        page = requests.get(f"{url}/", verify=self.cert, cookies={"zbatch_token": TOKENS["read"]}, timeout=10)
        self.assertEqual(page.status_code, 200)
        self.assertIn("<title>zbatch</title>", page.text)
        with self.assertRaises(requests.exceptions.SSLError):  # not trusted without the certificate
            requests.get(f"{url}/healthz", timeout=10)
        self.assertIn("store listening http=https://127.0.0.1:", self.up.logs())

    def test_a_large_body_and_keep_alive_over_tls(self):
        with requests.Session() as s:  # one connection, kept alive
            tasks = [{"kind": "echo", "payload": {"i": i, "pad": "x" * 200}} for i in range(2000)]
            r = s.post(f"{self.up.url}/api/v1/tasks", json={"tasks": tasks}, headers=bearer("submit"),
                       verify=self.cert, timeout=30)
            self.assertEqual(r.status_code, 201, r.text[:300])
            group = r.json()["group_id"]
            for _ in range(5):
                self.assertEqual(s.get(f"{self.up.url}/api/v1/groups/{group}?limit=1", headers=bearer("read"),
                                       verify=self.cert, timeout=10).status_code, 200)

    def test_curl_with_cacert(self):
        base = ["curl", "-sS", "--max-time", "10", "--cacert", self.cert]
        r = subprocess.run(base + ["-H", f"Authorization: Bearer {TOKENS['read']}", f"{self.up.url}/api/v1/queues"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"name":"default"', r.stdout)
        r = subprocess.run(base + ["-o", "/dev/null", "-w", "%{http_code}", f"{self.up.url}/api/v1/queues"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.stdout, "401")
        r = subprocess.run(["curl", "-sS", "--max-time", "10", f"{self.up.url}/healthz"], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(r.returncode, 60, "curl refuses a certificate it cannot verify")

    def test_the_event_stream_over_tls(self):
        with requests.get(f"{self.up.url}/api/v1/events", verify=self.cert, headers=bearer("read"), stream=True,
                          timeout=10) as stream:
            self.assertEqual(stream.status_code, 200)
            r = requests.post(f"{self.up.url}/api/v1/tasks", json={"kind": "noop"}, verify=self.cert,
                              headers=bearer("admin"), timeout=10)
            task = r.json()["task_id"]
            for line in stream.iter_lines():
                if line.startswith(b"data: ") and task.encode() in line:
                    break

    def test_plain_http_to_the_https_port_is_told_to_use_https(self):
        r = requests.get(f"http://127.0.0.1:{self.up.port}/healthz", timeout=10)
        self.assertEqual(r.status_code, 400)
        self.assertIn("use https://", r.json()["error"]["message"])

    def test_bad_certificate_files_stop_the_start(self):
        _, other_key = make_certificate(tempfile.mkdtemp(dir=self.files.name))
        for args, message in ((["--tls-cert", self.cert], "--tls-cert and --tls-key go together"),
                              (["--tls-cert", "/nonexistent.pem", "--tls-key", self.key], "--tls-cert /nonexistent.pem"),
                              (["--tls-cert", self.cert, "--tls-key", self.cert], "--tls-key"),
                              (["--tls-cert", self.cert, "--tls-key", other_key], "key values mismatch")):
            rc, err = run_store(BINARY, ["--http", f"127.0.0.1:{free_port()}", *args])
            self.assertEqual(rc, 2, err)
            self.assertIn(message, err)

    def test_off_loopback_with_tls_and_credentials_has_no_clear_text_warning(self):
        with Up(BINARY, ["--auth-token", f"read:{TOKENS['read']}", "--tls-cert", self.cert, "--tls-key", self.key],
                http_host="0.0.0.0", scheme="https", verify=self.cert) as up:
            self.assertEqual(requests.get(f"{up.url}/api/v1/stats", verify=self.cert, headers=bearer("read"),
                                          timeout=10).status_code, 200)
            self.assertNotIn("clear text", up.logs())
            self.assertIn("http=https://0.0.0.0:", up.logs())


if __name__ == "__main__":
    unittest.main(verbosity=2)
