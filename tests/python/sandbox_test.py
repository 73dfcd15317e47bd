"""Untrusted task data touches only its own files, through a running cluster (HTTP → router →
worker → store), with real checkers and real child processes:

- symbolic links planted at every path the worker used to make predictable (validation's old
  $TMPDIR/zbatch-validate-<id>-<attempt>, a test profile's JUnit report and its folder)
  redirect nothing, and no scratch folder is left behind;
- C and C++ includes of files outside the task (/etc/passwd, ../../etc/hosts, and the ways to
  spell them: <...>, macros, digraphs, comments, line splices, __has_include, _Pragma) are
  refused before compiling, and so are names token pasting could build; no result holds a byte
  of the file, and legitimate includes work;
- a symbolic link inside a "files" workspace that points out of it fails the task, for every
  language and for a header a source includes;
- handlers, test profiles and MCP servers that exceed their CPU time, write a file past their
  limit, allocate or open too much, or fork without end fail with their clear error, and the
  worker keeps running."""
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import requests

from cluster import Cluster, config_file, wait_until

BINARY = sys.argv.pop(1)

SECRET = "zbatch-secret-4f7c2a"  # in a file outside the workspace: must never show in a result

MCP_SERVER = r'''
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    method, result = msg.get("method"), None
    if method == "initialize":
        result = {"protocolVersion": "2024-11-05", "capabilities": {"tools": {}},
                  "serverInfo": {"name": "spinner", "version": "1"}}
    elif method == "tools/call":
        if msg["params"]["name"] == "spin":
            while True:
                pass
        result = {"content": [{"type": "text", "text": "pong"}]}
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
'''

FORKER = r'''
import json, os, sys, time
sys.stdin.read()
forked = 0
try:
    while forked < 400:
        if os.fork() == 0:
            time.sleep(120)
            os._exit(0)
        forked += 1
except OSError as e:
    print(f"forked {forked} processes, then: {e}", file=sys.stderr)
    sys.exit(3)
print(json.dumps({"forked": forked}))
'''


def processes_named(marker):
    """Pids of the processes whose command line holds `marker`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


class Sandbox(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="zbatch-sandbox-")
        root = cls.root = cls.tmp.name
        os.chmod(root, 0o755)
        cls.tmpdir = os.path.join(root, "tmp")  # the worker's TMPDIR: where the old paths were
        os.makedirs(cls.tmpdir)
        cls.outside = os.path.join(root, "outside")
        os.makedirs(cls.outside)
        with open(os.path.join(cls.outside, "secret.h"), "w") as f:
            f.write(f"int {SECRET} = 1;\n")
        with open(os.path.join(cls.outside, "secret.py"), "w") as f:
            f.write(f"{SECRET} = 1\n")
        ws = cls.workspace = os.path.join(root, "ws")
        os.makedirs(os.path.join(ws, "src"))
        files = {
            "src/good.py": "x = 1\n",
            "src/main.c": '#include "util.h"\nint main(void) { return twice(2); }\n',
            "src/util.h": "int twice(int x) { return x * 2 }\n",  # a missing ';': reported on util.h
            "src/evil.c": '#include "evil.h"\nint x;\n',
            "src/ok.cpp": '#include <vector>\n#include <cstdlib>\n#include "util2.h"\nint main() { std::vector<int> v; return f(); }\n',
            "src/util2.h": "inline int f() { return 0; }\n",
        }
        for name, text in files.items():
            with open(os.path.join(ws, name), "w") as f:
                f.write(text)
        os.symlink("good.py", os.path.join(ws, "src", "alias.py"))  # inside: fine
        os.symlink(os.path.join(cls.outside, "secret.h"), os.path.join(ws, "src", "evil.h"))
        for ext in ("py", "js", "c", "cpp", "json", "toml", "yaml", "sh"):
            os.symlink(os.path.join(cls.outside, "secret.py"), os.path.join(ws, "src", f"escape.{ext}"))
        os.symlink(os.path.join(cls.outside, "no-such-file"), os.path.join(ws, "src", "dangling.py"))
        os.symlink(cls.outside, os.path.join(ws, "out"))

        project = cls.project = os.path.join(root, "project")
        os.makedirs(project)
        with open(os.path.join(cls.outside, "fake.xml"), "w") as f:
            f.write('<testsuite tests="99" failures="0"/>\n')
        with open(os.path.join(cls.outside, "report.xml"), "w") as f:
            f.write('<testsuite tests="98" failures="0"/>\n')
        os.symlink(cls.outside, os.path.join(project, "out"))  # as the tests under test might
        handlers = os.path.join(root, "handlers")
        os.makedirs(handlers)
        server = os.path.join(handlers, "mcp_spinner.py")
        with open(server, "w") as f:
            f.write(MCP_SERVER)
        cls.forker = os.path.join(handlers, "forker_4f7c.py")
        with open(cls.forker, "w") as f:
            f.write(FORKER)

        py = "/usr/bin/python3"
        config = textwrap.dedent(f"""
            [validation]
            workspace = "{ws}"
            timeout = 30

            [[handler]]
            kind = "cpu_hog"
            argv = ["{py}", "-c", "while True: pass"]
            cpu_time = 1

            [[handler]]
            kind = "cpu_hog_stubborn"
            argv = ["{py}", "-c", "import signal\\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\\nwhile True: pass"]
            cpu_time = 1
            term_grace = 1

            [[handler]]
            kind = "big_writer"
            argv = ["{py}", "-c", "import os\\nf = open(os.path.join(os.environ['TMPDIR'], 'big'), 'wb')\\nfor _ in range(8): f.write(bytes(1 << 20)); f.flush()"]
            file_size_mb = 1

            [[handler]]
            kind = "big_writer_sh"
            argv = ["/bin/sh", "-c", "exec head -c 8388608 /dev/zero > \\"$TMPDIR/big\\""]
            file_size_mb = 1

            [[handler]]
            kind = "memory_hog"
            argv = ["{py}", "-c", "b = bytearray(2 << 30)"]
            address_space_mb = 256

            [[handler]]
            kind = "fd_hog"
            argv = ["{py}", "-c", "fs = [open('/dev/null') for _ in range(200)]"]
            open_files = 32

            [[handler]]
            kind = "surroundings"
            argv = ["{py}", "-c", "import json, os\\nprint(json.dumps({{'fds': sorted(int(f) for f in os.listdir('/proc/self/fd')), 'tmp': os.environ['TMPDIR']}}))"]

            [[test_profile]]
            name = "spin"
            argv = ["{py}", "-c", "while True: pass"]
            cpu_time = 1

            [[test_profile]]
            name = "linked_report"
            argv = ["/bin/sh", "-c", "ln -sf {cls.outside}/fake.xml report.xml; echo 'Ran 1 test in 0.0s'; echo OK"]
            cwd = "{project}"
            junit = "report.xml"

            [[test_profile]]
            name = "linked_folder"
            argv = ["/bin/sh", "-c", "echo 'Ran 1 test in 0.0s'; echo OK"]
            cwd = "{project}"
            junit = "out/report.xml"

            [[mcp_server]]
            name = "spinner"
            argv = ["{py}", "{server}"]
            call_timeout = 20
            cpu_time = 1
        """)
        path = config_file(root, config)
        cls.cluster = Cluster(BINARY, up_args=["--config", path], env={"TMPDIR": cls.tmpdir})
        cls.addClassCleanup(cls.cluster.close)  # also when the rest of setUpClass fails
        cls.url = cls.cluster.url
        wait_until(lambda: any("spinner" in w.get("mcp_servers", []) for w in requests.get(
            f"{cls.url}/api/v1/inspect/registered", timeout=5).json()["workers"]), 20, "the worker registered")

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()
        cls.tmp.cleanup()

    def submit(self, body):
        r = requests.post(f"{self.url}/api/v1/tasks", json=body, timeout=30)
        self.assertEqual(r.status_code, 201, r.text)
        return r.json()["task_id"]

    def finished(self, tid, timeout=60):
        def done():
            return requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5).json()["state"] in (
                "succeeded", "failed", "revoked")
        wait_until(done, timeout, f"task {tid}\n" + self.cluster.logs())
        return requests.get(f"{self.url}/api/v1/tasks/{tid}", timeout=5).json()

    def run_task(self, body, timeout=60):
        return self.finished(self.submit(body), timeout)

    def validate(self, payload):
        return self.run_task({"queue": "validation", "payload": payload})

    def assert_worker_keeps_running(self):
        self.assertIsNone(self.cluster.procs["up"].poll(), self.cluster.logs())
        t = self.run_task({"kind": "echo", "payload": {"still": "here"}})
        self.assertEqual(t["state"], "succeeded", t)
        self.assertEqual(t["result"], {"still": "here"})

    def assert_no_secret(self, task):
        self.assertNotIn(SECRET, json.dumps(task))

    # --- predictable paths ------------------------------------------------------------------
    def test_links_planted_at_the_old_validation_paths_redirect_nothing(self):
        victim = os.path.join(self.root, "victim")
        os.makedirs(victim, exist_ok=True)
        for language, code in [("python", "x = 1\n"), ("c", "int x;\n"), ("shell", "echo ok\n")]:
            tid = self.submit({"queue": "validation", "countdown": 1,
                               "payload": {"language": language, "code": code}})
            planted = [os.path.join(self.tmpdir, f"zbatch-validate-{tid}-{attempt}") for attempt in range(4)]
            for p in planted:
                os.symlink(victim, p)
            t = self.finished(tid)
            self.assertEqual(t["state"], "succeeded", t)
            self.assertTrue(t["result"]["passed"], t)
            self.assertEqual(os.listdir(victim), [], f"{language}: the check wrote through a planted link")
            for p in planted:
                self.assertTrue(os.path.islink(p))
                os.unlink(p)
        # Every scratch folder the checks made is gone.
        self.assertEqual([n for n in os.listdir(self.tmpdir) if n.startswith("zbatch-validate-")], [])

    def test_links_planted_at_a_test_reports_path_are_neither_read_nor_followed(self):
        t = self.run_task({"queue": "tests", "payload": {"profile": "linked_report"}})
        self.assertEqual(t["state"], "failed", t)
        self.assertTrue(t["error"].startswith("TestReportRefused: profile 'linked_report': 'report.xml' is outside"),
                        t["error"])
        # The report's folder is a link out: the stale report there is not removed, nor read.
        t = self.run_task({"queue": "tests", "payload": {"profile": "linked_folder"}})
        self.assertEqual(t["state"], "failed", t)
        self.assertTrue(t["error"].startswith("TestReportRefused: profile 'linked_folder'"), t["error"])
        self.assertTrue(os.path.exists(os.path.join(self.outside, "report.xml")))
        self.assertTrue(os.path.exists(os.path.join(self.outside, "fake.xml")))

    def test_children_see_no_worker_descriptor_and_a_private_tmpdir(self):
        t = self.run_task({"kind": "surroundings"})
        self.assertEqual(t["state"], "succeeded", t)
        self.assertEqual(t["result"]["fds"], [0, 1, 2, 3], "stdin, stdout, stderr and listdir's own")
        tmp = t["result"]["tmp"]
        self.assertEqual(os.path.dirname(tmp), self.tmpdir)
        self.assertTrue(os.path.basename(tmp).startswith("zbatch-tmp-"), tmp)
        self.assertFalse(os.path.exists(tmp), "removed with the child")

    # --- C and C++ includes -----------------------------------------------------------------
    def test_includes_of_files_outside_the_task_are_refused_without_leaking(self):
        secret = os.path.join(self.outside, "secret.h")
        cases = [
            '#include "/etc/passwd"\n',
            '#include "../../etc/hosts"\n',
            f'#include "{secret}"\n',
            f'#include <{secret}>\n',
            '#include <../../../../etc/passwd>\n',
            '#include "sub/../../etc/hosts"\n',
            f'#define F "{secret}"\n#include F\n',
            f'%:include "{secret}"\n',
            f'#/* a comment */include "{secret}"\n',
            f'/* a comment\n*/ # include "{secret}"\n',
            f'#inc\\\nlude "{secret}"\n',
            f'# include_next "{secret}"\n',
            f'#import "{secret}"\n',
            f'#if __has_include("{secret}")\n#error yes\n#endif\n',
            f'#define H __has_include\n#if H("{secret}")\n#error yes\n#endif\n',
            f'_Pragma("GCC dependency \\"{secret}\\"")\n',
            f'#pragma GCC dependency "{secret}"\n',
            # A comment opened inside what a naive reader takes for a string: the include is real.
            f'const char* s = R"x(a"/*)x";\n#include "{secret}"\n// */\n',
            # Names pasted together, which no reading of the source sees whole.
            f'#define CAT(a, b) a##b\n#if CAT(__has_, include)("{secret}")\n#error found\n#endif\n',
            f'#if defined(__has_include)\n#define CAT(a, b) a %:%: b\n#if CAT(__has_inc, lude)("{secret}")\n#endif\n#endif\n',
            f'#define S(x) #x\n#define P(a, b) _Pragma(S(GCC a##b "{secret}"))\nP(depend, ency)\n',
        ]
        for language in ("c", "cpp"):
            for code in cases:
                t = self.validate({"language": language, "code": code})
                self.assertEqual(t["state"], "failed", (language, code, t))
                self.assertTrue(t["error"].startswith("IncludeRefused: input."), (language, code, t["error"]))
                self.assertNotIn("root:", json.dumps(t))
                self.assert_no_secret(t)
        t = self.validate({"language": "c", "code": '#include "/etc/passwd"\n'})
        self.assertIn('#include "/etc/passwd" names an absolute path', t["error"])
        t = self.validate({"language": "c", "code": '#include "../../etc/hosts"\n'})
        self.assertIn("climbs out with '..'", t["error"])

    def test_legitimate_includes_still_work(self):
        t = self.validate({"language": "cpp", "code": "#include <vector>\n#include <cstdlib>\n#include <string>\n"
                                                      "#if defined(__has_include) && __has_include(<optional>)\n"
                                                      "#include <optional>\n#endif\n"
                                                      "int main() { std::vector<std::string> v; return 0; }\n"})
        self.assertEqual(t["state"], "succeeded", t)
        self.assertTrue(t["result"]["passed"], t)
        t = self.validate({"language": "c", "code": "#define CAT(a, b) a##b\nint CAT(counter_, total) = 0;\n"})
        self.assertTrue(t["result"]["passed"], t)
        t = self.validate({"language": "c", "code": '#include <stdio.h>\n#ifdef __has_include\n#endif\n'
                                                    'int main(void) { puts("hi"); return 0 }\n'})
        self.assertFalse(t["result"]["passed"], t)
        self.assertEqual([(d["file"], d["line"]) for d in t["result"]["diagnostics"]], [("input.c", 4)])
        # A workspace source and the header it includes: the header's error is reported on it.
        t = self.validate({"language": "c", "files": ["src/main.c"]})
        self.assertEqual(t["state"], "succeeded", t)
        self.assertFalse(t["result"]["passed"], t)
        self.assertIn("src/util.h", [d["file"] for d in t["result"]["diagnostics"]], t)
        t = self.validate({"language": "cpp", "files": ["src/ok.cpp"]})
        self.assertTrue(t["result"]["passed"], t)

    # --- symbolic links out of the workspace ------------------------------------------------
    def test_a_link_out_of_the_workspace_fails_the_task(self):
        languages = {"py": "python", "js": "javascript", "c": "c", "cpp": "cpp", "json": "json",
                     "toml": "toml", "yaml": "yaml", "sh": "shell"}
        for ext, language in languages.items():
            t = self.validate({"language": language, "files": [f"src/escape.{ext}"]})
            self.assertEqual(t["state"], "failed", (language, t))
            self.assertTrue(t["error"].startswith(f"PathOutsideWorkspace: 'src/escape.{ext}'"), t["error"])
            self.assert_no_secret(t)
        for path in ["src/dangling.py", "out/secret.py"]:
            t = self.validate({"language": "python", "files": [path]})
            self.assertTrue(t["error"].startswith("PathOutsideWorkspace"), (path, t["error"]))
        # A header a source includes, linked out of the workspace.
        t = self.validate({"language": "c", "files": ["src/evil.c"]})
        self.assertEqual(t["state"], "failed", t)
        self.assertEqual(t["error"], "PathOutsideWorkspace: 'src/evil.h' (included by src/evil.c line 1) is not "
                                     "inside the workspace")
        # A link that stays inside is followed.
        t = self.validate({"language": "python", "files": ["src/alias.py"]})
        self.assertTrue(t["result"]["passed"], t)

    # --- resource limits --------------------------------------------------------------------
    def test_a_handler_that_exceeds_its_cpu_time(self):
        t = self.run_task({"kind": "cpu_hog"})
        self.assertEqual(t["state"], "failed", t)
        self.assertTrue(t["error"].startswith("ResourceLimitExceeded: cpu time: the process used its 1 s of CPU "
                                              "time (SIGXCPU)"), t["error"])
        t = self.run_task({"kind": "cpu_hog_stubborn"})
        self.assertTrue(t["error"].startswith("ResourceLimitExceeded: cpu time:"), t["error"])
        self.assertIn("SIGKILL at the hard limit", t["error"])
        self.assert_worker_keeps_running()

    def test_a_handler_that_writes_a_file_bigger_than_its_limit(self):
        t = self.run_task({"kind": "big_writer_sh"})
        self.assertEqual(t["state"], "failed", t)
        self.assertEqual(t["error"], "ResourceLimitExceeded: file size: a write passed the file size limit of 1 MiB "
                                     "(SIGXFSZ)")
        # Python ignores SIGXFSZ: its write fails with EFBIG, and that is what it ends with.
        t = self.run_task({"kind": "big_writer"})
        self.assertEqual(t["state"], "failed", t)
        self.assertTrue(t["error"].startswith("ResourceLimitExceeded: file size: a write passed the file size limit "
                                              "of 1 MiB (the process got EFBIG, \"File too large\")"), t["error"])
        self.assert_worker_keeps_running()

    def test_a_handler_that_allocates_or_opens_too_much(self):
        t = self.run_task({"kind": "memory_hog"})
        self.assertEqual(t["state"], "failed", t)
        self.assertIn("MemoryError", t["error"])
        t = self.run_task({"kind": "fd_hog"})
        self.assertEqual(t["state"], "failed", t)
        self.assertTrue(t["error"].startswith("ResourceLimitExceeded: open files: the process passed its limit of 32 "
                                              "open files (EMFILE)"), t["error"])
        self.assert_worker_keeps_running()

    def test_a_test_profile_and_an_mcp_server_that_exceed_their_cpu_time(self):
        t = self.run_task({"queue": "tests", "payload": {"profile": "spin"}})
        self.assertEqual(t["state"], "failed", t)
        self.assertTrue(t["error"].startswith("ResourceLimitExceeded: cpu time:"), t["error"])
        self.assertIn("(profile 'spin')", t["error"])
        t = self.run_task({"queue": "mcp_operations", "payload": {"server": "spinner", "tool": "spin"}})
        self.assertEqual(t["state"], "failed", t)
        self.assertTrue(t["error"].startswith("ResourceLimitExceeded: cpu time:"), t["error"])
        self.assertIn("(MCP server 'spinner')", t["error"])
        t = self.run_task({"queue": "mcp_operations", "payload": {"server": "spinner", "tool": "ping"}})
        self.assertEqual(t["state"], "succeeded", t)
        self.assertEqual(t["result"]["content"][0]["text"], "pong")
        self.assert_worker_keeps_running()

    def test_a_handler_that_forks_without_end(self):
        """RLIMIT_NPROC holds for every user but root, so as root the worker runs as nobody."""
        prefix = []
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                self.skipTest("running as root without setpriv to start the worker as another user")
            nobody = pwd.getpwnam("nobody")
            prefix = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--"]
        config = os.path.join(self.root, "forker.toml")
        with open(config, "w") as f:
            f.write(textwrap.dedent(f"""
                [[handler]]
                kind = "forker"
                argv = ["/usr/bin/python3", "{self.forker}"]
                processes = 20
            """))
        os.chmod(config, 0o644)
        with Cluster(BINARY, split=True, workers=0) as c:
            log = c.path("forker-worker.log")
            with open(log, "ab") as out:
                c.procs["forker-worker"] = subprocess.Popen(
                    prefix + [BINARY, "worker", "--router", c.backend, "-c", "2", "--hostname", "forker@test",
                              "--config", config],
                    stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True,
                    env=dict(os.environ, TMPDIR="/tmp"))
            wait_until(lambda: requests.get(f"{c.url}/api/v1/inspect/registered", timeout=5).json()["workers"], 20,
                       "the worker registered\n" + c.logs())
            r = requests.post(f"{c.url}/api/v1/tasks", json={"kind": "forker"}, timeout=30)
            self.assertEqual(r.status_code, 201, r.text)
            tid = r.json()["task_id"]

            def state():
                return requests.get(f"{c.url}/api/v1/tasks/{tid}", timeout=5).json()
            wait_until(lambda: state()["state"] in ("succeeded", "failed"), 60, "the forker ended\n" + c.logs())
            t = state()
            self.assertEqual(t["state"], "failed", t)
            self.assertTrue(t["error"].startswith("ProcessExitError: exit code 3: forked "), t["error"])
            self.assertIn("Resource temporarily unavailable", t["error"])
            forked = int(t["error"].split("forked ")[1].split(" ")[0])
            self.assertLess(forked, 60, "the process limit held")
            # Everything it started went with its process group.
            wait_until(lambda: not processes_named("forker_4f7c"), 10, "the forked processes are gone")
            self.assertIsNone(c.procs["forker-worker"].poll(), c.logs())
            r = requests.post(f"{c.url}/api/v1/tasks", json={"kind": "echo", "payload": 1}, timeout=30)
            tid = r.json()["task_id"]
            wait_until(lambda: state()["state"] == "succeeded", 20, "the worker keeps running\n" + c.logs())


if __name__ == "__main__":
    unittest.main()
