"""The store loses no status: killed with SIGKILL mid-batch, or starved of events."""
import signal
import sys
import time
import unittest

import requests

from cluster import Cluster, wait_until

BINARY = sys.argv.pop(1)


def group(url, gid):
    return requests.get(f"{url}/batch/celery/group/{gid}?limit=0", timeout=5).json()


class StoreFaults(unittest.TestCase):
    def test_store_killed_mid_batch_ends_with_exact_counters(self):
        with Cluster(BINARY, split=True, workers=2) as c:
            tasks = [{"id": f"t{i}", "kind": "sleep", "seconds": 0.001} for i in range(3000)]
            r = requests.post(f"{c.url}/batch/celery/tests", json={"tasks": tasks}, timeout=30)
            self.assertEqual(r.status_code, 200, r.text)
            gid = r.json()["group_id"]
            wait_until(lambda: group(c.url, gid)["completed"] > 100, 30, "some progress")
            c.kill("store")                      # SIGKILL mid-batch
            c.start_store()
            c.wait_ready()
            wait_until(lambda: group(c.url, gid)["ready"], 60, "group ready")
            g = group(c.url, gid)
            self.assertEqual((g["total"], g["completed"], g["successful"], g["failed"], g["running"]),
                             (3000, 3000, 3000, 0, 0), c.logs())
            full = requests.get(f"{c.url}/api/v1/groups/{gid}?limit=1000&offset=2000", timeout=5).json()
            self.assertEqual(len(full["tasks"]), 1000)
            self.assertTrue(all(t["status"] == "completed" for t in full["tasks"]))

    def test_dropped_events_are_replayed(self):
        # A tiny PUB high-water mark: while the store is stopped, its queue overflows and drops.
        with Cluster(BINARY, split=True, workers=1, router_args=("--events-hwm", "2")) as c:
            c.kill("store", signal.SIGSTOP)
            # Submit with the command line (the router is up), then let the store run again.
            import subprocess
            lines = "\n".join('{"n":%d}' % i for i in range(60000)) + "\n"
            out = subprocess.run([BINARY, "submit", "--router", c.frontend, "--kind", "noop", "-"],
                                 input=lines, capture_output=True, text=True, timeout=120)
            self.assertEqual(out.returncode, 0, out.stderr)
            gid = out.stdout.strip().splitlines()[-1]
            wait_until(lambda: subprocess.run([BINARY, "group", "--router", c.frontend, gid, "--json"],
                                              capture_output=True, text=True, timeout=10).stdout.find('"ready":true') >= 0,
                       60, "router says ready")
            c.kill("store", signal.SIGCONT)
            succeeded = 'zbatch_tasks_total{event="succeeded"} 60000\n'
            wait_until(lambda: succeeded in requests.get(f"{c.url}/metrics", timeout=5).text, 60, "store caught up")
            g = group(c.url, gid)
            self.assertEqual((g["total"], g["successful"], g["failed"], g["running"]), (60000, 60000, 0, 0), c.logs())
            self.assertIn("zbatch_tasks_total{event=\"received\"} 60000\n", requests.get(f"{c.url}/metrics", timeout=5).text)
            # The store applied every event: its sequence reached the router's.
            ready = requests.get(f"{c.url}/readyz", timeout=5).json()
            self.assertEqual(ready["applied_seq"], ready["router_head_seq"])
            self.assertIn("store replaying reason=", c.logs())  # the live stream fell short; replay filled it



class RouterDown(unittest.TestCase):
    def test_router_unreachable_is_503_and_the_store_keeps_serving(self):
        with Cluster(BINARY, split=True, workers=0) as c:
            r = requests.post(f"{c.url}/batch/tests", json={"tasks": [{"id": "before", "kind": "echo"}]}, timeout=10)
            self.assertEqual(r.status_code, 200, r.text)
            gid = r.json()["group_id"]
            wait_until(lambda: len(requests.get(f"{c.url}/api/v1/groups/{gid}", timeout=10).json()["tasks"]) == 1,
                       20, "the store has the group")
            c.kill("router")
            # Until the store's connection to the router has seen the close (a few ms after the
            # kill), a request may still be sent into it: that one is an honest 504, since it
            # cannot know. After that, every submission is a 503: nothing was sent.
            answers = []

            def refused_as_unavailable():
                r = requests.post(f"{c.url}/batch/tests", json={"tasks": [{"id": "lost?", "kind": "echo"}]},
                                  timeout=30)
                answers.append((r.status_code, r.json()["error"]["code"]))
                self.assertIn(answers[-1], [(503, "unavailable"), (504, "outcome_unknown")], r.text)
                if r.status_code == 503:
                    self.assertIn("nothing was accepted", r.json()["error"]["message"])
                return r.status_code == 503
            wait_until(refused_as_unavailable, 30, f"a 503 once the router is gone: {answers}")
            # What the store already knows is still served.
            g = requests.get(f"{c.url}/batch/celery/group/{gid}", timeout=10).json()
            self.assertEqual(g["total"], 1)
            self.assertEqual(requests.get(f"{c.url}/healthz", timeout=5).status_code, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
