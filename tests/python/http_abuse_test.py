"""HTTP under abuse keeps serving: with 200 slowloris connections (a header byte every 2 s)
and 10,000 idle connections open at once, legitimate requests are answered within 1 s, and
none of the abusive connections had to be dropped to get there. The store runs with its
default limits. Prints what it measured."""
import resource
import sys
import threading
import time
import unittest

import requests

from http_support import Up, connect_from, is_open

BINARY = sys.argv.pop(1)

SLOWLORIS = 200
IDLE = 10_000
IDLE_SOURCES = [f"127.0.0.{i}" for i in range(10, 20)]  # 1,000 each: under the per-client limit (1024)
SLOW_SOURCE = "127.0.0.30"


class Abuse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < IDLE + SLOWLORIS + 500:
            raise unittest.SkipTest(f"this test needs {IDLE + SLOWLORIS + 500} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def test_slowloris_and_idle_connections_leave_requests_answered_within_a_second(self):
        with Up(BINARY) as up:
            stop = threading.Event()
            slow, idle = [], []
            try:
                started = time.monotonic()
                for _ in range(SLOWLORIS):
                    s = connect_from(SLOW_SOURCE, up.port)
                    s.settimeout(None)
                    s.sendall(b"GET /api/v1/queues HTTP/1.1\r\nHost: x\r\n")
                    slow.append(s)

                def drip():  # one more header byte on each slow connection every 2 s
                    while not stop.wait(2):
                        for s in slow:
                            try:
                                s.send(b"X")
                            except OSError:
                                pass
                dripper = threading.Thread(target=drip)
                dripper.start()
                for source in IDLE_SOURCES:
                    for _ in range(IDLE // len(IDLE_SOURCES)):
                        idle.append(connect_from(source, up.port))
                opened = time.monotonic() - started

                # The accept queue is first in, first out: once a request on a newer connection is
                # answered, the server has accepted every abusive connection before it.
                timings = []
                session = requests.Session()
                for _ in range(10):
                    for method, path, body in (("GET", "/healthz", None), ("GET", "/api/v1/queues", None),
                                               ("POST", "/api/v1/tasks", {"kind": "noop"})):
                        t0 = time.monotonic()
                        # A new connection each time, as a new client would make.
                        r = requests.request(method, up.url + path, json=body, timeout=5)
                        timings.append(time.monotonic() - t0)
                        self.assertIn(r.status_code, (200, 201), r.text)
                    t0 = time.monotonic()
                    self.assertEqual(session.get(up.url + "/api/v1/stats", timeout=5).status_code, 200)
                    timings.append(time.monotonic() - t0)

                session.close()
                still_open_slow = sum(is_open(s) for s in slow)
                still_open_idle = sum(is_open(s) for s in idle)
                print(f"\nabuse: {SLOWLORIS} slowloris + {IDLE} idle connections opened in {opened:.2f} s; "
                      f"{len(timings)} requests: max {max(timings) * 1000:.1f} ms, "
                      f"median {sorted(timings)[len(timings) // 2] * 1000:.1f} ms; "
                      f"still open: {still_open_slow} slowloris, {still_open_idle} idle", file=sys.stderr)
                self.assertLess(max(timings), 1.0)
                self.assertEqual(still_open_slow, SLOWLORIS, "the slow connections are held, not dropped")
                self.assertEqual(still_open_idle, IDLE, "the idle connections are held, not dropped")
            finally:
                stop.set()
                if "dripper" in locals():
                    dripper.join()
                for s in slow + idle:
                    s.close()
            self.assertNotIn("terminate called", up.logs())


if __name__ == "__main__":
    unittest.main(verbosity=2)
