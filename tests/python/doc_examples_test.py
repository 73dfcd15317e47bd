"""Every example in README.md and docs/**/*.md runs as written, against real processes.

One test per Markdown file. The file's fenced blocks are read in order:

- `bash` (also `sh`, `shell`) blocks run command by command, in the order written; a command
  goes on over the next line while a quote is open or the line ends in `\\`. Each command runs
  in its own `bash -c` with `set -o pipefail` (no shell state carries over) and must exit 0.
  `curl` fails on an HTTP error answer (`--fail-with-body`), so a request an example shows
  must be accepted, as a reader expects.
- `python` blocks run with /usr/bin/python3 and must exit 0.
- `toml` blocks are configuration: `zbatch config FILE` must accept them (exit 0).
- `text` blocks are not code (diagrams, output). A block with any other tag, or with none,
  fails the test: tag it.
- `<!-- not-run: REASON -->` on the line before a block skips that block, and only that
  block; the reason must be given. Nothing else skips a block.
- `<!-- output -->` on the line before a `text` block makes it the output of the example block
  just before: the same lines, where a number or an id stands for any number or id, `...` in
  a line for any text and a line `...` alone for any lines (or none).
- `<GROUP_ID>` and `<TASK_ID>` stand for the last group id (task id) that an earlier command or
  block of the same file printed; which ids are groups and which tasks is asked of the
  cluster. Any other `<UPPER_CASE>` placeholder fails the test.

The runner changes host and port only:
- `127.0.0.1:8000`, `localhost:8000`, `0.0.0.0:8000`: the same host, the test's HTTP port;
- `tcp://HOST:5555` / `5556` / `5557`: the test's frontend, backend and events ports
  (`router-host` becomes 127.0.0.1);
- `gpu-box:11434`, `127.0.0.1:11434` (Ollama): the stand-in server of fake_ollama.py;
- `build/zbatch`: the binary under test; a bare `zbatch` finds it first on PATH;
- where an example names no endpoint, the environment carries the test's instead of the
  defaults: ZBATCH_ROUTER, ZBATCH_FRONTEND, ZBATCH_BACKEND, ZBATCH_EVENTS,
  ZBATCH_WORKER_ROUTER, ZBATCH_HTTP, and OLLAMA_HOST; ZBATCH_CONFIG names a configuration that
  declares the MCP server `filesystem` (the npm reference server, over a temporary folder) and
  the test profile `unit` (`python3 -m unittest discover -s tests` over a small project in a
  temporary folder), as docs/kinds/mcp.md and docs/kinds/tests.md configure them;
  PYTHONPATH names clients/python, so `python` blocks import zbatch_client from the checkout
  (docs/PYTHON.md's `pip install ./clients/python`).

Each file gets its own cluster, in its own temporary folder. A command that starts a server
(`zbatch up`, `router`, `worker`, `store`) runs in the background until the file ends, and the
runner waits until it is ready (a router or worker given `--curve-secret`: until its log says
it is listening or connected, since the runner holds no key it admits); `zbatch up` and `zbatch router` first stop whatever runs (a
reader stops `make run` before starting another). Any other example that finds nothing
running gets the runner's own `zbatch up` (README's "with `make run` running"). At the end of
the file every server is stopped with SIGTERM and must exit 0.

Usage: doc_examples_test.py ZBATCH_BINARY NPM_FOLDER
"""
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

import requests

from cluster import free_port, wait_until
from fake_ollama import FakeOllama
from npm_packages import npm_install

BINARY = os.path.abspath(sys.argv.pop(1))
NPM_DIR = sys.argv.pop(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MCP_PACKAGES = ["@modelcontextprotocol/server-filesystem@2026.8.31"]
SERVERS = ("up", "router", "worker", "store")
RUN_LANGS = {"bash", "sh", "shell", "python", "toml"}
COMMAND_TIMEOUT_S = 120
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# Examples known to fail because of a product bug: (file, first line of the block) -> the bug.
# The runner asserts that each still fails, so a fix shows up here as a test to update.
EXPECTED_FAILURES = {
}


def markdown_files():
    files = [os.path.join(ROOT, "README.md")]
    files += sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
    return [os.path.relpath(f, ROOT) for f in files]


class Block:
    def __init__(self, lang, body, line, marker):
        self.lang, self.body, self.line, self.marker = lang, body, line, marker
        self.output = None  # the expected output, from an `<!-- output -->` text block after it

    def first_line(self):
        return next((l for l in self.body.splitlines() if l.strip()), "")


def read_blocks(text):
    """The fenced blocks of a Markdown text, each with the marker comment just before it."""
    blocks, marker, lines, i = [], None, text.split("\n"), 0
    while i < len(lines):
        stripped = lines[i].strip()
        fence = re.match(r"^(`{3,})\s*([^`\s]*)\s*$", stripped)
        if fence:
            body, start = [], i + 1
            i += 1
            while i < len(lines) and lines[i].strip() != fence.group(1):
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise AssertionError(f"line {start}: a fenced block that never closes")
            blocks.append(Block(fence.group(2), textwrap.dedent("\n".join(body)) + "\n", start, marker))
            marker = None
        else:
            comment = re.match(r"^<!--\s*(not-run|output)\b:?\s*(.*?)\s*-->$", stripped)
            if comment:
                marker = (comment.group(1), comment.group(2))
            elif stripped:
                marker = None
        i += 1
    return blocks


def split_commands(body):
    """Shell commands of a block: a command goes on while a quote is open or a line ends in \\."""
    commands, pending = [], ""
    for line in body.split("\n"):
        if not pending and (not line.strip() or line.strip().startswith("#")):
            continue
        pending = pending + "\n" + line if pending else line
        if pending.rstrip().endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quote is still open
            continue
        commands.append(pending)
        pending = ""
    if pending:
        raise AssertionError(f"an unterminated command: {pending!r}")
    return commands


def output_regex(expected):
    """A regex for output of the shape shown: numbers and ids vary, a `...` line is any lines."""
    parts = []
    for line in expected.rstrip("\n").split("\n"):
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        pattern = ""
        for piece in re.split(r"(" + UUID + r"|-?\d+(?:\.\d+)?|\.\.\.)", line):
            if piece == "...":
                pattern += r"[^\n]*?"
            elif re.fullmatch(UUID, piece):
                pattern += UUID
            elif re.fullmatch(r"-?\d+(?:\.\d+)?", piece):
                pattern += r"-?\d+(?:\.\d+)?"
            else:
                pattern += re.escape(piece)
        parts.append(pattern + r"\n")
    return re.compile("".join(parts))


class FileRun:
    """One Markdown file's examples, its cluster and what its commands printed."""

    def __init__(self, test, md, ollama, mcp_modules):
        self.test, self.md = test, md
        self.tmp = tempfile.TemporaryDirectory(prefix="zbatch-docs-")
        self.cwd = self.tmp.name
        self.ports = {name: free_port() for name in ("http", "frontend", "backend", "events")}
        self.ollama = ollama
        self.servers = []  # (name, Popen, log path)
        self.printed = []  # stdout of every command so far, in order
        bin_dir = os.path.join(self.cwd, "bin")
        os.makedirs(bin_dir)
        os.symlink(BINARY, os.path.join(bin_dir, "zbatch"))
        curl = os.path.join(bin_dir, "curl")
        with open(curl, "w") as f:
            f.write(f'#!/bin/sh\nexec {shlex.quote(shutil.which("curl") or "/usr/bin/curl")} --fail-with-body "$@"\n')
        os.chmod(curl, 0o755)
        shared = os.path.join(self.cwd, "shared")
        os.makedirs(shared)
        project = os.path.join(self.cwd, "project")
        os.makedirs(os.path.join(project, "tests"))
        with open(os.path.join(project, "tests", "test_example.py"), "w") as f:
            f.write(textwrap.dedent("""\
                import unittest


                class Example(unittest.TestCase):
                    def test_adds(self):
                        self.assertEqual(1 + 1, 2)

                    def test_joins(self):
                        self.assertEqual("-".join("ab"), "a-b")
            """))
        config = os.path.join(self.cwd, "zbatch.toml")
        with open(config, "w") as f:
            f.write(textwrap.dedent(f"""\
                [[mcp_server]]
                name = "filesystem"
                argv = ["node", "{mcp_modules}/@modelcontextprotocol/server-filesystem/dist/index.js", "{shared}"]
                call_timeout = 20

                [[test_profile]]
                name = "unit"
                argv = ["/usr/bin/python3", "-m", "unittest", "discover", "-s", "tests"]
                cwd = "{project}"
                timeout = 60
            """))
        p = self.ports
        self.env = dict(os.environ,
                        PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
                        ZBATCH_ROUTER=f"tcp://127.0.0.1:{p['frontend']}",
                        ZBATCH_FRONTEND=f"tcp://127.0.0.1:{p['frontend']}",
                        ZBATCH_BACKEND=f"tcp://127.0.0.1:{p['backend']}",
                        ZBATCH_EVENTS=f"tcp://127.0.0.1:{p['events']}",
                        ZBATCH_WORKER_ROUTER=f"tcp://127.0.0.1:{p['backend']}",
                        ZBATCH_HTTP=f"127.0.0.1:{p['http']}",
                        ZBATCH_CONFIG=config,
                        OLLAMA_HOST=ollama.url,
                        PYTHONPATH=os.path.join(ROOT, "clients", "python"))
        for var in ("ZBATCH_AUTH_BASIC", "ZBATCH_AUTH_TOKEN", "ZBATCH_ALWAYS_EAGER", "ZBATCH_DATA"):
            self.env.pop(var, None)
        self.url = f"http://127.0.0.1:{p['http']}"

    # --- rewriting ----------------------------------------------------------------------------
    def rewrite(self, text, where):
        p = self.ports
        text = re.sub(r"\b(127\.0\.0\.1|localhost|0\.0\.0\.0):8000\b", lambda m: f"{m.group(1)}:{p['http']}", text)
        zmq = {"5555": p["frontend"], "5556": p["backend"], "5557": p["events"]}
        text = re.sub(r"tcp://(127\.0\.0\.1|localhost|0\.0\.0\.0|router-host):(555[567])\b",
                      lambda m: f"tcp://{'127.0.0.1' if m.group(1) == 'router-host' else m.group(1)}:{zmq[m.group(2)]}",
                      text)
        ollama = self.ollama.url.split("://", 1)[1]
        text = re.sub(r"\b(gpu-box|127\.0\.0\.1|localhost):11434\b", ollama, text)
        text = re.sub(r"(?<![\w/.-])build/zbatch\b", BINARY, text)
        for name in re.findall(r"<([A-Z][A-Z0-9_]*)>", text):
            text = text.replace(f"<{name}>", self.placeholder(name, where))
        return text

    def placeholder(self, name, where):
        kinds = {"GROUP_ID": "groups", "TASK_ID": "tasks"}
        if name not in kinds:
            self.test.fail(f"{where}: unknown placeholder <{name}> (known: {', '.join('<' + k + '>' for k in kinds)})")
        printed = re.findall(UUID, "".join(self.printed))
        for candidate in reversed(printed):
            r = requests.get(f"{self.url}/api/v1/{kinds[name]}/{candidate}", timeout=10)
            if r.status_code == 200:
                return candidate
        self.test.fail(f"{where}: <{name}>: no earlier example printed such an id (printed: {printed})")

    # --- servers ------------------------------------------------------------------------------
    def server_of(self, command):
        """The sub-command when `command` starts a zbatch server, else None."""
        words = shlex.split(command, comments=True)
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words.pop(0)
        if len(words) > 1 and os.path.basename(words[0]) == "zbatch" and words[1] in SERVERS:
            return words[1], words
        return None

    def start_server(self, name, command, words, where):
        if name in ("up", "router"):
            self.stop_servers()
        before = self.workers_online() if name == "worker" else 0
        log = os.path.join(self.cwd, f"server{len(self.servers)}-{name}.log")
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-c", command], cwd=self.cwd, env=self.env, stdout=out, stderr=out,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.servers.append((f"{where}: {command}", proc, log))

        def flag(option, fallback):
            return words[words.index(option) + 1] if option in words[:-1] else fallback

        def logged(line):
            with open(log, errors="replace") as f:
                return line in f.read()

        keyed = "--curve-secret" in words  # the runner's ping has no key such a cluster admits

        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"{where}: `{command}` exited with {proc.returncode}\n{self.logs()}")
            if keyed and name == "router":
                return logged("router listening")
            if keyed and name == "worker":
                return logged("worker connected")
            if name in ("up", "store"):
                port = flag("--http", self.env["ZBATCH_HTTP"]).rsplit(":", 1)[1]
                return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            if name == "router":
                endpoint = flag("--frontend", self.env["ZBATCH_FRONTEND"]).replace("0.0.0.0", "127.0.0.1")
                return subprocess.run([BINARY, "ping", "--router", endpoint, "--timeout", "1"], env=self.env,
                                      capture_output=True, timeout=10).returncode == 0
            return self.workers_online() > before
        wait_until(ready, 30, f"{where}: `{command}` ready")

    def workers_online(self):
        r = subprocess.run([BINARY, "ping", "--json", "--timeout", "2"], env=self.env, capture_output=True,
                           text=True, timeout=10)
        return json.loads(r.stdout)["workers"] if r.returncode == 0 else 0

    def ensure_cluster(self):
        if not any(proc.poll() is None for _, proc, _ in self.servers):
            command = f"zbatch up --data {shlex.quote(os.path.join(self.cwd, 'runner-data'))} -c 2"
            self.start_server("up", command, shlex.split(command), "the runner's cluster")

    def stop_servers(self):
        problems = []
        for what, proc, _ in reversed(self.servers):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
                    problems.append(f"{what}: did not stop within 20 s of SIGTERM")
                    continue
            if proc.returncode != 0:
                problems.append(f"{what}: exited with {proc.returncode}")
        logs = self.logs() if problems else ""
        self.servers.clear()
        if problems:
            raise AssertionError("\n".join(problems) + "\n" + logs)

    def logs(self):
        out = []
        for what, _, log in self.servers:
            with open(log, errors="replace") as f:
                out.append(f"--- {what}\n{f.read()[-3000:]}")
        return "\n".join(out)

    def close(self):
        try:
            self.stop_servers()
        finally:
            self.tmp.cleanup()

    # --- examples -----------------------------------------------------------------------------
    def run(self, argv, where, shown):
        print(f"{where}: {shown.splitlines()[0][:100]}", file=sys.stderr)
        r = subprocess.run(argv, cwd=self.cwd, env=self.env, capture_output=True, text=True,
                           timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)
        self.printed.append(r.stdout)
        if r.returncode != 0:
            raise AssertionError(f"{where}: exit {r.returncode}\n--- as written\n{shown}\n--- as run\n{argv[-1]}\n"
                                 f"--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}\n{self.logs()}")
        return r.stdout

    def run_block(self, block, where):
        if block.lang == "toml":
            path = os.path.join(self.cwd, f"block-{block.line}.toml")
            with open(path, "w") as f:
                f.write(block.body)
            return self.run([BINARY, "config", path], where, block.body)
        if block.lang == "python":
            self.ensure_cluster()
            source = self.rewrite(block.body, where)
            path = os.path.join(self.cwd, f"block-{block.line}.py")
            with open(path, "w") as f:
                f.write(source)
            return self.run(["/usr/bin/python3", path], where, block.body)
        out = ""
        for command in split_commands(block.body):
            run = self.rewrite(command, where)
            server = self.server_of(run)
            if server:
                print(f"{where}: {command.splitlines()[0][:100]}   (in the background)", file=sys.stderr)
                self.start_server(server[0], run, server[1], where)
                continue
            self.ensure_cluster()
            out += self.run(["bash", "-c", "set -o pipefail\n" + run], where, command)
        return out


class DocExamples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        modules = npm_install(NPM_DIR, MCP_PACKAGES,
                              [os.path.join("@modelcontextprotocol", "server-filesystem", "dist", "index.js")])
        cls.mcp_modules = modules
        cls.ollama = FakeOllama()

    @classmethod
    def tearDownClass(cls):
        cls.ollama.close()

    def run_file(self, md):
        with open(os.path.join(ROOT, md)) as f:
            blocks = read_blocks(f.read())
        runnable = []
        for i, b in enumerate(blocks):
            where = f"{md}:{b.line}"
            if b.marker and b.marker[0] == "output":
                self.assertEqual(b.lang, "text", f"{where}: an output block is tagged text")
                self.assertTrue(i > 0 and blocks[i - 1].lang in RUN_LANGS, f"{where}: output of no example")
                blocks[i - 1].output = b.body
                continue
            if b.lang not in RUN_LANGS | {"text"}:
                self.fail(f"{where}: a block tagged {b.lang!r}: tag it bash, python, toml or text")
            if b.marker and b.marker[0] == "not-run":
                self.assertTrue(b.marker[1], f"{where}: <!-- not-run: REASON --> needs its reason")
                print(f"{where}: not run: {b.marker[1]}", file=sys.stderr)
                continue
            if b.lang in RUN_LANGS:
                runnable.append(b)
        run = FileRun(self, md, self.ollama, self.mcp_modules)
        try:
            for b in runnable:
                where = f"{md}:{b.line}"
                bug = EXPECTED_FAILURES.get((md, b.first_line()))
                if bug:
                    with self.assertRaises(AssertionError, msg=f"{where} passes now: drop it from EXPECTED_FAILURES ({bug})"):
                        run.run_block(b, where)
                    continue
                out = run.run_block(b, where)
                if b.output is not None:
                    self.assertIsNotNone(output_regex(b.output).fullmatch(out),
                                         f"{where}: output\n{out}\ndoes not have the shape shown\n{b.output}")
        finally:
            run.close()


def _file_test(md):
    def test(self):
        self.run_file(md)
    test.__doc__ = f"the examples of {md} run as written"
    return test


for _md in markdown_files():
    setattr(DocExamples, "test_" + re.sub(r"\W", "_", _md), _file_test(_md))

if __name__ == "__main__":
    unittest.main(verbosity=2)
