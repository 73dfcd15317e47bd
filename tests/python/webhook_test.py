"""Completion webhooks: signed, retried with the same delivery id, durable across a store killed
with SIGKILL, and refused at submission when the URL is bad."""
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import unittest

import requests

from cluster import Cluster, wait_until

BINARY = sys.argv.pop(1)

# Retries a fraction of a second apart, so that the tests take seconds.
FAST = {"ZBATCH_WEBHOOK_BACKOFF": "0.1", "ZBATCH_WEBHOOK_TIMEOUT": "2"}


class Receiver:
    """An HTTP server on a free loopback port that records every POST and answers each with the
    next status of `statuses` (200 once they run out)."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.received = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self):
        with self.lock:
            return len(self.received)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def secret_of(cluster):
    with open(os.path.join(cluster.path("data"), "store", "webhook_secret")) as f:
        return f.readline().strip()


def check_signature(test, secret, delivery):
    h = {k.lower(): v for k, v in delivery["headers"].items()}
    test.assertEqual(h["content-type"], "application/json")
    expected = "sha256=" + hmac.new(secret.encode(), h["x-zbatch-timestamp"].encode() + b"." + delivery["body"],
                                    hashlib.sha256).hexdigest()
    test.assertTrue(hmac.compare_digest(h["x-zbatch-signature"], expected), h)
    return h


class Webhooks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(BINARY, env=FAST)
        cls.url = cls.cluster.url

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def submit(self, body, path="/api/v1/tasks"):
        return requests.post(self.url + path, json=body, timeout=10)

    def test_task_webhook_is_delivered_once_with_a_valid_signature(self):
        with Receiver() as rx:
            r = self.submit({"queue": "default", "kind": "echo", "payload": {"n": 1},
                             "webhook": {"url": rx.url + "/hook?x=1"}})
            self.assertEqual(r.status_code, 201, r.text)
            tid = r.json()["task_id"]
            wait_until(lambda: rx.count() >= 1, 20, "the webhook")
            wait_until(lambda: requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5).json()["webhook"]["state"]
                       == "delivered", 10, "delivered state")
            self.assertEqual(rx.count(), 1)
            d = rx.received[0]
            self.assertEqual(d["path"], "/hook?x=1")
            h = check_signature(self, secret_of(self.cluster), d)
            self.assertEqual(h["x-zbatch-event"], "task.completed")
            self.assertTrue(h["x-zbatch-delivery"])
            body = json.loads(d["body"])
            self.assertEqual((body["event"], body["task_id"], body["status"]), ("task.completed", tid, "completed"))
            view = requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5).json()["webhook"]
            self.assertEqual((view["url"], view["attempts"], view["last_error"]), (rx.url + "/hook?x=1", 1, None))

    def test_group_webhook_is_delivered_after_its_last_member(self):
        with Receiver() as rx:
            tasks = [{"kind": "sleep", "payload": {"seconds": 0.05 * i}} for i in range(4)]
            r = self.submit({"queue": "default", "tasks": tasks, "webhook": {"url": rx.url + "/group"}})
            self.assertEqual(r.status_code, 201, r.text)
            gid = r.json()["group_id"]
            wait_until(lambda: rx.count() >= 1, 20, "the group's webhook")
            d = rx.received[0]
            h = check_signature(self, secret_of(self.cluster), d)
            self.assertEqual(h["x-zbatch-event"], "group.completed")
            body = json.loads(d["body"])
            self.assertEqual((body["event"], body["group_id"], body["total"], body["completed"], body["ready"]),
                             ("group.completed", gid, 4, 4, True))
            listed = requests.get(f"{self.url}/api/v1/webhooks/deliveries", timeout=5).json()["deliveries"]
            mine = [x for x in listed if x.get("group_id") == gid]
            self.assertEqual(len(mine), 1, listed)
            self.assertEqual(mine[0]["delivery_id"], h["x-zbatch-delivery"])

    def test_seed_batch_takes_a_webhook(self):
        with Receiver() as rx:
            r = self.submit({"tasks": [{"kind": "noop"}], "webhook": {"url": rx.url}}, "/batch/celery/tests")
            self.assertEqual(r.status_code, 200, r.text)
            wait_until(lambda: rx.count() >= 1, 20, "the batch's webhook")
            self.assertEqual(json.loads(rx.received[0]["body"])["group_id"], r.json()["group_id"])

    def test_receiver_failing_twice_gets_the_third_attempt_with_the_same_delivery_id(self):
        with Receiver(statuses=[500, 500]) as rx:
            r = self.submit({"queue": "default", "kind": "noop", "webhook": {"url": rx.url}})
            self.assertEqual(r.status_code, 201, r.text)
            tid = r.json()["task_id"]
            wait_until(lambda: requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5).json()["webhook"]["state"]
                       == "delivered", 30, "delivered after retries")
            self.assertEqual(rx.count(), 3)
            ids = {{k.lower(): v for k, v in d["headers"].items()}["x-zbatch-delivery"] for d in rx.received}
            self.assertEqual(len(ids), 1)
            self.assertEqual(len({d["body"] for d in rx.received}), 1)
            for d in rx.received:
                check_signature(self, secret_of(self.cluster), d)
            self.assertEqual(requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5).json()["webhook"]["attempts"], 3)
            metrics = requests.get(f"{self.url}/metrics", timeout=5).text
            retried = [line for line in metrics.splitlines()
                       if line.startswith('zbatch_webhook_deliveries_total{result="retried"}')]
            self.assertEqual(len(retried), 1, metrics[-2000:])
            self.assertGreaterEqual(int(retried[0].split()[-1]), 2)

    def test_bad_webhooks_are_refused_with_400(self):
        bad = [{"url": "ftp://example.com/x"}, {"url": "file:///etc/passwd"}, {"url": "http://"},
               {"url": "example.com/x"}, {"url": "http://h:99999/"}, {"url": "http://h:x/"},
               {"url": "http://user:pw@h/"}, {"url": "http://h/ space"}, {"url": "http://h/" + "a" * 3000},
               {"url": 5}, {"url": None}, {}, {"url": "http://h/", "secret": "x"}, "http://h/", [], 1, True]
        for hook in bad:
            for path, body in (("/api/v1/tasks", {"queue": "default", "kind": "noop", "webhook": hook}),
                               ("/api/v1/tasks", {"queue": "default", "tasks": [{"kind": "noop"}], "webhook": hook}),
                               ("/batch/celery/tests", {"tasks": [{"kind": "noop"}], "webhook": hook})):
                r = self.submit(body, path)
                self.assertEqual(r.status_code, 400, (hook, path, r.text))
                self.assertIn("webhook", r.json()["error"]["message"])
        # Inside a task of a group it belongs to the submission's top level.
        r = self.submit({"queue": "default", "tasks": [{"kind": "noop", "webhook": {"url": "http://h/"}}]})
        self.assertEqual(r.status_code, 400, r.text)
        # Malformed JSON around a webhook is a 400, and the store keeps serving.
        r = requests.post(self.url + "/api/v1/tasks", data=b'{"webhook": {"url": "http://h/"', timeout=10,
                          headers={"Content-Type": "application/json"})
        self.assertEqual(r.status_code, 400, r.text)
        self.assertEqual(requests.get(self.url + "/readyz", timeout=5).status_code, 200)

    def test_deliveries_list_refuses_a_bad_limit(self):
        self.assertEqual(requests.get(f"{self.url}/api/v1/webhooks/deliveries?limit=x", timeout=5).status_code, 400)
        r = requests.get(f"{self.url}/api/v1/webhooks/deliveries?limit=1", timeout=5)
        self.assertEqual(r.status_code, 200)
        self.assertLessEqual(len(r.json()["deliveries"]), 1)


class WebhookAllowList(unittest.TestCase):
    def test_hosts_outside_the_allow_list_are_refused(self):
        with Cluster(BINARY, up_args=("--webhook-allow", "10.0.0.0/8", "--webhook-allow", "hooks.example")) as c:
            r = requests.post(c.url + "/api/v1/tasks", timeout=10,
                              json={"queue": "default", "kind": "noop", "webhook": {"url": "http://127.0.0.1:9/"}})
            self.assertEqual(r.status_code, 400, r.text)
            self.assertIn("webhook_allow", r.json()["error"]["message"])
            for url in ("http://10.1.2.3:8080/x", "https://HOOKS.example/x"):
                r = requests.post(c.url + "/api/v1/tasks", timeout=10,
                                  json={"queue": "default", "kind": "noop", "webhook": {"url": url}})
                self.assertEqual(r.status_code, 201, (url, r.text))


class WebhookRestart(unittest.TestCase):
    def test_delivery_pending_when_the_store_is_killed_is_delivered_after_its_restart(self):
        # The receiver fails until the store has been killed; the hook stays pending meanwhile.
        with Receiver(statuses=[503] * 1000) as rx, \
                Cluster(BINARY, split=True, env=dict(FAST, ZBATCH_WEBHOOK_BACKOFF="0.5",
                                                     ZBATCH_WEBHOOK_MAX_ATTEMPTS="100")) as c:
            r = requests.post(c.url + "/api/v1/tasks", timeout=10,
                              json={"queue": "default", "kind": "noop", "webhook": {"url": rx.url}})
            self.assertEqual(r.status_code, 201, r.text)
            tid = r.json()["task_id"]
            wait_until(lambda: rx.count() >= 1, 20, "a first attempt")
            c.kill("store")  # SIGKILL with the delivery pending
            with rx.lock:
                rx.statuses.clear()
                before = len(rx.received)
            c.start_store()
            c.wait_ready()
            wait_until(lambda: requests.get(f"{c.url}/api/v1/tasks/{tid}", timeout=5).json()["webhook"]["state"]
                       == "delivered", 30, "delivered after the restart")
            self.assertGreater(rx.count(), before)
            ids = {{k.lower(): v for k, v in d["headers"].items()}["x-zbatch-delivery"] for d in rx.received}
            self.assertEqual(len(ids), 1, "one delivery id across the restart")
            check_signature(self, secret_of(c), rx.received[-1])


if __name__ == "__main__":
    unittest.main()
