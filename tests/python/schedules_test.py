"""Periodic schedules against real processes (docs/SCHEDULES.md).

A 1-second schedule fires while the router is killed with SIGKILL at random points and started
again: every slot from the first to the last fired exactly once (one task per slot, each run
to success, no slot missing with catch_up = "all"); catch_up "one" and "none" after downtime;
pause, resume, run now and delete over HTTP and the command line.

Usage: schedules_test.py ZBATCH_BINARY
"""
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import requests

sys.path.insert(0, os.path.dirname(__file__))
from cluster import Cluster, config_file, wait_until  # noqa: E402

BINARY = None

CONFIG = """
[[schedule]]
name = "tick"
every = 1
catch_up = "all"
kind = "echo"
payload = { from = "tick" }

[[schedule]]
name = "one"
every = 1
catch_up = "one"
kind = "echo"

[[schedule]]
name = "none"
every = 1
catch_up = "none"
kind = "echo"
"""


def schedule(url, name):
    r = requests.get(f"{url}/api/v1/schedules/{name}", timeout=5)
    r.raise_for_status()
    return r.json()


def tasks_of(url, name):
    """Every task the store knows of schedule `name`: its slot → list of task rows."""
    out, before = {}, None
    while True:
        params = {"limit": 500}
        if before:
            params["before"] = before
        page = requests.get(f"{url}/api/v1/tasks", params=params, timeout=10).json()
        for t in page["tasks"]:
            ref = t.get("id") or ""  # the caller's name for the task (its ref)
            prefix = f"schedule:{name}@"
            if ref.startswith(prefix):
                out.setdefault(int(ref[len(prefix):]), []).append(t)
        if not page["next"]:
            return out
        before = page["next"]


class SchedulesTest(unittest.TestCase):
    def setUp(self):
        self.cluster = None

    def tearDown(self):
        if self.cluster:
            self.cluster.close()

    def start(self, text):
        self.tmp = tempfile.TemporaryDirectory(prefix="zbatch-sched-")
        self.addCleanup(self.tmp.cleanup)
        self.config = config_file(self.tmp.name, text)
        self.cluster = Cluster(BINARY, split=True, router_args=("--config", self.config))
        self.router_args = ["router", "--data", self.cluster.path("data"), "--frontend", self.cluster.frontend,
                            "--backend", self.cluster.backend, "--events", self.cluster.events,
                            "--config", self.config]
        return self.cluster.url

    def restart_router(self):
        self.cluster.start("router", self.router_args)

    def test_each_slot_fires_exactly_once_across_sigkills(self):
        url = self.start(CONFIG)
        wait_until(lambda: schedule(url, "tick")["fired"] >= 2, 20, "the first firings")
        rng = random.Random(int(os.environ.get("ZBATCH_TEST_SEED", "0")) or None)
        for round_ in range(6):
            # A random point: the kill lands anywhere relative to the slots and turns.
            time.sleep(rng.uniform(0, 1.2))
            self.cluster.kill("router")
            time.sleep(rng.uniform(0, 2.5))  # downtime, over one or more slots
            self.restart_router()
            fired = None

            def moved():
                nonlocal fired
                fired = schedule(url, "tick")
                return fired["last_slot_ms"] > 0 and fired["next_slot_ms"] > 0 and fired["fired"] > 2 + round_

            wait_until(moved, 30, f"the schedule to fire again after restart {round_}")
        # Let the last tasks run, then compare what fired with what ran.
        last = schedule(url, "tick")["last_slot_ms"]
        by_slot = {}

        def all_ran():
            nonlocal by_slot
            by_slot = tasks_of(url, "tick")
            done = [s for s, ts in by_slot.items() if s <= last and all(t["state"] == "succeeded" for t in ts)]
            return max(by_slot, default=0) >= last and len(done) == len([s for s in by_slot if s <= last])

        wait_until(all_ran, 60, "every fired task to succeed")
        slots = sorted(s for s in by_slot if s <= last)
        self.assertGreater(len(slots), 8, self.cluster.logs())
        for s, ts in by_slot.items():
            self.assertEqual(len(ts), 1, f"slot {s} has {len(ts)} tasks")
        gaps = [b - a for a, b in zip(slots, slots[1:]) if b - a != 1000]
        self.assertEqual(gaps, [], f"slots missing or doubled (catch_up all): {slots}")
        # The durable firing records agree: the newest firings are those slots, each once.
        recent = schedule(url, "tick")["recent"]
        recent_slots = [f["slot_ms"] for f in recent if f["how"] in ("slot", "catch_up")]
        self.assertEqual(len(recent_slots), len(set(recent_slots)))
        for f in recent:
            if f["slot_ms"] <= last:
                self.assertIn(f["slot_ms"], by_slot)
                self.assertEqual(by_slot[f["slot_ms"]][0]["task_id"], f["task"])

    def test_catch_up_one_runs_once_and_none_runs_nothing_missed(self):
        url = self.start(CONFIG)
        wait_until(lambda: schedule(url, "one")["fired"] >= 1 and schedule(url, "none")["fired"] >= 1, 20,
                   "the first firings")
        self.cluster.kill("router")
        down_from = int(time.time() * 1000)
        time.sleep(5)  # the downtime under test: five slots pass
        self.restart_router()
        wait_until(lambda: schedule(url, "one")["last_slot_ms"] > down_from + 5000 and
                   schedule(url, "none")["last_slot_ms"] > down_from + 5000, 30, "firings after the restart")
        one = schedule(url, "one")["recent"]
        catch_ups = [f for f in one if f["how"] == "catch_up"]
        self.assertEqual(len(catch_ups), 1, one)
        self.assertGreaterEqual(catch_ups[0]["slot_ms"], down_from + 3000)
        # Slots of the downtime other than the one caught up did not fire.
        inside = [f for f in one if down_from + 1000 < f["slot_ms"] < catch_ups[0]["slot_ms"]]
        self.assertEqual(inside, [], one)
        none = schedule(url, "none")["recent"]
        self.assertEqual([f for f in none if f["how"] == "catch_up"], [], none)
        slots = sorted(f["slot_ms"] for f in none)
        self.assertTrue(any(b - a >= 4000 for a, b in zip(slots, slots[1:])), f"no gap over the downtime: {slots}")

    def test_a_unique_key_passes_over_slots_while_a_task_holds_it(self):
        # A task submitted by hand holds the key: the schedule's slots pass over it until it ends.
        url = self.start(textwrap.dedent("""
            [[schedule]]
            name = "reindex"
            every = 1
            kind = "echo"
            unique_key = "reindex"
            catch_up = "none"
        """))
        submitted = []

        def hold():  # a slot's own task may hold the key for a moment (409): then again
            r = requests.post(f"{url}/api/v1/tasks", timeout=5, json={
                "kind": "sleep", "payload": {"seconds": 2.5}, "unique_key": "reindex"})
            self.assertIn(r.status_code, (201, 409), r.text)
            if r.status_code == 201:
                submitted.append(r.json()["task_id"])
            return r.status_code == 201
        wait_until(hold, 10, "the key taken by a task submitted by hand")
        held = submitted[0]
        wait_until(lambda: any(f["how"] == "skipped_unique" for f in schedule(url, "reindex")["recent"]), 10,
                   "a slot passed over while the key is held")
        self.assertEqual(requests.get(f"{url}/api/v1/schedules/reindex", timeout=5).json()["task"]["unique_key"],
                         "reindex")
        wait_until(lambda: requests.get(f"{url}/api/v1/tasks/{held}", timeout=5).json()["state"] == "succeeded", 20,
                   "the hand-made task to end")
        ended_ms = requests.get(f"{url}/api/v1/tasks/{held}", timeout=5).json()["finished_ms"]
        after = lambda: [f for f in schedule(url, "reindex")["recent"] if f["how"] == "slot" and f["fired_ms"] >= ended_ms]
        wait_until(after, 10, "a slot fired once the key was free")
        fired = after()[0]
        task = requests.get(f"{url}/api/v1/tasks/{fired['task']}", timeout=5).json()
        self.assertEqual(task["unique_key"], "reindex")  # it holds the key while it runs
        made = subprocess.run([BINARY, "schedule", "create", "cli-unique", "--every", "3600", "--kind", "echo",
                               "--unique-key", "reindex"], capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, ZBATCH_ROUTER=self.cluster.frontend))
        self.assertEqual(made.returncode, 0, made.stderr)
        self.assertEqual(requests.get(f"{url}/api/v1/schedules/cli-unique", timeout=5).json()["task"]["unique_key"],
                         "reindex")
        bad = requests.post(f"{url}/api/v1/schedules", timeout=5,
                            json={"name": "long", "every_s": 60, "task": {"unique_key": "k" * 2000}})
        self.assertEqual(bad.status_code, 400, bad.text)
        self.assertIn("unique_key", bad.text)

    def test_firings_beyond_the_newest_20_are_read_page_by_page(self):
        url = self.start("")
        requests.post(f"{url}/api/v1/schedules", timeout=5,
                      json={"name": "p", "every_s": 3600, "task": {"kind": "noop"}}).raise_for_status()
        for _ in range(25):
            requests.post(f"{url}/api/v1/schedules/p/run", json={}, timeout=5).raise_for_status()
        page = lambda query: requests.get(f"{url}/api/v1/schedules/p?{query}", timeout=5)
        every = page("firings=1000").json()["recent"]
        self.assertEqual(len(every), 25)
        slots = [f["slot_ms"] for f in every]
        self.assertEqual(slots, sorted(slots, reverse=True), "newest first")
        self.assertEqual({f["how"] for f in every}, {"run_now"})
        self.assertEqual(len(schedule(url, "p")["recent"]), 20, "without firings: the newest 20")
        first = page("firings=10").json()["recent"]
        self.assertEqual(first, every[:10])
        second = page(f"firings=10&before={first[-1]['slot_ms']}").json()["recent"]
        self.assertEqual(second, every[10:20])
        third = page(f"firings=10&before={second[-1]['slot_ms']}").json()["recent"]
        self.assertEqual(third, every[20:])
        self.assertEqual(page(f"firings=10&before={every[-1]['slot_ms']}").json()["recent"], [])
        for bad in ("firings=0", "firings=1001", "firings=x", "before=-1", "before=1.5", "firings=10&before="):
            r = page(bad)
            self.assertEqual(r.status_code, 400, f"{bad}: {r.text}")
        env = dict(os.environ, ZBATCH_ROUTER=self.cluster.frontend)
        out = subprocess.run([BINARY, "schedule", "list", "p", "--firings", "3"], env=env, capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual([l.split()[1] for l in out.stdout.splitlines() if l.startswith("  slot ")],
                         [str(f["slot_ms"]) for f in every[:3]])
        alone = subprocess.run([BINARY, "schedule", "list", "--firings", "3"], env=env, capture_output=True,
                               text=True, timeout=30)
        self.assertEqual(alone.returncode, 2, alone.stdout)
        self.assertIn("give its NAME", alone.stderr)

    def test_pause_resume_run_now_and_delete_over_http_and_cli(self):
        url = self.start("")
        r = requests.post(f"{url}/api/v1/schedules", timeout=5,
                          json={"name": "h", "every_s": 3600, "task": {"kind": "echo", "payload": {"x": 1}}})
        self.assertEqual(r.status_code, 201, r.text)
        self.assertEqual(r.json()["source"], "api")
        self.assertEqual(r.json()["task"]["payload"], {"x": 1})
        bad = requests.post(f"{url}/api/v1/schedules", timeout=5, json={"name": "b", "cron": "*/0 * * * *"})
        self.assertEqual(bad.status_code, 400)
        self.assertIn("step 0", bad.json()["error"]["message"])
        unknown = requests.post(f"{url}/api/v1/schedules", timeout=5, json={"name": "b", "every_s": 5, "evry": 1})
        self.assertEqual(unknown.status_code, 400)
        self.assertIn("evry", unknown.json()["error"]["message"])
        dup = requests.post(f"{url}/api/v1/schedules", timeout=5, json={"name": "h", "every_s": 5})
        self.assertEqual(dup.status_code, 409, dup.text)
        zone = requests.post(f"{url}/api/v1/schedules", timeout=5,
                             json={"name": "z", "cron": "0 3 * * *", "timezone": "Mars/Base"})
        self.assertEqual(zone.status_code, 404, zone.text)

        p = requests.post(f"{url}/api/v1/schedules/h/pause", json={}, timeout=5)
        self.assertEqual(p.status_code, 200, p.text)
        self.assertTrue(p.json()["schedule"]["paused"])
        run = requests.post(f"{url}/api/v1/schedules/h/run", json={}, timeout=5).json()
        task = run["task"]
        wait_until(lambda: requests.get(f"{url}/api/v1/tasks/{task}", timeout=5).json().get("state") == "succeeded",
                   30, "the run-now task to succeed")
        self.assertEqual(schedule(url, "h")["recent"][0]["how"], "run_now")
        res = requests.post(f"{url}/api/v1/schedules/h/resume", json={}, timeout=5).json()
        self.assertFalse(res["schedule"]["paused"])

        env = dict(os.environ, ZBATCH_ROUTER=self.cluster.frontend)

        def cli(*args, code=0):
            p = subprocess.run([BINARY, *args], env=env, capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, code, f"{args}: {p.stdout} {p.stderr}")
            return p.stdout + p.stderr

        out = cli("schedule", "create", "c", "--cron", "*/5 * * * *", "--tz", "Europe/Berlin", "--kind", "echo",
                  "--payload", '{"n": 2}', "--overlap", "skip")
        self.assertIn("created c", out)
        self.assertIn("cron '*/5 * * * *' Europe/Berlin", cli("schedule", "list"))
        listed = cli("schedule", "list", "--json")
        self.assertIn('"name":"c"', listed.replace(" ", ""))
        self.assertIn("paused c", cli("schedule", "pause", "c"))
        self.assertTrue(schedule(url, "c")["paused"])
        self.assertIn("resumed c", cli("schedule", "resume", "c"))
        self.assertIn("submitted", cli("schedule", "run", "c"))
        self.assertEqual(schedule(url, "c")["fired"], 1)
        self.assertIn("step 0", cli("schedule", "create", "d", "--cron", "*/0 * * * *", code=2))
        self.assertIn("deleted c", cli("schedule", "delete", "c"))
        self.assertEqual(requests.get(f"{url}/api/v1/schedules/c", timeout=5).status_code, 404)
        d = requests.post(f"{url}/api/v1/schedules/h/delete", json={}, timeout=5)
        self.assertEqual(d.status_code, 200, d.text)
        self.assertEqual(requests.get(f"{url}/api/v1/schedules", timeout=5).json()["schedules"], [])
        # An API schedule lives in LMDB: it outlives a restart of the router.
        requests.post(f"{url}/api/v1/schedules", timeout=5, json={"name": "kept", "every_s": 3600}).raise_for_status()
        self.cluster.kill("router")
        self.restart_router()
        wait_until(lambda: requests.get(f"{url}/api/v1/schedules/kept", timeout=2).status_code == 200, 30,
                   "the schedule after the restart")


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
