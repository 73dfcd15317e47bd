"""Resizing a worker's pool many times leaks nothing, against real processes.

Each retired slot's thread used to be left unjoined (its 8 MiB stack and two mappings kept);
after about 32 grow/shrink cycles through POST /api/v1/workers/NAME/pool the worker could not
create a thread and aborted. Here a separate worker process is grown and shrunk 60 times by
4 slots, running tasks in between; its threads and memory mappings (/proc) must come back to
where they started, and it must still run tasks."""
import sys
import unittest

import requests

from cluster import Cluster, wait_until

BINARY = sys.argv.pop(1)
CYCLES = 60
STEP = 4


def proc_counts(pid):
    with open(f"/proc/{pid}/status") as f:
        threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    with open(f"/proc/{pid}/maps") as f:
        maps = sum(1 for _ in f)
    return threads, maps


class WorkerResize(unittest.TestCase):
    def test_many_resize_cycles_return_threads_and_mappings(self):
        with Cluster(BINARY, split=True, workers=1) as c:
            url, pid = c.url, c.procs["worker0"].pid

            def concurrency():
                workers = requests.get(f"{url}/api/v1/inspect/stats", timeout=5).json()["workers"]
                return workers[0]["concurrency"] if workers else None

            def resize(delta, expect):
                r = requests.post(f"{url}/api/v1/workers/w0@test/pool", json={"delta": delta}, timeout=10)
                self.assertEqual(r.status_code, 200, r.text)
                wait_until(lambda: concurrency() == expect, 20, f"concurrency {expect}\n" + c.logs())

            def run_echo(n):
                r = requests.post(f"{url}/api/v1/tasks", json={"tasks": [{"kind": "echo", "payload": i}
                                                                         for i in range(n)]}, timeout=30)
                self.assertEqual(r.status_code, 201, r.text)
                group = r.json()["group_id"]
                wait_until(lambda: requests.get(f"{url}/api/v1/groups/{group}", timeout=5).json()["successful"] == n,
                           30, f"group {group}\n" + c.logs())

            wait_until(lambda: concurrency() == 2, 20, "the worker online")
            run_echo(20)
            threads0, maps0 = proc_counts(pid)
            for i in range(CYCLES):
                resize(STEP, 2 + STEP)
                if i % 10 == 0:
                    run_echo(20)
                resize(-STEP, 2)
            run_echo(20)
            # Retired threads are joined once they leave their slot: give them a moment.
            wait_until(lambda: proc_counts(pid)[0] <= threads0, 20,
                       f"threads back to {threads0}: {proc_counts(pid)}")
            threads, maps = proc_counts(pid)
            # glibc's malloc gives threads arenas of their own, at most 8 per core, each a mapping or
            # two: that much growth is bounded. A leaked thread keeps two mappings (stack, guard),
            # so the old leak showed here as 2 x STEP x CYCLES = 480 more.
            self.assertLessEqual(maps, maps0 + 40, f"mappings grew from {maps0} to {maps} over {CYCLES} cycles")
            self.assertIsNone(c.procs["worker0"].poll(), c.logs())


if __name__ == "__main__":
    unittest.main()
