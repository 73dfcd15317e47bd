"""MCP over Streamable HTTP end to end: HTTP → router → worker → an MCP server by URL → store.

The real @modelcontextprotocol/server-everything (npm, in its streamableHttp mode, started here
on a free loopback port and stopped here) answers the protocol done right: calls, lists,
tool errors against protocol errors, progress, cancellation at the soft time limit, a server
killed mid-call and restarted. hostile_mcp.py answers it done wrong."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import requests

from cluster import Cluster, config_file, free_port, wait_until
from hostile_mcp import HostileMcp
from npm_packages import npm_install

BINARY = sys.argv.pop(1)
NPM_DIR = sys.argv.pop(1)
MCP_PACKAGES = ["@modelcontextprotocol/server-everything@2026.8.31",
                "@modelcontextprotocol/server-filesystem@2026.8.31"]
SERVER = os.path.join("@modelcontextprotocol", "server-everything", "dist", "index.js")


class EverythingOverHttp:
    """server-everything's Streamable HTTP mode on `port`, its output in a file."""

    def __init__(self, modules, port, log_path):
        self.modules, self.port, self.log_path = modules, port, log_path
        self.proc = None
        self.start()

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["node", os.path.join(self.modules, SERVER), "streamableHttp"],
                                     env=dict(os.environ, PORT=str(self.port)), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        wait_until(self.accepts, 30, f"server-everything listening on {self.port}")

    def accepts(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"server-everything exited: {self.log()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def posts(self):
        return self.log().count("Received MCP POST request")

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self):
        self.kill()
        self.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/mcp"


class McpOverHttp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        modules = npm_install(NPM_DIR, MCP_PACKAGES, [SERVER])
        cls.tmp = tempfile.TemporaryDirectory(prefix="zbatch-mcp-http-")
        cls.addClassCleanup(cls.tmp.cleanup)
        root = cls.tmp.name
        cls.everything = EverythingOverHttp(modules, free_port(), os.path.join(root, "everything.log"))
        cls.addClassCleanup(cls.everything.kill)
        cls.flaky = EverythingOverHttp(modules, free_port(), os.path.join(root, "flaky.log"))
        cls.addClassCleanup(cls.flaky.kill)
        cls.hostile = HostileMcp()
        cls.addClassCleanup(cls.hostile.close)
        servers = [("everything", cls.everything.url, 20), ("flaky", cls.flaky.url, 20)]
        modes = ["paged", "loop", "badjson", "wrongid", "nodata", "html", "huge", "expire", "oldrev", "newrev",
                 "toolerror", "rpcerror", "ping", "plain", "stateless", "nodiscover"]
        servers += [(m, cls.hostile.url(m), 5) for m in modes]
        servers += [("hang", cls.hostile.url("hang"), 1), ("hang_long", cls.hostile.url("hang"), 30)]
        config = "".join(textwrap.dedent(f"""
            [[mcp_server]]
            name = "{name}"
            url = "{url}"
            call_timeout = {timeout}
            connect_timeout = 2
            """) for name, url, timeout in servers)
        config += textwrap.dedent("""
            [[queue]]
            name = "mcp_operations"
            max_retries = 4
            retry_backoff = 0.5
            retry_jitter = false
            """)
        path = config_file(root, config)
        cls.cluster = Cluster(BINARY, up_args=["--config", path])
        cls.addClassCleanup(cls.cluster.close)
        cls.url = cls.cluster.url
        wait_until(lambda: any("everything" in w.get("mcp_servers", []) for w in requests.get(
            f"{cls.url}/api/v1/inspect/registered", timeout=5).json()["workers"]), 20, "the worker registered")

    def batch(self, tasks, timeout=60):
        r = requests.post(f"{self.url}/batch/celery/mcp-operations", json={"tasks": tasks}, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        gid = r.json()["group_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["ready"], timeout,
                   "the MCP batch done\n" + self.cluster.logs()[-4000:])
        return {t["id"]: t for t in requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["tasks"]}

    def events(self, task):
        return requests.get(f"{self.url}/api/v1/tasks/{task['task_id']}/events", timeout=10).json()["events"]

    # --- the real server ----------------------------------------------------------------------
    def test_tools_call_and_list_over_http(self):
        by = self.batch([
            {"id": "h-echo", "server": "everything", "tool": "echo", "arguments": {"message": "over http"}},
            {"id": "h-sum", "server": "everything", "tool": "get-sum", "arguments": {"a": 2, "b": 3}},
            {"id": "h-list", "server": "everything", "method": "tools/list"},
        ])
        self.assertEqual(by["h-echo"]["state"], "succeeded", by["h-echo"])
        self.assertEqual(by["h-echo"]["result"]["content"][0]["text"], "Echo: over http")
        self.assertIn("5", by["h-sum"]["result"]["content"][0]["text"])
        names = [t["name"] for t in by["h-list"]["result"]["tools"]]
        self.assertIn("echo", names)
        self.assertIn("trigger-long-running-operation", names)
        self.assertNotIn("nextCursor", by["h-list"]["result"])

    def test_a_tool_error_and_a_protocol_error_have_their_own_classes(self):
        by = self.batch([
            {"id": "h-toolerr", "server": "everything", "tool": "get-sum", "arguments": {"a": "two", "b": 3}},
            {"id": "h-notool", "server": "everything", "tool": "no-such-tool", "arguments": {}},
            {"id": "h-rpcerr", "server": "everything", "method": "resources/read", "uri": "zbatch://no-such-resource"},
        ])
        for tid in ("h-toolerr", "h-notool"):
            self.assertEqual(by[tid]["state"], "failed", by[tid])
            self.assertTrue(by[tid]["error"].startswith("McpToolError: "), by[tid]["error"])
        self.assertIn("no-such-tool", by["h-notool"]["error"])
        self.assertEqual(by["h-rpcerr"]["state"], "failed", by["h-rpcerr"])
        self.assertTrue(by["h-rpcerr"]["error"].startswith("McpError: -32602 "), by["h-rpcerr"]["error"])
        # Neither is retried: the server answered, and will answer the same again.
        for t in by.values():
            self.assertEqual(t["attempt"], 1, t)

    def test_progress_notifications_are_counted_in_the_result(self):
        by = self.batch([{"id": "h-progress", "server": "everything", "tool": "trigger-long-running-operation",
                          "arguments": {"duration": 1, "steps": 4}}])
        t = by["h-progress"]
        self.assertEqual(t["state"], "succeeded", json.dumps(t)[:2000])
        self.assertIn("Long running operation completed", t["result"]["content"][0]["text"])
        self.assertEqual(t["result"]["_meta"]["zbatch/progress"], {"notifications": 4, "progress": 4, "total": 4})

    def test_the_soft_time_limit_cancels_a_long_call(self):
        started = time.monotonic()
        by = self.batch([{"id": "h-cancel", "server": "everything", "tool": "trigger-long-running-operation",
                          "arguments": {"duration": 60, "steps": 120}, "soft_time_limit": 2}])
        t = by["h-cancel"]
        self.assertLess(time.monotonic() - started, 30)
        self.assertEqual(t["state"], "failed", t)
        self.assertIn("SoftTimeLimitExceeded", t["error"])
        self.assertIn("Cancelled: the MCP call was cancelled after ", t["error"])
        self.assertIn("progress notifications", t["error"])
        # The worker and the server go on serving.
        again = self.batch([{"id": "h-after-cancel", "server": "everything", "tool": "echo",
                             "arguments": {"message": "still here"}}])
        self.assertEqual(again["h-after-cancel"]["result"]["content"][0]["text"], "Echo: still here")

    def test_a_server_killed_mid_call_is_retried_on_a_new_session(self):
        before = self.flaky.posts()
        r = requests.post(f"{self.url}/batch/celery/mcp-operations", json={"tasks": [
            {"id": "h-killed", "server": "flaky", "tool": "trigger-long-running-operation",
             "arguments": {"duration": 3, "steps": 3}}]}, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        gid = r.json()["group_id"]
        # initialize, notifications/initialized, tools/call: the call is under way.
        wait_until(lambda: self.flaky.posts() >= before + 3, 20, "the call reached the server")
        self.flaky.restart()
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["ready"], 60,
                   "the killed call's task done\n" + self.cluster.logs()[-4000:])
        t = requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["tasks"][0]
        self.assertEqual(t["state"], "succeeded", json.dumps(t)[:3000])
        self.assertGreaterEqual(t["attempt"], 2, t)
        errors = [e["error"] or "" for e in self.events(t)]
        self.assertTrue(any(e.startswith("McpServerLost: flaky: ") for e in errors), errors)
        # A session the restarted server does not know (it answers 400) is made anew, in the call.
        self.flaky.restart()
        by = self.batch([{"id": "h-stale", "server": "flaky", "tool": "echo", "arguments": {"message": "anew"}}])
        self.assertEqual(by["h-stale"]["state"], "succeeded", by["h-stale"])
        self.assertEqual(by["h-stale"]["result"]["content"][0]["text"], "Echo: anew")
        self.assertEqual(by["h-stale"]["attempt"], 1)

    # --- hostile replies ----------------------------------------------------------------------
    def test_lists_follow_next_cursor_with_a_bound(self):
        by = self.batch([
            {"id": "x-paged", "server": "paged", "method": "tools/list"},
            {"id": "x-loop", "server": "loop", "method": "tools/list"},
        ])
        self.assertEqual([t["name"] for t in by["x-paged"]["result"]["tools"]], ["t1", "t2", "t3", "t4"])
        self.assertNotIn("nextCursor", by["x-paged"]["result"])
        cursors = [r["body"]["params"].get("cursor") for r in self.hostile.seen("paged")
                   if r["body"] and r["body"].get("method") == "tools/list"]
        self.assertEqual(cursors, [None, "p2", "p3"])
        # A task that gives a cursor gets that one page.
        page = self.batch([{"id": "x-page", "server": "paged", "method": "tools/list", "cursor": "p2"}])["x-page"]
        self.assertEqual(page["result"], {"tools": [{"name": "t3", "inputSchema": {"type": "object"}}], "nextCursor": "p3"})
        self.assertEqual(by["x-loop"]["state"], "failed")
        self.assertEqual(by["x-loop"]["error"], "McpBadReply: the server gave the cursor 'same' twice (a list that never ends)")

    def test_hostile_replies_fail_with_a_clear_error(self):
        call = lambda tid, server: {"id": tid, "server": server, "tool": "echo", "arguments": {"message": "x"}}
        by = self.batch([call("x-badjson", "badjson"), call("x-wrongid", "wrongid"), call("x-nodata", "nodata"),
                         call("x-html", "html"), call("x-huge", "huge"), call("x-toolerror", "toolerror"),
                         call("x-rpcerror", "rpcerror")], timeout=90)
        expected = {
            "x-badjson": "McpBadReply: the reply is not a JSON-RPC message",
            "x-wrongid": "McpBadReply: the reply does not answer request",
            "x-nodata": "McpBadReply: the event stream ended without the response to request",
            "x-html": "McpBadReply: the reply's Content-Type is 'text/html'",
            "x-huge": "McpBadReply: the reply passed 64 MiB",
            "x-toolerror": "McpToolError: the tool broke",
            "x-rpcerror": "McpError: -32601 Method not found",
        }
        for tid, start in expected.items():
            self.assertEqual(by[tid]["state"], "failed", by[tid])
            self.assertTrue(by[tid]["error"].startswith(start), (tid, by[tid]["error"]))
            self.assertEqual(by[tid]["attempt"], 1, tid)
        # A session that gave a bad reply is ended (DELETE) and not used again.
        deletes = [r for r in self.hostile.seen("badjson") if r["verb"] == "DELETE"]
        self.assertTrue(deletes and deletes[0]["headers"].get("mcp-session-id", "").startswith("session-"), deletes)
        # The worker is unharmed.
        by = self.batch([call("x-after", "plain")])
        self.assertEqual(json.loads(by["x-after"]["result"]["content"][0]["text"]), {"message": "x"})

    def test_sessions_and_revisions(self):
        call = lambda tid, server: {"id": tid, "server": server, "tool": "echo", "arguments": {"n": tid}}
        by = self.batch([call("s-plain", "plain"), call("s-oldrev", "oldrev"), call("s-expire", "expire"),
                         call("s-newrev", "newrev"), call("s-ping", "ping")], timeout=90)
        for tid in ("s-plain", "s-oldrev", "s-expire", "s-ping"):
            self.assertEqual(by[tid]["state"], "succeeded", by[tid])
        # A request of the server inside the stream is answered while the stream goes on.
        self.assertEqual(by["s-ping"]["result"]["content"][0]["text"], "pong")
        plain = self.hostile.seen("plain")
        init = next(r for r in plain if r["body"] and r["body"].get("method") == "initialize")
        self.assertEqual(init["body"]["params"]["protocolVersion"], "2025-06-18")
        self.assertNotIn("mcp-session-id", init["headers"])
        self.assertIn("text/event-stream", init["headers"]["accept"])
        self.assertIn("application/json", init["headers"]["accept"])
        later = [r for r in plain if r["body"] and r["body"].get("method") != "initialize"]
        self.assertTrue(later)
        for r in later:
            self.assertEqual(r["headers"].get("mcp-protocol-version"), "2025-06-18", r)
            self.assertTrue(r["headers"].get("mcp-session-id", "").startswith("session-"), r)
        call_req = next(r for r in later if r["body"].get("method") == "tools/call")
        self.assertEqual(call_req["body"]["params"]["_meta"]["progressToken"], call_req["body"]["id"])
        # 2025-03-26 has no MCP-Protocol-Version header; a server without sessions gets no id.
        for r in self.hostile.seen("oldrev"):
            self.assertNotIn("mcp-protocol-version", r["headers"], r)
            self.assertNotIn("mcp-session-id", r["headers"], r)
        # A forgotten session (404) is initialised again and the request sent again, in one attempt.
        inits = [r for r in self.hostile.seen("expire") if r["body"] and r["body"].get("method") == "initialize"]
        self.assertEqual(len(inits), 2)
        self.assertEqual(by["s-expire"]["attempt"], 1)
        # A revision this client does not speak: the server is unavailable to it, retried, then failed.
        self.assertEqual(by["s-newrev"]["state"], "failed", by["s-newrev"])
        self.assertIn("McpServerUnavailable: newrev: initialize: the server speaks protocol revision '2099-01-01'",
                      by["s-newrev"]["error"])

    def test_a_stateless_server_is_spoken_to_without_a_session(self):
        call = lambda tid, server: {"id": tid, "server": server, "tool": "echo", "arguments": {"n": tid}}
        by = self.batch([call("sl-call", "stateless"), {"id": "sl-list", "server": "stateless", "method": "tools/list"},
                         call("sl-none", "nodiscover")], timeout=90)
        self.assertEqual(by["sl-call"]["state"], "succeeded", by["sl-call"])
        self.assertEqual(json.loads(by["sl-call"]["result"]["content"][0]["text"]), {"n": "sl-call"})
        self.assertEqual(by["sl-list"]["state"], "succeeded", by["sl-list"])
        seen = self.hostile.seen("stateless")
        methods = [r["body"].get("method") for r in seen if r["body"]]
        # Each session (one per slot) asks initialize once, then server/discover, then its calls.
        self.assertGreaterEqual(methods.count("initialize"), 1, methods)
        self.assertEqual(methods.count("initialize"), methods.count("server/discover"), methods)
        self.assertEqual(methods.index("initialize"), 0, methods)
        self.assertEqual(sorted(m for m in methods if m not in ("initialize", "server/discover")),
                         ["tools/call", "tools/list"], methods)
        self.assertNotIn("notifications/initialized", methods)
        self.assertNotIn("DELETE", [r["verb"] for r in seen])
        for r in (r for r in seen if r["body"]["method"] != "initialize"):
            self.assertNotIn("mcp-session-id", r["headers"], r)
            self.assertEqual(r["headers"].get("mcp-protocol-version"), "2026-07-28", r)
            self.assertEqual(r["headers"].get("mcp-method"), r["body"]["method"], r)
            meta = r["body"]["params"]["_meta"]
            self.assertEqual(meta["io.modelcontextprotocol/protocolVersion"], "2026-07-28")
            self.assertEqual(meta["io.modelcontextprotocol/clientInfo"]["name"], "zbatch")
        # Neither initialize nor server/discover: the server is unavailable, with initialize's reason.
        self.assertEqual(by["sl-none"]["state"], "failed", by["sl-none"])
        self.assertIn("McpServerUnavailable: nodiscover: initialize:", by["sl-none"]["error"])

    def test_a_response_that_never_comes_times_out_or_is_cancelled(self):
        started = time.monotonic()
        by = self.batch([
            {"id": "x-hang", "server": "hang", "tool": "echo", "arguments": {}, "max_retries": 1},
            {"id": "x-hang-cancel", "server": "hang_long", "tool": "echo", "arguments": {}, "soft_time_limit": 1},
        ], timeout=60)
        self.assertLess(time.monotonic() - started, 25)
        self.assertEqual(by["x-hang"]["state"], "failed", by["x-hang"])
        self.assertTrue(by["x-hang"]["error"].startswith("McpTimeout: tools/call got no answer within 1000 ms"),
                        by["x-hang"]["error"])
        self.assertEqual(by["x-hang"]["attempt"], 2)
        self.assertEqual(by["x-hang-cancel"]["state"], "failed", by["x-hang-cancel"])
        self.assertIn("Cancelled: the MCP call was cancelled", by["x-hang-cancel"]["error"])
        # Each abandoned request is cancelled at the server, with its id, and its session ended.
        seen = self.hostile.seen("hang")
        calls = [r["body"]["id"] for r in seen if r["body"] and r["body"].get("method") == "tools/call"]
        cancelled = [r["body"]["params"]["requestId"] for r in seen
                     if r["body"] and r["body"].get("method") == "notifications/cancelled"]
        self.assertEqual(len(calls), 3, seen)
        self.assertEqual(sorted(cancelled), sorted(calls))
        self.assertEqual(len([r for r in seen if r["verb"] == "DELETE"]), 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
