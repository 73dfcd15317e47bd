"""GET /api/v1/events: live Server-Sent Events, filters, and resume with Last-Event-ID."""
import json
import sys
import threading
import unittest

import requests

from cluster import ClusterTestCase

ClusterTestCase.BINARY = sys.argv.pop(1)


def read_events(resp, until, limit=10000):
    """Parses an SSE stream until `until(event)` is true; returns the events read."""
    events, current = [], {}
    for raw in resp.iter_lines(decode_unicode=True):
        if raw is None:
            continue
        if raw == "":
            if "data" in current:
                ev = json.loads(current["data"])
                ev["_id"] = int(current["id"])
                ev["_event"] = current.get("event")
                events.append(ev)
                if until(ev) or len(events) >= limit:
                    return events
            current = {}
        elif not raw.startswith(":"):
            key, _, value = raw.partition(": ")
            current[key] = value
    return events


class EventStream(ClusterTestCase):
    def submit(self, n=5, queue_path="tests"):
        r = requests.post(f"{self.url}/batch/{queue_path}", json={"tasks": [{"id": f"e{i}", "kind": "echo"} for i in range(n)]}, timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()["group_id"]

    def test_live_events_filtered_by_queue_then_resumed_without_a_gap(self):
        holder = {}
        started = threading.Event()

        def listen():
            with requests.get(f"{self.url}/api/v1/events", params={"queue": "mcp_operations"}, stream=True,
                              timeout=30) as resp:
                started.set()
                # Tasks finish in any order on two slots: stop at the fifth success.
                succeeded = set()

                def fifth(e):
                    if e["_event"] == "task-succeeded":
                        succeeded.add(e.get("id"))
                    return len(succeeded) == 5
                holder["events"] = read_events(resp, fifth)

        t = threading.Thread(target=listen)
        t.start()
        self.assertTrue(started.wait(10))
        self.submit(3, "tests")  # noise on another queue
        gid = self.submit(5, "mcp-operations")
        t.join(30)
        self.assertFalse(t.is_alive())
        events = holder["events"]
        self.assertTrue(events)
        self.assertTrue(all(e.get("queue") == "mcp_operations" for e in events), events)
        self.assertTrue(all(e["group_id"] == gid for e in events if "group_id" in e))
        ids = [e["_id"] for e in events]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(sum(1 for e in events if e["_event"] == "task-succeeded"), 5)

        # Resume after the third event: the stream continues exactly with the next sequence.
        all_events = []
        with requests.get(f"{self.url}/api/v1/events", headers={"Last-Event-ID": "0"}, stream=True, timeout=30) as r:
            head = requests.get(f"{self.url}/readyz", timeout=5).json()["applied_seq"]
            all_events = read_events(r, lambda e: e["_id"] >= head)
        seqs = [e["_id"] for e in all_events]
        self.assertEqual(seqs, list(range(1, head + 1)))  # every event, none missed
        with requests.get(f"{self.url}/api/v1/events", headers={"Last-Event-ID": str(seqs[2])}, stream=True,
                          timeout=30) as r:
            first = read_events(r, lambda e: True)[0]
        self.assertEqual(first["_id"], seqs[3])

    def test_bad_resume_point_is_400(self):
        r = requests.get(f"{self.url}/api/v1/events", headers={"Last-Event-ID": "abc"}, timeout=10)
        self.assertEqual(r.status_code, 400)
        self.assertEqual(r.json()["error"]["code"], "bad_request")


if __name__ == "__main__":
    unittest.main(verbosity=2)
