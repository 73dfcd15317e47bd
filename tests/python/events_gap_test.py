"""GET /api/v1/events never skips in silence: a resume point the ring has passed is served from
the store's durable stream log (also after a store restart); events older than the retention
come as one `event: gap` naming what is missing, with a snapshot to re-sync from; a reader that
stops reading while events pass, and 50 readers under load, see every event or an explicit gap.
Router, worker and store run as separate processes; the store keeps 300 events
(--stream-retention 300)."""
import sys
import threading
import unittest

import requests

from cluster import wait_until
from sse_support import RawSse, StoreArgsCluster, check_no_silent_skip, last_id

BINARY = sys.argv.pop(1)
RETENTION = 300


class EventGaps(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = StoreArgsCluster(BINARY, store_args=["--stream-retention", str(RETENTION)])
        cls.url = cls.cluster.url
        cls.finished = 0

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def submit(self, n, prefix):
        r = requests.post(f"{self.url}/batch/tests",
                          json={"tasks": [{"id": f"{prefix}{i}", "kind": "echo"} for i in range(n)]}, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        type(self).finished += n

    def read_all(self, after, upto, **kw):
        s = RawSse(self.cluster.http_port, last_event_id=after, **kw)
        try:
            s.read_until(lambda fs: last_id(fs) >= upto, 30)
        finally:
            s.close()
        return s.frames

    def test_1_resume_after_a_store_restart_comes_from_the_durable_log(self):
        self.submit(30, "r")
        head = self.cluster.settle(self.finished)
        self.assertLess(head, RETENTION)
        self.cluster.restart_store()  # the in-memory ring is empty now
        frames = self.read_all(0, head)
        self.assertEqual([f["id"] for f in frames][:head], list(range(1, head + 1)))
        self.assertNotIn("gap", [f["event"] for f in frames])

    def test_2_resume_older_than_the_retention_is_an_explicit_gap_then_every_event(self):
        self.submit(200, "g")
        head = self.cluster.settle(self.finished)
        self.assertGreater(head, RETENTION + 10)
        # Until the router trims what the store confirmed (its housekeeping, once a second), its
        # log still serves the oldest events; then only the store's own log is left.
        def gap_first():
            first = RawSse(self.cluster.http_port, last_event_id=2)
            try:
                first.read_until(lambda fs: fs, 10)
            finally:
                first.close()
            if first.frames[0]["event"] == "gap":
                return True
            self.assertEqual(first.frames[0]["id"], 3)  # served from the router's log meanwhile
            return False
        wait_until(gap_first, 20, "the router's log trimmed below the store's retention")
        frames = self.read_all(2, head)
        self.assertEqual(frames[0]["event"], "gap", frames[:2])
        gap = frames[0]["data"]
        self.assertEqual(gap["first_missing"], 3)
        self.assertEqual(gap["reason"], "retention")
        # The last RETENTION events are kept (the trim may lag by a batch), older ones are not.
        self.assertGreaterEqual(gap["resume_seq"], head - RETENTION - 200)
        self.assertLessEqual(gap["resume_seq"], self.cluster.applied() - RETENTION + 1)
        snap = gap["snapshot"]
        self.assertGreaterEqual(snap["as_of_seq"], head)
        self.assertEqual(snap["counts"]["succeeded"], self.finished)
        self.assertEqual(snap["stats_url"], "/api/v1/stats")
        self.assertEqual(check_no_silent_skip(self, frames, 2), [gap])
        # The gap's id is where a reconnecting client resumes: no gap then.
        again = self.read_all(frames[0]["id"], head)
        self.assertEqual(again[0]["id"], gap["resume_seq"])
        self.assertEqual(check_no_silent_skip(self, again, frames[0]["id"]), [])

    def test_3_a_reader_that_stops_reading_sees_every_event_or_an_explicit_gap(self):
        start = self.cluster.applied()
        stalled = RawSse(self.cluster.http_port, last_event_id=start, rcvbuf=2048)
        try:
            for k in range(4):
                self.submit(200, f"s{k}_")
            head = self.cluster.settle(self.finished)
            self.assertGreater(head - start, 2 * RETENTION)
            stalled.read_until(lambda fs: last_id(fs) >= head, 30)
            gaps = check_no_silent_skip(self, stalled.frames, start)
            # Fell behind everything the store keeps: told so, and resumed within the retention.
            for g in gaps:
                self.assertEqual(g["reason"], "retention")
                self.assertGreater(g["resume_seq"], head - RETENTION - 1000)
        finally:
            stalled.close()

    def test_4_fifty_streams_reading_under_load_see_no_gap(self):
        start = self.cluster.applied()
        target = {"head": None}
        errors = []
        streams = [RawSse(self.cluster.http_port, last_event_id=start) for _ in range(50)]

        def reader(s):
            try:
                s.read_until(lambda fs: target["head"] is not None and last_id(fs) >= target["head"], 60)
            except AssertionError as e:
                errors.append(str(e))

        threads = [threading.Thread(target=reader, args=(s,)) for s in streams]
        for t in threads:
            t.start()
        try:
            for k in range(5):
                self.submit(40, f"l{k}_")
            target["head"] = self.cluster.settle(self.finished)
            for t in threads:
                t.join(70)
            self.assertFalse(errors)
            head = target["head"]
            for i, s in enumerate(streams):
                self.assertEqual(check_no_silent_skip(self, s.frames, start), [], f"stream {i}")
                self.assertEqual([f["id"] for f in s.frames][: head - start], list(range(start + 1, head + 1)))
        finally:
            for s in streams:
                s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
