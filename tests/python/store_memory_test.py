"""The store's memory stays under its documented ceiling (docs/SECURITY.md, Limits) under
hostile and heavy use: a result of 8 MiB with 600,000 keys, 8 readers that take a byte at a
time, 20 that stop reading, 20 more that read normally, and sustained submissions from 4
clients, with router, worker and store as separate processes. Memory is the store's VmRSS
from /proc/PID/status, sampled throughout; the event-stream limit (--max-streams) holds too."""
import json
import os
import sys
import threading
import time
import unittest

import requests

from cluster import wait_until
from sse_support import RawSse, StoreArgsCluster, last_id

BINARY = sys.argv.pop(1)
CEILING_MIB = 256   # docs/SECURITY.md, Limits: the store's resident memory under this load
MAX_STREAMS = 64
LOAD_SECONDS = 12


def rss_mib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no " + field)


@unittest.skipIf(os.environ.get("ZBATCH_SANITIZED"), "a resident-memory ceiling means nothing under a sanitizer's "
                 "shadow memory and quarantine")
class StoreMemory(unittest.TestCase):
    def test_rss_stays_under_the_ceiling(self):
        with StoreArgsCluster(BINARY, store_args=["--max-streams", str(MAX_STREAMS)]) as c:
            pid = c.procs["store"].pid
            base = rss_mib(pid)
            peak = {"mib": base}
            stop = threading.Event()
            phase = {"now": "streams"}

            def sample():
                while not stop.is_set():
                    peak["mib"] = max(peak["mib"], rss_mib(pid))
                    peak["anon"] = max(peak.get("anon", 0), rss_mib(pid, "RssAnon"))
                    peak["file"] = max(peak.get("file", 0), rss_mib(pid, "RssFile"))
                    if "t" not in peak and peak["mib"] > 100:
                        peak["t"] = phase["now"]
                    stop.wait(0.1)  # the sampling interval

            sampler = threading.Thread(target=sample)
            sampler.start()
            start = c.applied()
            slow = [RawSse(c.http_port, last_event_id=start, rcvbuf=1024) for _ in range(8)]
            stalled = [RawSse(c.http_port, last_event_id=start, rcvbuf=1024) for _ in range(20)]
            normal = [RawSse(c.http_port, last_event_id=start) for _ in range(20)]
            streams = slow + stalled + normal
            readers_started = []
            try:
                def trickle(s):  # a byte at a time
                    while not stop.is_set() and s.read(1):
                        stop.wait(0.01)

                def drain(s):
                    while not stop.is_set() and s.read():
                        pass
                readers = [threading.Thread(target=trickle, args=(s,)) for s in slow] + \
                          [threading.Thread(target=drain, args=(s,)) for s in normal]
                for t in readers:
                    t.start()
                readers_started = readers

                phase["now"] = "big"
                big = json.dumps({f"k{i}": i for i in range(600_000)})
                self.assertGreater(len(big), 8 << 20)
                r = requests.post(f"{c.url}/batch/tests", json={"tasks": [{"id": "big", "kind": "echo",
                                                                            "payload": json.loads(big)}]}, timeout=60)
                self.assertEqual(r.status_code, 200, r.text)

                phase["now"] = "load"
                submitted = {"n": 1}
                deadline = time.monotonic() + LOAD_SECONDS

                def load(k):
                    i = 0
                    while time.monotonic() < deadline:
                        body = {"tasks": [{"id": f"m{k}_{i}_{j}", "kind": "echo", "payload": {"j": j}}
                                          for j in range(100)]}
                        if requests.post(f"{c.url}/batch/tests", json=body, timeout=30).status_code == 200:
                            submitted["n"] += 100
                        i += 1
                clients = [threading.Thread(target=load, args=(k,)) for k in range(4)]
                for t in clients:
                    t.start()
                # More streams than the limit: the extra ones are refused, not served.
                over = [requests.get(f"{c.url}/api/v1/events", stream=True, timeout=10)
                        for _ in range(MAX_STREAMS - len(streams) + 4)]
                codes = sorted(r.status_code for r in over)
                for r in over:
                    r.close()
                self.assertEqual(codes.count(503), 4, codes)
                for t in clients:
                    t.join(LOAD_SECONDS + 60)
                head = c.settle(submitted["n"], timeout=120)
                # The normal readers saw everything; the big result came as a reference.
                for s in normal:
                    wait_until(lambda: last_id(s.frames) >= head, 30, "a reader to catch up")
                bigs = [f for f in normal[0].frames if f["event"] == "task-succeeded" and f["data"].get("id") == "big"]
                self.assertEqual(len(bigs), 1)
                self.assertTrue(bigs[0]["data"]["result_truncated"])
                self.assertGreater(bigs[0]["data"]["result_bytes"], 8 << 20)
                self.assertNotIn("result", bigs[0]["data"])
            finally:
                stop.set()
                for s in streams:
                    s.shutdown()
                for t in readers_started:
                    t.join(10)
                for s in streams:
                    s.close()
                sampler.join(5)
            print(f"store VmRSS: start {base:.0f} MiB, peak {peak['mib']:.0f} MiB (anonymous {peak['anon']:.0f}, "
                  f"file {peak['file']:.0f}; past 100 MiB in phase {peak.get('t')}), ceiling {CEILING_MIB} MiB")
            self.assertLess(peak["mib"], CEILING_MIB, c.logs())
            self.assertIsNone(c.procs["store"].poll())


if __name__ == "__main__":
    unittest.main(verbosity=2)
