"""The Python client (clients/python/zbatch_client) against real clusters: every public call,
its errors (bad credentials, unknown tasks, refused submissions, a silent server, hostile
event streams), waits bounded by their timeouts, and an event stream that resumes across a
dropped connection and a store restart without losing or repeating an event."""
import datetime
import os
import signal
import socket
import sys
import threading
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "clients", "python"))

import zbatch_client as zc  # noqa: E402
from cluster import SLOWDOWN, ClusterTestCase, free_port, wait_until  # noqa: E402
from http_support import TOKENS, Up, token_args  # noqa: E402
from sse_support import StoreArgsCluster  # noqa: E402

BINARY = sys.argv.pop(1)
ClusterTestCase.BINARY = BINARY


def read_events(stream, until, timeout):
    """Events of `stream` until until(events) holds; the stream is closed after `timeout`."""
    events = []
    watchdog = threading.Timer(timeout * SLOWDOWN, stream.close)
    watchdog.start()
    try:
        for e in stream:
            events.append(e)
            if until(events):
                break
    finally:
        watchdog.cancel()
    if not until(events):
        raise AssertionError(f"stream: timed out after {timeout} s; last events {events[-3:]}")
    return events


def succeeded_ids(events):
    return {e.data["task_id"] for e in events if e.type == "task-succeeded"}


class SilentServer:
    """Accepts connections and never answers; or answers each with `reply` bytes and closes."""

    def __init__(self, reply=None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.reply = reply
        self.conns = []
        self.stopped = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.reply is not None:
                c.settimeout(5)
                try:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = c.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    c.sendall(self.reply)
                except OSError:
                    pass
                c.close()

    def close(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(5)


def sse_reply(body):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + body)


class Calls(ClusterTestCase):
    """One `zbatch up` without authentication."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.app = zc.Client(cls.url, timeout=10)

    def test_apply_async_then_get_returns_the_result_and_reports_every_state(self):
        r = self.app.apply_async({"x": 1}, kind="echo", id="mine-1")
        self.assertEqual(r.get(timeout=20), {"x": 1})
        self.assertTrue(r.ready())
        self.assertTrue(r.successful())
        self.assertFalse(r.failed())
        self.assertEqual(r.state, "succeeded")
        self.assertEqual(r.celery_state, "SUCCESS")
        self.assertEqual(r.result, {"x": 1})
        info = r.info()
        self.assertEqual((info["task_id"], info["id"], info["kind"], info["queue"]), (r.id, "mine-1", "echo", "default"))
        self.assertEqual([e["event"] for e in r.events()][-1], "task-succeeded")
        self.assertEqual(self.app.AsyncResult(r.id).get(timeout=5), {"x": 1})
        self.assertIs(zc.Client.submit, zc.Client.apply_async)

    def test_args_and_kwargs_become_the_payload(self):
        r = self.app.apply_async(args=[1, 2], kwargs={"k": "v"}, kind="echo")
        self.assertEqual(r.get(timeout=20), {"args": [1, 2], "kwargs": {"k": "v"}})
        with self.assertRaises(TypeError):
            self.app.apply_async({"p": 1}, args=[1])

    def test_countdown_priority_and_queue_reach_the_router(self):
        before = time.time()
        r = self.app.apply_async({"later": True}, kind="echo", queue="low_priority", priority=9,
                                 countdown=datetime.timedelta(seconds=600))
        self.assertEqual(r.state, "scheduled")
        self.assertEqual(r.celery_state, "PENDING")
        self.assertFalse(r.ready())
        scheduled = {t["id"]: t for t in self.app._get("/api/v1/inspect/scheduled")["tasks"]}
        self.assertEqual(scheduled[r.id]["priority"], 9)
        self.assertEqual(scheduled[r.id]["queue"], "low_priority")
        self.assertAlmostEqual(scheduled[r.id]["eta_ms"] / 1000, before + 600, delta=30)
        self.assertEqual(r.revoke(), {"revoked": r.id, "was": "scheduled"})
        wait_until(lambda: r.state == "revoked", 10, "the store sees the revoke")
        with self.assertRaises(zc.TaskRevoked):
            r.get(timeout=5)
        self.assertEqual(r.get(timeout=5, propagate=False), r.info()["error"])
        with self.assertRaises(zc.Conflict):
            r.revoke()
        self.assertEqual(r.retry()["retried"], r.id)
        self.assertEqual(r.get(timeout=20), {"later": True})  # the retry runs at once

    def test_eta_as_a_local_datetime_runs_at_that_time(self):
        eta = datetime.datetime.now() + datetime.timedelta(seconds=1.5)  # naive: local time
        r = self.app.apply_async("at eta", kind="echo", eta=eta)
        self.assertEqual(r.get(timeout=20), "at eta")
        self.assertGreaterEqual(r.info()["started_ms"] / 1000, eta.timestamp() - 0.05)
        r2 = self.app.apply_async("iso", kind="echo", eta="2001-01-01T00:00:00Z")  # past: at once
        self.assertEqual(r2.get(timeout=20), "iso")
        with self.assertRaises(TypeError):
            self.app.apply_async(1, countdown=1, eta=time.time())

    def test_expires_is_refused_before_anything_is_sent(self):
        with self.assertRaisesRegex(zc.Unsupported, "expires"):
            self.app.apply_async({"x": 1}, expires=60)

    def test_limits_and_retries_apply_to_the_attempts(self):
        slow = self.app.apply_async({"seconds": 30}, kind="sleep", soft_time_limit=0.3, time_limit=5, max_retries=0)
        with self.assertRaises(zc.TaskFailed) as cm:
            slow.get(timeout=20)
        self.assertIn("SoftTimeLimitExceeded", cm.exception.error)
        self.assertTrue(slow.failed())
        once = self.app.apply_async({"error": "boom", "retry": True}, kind="fail", max_retries=0)
        twice = self.app.apply_async({"error": "boom", "retry": True}, kind="fail", max_retries=1)
        self.assertIn("boom", once.get(timeout=20, propagate=False))
        self.assertIn("boom", twice.get(timeout=30, propagate=False))
        self.assertEqual(twice.info()["attempt"], once.info()["attempt"] + 1)

    def test_get_never_waits_past_its_timeout(self):
        r = self.app.apply_async({"seconds": 30}, kind="sleep")
        start = time.monotonic()
        with self.assertRaises(zc.ResultTimeout):
            r.get(timeout=0.5)
        self.assertLess(time.monotonic() - start, 1.5 * SLOWDOWN)
        with self.assertRaises(zc.ResultTimeout):
            r.get(timeout=0)
        wait_until(lambda: r.state == "started", 10, "started")
        with self.assertRaises(zc.Conflict):
            r.revoke()
        self.assertEqual(self.app.revoke(r.id, terminate=True)["was"], "terminated")
        with self.assertRaises(zc.TaskRevoked):
            r.get(timeout=10)
        with self.assertRaises(ValueError):
            r.get(timeout=-1)

    def test_failed_task_raises_with_its_error_or_returns_it(self):
        r = self.app.apply_async({"error": "no luck"}, kind="fail", max_retries=0)
        with self.assertRaises(zc.TaskFailed) as cm:
            r.get(timeout=20)
        self.assertEqual(cm.exception.task_id, r.id)
        self.assertIn("no luck", cm.exception.error)
        self.assertIn("no luck", r.get(timeout=5, propagate=False))
        self.assertEqual(r.celery_state, "FAILURE")

    def test_unknown_task_is_not_found(self):
        with self.assertRaises(zc.NotFound) as cm:
            self.app.AsyncResult(str(uuid.uuid4())).state
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "not_found"))
        with self.assertRaises(zc.NotFound):
            self.app.AsyncResult("not-an-id").get(timeout=5)
        with self.assertRaises(zc.NotFound):
            self.app.GroupResult(str(uuid.uuid4()))

    def test_refused_submissions_raise_with_the_servers_error_and_key(self):
        with self.assertRaises(zc.Unprocessable) as cm:
            self.app.apply_async({"x": 1}, queue="no_such_queue")
        e = cm.exception
        self.assertEqual((e.status, e.code), (422, "unprocessable"))
        self.assertIn("no_such_queue", e.message)
        self.assertTrue(e.idempotency_key.startswith("py-"))
        self.assertEqual(e.body["error"]["code"], "unprocessable")
        with self.assertRaises(zc.BadRequest) as cm:
            self.app.apply_async({"x": 1}, priority=999)
        self.assertIn("priority", cm.exception.message)
        with self.assertRaises(zc.BadRequest):
            self.app.group([zc.task({"language": "cobol", "code": "x"}, kind="validate")])
        with self.assertRaises(ValueError):
            self.app.group([])

    def test_an_idempotency_key_repeated_runs_nothing_twice(self):
        key = f"k-{uuid.uuid4()}"
        a = self.app.apply_async({"once": 1}, kind="echo", idempotency_key=key)
        b = self.app.apply_async({"once": 1}, kind="echo", idempotency_key=key)
        self.assertEqual(a.id, b.id)
        with self.assertRaises(zc.Conflict):
            self.app.apply_async({"once": 2}, kind="echo", idempotency_key=key)

    def test_group_progress_join_and_paging(self):
        g = self.app.group([zc.task({"n": i}, id=f"t{i}") for i in range(10)] + [{"bare": True}],
                           kind="echo", parallel=3)
        self.assertEqual(len(g), 11)
        self.assertEqual(g.join(timeout=30), [{"n": i} for i in range(10)] + [{"bare": True}])
        p = g.progress()
        self.assertEqual((p.total, p.completed, p.successful, p.failed, p.revoked, p.ready, p.progress),
                         (11, 11, 11, 0, 0, True, 100.0))
        self.assertEqual(g.completed_count(), 11)
        self.assertTrue(g.ready() and g.successful())
        self.assertFalse(g.failed() or g.waiting())
        self.assertEqual([t["task_id"] for t in g.iter_tasks(page_size=4)], g.task_ids)
        self.assertEqual([t["id"] for t in g.page(offset=2, limit=3)], ["t2", "t3", "t4"])
        self.assertEqual([r.id for r in g.results], g.task_ids)
        self.assertEqual(g.results[3].get(timeout=5), {"n": 3})
        again = self.app.GroupResult(g.id)
        self.assertEqual(again.task_ids, g.task_ids)
        self.assertEqual(again.get(timeout=5), g.join(timeout=5))
        with self.assertRaises(ValueError):
            list(g.iter_tasks(page_size=0))

    def test_group_with_a_failure_propagates_it_or_keeps_its_place(self):
        g = self.app.group([zc.task({"a": 1}, kind="echo"), zc.task({"error": "bad"}, kind="fail")], max_retries=0)
        with self.assertRaises(zc.TaskFailed) as cm:
            g.join(timeout=30)
        self.assertEqual(cm.exception.task_id, g.task_ids[1])
        out = g.join(timeout=5, propagate=False)
        self.assertEqual(out[0], {"a": 1})
        self.assertIn("bad", out[1])
        self.assertTrue(g.failed())
        self.assertFalse(g.successful())

    def test_group_join_times_out_and_revoke_stops_the_rest(self):
        g = self.app.group([{"x": i} for i in range(4)], kind="echo", countdown=600)
        start = time.monotonic()
        with self.assertRaises(zc.ResultTimeout):
            g.join(timeout=0.4)
        self.assertLess(time.monotonic() - start, 1.5 * SLOWDOWN)
        self.assertTrue(g.waiting())
        self.assertEqual(g.revoke(), 4)
        wait_until(lambda: g.ready(), 10, "the group finishes revoked")
        self.assertEqual(g.progress().revoked, 4)
        self.assertEqual(g.revoke(), 0)

    def test_cluster_reading_calls(self):
        self.assertTrue(self.app.ping())
        self.assertGreaterEqual(len(self.app.workers()), 1)
        self.assertIn("default", [q["name"] for q in self.app.queues()])
        self.assertIn("succeeded", self.app.stats())

    def test_events_filtered_by_group(self):
        with self.app.events() as stream:
            g = self.app.group([{"e": i} for i in range(3)], kind="echo")
            events = read_events(stream, lambda ev: len(succeeded_ids(ev)) == 3, 30)
        self.assertEqual(succeeded_ids(events), set(g.task_ids))
        with self.app.events(after=0, group=g.id) as stream:
            mine = read_events(stream, lambda ev: len(succeeded_ids(ev)) == 3, 30)
        self.assertTrue(all(e.data.get("group_id") == g.id for e in mine), mine)

    def test_event_stream_resumes_after_a_dropped_connection(self):
        stream = self.app.events()
        g1 = self.app.group([{"a": i} for i in range(5)], kind="echo")
        events = []
        dropped = False

        def until(ev):
            nonlocal dropped
            if not dropped and len(ev) == 3:
                dropped = True
                stream.drop_connection()  # the next events come over a new connection
                self.app.group([{"b": i} for i in range(5)], kind="echo")
            return len(succeeded_ids(ev)) == 10
        events = read_events(stream, until, 30)
        stream.close()
        self.assertGreaterEqual(stream.reconnects, 1)
        ids = [e.id for e in events]
        self.assertEqual(ids, list(range(ids[0], ids[0] + len(ids))), "lost or repeated events")
        self.assertTrue(set(g1.task_ids) <= succeeded_ids(events))
        self.assertEqual(stream.last_id, ids[-1])


class ClosedAndHostile(unittest.TestCase):
    """Servers that are not a zbatch store: nothing listening, silence, and bytes no store sends."""

    def test_nothing_listening_is_a_transport_error(self):
        app = zc.Client(f"http://127.0.0.1:{free_port()}", timeout=5)
        with self.assertRaises(zc.TransportError):
            app.ping()
        with self.assertRaises(ConnectionError):
            app.apply_async({"x": 1})

    def test_a_silent_server_times_out_with_the_key_to_repeat(self):
        server = SilentServer()
        try:
            app = zc.Client(server.url, timeout=0.5)
            start = time.monotonic()
            with self.assertRaises(zc.RequestTimeout) as cm:
                app.apply_async({"x": 1}, idempotency_key="repeat-me")
            self.assertEqual(cm.exception.idempotency_key, "repeat-me")
            self.assertIsInstance(cm.exception, TimeoutError)
            with self.assertRaises(zc.ResultTimeout):
                app.AsyncResult(str(uuid.uuid4())).get(timeout=1)
            self.assertLess(time.monotonic() - start, 3 * SLOWDOWN)
        finally:
            server.close()

    def test_an_error_page_that_is_not_json_keeps_its_text(self):
        server = SilentServer(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 12\r\n"
                              b"Connection: close\r\n\r\n<html>x</ht>")
        try:
            with self.assertRaises(zc.ServerError) as cm:
                zc.Client(server.url, timeout=5).ping()
            self.assertEqual((cm.exception.status, cm.exception.body), (502, "<html>x</ht>"))
        finally:
            server.close()

    def test_hostile_event_streams_raise_a_stream_error(self):
        cases = {
            "id not a number": b"id: x1\ndata: {}\n\n",
            "data not json": b"id: 5\ndata: {nope\n\n",
            "data not an object": b"id: 5\ndata: [1]\n\n",
            "going backwards": b"id: 5\ndata: {}\n\nid: 4\ndata: {}\n\n",
            "a line too long": b"id: 5\ndata: " + b"x" * (2 << 20) + b"\n\n",
        }
        for what, body in cases.items():
            with self.subTest(what):
                server = SilentServer(sse_reply(body))
                try:
                    stream = zc.Client(server.url, timeout=5).events(after=0)
                    with self.assertRaises(zc.StreamError):
                        read_events(stream, lambda ev: False, 10)
                finally:
                    server.close()
        server = SilentServer(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\nhi")
        try:
            with self.assertRaises(zc.StreamError):
                next(iter(zc.Client(server.url, timeout=5).events(after=0)))
        finally:
            server.close()


class Credentials(unittest.TestCase):
    """A store with tokens: each call needs a credential of its role."""

    @classmethod
    def setUpClass(cls):
        cls.up = Up(BINARY, token_args())

    @classmethod
    def tearDownClass(cls):
        cls.up.close()

    def client(self, role=None, token=None):
        return zc.Client(self.up.url, token=token or (TOKENS[role] if role else None), timeout=10)

    def test_missing_or_wrong_token_is_unauthorized(self):
        with self.assertRaises(zc.Unauthorized) as cm:
            self.client().ping()
        self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthorized"))
        with self.assertRaises(zc.Unauthorized):
            self.client(token="wrong-token-0123456789abcdef").apply_async({"x": 1})
        with self.assertRaises(zc.Unauthorized):
            next(iter(self.client(token="wrong-token-0123456789abcdef").events(after=0)))

    def test_roles_decide_what_a_token_may_do(self):
        with self.assertRaises(zc.Forbidden) as cm:
            self.client("read").apply_async({"x": 1}, kind="echo")
        self.assertIsInstance(cm.exception, zc.AuthError)
        r = self.client("submit").apply_async({"x": 2}, kind="echo", countdown=600)
        self.assertEqual(self.client("read").AsyncResult(r.id).state, "scheduled")
        with self.assertRaises(zc.Forbidden):
            self.client("submit").revoke(r.id)
        self.assertEqual(self.client("admin").revoke(r.id)["was"], "scheduled")
        with self.client("read").events(after=0) as stream:
            self.assertTrue(read_events(stream, lambda ev: any(e.data.get("task_id") == r.id for e in ev), 20))

    def test_basic_and_token_together_are_refused(self):
        with self.assertRaises(ValueError):
            zc.Client(self.up.url, token="t" * 20, basic=("u", "p"))
        with self.assertRaises(ValueError):
            zc.Client("ftp://x")


class StoreRestart(unittest.TestCase):
    """Router, worker and store as separate processes, so the store can restart mid-stream."""

    def test_event_stream_resumes_across_a_store_restart_losing_and_repeating_nothing(self):
        cluster = StoreArgsCluster(BINARY, workers=1)
        try:
            app = zc.Client(cluster.url, timeout=10)
            stream = app.events(after=0, read_timeout=10)
            g1 = app.group([{"a": i} for i in range(5)], kind="echo")
            restarted = False

            def until(ev):
                nonlocal restarted
                if not restarted and len(succeeded_ids(ev)) == 5:
                    restarted = True
                    cluster.restart_store()
                    app.group([{"b": i} for i in range(5)], kind="echo")
                return len(succeeded_ids(ev)) == 10
            events = read_events(stream, until, 60)
            stream.close()
            self.assertGreaterEqual(stream.reconnects, 1)
            ids = [e.id for e in events]
            self.assertEqual(ids, list(range(1, len(ids) + 1)), "lost or repeated events")
            self.assertTrue(set(g1.task_ids) <= succeeded_ids(events))
            with app.events(after=0) as fresh:
                again = read_events(fresh, lambda ev: ev[-1].id >= ids[-1], 30)
            self.assertEqual([(e.id, e.type) for e in again], [(e.id, e.type) for e in events])
        finally:
            cluster.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
