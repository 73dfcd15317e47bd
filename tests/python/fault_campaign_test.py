"""The fault campaign as a standing suite (label `slow`): router, store and two workers as
separate processes, killed with SIGKILL again and again while large groups run, and a checker
that compares three records of the same work:

- what was acknowledged: the group ids and task ids the router answered with;
- what ran: every attempt the handler saw, appended by the handler itself to a marks file
  (a pool child that writes one line per task and flushes it before it answers);
- what the store reports: each group's counters and each task's state over HTTP.

The promise: every acknowledged task succeeds, and ran at least once; a task ran more than once
only if a worker was killed while it held it (at most the tasks in flight at those kills); the
store's counters equal the router's. Each scenario prints its figures."""
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

import requests

from cluster import Cluster, wait_until
from netns import sh, why_no_namespaces

BINARY = sys.argv.pop(1)
SUBNET = f"10.232.{os.getpid() % 200 + 20}"
SEED = int(os.environ.get("ZBATCH_CAMPAIGN_SEED", str(int(time.time()))))

# The handler: one line in, one line out; each attempt is appended to MARKS before it answers.
MARKER = r'''
import json, os, sys
marks = os.open(os.environ["MARKS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for line in sys.stdin:
    task = json.loads(line)
    os.write(marks, f"{task['id']} {task['attempt']}\n".encode())
    sys.stdout.write(json.dumps({"result": {"n": task["payload"]}}) + "\n")
    sys.stdout.flush()
'''


class Campaign:
    """A split cluster whose workers run the marker; processes can be killed and restarted."""

    def __init__(self, test, workers=2, concurrency=4):
        self.test = test
        self.tmp = tempfile.TemporaryDirectory(prefix="zbatch-campaign-")
        self.marks = os.path.join(self.tmp.name, "marks")
        marker = os.path.join(self.tmp.name, "marker.py")
        with open(marker, "w") as f:
            f.write(MARKER)
        self.config = os.path.join(self.tmp.name, "worker.toml")
        with open(self.config, "w") as f:
            f.write(textwrap.dedent(f"""
                [[handler]]
                kind = "mark"
                type = "pool"
                argv = ["/usr/bin/python3", "{marker}"]
                env = {{ MARKS = "{self.marks}" }}
            """))
        self.cluster = Cluster(BINARY, split=True, workers=0, router_args=["--heartbeat-ms", "250"])
        self.workers = [f"worker{i}" for i in range(workers)]
        self.concurrency = concurrency
        for name in self.workers:
            self.start_worker(name)
        self.kills = {"router": 0, "store": 0, "worker": 0}

    def start_worker(self, name):
        self.cluster.start(name, ["worker", "--router", self.cluster.backend, "-c", str(self.concurrency),
                                  "--heartbeat-ms", "250", "--hostname", f"{name}@campaign", "--config", self.config])

    def restart(self, name):
        self.cluster.kill(name)
        if name == "router":
            c = self.cluster
            c.start("router", ["router", "--data", c.path("data"), "--frontend", c.frontend, "--backend", c.backend,
                               "--events", c.events, "--heartbeat-ms", "250"])
            self.kills["router"] += 1
        elif name == "store":
            self.cluster.start_store()
            self.kills["store"] += 1
        else:
            self.start_worker(name)
            self.kills["worker"] += 1

    def cli(self, *args, timeout=120, stdin=None):
        env = dict(os.environ, ZBATCH_ROUTER=self.cluster.frontend)
        return subprocess.run([BINARY, *args], input=stdin, capture_output=True, text=True, timeout=timeout, env=env)

    def submit_group(self, n, key):
        """Submits n tasks as one group with `key`, repeating with the same key until the router
        answers; returns the group id and the task ids it acknowledged."""
        lines = "".join(json.dumps(i) + "\n" for i in range(n))
        deadline = time.monotonic() + 120
        while True:
            r = self.cli("submit", "--kind", "mark", "--json", "--idempotency-key", key, "-", stdin=lines)
            if r.returncode == 0:
                out = json.loads(r.stdout)
                return out["group_id"], out["tasks"]
            # unavailable (nothing sent) or outcome_unknown (maybe accepted): the same key again
            self.test.assertLess(time.monotonic(), deadline, f"never acknowledged: {r.stderr}\n{self.cluster.logs()}")

    def group(self, gid):
        r = requests.get(f"{self.cluster.url}/api/v1/groups/{gid}", params={"limit": 1}, timeout=5)
        return r.json() if r.status_code == 200 else None

    def wait_done(self, gids, timeout, chaos=None):
        done = []

        def all_ready():
            if chaos:
                chaos()
            groups = [self.group(g) for g in gids]  # a store being restarted raises: polled again
            done[:] = groups
            return all(g and g["ready"] for g in groups)
        try:
            wait_until(all_ready, timeout, "the groups to finish")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.cluster.logs()}") from None
        return done

    def ran(self):
        counts = {}
        with open(self.marks) as f:
            for line in f:
                task = line.split()[0]
                counts[task] = counts.get(task, 0) + 1
        return counts

    def requeued(self, worker=None):
        """Tasks the router took back from lost workers (of `worker` only, if named), by its log:
        the tasks in flight on them, the only ones that may run twice."""
        total = 0
        with open(self.cluster.path("router.log"), errors="replace") as f:
            for line in f:
                if worker is not None and f"name={worker} " not in line:
                    continue
                m = re.search(r"router (?:worker offline|worker reconnected) .*requeued=(\d+)", line) or \
                    re.search(r"router requeued unclaimed in_flight=(\d+)", line)
                if m:
                    total += int(m.group(1))
        return total

    def check(self, acknowledged, groups, in_flight_bound):
        """The three records agree: returns (ran once, ran twice or more)."""
        for g, n in zip(groups, [len(a) for a in acknowledged.values()]):
            self.test.assertEqual((g["total"], g["successful"], g["failed"]), (n, n, 0), g)
        ran = self.ran()
        tasks = [t for ids in acknowledged.values() for t in ids]
        missing = [t for t in tasks if t not in ran]
        self.test.assertEqual(missing[:5], [], f"{len(missing)} acknowledged tasks never ran")
        again = sum(1 for t in tasks if ran[t] > 1)
        self.test.assertLessEqual(again, in_flight_bound,
                                  f"{again} tasks ran twice; kills {self.kills}, bound {in_flight_bound}")
        # The router's records agree with the store's, task by task (a sample of them).
        for t in random.Random(SEED).sample(tasks, min(50, len(tasks))):
            router_side = self.cli("status", "--json", t)
            self.test.assertEqual(router_side.returncode, 0, router_side.stderr)
            store_side = requests.get(f"{self.cluster.url}/api/v1/tasks/{t}", timeout=5).json()
            self.test.assertEqual((json.loads(router_side.stdout)["state"], store_side["state"]),
                                  ("succeeded", "succeeded"), t)
        return len(tasks) - again, again

    def close(self):
        self.cluster.close()
        self.tmp.cleanup()


class FaultCampaign(unittest.TestCase):
    def setUp(self):
        self.rng = random.Random(SEED)
        self.campaign = Campaign(self)
        self.addCleanup(self.campaign.close)

    def test_sigkill_loops_of_every_process_during_large_groups(self):
        c = self.campaign
        acknowledged = {}
        for i in range(4):
            gid, ids = c.submit_group(10000, f"campaign-{SEED}-{i}")
            acknowledged[gid] = ids
        last = [time.monotonic()]
        kills_wanted = 40

        def chaos():
            if sum(c.kills.values()) >= kills_wanted or time.monotonic() - last[0] < 0.3:
                return
            c.restart(self.rng.choice(["router", "store", *c.workers]))
            last[0] = time.monotonic()

        started = time.monotonic()
        groups = c.wait_done(list(acknowledged), 240, chaos)
        # Only the tasks in flight at a kill may run twice: those the router took back from a
        # lost worker, or found leased and unclaimed after its own restart.
        bound = c.requeued()
        once, again = c.check(acknowledged, groups, bound)
        print(f"\nseed {SEED}: 40,000 tasks, kills {c.kills}, {time.monotonic() - started:.1f} s, "
              f"ran once {once}, more than once {again} (bound {bound})", file=sys.stderr)

    def test_router_killed_during_a_chunked_submission(self):
        c = self.campaign
        acknowledged = {}
        for i in range(3):
            key = f"interrupted-{SEED}-{i}"
            env = dict(os.environ, ZBATCH_ROUTER=c.cluster.frontend)
            lines = "".join(json.dumps(k) + "\n" for k in range(3000))
            proc = subprocess.Popen([BINARY, "submit", "--kind", "mark", "--json", "--idempotency-key", key, "-"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=env)
            # The kill comes at a random point of the submission, from another thread.
            killer = threading.Timer(self.rng.uniform(0.0, 0.3), c.restart, args=("router",))
            killer.start()
            try:
                _, err = proc.communicate(lines, timeout=60)  # unavailable, outcome_unknown, or done
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                self.fail(f"the interrupted submission hung for 60 s: {err}\n{c.cluster.logs()}")
            finally:
                killer.join()
            gid, ids = c.submit_group(3000, key)  # the retry a user makes, with the same key
            acknowledged[gid] = ids
            self.assertEqual(len(set(ids)), 3000)
        groups = c.wait_done(list(acknowledged), 120)
        once, again = c.check(acknowledged, groups, 0)
        print(f"\nseed {SEED}: 3 groups of 3,000 with a router kill inside each submission: "
              f"ran once {once}, more than once {again}", file=sys.stderr)

    @unittest.skipIf(why_no_namespaces(), f"network namespaces unavailable: {why_no_namespaces()}")
    def test_a_worker_host_partitioned_for_ten_seconds(self):
        """A worker on another host (a network namespace behind a veth pair) loses its link for
        10 s while it holds tasks: the router declares it lost and requeues them, the other
        worker runs them, and when the link returns the worker comes back; nothing is lost."""
        c = self.campaign
        tag = str(os.getpid())
        ns, host_dev, ns_dev = f"zbc{tag}", f"zbch{tag}", f"zbcn{tag}"
        host_ip, ns_ip = f"{SUBNET}.1", f"{SUBNET}.2"
        self.addCleanup(sh, "ip", "link", "del", host_dev, check=False)
        self.addCleanup(sh, "ip", "netns", "del", ns, check=False)
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", host_dev, "type", "veth", "peer", "name", ns_dev)
        sh("ip", "link", "set", ns_dev, "netns", ns)
        sh("ip", "addr", "add", f"{host_ip}/24", "dev", host_dev)
        sh("ip", "link", "set", host_dev, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/24", "dev", ns_dev)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_dev, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        # The router also listens for workers on the link's address (plaintext, chosen).
        cl = c.cluster
        port = cl.backend.rsplit(":", 1)[1]
        cl.kill("router")
        cl.start("router", ["router", "--data", cl.path("data"), "--frontend", cl.frontend,
                            "--backend", f"{cl.backend},tcp://{host_ip}:{port}", "--events", cl.events,
                            "--heartbeat-ms", "250", "--insecure-plaintext"])
        cl.kill("worker1")  # the remote worker takes its place
        log = open(cl.path("remote.log"), "ab")
        remote = subprocess.Popen(["ip", "netns", "exec", ns, BINARY, "worker", "--router", f"tcp://{host_ip}:{port}",
                                   "-c", str(c.concurrency), "--heartbeat-ms", "250", "--hostname", "remote@campaign",
                                   "--config", c.config, "--insecure-plaintext"], stdout=log, stderr=log,
                                  stdin=subprocess.DEVNULL)
        log.close()
        self.addCleanup(lambda: remote.poll() is None and (remote.kill(), remote.wait(timeout=10)))

        def names():
            try:
                return {w["name"] for w in requests.get(f"{cl.url}/api/v1/inspect/stats", timeout=5).json()["workers"]}
            except (requests.RequestException, KeyError, ValueError):
                return set()
        wait_until(lambda: "remote@campaign" in names(), 30, "the remote worker online\n" + cl.logs())

        gid, ids = c.submit_group(20000, f"partition-{SEED}")
        wait_until(lambda: (c.group(gid) or {}).get("completed", 0) > 2000, 60, "the group under way")
        sh("ip", "link", "set", host_dev, "down")
        cut = time.monotonic()
        wait_until(lambda: "remote@campaign" not in names(), 10, "the router noticing the partition")
        noticed = time.monotonic() - cut
        wait_until(lambda: time.monotonic() - cut >= 10, 11, "ten seconds of partition")
        sh("ip", "link", "set", host_dev, "up")
        wait_until(lambda: "remote@campaign" in names(), 30, "the remote worker back after the partition")
        groups = c.wait_done([gid], 180)
        # The tasks it held at the cut (its window), taken back by the router, may run twice;
        # no other may: nothing held starts on a worker that has not heard from its router.
        held = c.requeued("remote@campaign")
        once, again = c.check({gid: ids}, groups, held)
        self.assertIsNone(remote.poll(), "the remote worker kept running through the partition")
        print(f"\nseed {SEED}: 20,000 tasks, a worker host cut off for 10 s (noticed after {noticed:.1f} s): "
              f"ran once {once}, more than once {again} (held at the cut {held})", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
