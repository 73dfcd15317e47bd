"""The seed's four kinds of work end to end: HTTP → router → worker → store.

agent tasks talk to a stand-in Ollama server over real HTTP (no Ollama can run here);
validation runs the real checkers (python3, node, gcc/g++, bash, and in-process JSON/TOML/YAML);
tests run allow-listed profiles; MCP operations drive the reference servers from npm
(installed here with npm on first use, into the build folder)."""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

import requests

from cluster import Cluster, config_file, wait_until
from fake_ollama import FakeOllama

BINARY = sys.argv.pop(1)
NPM_DIR = sys.argv.pop(1)
MCP_PACKAGES = ["@modelcontextprotocol/server-everything@2026.8.31",
                "@modelcontextprotocol/server-filesystem@2026.8.31"]


def npm_install():
    marker = os.path.join(NPM_DIR, "node_modules", "@modelcontextprotocol", "server-filesystem", "dist", "index.js")
    if not os.path.exists(marker):
        os.makedirs(NPM_DIR, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", NPM_DIR, *MCP_PACKAGES],
                       check=True, timeout=240, stdout=subprocess.DEVNULL)
    return os.path.join(NPM_DIR, "node_modules", "@modelcontextprotocol")


JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="7" failures="1">
  <testsuite name="a" tests="4" failures="1" errors="0" skipped="1"><testcase name="x"/></testsuite>
  <testsuite name="b" tests="3" failures="0" errors="0" skipped="0"/>
</testsuites>
"""

UNITTESTS = """
import unittest

class T(unittest.TestCase):
    def test_ok(self): pass
    def test_ok_too(self): pass
    def test_fails(self): self.assertEqual(1, 2)
    @unittest.skip("not today")
    def test_skipped(self): pass
"""


class Kinds(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        mcp = npm_install()
        cls.tmp = tempfile.TemporaryDirectory(prefix="zbatch-kinds-")
        root = cls.tmp.name
        cls.workspace = os.path.join(root, "ws")
        os.makedirs(os.path.join(cls.workspace, "src"))
        with open(os.path.join(cls.workspace, "src", "good.py"), "w") as f:
            f.write("def f(x):\n    return x + 1\n")
        with open(os.path.join(cls.workspace, "src", "bad.sh"), "w") as f:
            f.write("if true; then\n  echo hi\n")
        with open(os.path.join(root, "secret.py"), "w") as f:
            f.write("x = 1\n")
        # A path that reads as inside the workspace but points out of it: only the worker can tell.
        os.symlink(os.path.join(root, "secret.py"), os.path.join(cls.workspace, "src", "escape.py"))
        project = os.path.join(root, "project")
        os.makedirs(project)
        with open(os.path.join(project, "test_sample.py"), "w") as f:
            f.write(UNITTESTS)
        with open(os.path.join(project, "report-template.xml"), "w") as f:
            f.write(JUNIT)
        cls.files_dir = os.path.join(root, "files")
        os.makedirs(cls.files_dir)
        with open(os.path.join(cls.files_dir, "notes.txt"), "w") as f:
            f.write("remember the milk\n")
        cls.ollama = FakeOllama()
        config = textwrap.dedent(f"""
            [ollama]
            host = "{cls.ollama.url}"
            model = "tiny"
            system = "You write code."
            read_timeout = 2

            [validation]
            workspace = "{cls.workspace}"
            timeout = 30

            [[test_profile]]
            name = "unittest"
            argv = ["/usr/bin/python3", "-m", "unittest", "-v"]
            cwd = "{project}"

            [[test_profile]]
            name = "junit"
            argv = ["/bin/sh", "-c", "cp report-template.xml report.xml; exit 1"]
            cwd = "{project}"
            junit = "report.xml"

            [[test_profile]]
            name = "hang"
            argv = ["/bin/sleep", "30"]
            timeout = 0.5

            [[mcp_server]]
            name = "everything"
            argv = ["node", "{mcp}/server-everything/dist/index.js", "stdio"]
            call_timeout = 20

            [[mcp_server]]
            name = "files"
            argv = ["node", "{mcp}/server-filesystem/dist/index.js", "{cls.files_dir}"]
            call_timeout = 20

            [[queue]]
            name = "agent_tasks"
            max_retries = 1
            retry_backoff = 0.05
            retry_jitter = false
        """)
        path = config_file(root, config)
        cls.cluster = Cluster(BINARY, up_args=["--config", path])
        cls.addClassCleanup(cls.cluster.close)  # also when the rest of setUpClass fails
        cls.url = cls.cluster.url
        # Test and MCP tasks are accepted once a worker announces their profile or server.
        wait_until(lambda: any("everything" in w.get("mcp_servers", []) for w in requests.get(
            f"{cls.url}/api/v1/inspect/registered", timeout=5).json()["workers"]), 20, "the worker registered")

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()
        cls.ollama.close()
        cls.tmp.cleanup()

    def batch(self, endpoint, tasks, parallel=None):
        body = {"tasks": tasks}
        if parallel:
            body["parallel"] = parallel
        r = requests.post(f"{self.url}/batch/celery/{endpoint}", json=body, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        gid = r.json()["group_id"]
        wait_until(lambda: requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()["ready"], 60,
                   f"{endpoint} batch done\n" + self.cluster.logs())
        return requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()

    def one(self, endpoint, task):
        return self.batch(endpoint, [task])["tasks"][0]

    def refused(self, endpoint, task, message):
        """Bad input is refused at submission (400), naming the task and the field."""
        r = requests.post(f"{self.url}/batch/celery/{endpoint}", json={"tasks": [task]}, timeout=30)
        self.assertEqual(r.status_code, 400, (task, r.text))
        self.assertIn(message, r.json()["error"]["message"], task)

    # --- agent tasks --------------------------------------------------------------------------
    def test_agent_task_streams_a_chat_from_ollama(self):
        t = self.one("agent-tasks", {"id": "a1", "description": "Create hello.py",
                                     "files": {"spec.md": "print hello"}, "options": {"temperature": 0}})
        self.assertEqual(t["state"], "succeeded", t)
        self.assertEqual(t["result"]["message"]["content"], "You said: Create hello.py")
        self.assertEqual(t["result"]["model"], "tiny")
        self.assertGreater(t["result"]["completion_tokens"], 0)
        sent = next(r for r in self.ollama.requests if "Create hello.py" in r["messages"][-1]["content"])
        self.assertEqual(sent["messages"][0], {"role": "system", "content": "You write code."})
        self.assertIn("--- spec.md ---\nprint hello", sent["messages"][-1]["content"])
        self.assertEqual(sent["options"], {"temperature": 0})
        self.assertTrue(sent["stream"])

    def test_agent_errors_map_to_retry_or_failure(self):
        g = self.batch("agent-tasks", [
            {"id": "e500", "description": "boom [500]"},
            {"id": "e404", "description": "which [404]"},
            {"id": "estream", "description": "half [stream-error] way"},
            {"id": "ecut", "description": "cut [cut] off"},
            {"id": "slow", "description": "take [slow] it easy"},
        ])
        by = {t["id"]: t for t in g["tasks"]}
        self.assertEqual((by["e500"]["state"], by["e500"]["attempt"]), ("failed", 2), "5xx is retried")
        self.assertTrue(by["e500"]["error"].startswith("OllamaServerError: HTTP 500"), by["e500"]["error"])
        self.assertEqual((by["e404"]["state"], by["e404"]["attempt"]), ("failed", 1), "4xx is final")
        self.assertIn("not found", by["e404"]["error"])
        self.assertTrue(by["estream"]["error"].startswith("OllamaError: out of memory"), by["estream"]["error"])
        self.assertEqual(by["ecut"]["attempt"], 2)
        self.refused("agent-tasks", {"id": "nodesc"}, "tasks[0].description: required")
        self.refused("agent-tasks", {"id": "titled", "title": "a title", "description": "d"}, "tasks[0].title: unknown field")
        self.assertEqual(by["slow"]["state"], "succeeded", by["slow"])

    def test_agent_with_no_server_is_retried_then_fails(self):
        # A worker whose Ollama is down: the error is transient, the worker keeps running.
        with Cluster(BINARY, env={"OLLAMA_HOST": "127.0.0.1:9"}) as c:
            r = requests.post(f"{c.url}/api/v1/tasks", json={"queue": "agent_tasks", "payload": {"description": "hi"},
                                                             "max_retries": 0}, timeout=10)
            tid = r.json()["task_id"]
            wait_until(lambda: requests.get(f"{c.url}/api/v1/tasks/{tid}", timeout=5).json()["state"] == "failed",
                       20, "failed")
            self.assertTrue(requests.get(f"{c.url}/api/v1/tasks/{tid}", timeout=5).json()["error"]
                            .startswith("OllamaUnavailable"))

    # --- validation ---------------------------------------------------------------------------
    def test_validation_of_each_language(self):
        cases = [
            ("python", "def f(:\n  pass\n", 1), ("python", "x = 1\n", None),
            ("javascript", "const a = 1;\nconst b = ;\n", 2), ("javascript", "const a = 1;\n", None),
            ("c", "int main(void) { return 0 }\n", 1), ("cpp", "#include <vector>\nint main() { std::vector<int> v; }\n", None),
            ("cpp", "int main() {\n  undefined_call();\n}\n", 2),
            ("json", '{"a": 1,\n "b": }', 2), ("json", "[1, 2]", None),
            ("toml", "a = 1\nb = = 2\n", 2), ("toml", "[x]\ny = 'z'\n", None),
            ("yaml", "a: [1, 2\nb: 3\n", None), ("yaml", "a: 1\nb:\n  - 2\n", None),
            ("shell", "if true; then\n  echo x\n", 3), ("shell", "echo ok\n", None),
        ]
        g = self.batch("validation", [{"id": f"{lang}-{i}", "language": lang, "code": code}
                                      for i, (lang, code, _) in enumerate(cases)], parallel=2)
        by = {t["id"]: t for t in g["tasks"]}
        for i, (lang, code, line) in enumerate(cases):
            t = by[f"{lang}-{i}"]
            self.assertEqual(t["state"], "succeeded", t)
            r = t["result"]
            if line is None and lang != "yaml":
                self.assertTrue(r["passed"], (lang, code, r))
                self.assertEqual(r["diagnostics"], [])
            elif lang == "yaml" and i == 11:
                self.assertFalse(r["passed"], r)
                self.assertGreaterEqual(r["diagnostics"][0]["line"], 1)
            elif line is not None:
                self.assertFalse(r["passed"], (lang, code, r))
                d = r["diagnostics"][0]
                self.assertEqual(d["line"], line, (lang, r))
                self.assertTrue(d["message"], r)
                self.assertTrue(d["file"].startswith("input."), d)

    def test_validation_of_workspace_files_and_bad_input(self):
        t = self.one("validation", {"language": "python", "files": ["src/good.py"]})
        self.assertTrue(t["result"]["passed"], t)
        t = self.one("validation", {"language": "shell", "files": ["src/bad.sh"]})
        self.assertFalse(t["result"]["passed"])
        self.assertEqual(t["result"]["diagnostics"][0]["file"], "src/bad.sh")
        # What only the worker can know fails the task there ...
        for task, error in [
            ({"language": "python", "files": ["src/escape.py"]}, "PathOutsideWorkspace"),
            ({"language": "python", "files": ["src/missing.py"]}, "FileNotFound"),
        ]:
            t = self.one("validation", task)
            self.assertEqual(t["state"], "failed", t)
            self.assertTrue(t["error"].startswith(error), (task, t["error"]))
        # ... and the rest is refused at submission.
        for task, message in [
            ({"language": "python", "files": ["../secret.py"]}, "tasks[0].files[0]: '../secret.py' is outside the workspace"),
            ({"language": "python", "files": ["/etc/passwd"]}, "is outside the workspace"),
            ({"language": "cobol", "code": "x"}, "tasks[0].language: unknown language 'cobol'"),
            ({"code": "x = 1"}, "tasks[0].language: required"),
            ({"language": "python"}, "tasks[0]: a validation task needs \"code\""),
            ({"language": "python", "code": 5}, "tasks[0].code: must be a string"),
        ]:
            self.refused("validation", task, message)

    # --- tests --------------------------------------------------------------------------------
    def test_profiles_report_counts(self):
        g = self.batch("tests", [{"id": "u", "profile": "unittest"}, {"id": "j", "profile": "junit"}])
        by = {t["id"]: t for t in g["tasks"]}
        u = by["u"]["result"]
        self.assertEqual((u["total"], u["passed"], u["failed"], u["skipped"], u["source"]), (4, 2, 1, 1, "summary"), u)
        self.assertFalse(u["ok"])
        self.assertIn("test_fails", u["log_tail"])
        j = by["j"]["result"]
        self.assertEqual((j["total"], j["passed"], j["failed"], j["skipped"], j["source"]), (7, 5, 1, 1, "junit"), j)
        self.assertEqual(j["exit_code"], 1)

    def test_profiles_are_an_allow_list(self):
        t = self.one("tests", {"profile": "hang"})
        self.assertEqual(t["state"], "failed", t)
        self.assertTrue(t["error"].startswith("TimeLimitExceeded"), t["error"])
        for task, message in [
            ({"profile": "rm -rf /"}, "tasks[0].profile: unknown test profile 'rm -rf /' (hang, junit, unittest)"),
            ({"profile": "unittest", "argv": ["/bin/sh"]}, "tasks[0].argv: a test task names a profile"),
            ({"command": "ls"}, "tasks[0].command: a test task names a profile"),
        ]:
            self.refused("tests", task, message)

    # --- MCP ----------------------------------------------------------------------------------
    def test_mcp_tools_and_resources_over_stdio(self):
        g = self.batch("mcp-operations", [
            {"id": "echo", "server": "everything", "tool": "echo", "arguments": {"message": "hi"}},
            {"id": "sum", "server": "everything", "tool": "get-sum", "arguments": {"a": 2, "b": 3}},
            {"id": "list", "server": "everything", "method": "tools/list"},
            {"id": "read", "server": "files", "tool": "read_text_file",
             "arguments": {"path": os.path.join(self.files_dir, "notes.txt")}},
            {"id": "outside", "server": "files", "tool": "read_text_file", "arguments": {"path": "/etc/passwd"}},
            {"id": "notool", "server": "everything", "tool": "no-such-tool", "arguments": {}},
        ], parallel=2)
        by = {t["id"]: t for t in g["tasks"]}
        self.assertEqual(by["echo"]["result"]["content"][0]["text"], "Echo: hi", by["echo"])
        self.assertIn("5", by["sum"]["result"]["content"][0]["text"])
        self.assertIn("echo", [tool["name"] for tool in by["list"]["result"]["tools"]])
        self.assertIn("remember the milk", by["read"]["result"]["content"][0]["text"])
        self.assertEqual(by["outside"]["state"], "failed")
        self.assertTrue(by["outside"]["error"].startswith("McpToolError"), by["outside"]["error"])
        self.assertEqual(by["notool"]["state"], "failed")
        self.assertTrue(by["notool"]["error"].startswith("Mcp"), by["notool"]["error"])
        self.refused("mcp-operations", {"id": "noserver", "server": "nope", "tool": "echo"},
                     "tasks[0].server: unknown MCP server 'nope' (everything, files)")
        self.refused("mcp-operations", {"id": "notoolname", "server": "everything"}, "tasks[0].tool: required")

    # --- all four at once ---------------------------------------------------------------------
    def test_mixed_batch_of_the_four_kinds_with_parallel_limits(self):
        r = requests.post(f"{self.url}/api/v1/tasks", json={"parallel": 2, "tasks": [
            {"queue": "agent_tasks", "payload": {"description": "mixed one"}},
            {"queue": "validation", "payload": {"language": "json", "code": "{}"}},
            {"queue": "tests", "payload": {"profile": "junit"}},
            {"queue": "mcp_operations", "payload": {"server": "everything", "tool": "echo", "arguments": {"message": "m"}}},
        ] * 3}, timeout=30)
        self.assertEqual(r.status_code, 201, r.text)
        gid = r.json()["group_id"]
        peak = 0

        def ready():
            nonlocal peak
            g = requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()
            peak = max(peak, g["running"])
            return g["ready"]
        wait_until(ready, 60, "mixed batch")
        g = requests.get(f"{self.url}/api/v1/groups/{gid}", timeout=10).json()
        self.assertEqual((g["total"], g["successful"]), (12, 12), json.dumps(g)[:2000])
        self.assertLessEqual(peak, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
