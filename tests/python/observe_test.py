"""What operators watch with, against a real `zbatch up`: a whole group exported as JSON lines
and CSV (every task once, in submission order; malformed parameters refused; a client that
hangs up mid-export costs nothing; 100,000 tasks exported with the store's heap flat), /metrics passing `promtool check metrics` (Debian's
prometheus) with the families docs/DASHBOARD.md lists, the Grafana dashboard in docs/ naming only
families /metrics serves, the per-second history kept across a store restart and worker totals
across a router restart, and 256 concurrent event streams by default with the 257th refused."""
import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import unittest

import requests

from cluster import wait_until
from cluster import Cluster
from http_support import Up

BINARY = sys.argv.pop(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GROUP_TASKS = 2500


def submit_group(url, tasks):
    r = requests.post(url + "/api/v1/tasks", json={"tasks": tasks}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def wait_group_ready(url, gid, timeout=60):
    wait_until(lambda: requests.get(f"{url}/api/v1/groups/{gid}?limit=1", timeout=5).json()["ready"], timeout,
               f"group {gid} ready")


def families(text):
    """The metric families a Prometheus text names (from its TYPE lines)."""
    return {m.group(1) for m in re.finditer(r"^# TYPE (\S+) \S+$", text, re.M)}


class Observe(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = Up(BINARY)
        try:
            tasks = [{"kind": "echo", "id": f"t{i}", "payload": {"n": i}} for i in range(GROUP_TASKS - 3)]
            tasks += [{"kind": "fail", "id": "=HYPERLINK(\"x\")", "payload": {"error": "bad, \"quoted\"\nline"},
                       "max_retries": 0},
                      {"kind": "echo", "id": "-1+1", "payload": {"text": "é ünïcode"}},
                      {"kind": "echo", "id": "plain", "payload": {"a": [1, 2]}}]
            cls.group = submit_group(cls.up.url, tasks)
            cls.gid = cls.group["group_id"]
            wait_group_ready(cls.up.url, cls.gid)
        except BaseException:
            cls.up.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.up.close()

    def export(self, query, stream=False):
        return requests.get(f"{self.up.url}/api/v1/groups/{self.gid}/export{query}", timeout=30, stream=stream)

    # --- the group export -----------------------------------------------------------------
    def test_json_lines_export_holds_every_task_once_in_submission_order(self):
        r = self.export("?format=jsonl")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["Content-Type"], "application/x-ndjson")
        self.assertIn(f'filename="group-{self.gid}.jsonl"', r.headers["Content-Disposition"])
        self.assertEqual(r.headers.get("Transfer-Encoding"), "chunked")
        lines = [json.loads(line) for line in r.text.splitlines()]
        self.assertEqual(len(lines), GROUP_TASKS)
        self.assertEqual([t["task_id"] for t in lines], self.group["task_ids"])
        self.assertEqual(lines[0]["id"], "t0")
        self.assertEqual(lines[0]["state"], "succeeded")
        self.assertEqual(lines[-3]["state"], "failed")
        # The default format is JSON lines.
        self.assertEqual(self.export("").text, r.text)

    def test_csv_export_quotes_fields_and_defuses_formulas(self):
        r = self.export("?format=csv")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["Content-Type"], "text/csv; charset=utf-8")
        rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8"), newline="")))
        self.assertEqual(len(rows), GROUP_TASKS)
        self.assertEqual([row["task_id"] for row in rows], self.group["task_ids"])
        by_ref = {row["id"]: row for row in rows}
        self.assertEqual(by_ref["t7"]["state"], "succeeded")
        self.assertEqual(json.loads(by_ref["t7"]["result"]), {"n": 7})
        failed = by_ref["'=HYPERLINK(\"x\")"]
        self.assertEqual(failed["state"], "failed")
        self.assertIn('bad, "quoted"\nline', failed["error"])
        self.assertIn("'-1+1", by_ref)
        self.assertEqual(json.loads(by_ref["'-1+1"]["result"]), {"text": "é ünïcode"})
        self.assertGreater(int(by_ref["plain"]["finished_ms"]), 0)

    def test_malformed_export_requests_get_clear_errors(self):
        cases = [
            (f"/api/v1/groups/{self.gid}/export?format=xml", 400, "format must be jsonl or csv"),
            (f"/api/v1/groups/{self.gid}/export?format=", 400, "format must be jsonl or csv"),
            (f"/api/v1/groups/{self.gid}/export?limit=5", 400, "unknown query parameter 'limit'"),
            ("/api/v1/groups/not-an-id/export", 404, "no group"),
            ("/api/v1/groups/%ff%00/export", 404, "no group"),
            ("/api/v1/groups/00000000-0000-7000-8000-000000000000/export", 404, ""),
        ]
        for path, status, message in cases:
            with self.subTest(path=path):
                r = requests.get(self.up.url + path, timeout=10)
                self.assertEqual(r.status_code, status, r.text)
                self.assertIn(message, r.json()["error"]["message"])

    def test_a_client_that_hangs_up_mid_export_costs_nothing(self):
        # More clients hanging up than exports may run at once: each one's slot comes back.
        for _ in range(12):
            sock = socket.create_connection(("127.0.0.1", self.up.port), timeout=10)
            sock.sendall(f"GET /api/v1/groups/{self.gid}/export?format=csv HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            first = sock.recv(4096)
            self.assertIn(b"200 OK", first)
            sock.close()
        wait_until(lambda: "store group export ended" in self.up.logs() and "complete=false" in self.up.logs(), 10,
                   "the export of a client that left to end")
        def whole_export():
            r = self.export("?format=jsonl")
            return r.status_code == 200 and len(r.text.splitlines()) == GROUP_TASKS
        wait_until(whole_export, 20, "a whole export after the hang-ups")
        self.assertEqual(requests.get(self.up.url + "/healthz", timeout=5).status_code, 200)

    def test_export_streams_in_pages_without_holding_the_group(self):
        # The first bytes arrive before the whole answer exists: read one chunk, then the rest.
        r = self.export("?format=jsonl", stream=True)
        it = r.iter_content(chunk_size=None)
        first = next(it)
        self.assertTrue(first.startswith(b"{"))
        rest = b"".join(it)
        self.assertEqual(len((first + rest).splitlines()), GROUP_TASKS)

    # --- metrics --------------------------------------------------------------------------
    def test_metrics_pass_promtool_and_have_the_families_operators_expect(self):
        text = requests.get(self.up.url + "/metrics", timeout=10).text
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                               timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        names = families(text)
        for name in ("zbatch_tasks_total", "zbatch_queue_tasks_total", "zbatch_kind_tasks_total",
                     "zbatch_task_runtime_seconds", "zbatch_task_queue_wait_seconds", "zbatch_queue_depth",
                     "zbatch_queue_running", "zbatch_queue_scheduled", "zbatch_queue_reserved", "zbatch_dead_letters",
                     "zbatch_worker_slots", "zbatch_worker_busy_slots", "zbatch_worker_processed_tasks",
                     "zbatch_store_event_lag", "zbatch_router_commits_total", "zbatch_router_syncs_total",
                     "zbatch_router_event_seq", "zbatch_router_up"):
            self.assertIn(name, names)
        self.assertRegex(text, r'zbatch_kind_tasks_total\{kind="echo",event="succeeded"\} 2499\n')
        self.assertRegex(text, r'zbatch_kind_tasks_total\{kind="fail",event="failed"\} 1\n')
        self.assertRegex(text, r'zbatch_queue_tasks_total\{queue="default",event="started"\} 2500\n')
        self.assertRegex(text, r"zbatch_dead_letters 1\n")
        self.assertRegex(text, r'zbatch_task_queue_wait_seconds_bucket\{le="7200"\} \d+\n')
        self.assertRegex(text, r'zbatch_task_runtime_seconds_bucket\{le="3600"\} \d+\n')
        self.assertRegex(text, r"zbatch_task_queue_wait_seconds_count 2500\n")
        # The router's turns and syncs, measured: this cluster has committed and synced.
        for name in ("zbatch_router_turn_seconds", "zbatch_router_sync_seconds"):
            self.assertIn(name, names)
            count = re.search(name + r"_count (\d+)\n", text)
            self.assertTrue(count and int(count.group(1)) > 0, name)
            self.assertRegex(text, name + r'_bucket\{le="5e-05"\} \d+\n')
        stats = requests.get(self.up.url + "/api/v1/inspect/stats", timeout=10).json()["router"]
        self.assertEqual(len(stats["turn_time"]["buckets"]), len(stats["turn_time"]["bounds_us"]) + 1)
        self.assertEqual(stats["turn_time"]["count"], sum(stats["turn_time"]["buckets"]))
        self.assertGreater(stats["sync_time"]["count"], 0)

    def test_grafana_dashboard_names_only_families_that_exist(self):
        with open(os.path.join(ROOT, "docs", "grafana-zbatch.json")) as f:
            dashboard = json.load(f)
        text = requests.get(self.up.url + "/metrics", timeout=10).text
        served = families(text)
        # A histogram's family serves _bucket, _sum and _count.
        series = served | {f"{n}{s}" for n in served for s in ("_bucket", "_sum", "_count")}
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        self.assertGreaterEqual(len(exprs), 10)
        for expr in exprs:
            named = set(re.findall(r"\bzbatch_[a-z_]+", expr))
            self.assertTrue(named, expr)
            self.assertLessEqual(named, series, expr)


def anonymous_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/PID/status")


class ExportMemory(unittest.TestCase):
    def test_exporting_100000_tasks_holds_one_page_not_the_group(self):
        with Up(BINARY) as up:
            r = requests.post(up.url + "/api/v1/tasks", json={"tasks": [{"kind": "noop", "id": f"t{i}"} for i in range(100000)]},
                              timeout=120)
            self.assertEqual(r.status_code, 201, r.text)
            gid = r.json()["group_id"]
            wait_group_ready(up.url, gid, timeout=240)
            before = anonymous_rss_kb(up.proc.pid)
            peak = before
            lines = size = 0
            # The store's heap (anonymous memory; LMDB's pages are file-backed) is sampled
            # between chunks as the client reads them.
            with requests.get(f"{up.url}/api/v1/groups/{gid}/export?format=csv", stream=True, timeout=60) as resp:
                self.assertEqual(resp.status_code, 200)
                for chunk in resp.iter_content(65536):
                    size += len(chunk)
                    lines += chunk.count(b"\n")
                    peak = max(peak, anonymous_rss_kb(up.proc.pid))
            self.assertEqual(lines, 100001)
            self.assertGreater(size, 10 << 20)
            self.assertLess(peak - before, 4096, f"heap grew {peak - before} KB for a {size >> 20} MB export")
            print(f"\nexport: 100,000 tasks, {size >> 20} MB of CSV, store heap +{peak - before} KB", file=sys.stderr)


class HostileLabels(unittest.TestCase):
    def test_a_worker_name_with_quotes_backslashes_and_newlines_keeps_metrics_valid(self):
        with Up(BINARY) as up:
            name = 'ev"il\\na\nme'
            w = subprocess.Popen([BINARY, "worker", "--router", up.backend, "--hostname", name],
                                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL)
            try:
                wait_until(lambda: len(requests.get(up.url + "/api/v1/workers", timeout=5).json()) == 2, 20, "2 workers")
                text = requests.get(up.url + "/metrics", timeout=10).text
                check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                                       timeout=30)
                self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
                self.assertIn('zbatch_worker_slots{worker="ev\\"il\\\\na\\nme",host=', text)
            finally:
                os.killpg(w.pid, signal.SIGTERM)
                w.wait(timeout=15)


class History(unittest.TestCase):
    """The per-second history and the worker totals outlive a store restart and a router restart."""

    def series_sum(self, url, field, since_ms):
        r = requests.get(url + "/api/v1/series", params={"since": since_ms, "until": int(time.time() * 1000) + 2000},
                         timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        return sum(r.json()[field])

    def test_history_survives_a_store_restart_and_worker_totals_a_router_restart(self):
        with Cluster(BINARY, split=True) as c:
            try:
                since = int(time.time() * 1000) - 2000
                g = submit_group(c.url, [{"kind": "echo", "payload": {"i": i}} for i in range(300)])
                wait_group_ready(c.url, g["group_id"])
                self.assertEqual(self.series_sum(c.url, "received", since), 300)
                self.assertEqual(self.series_sum(c.url, "succeeded", since), 300)
                hist = requests.get(c.url + "/api/v1/series", params={"since": since}, timeout=10).json()
                self.assertTrue(any(v is not None for v in hist["wait_ms"]["p95"]))
                self.assertEqual(sum(hist["queues"]["default"]["started"]), 300)

                c.kill("store")
                c.start_store()
                c.wait_ready()
                self.assertEqual(self.series_sum(c.url, "received", since), 300, "kept, and not counted twice")

                stats = requests.get(c.url + "/api/v1/stats", timeout=10).json()
                (name, totals), = stats["workers"].items()
                self.assertEqual(totals["succeeded"], 300)
                self.assertEqual(totals["started"], {"default": 300})

                c.kill("router", signal.SIGTERM)
                c.start("router", ["router", "--data", c.path("data"), "--frontend", c.frontend,
                                   "--backend", c.backend, "--events", c.events])
                wait_until(lambda: [w["name"] for w in requests.get(c.url + "/api/v1/workers", timeout=5).json()] == [name],
                           30, "the worker back at the restarted router")
                c.wait_ready()
                g = submit_group(c.url, [{"kind": "echo", "payload": {"i": i}} for i in range(200)])
                wait_group_ready(c.url, g["group_id"])
                def totals_reach_500():
                    w = requests.get(c.url + "/api/v1/stats", timeout=5).json()["workers"][name]
                    return w["succeeded"] == 500
                wait_until(totals_reach_500, 20, "lifetime totals of 500")
                session = requests.get(c.url + "/api/v1/workers", timeout=5).json()[0]["processed"]
                self.assertLess(session, 500, "the router's own count started over")
            except BaseException:
                print(c.logs(), file=sys.stderr)
                raise


class Streams(unittest.TestCase):
    def test_256_event_streams_by_default_and_the_257th_is_refused(self):
        with Up(BINARY) as up:
            streams = []
            try:
                for i in range(256):
                    r = requests.get(up.url + "/api/v1/events", stream=True, timeout=10)
                    self.assertEqual(r.status_code, 200, f"stream {i + 1}")
                    streams.append(r)
                r = requests.get(up.url + "/api/v1/events", stream=True, timeout=10)
                self.assertEqual(r.status_code, 503)
                self.assertEqual(r.json()["error"]["message"], "too many event streams open")
                r.close()
                # Every one of the 256 is live: an event reaches the last one opened and the first.
                requests.post(up.url + "/api/v1/tasks", json={"kind": "noop"}, timeout=5)
                for s in (streams[0], streams[-1]):
                    lines = s.iter_lines()
                    self.assertTrue(any(line.startswith(b"data: ") for line in (next(lines) for _ in range(3))))
            finally:
                for s in streams:
                    s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
