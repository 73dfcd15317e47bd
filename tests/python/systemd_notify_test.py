"""The long-running commands under systemd's Type=notify, with this test as the notify socket
(an AF_UNIX datagram socket named by NOTIFY_SOCKET): READY=1 only once the process serves (the
HTTP port answers /readyz 200, the router answers a ping), WATCHDOG=1 every half WATCHDOG_USEC,
RELOADING=1 then READY=1 on SIGHUP with the [log] level of the file applied, STOPPING=1 on
SIGTERM; and nothing at all without NOTIFY_SOCKET."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import requests

from cluster import SLOWDOWN, config_file, free_port, wait_until

BINARY = None


class NotifySocket:
    def __init__(self, folder):
        self.path = os.path.join(folder, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []  # (monotonic time, {key: value})

    def close(self):
        self.sock.close()

    def receive(self, key, timeout, value=None):
        """Waits for a datagram holding key (=value); returns its arrival time."""
        deadline = time.monotonic() + timeout * SLOWDOWN
        for at, fields in self.messages:
            if key in fields and (value is None or fields[key] == value):
                return at
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                break
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            at = time.monotonic()
            self.messages.append((at, fields))
            if key in fields and (value is None or fields[key] == value):
                return at
        raise AssertionError(f"no {key}={value or '*'} within {timeout}s; got {self.messages}")

    def receive_nth(self, key, value, n, timeout):
        """Waits until n datagrams hold key=value."""
        deadline = time.monotonic() + timeout * SLOWDOWN
        while sum(1 for _, f in self.messages if f.get(key) == value) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"fewer than {n} {key}={value} within {timeout}s: {self.messages}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(),
                                  dict(l.split("=", 1) for l in data.decode().split("\n") if "=" in l)))

    def count(self, key):
        return sum(1 for _, f in self.messages if key in f)


class Process:
    """One zbatch command with NOTIFY_SOCKET set (or not), stopped by the test in any case."""

    def __init__(self, args, env):
        self.proc = subprocess.Popen([BINARY, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=30 * SLOWDOWN)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, err


class NotifyTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="zbatch-notify-")
        self.notify = NotifySocket(self.dir.name)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            p.stop()
        self.notify.close()
        self.dir.cleanup()

    def env(self, watchdog_usec=None, notify=True):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        env.pop("ZBATCH_LOG_LEVEL", None)
        if notify:
            env["NOTIFY_SOCKET"] = self.notify.path
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def start(self, args, **kw):
        p = Process(args, self.env(**kw))
        self.procs.append(p)
        return p

    def up_args(self, http_port, *extra):
        return ["up", "--data", os.path.join(self.dir.name, "data"), "--http", f"127.0.0.1:{http_port}",
                "--frontend", f"tcp://127.0.0.1:{free_port()}", "--backend", f"tcp://127.0.0.1:{free_port()}",
                "--events", f"tcp://127.0.0.1:{free_port()}", "-c", "1", *extra]

    def test_up_is_ready_once_readyz_answers_and_pings_the_watchdog(self):
        port = free_port()
        p = self.start(self.up_args(port), watchdog_usec=400_000)
        ready_at = self.notify.receive("READY", 30, "1")
        # The probe behind READY=1 saw /readyz 200: the port answers now. (Readiness itself may
        # dip for a moment after, while the store applies an event the router just logged, such
        # as the worker coming online.)
        self.assertIn(requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code, (200, 503))
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200, 10,
                   "readyz 200 again")
        first = self.notify.messages[0][1]
        self.assertIn("READY", first, f"READY=1 is the first notification: {self.notify.messages}")
        self.assertTrue(first.get("STATUS", "").startswith("up http="))
        # Every half of 400 ms: three pings within a second and a half.
        self.notify.receive_nth("WATCHDOG", "1", 3, 1.5)
        self.assertTrue(all(at >= ready_at for at, f in self.notify.messages if "WATCHDOG" in f))
        p.proc.send_signal(signal.SIGTERM)
        self.notify.receive("STOPPING", 10, "1")
        code, err = p.stop()
        self.assertEqual(code, 0, err)

    def test_ready_waits_for_the_http_port(self):
        # The HTTP port is taken by another listener until the test frees it: `up` fails to
        # bind and must never have said READY=1.
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        p = self.start(self.up_args(port))
        code, err = p.stop()
        blocker.close()
        self.assertNotEqual(code, 0, "a port that cannot be bound is a start-up error")
        self.assertEqual(self.notify.count("READY"), 0, self.notify.messages)

    def test_router_is_ready_when_its_loop_answers_and_stops_with_stopping(self):
        fe = f"tcp://127.0.0.1:{free_port()}"
        p = self.start(["router", "--data", os.path.join(self.dir.name, "r"), "--frontend", fe,
                        "--backend", f"tcp://127.0.0.1:{free_port()}", "--events", f"tcp://127.0.0.1:{free_port()}"],
                       watchdog_usec=300_000)
        self.notify.receive("READY", 20, "1")
        ping = subprocess.run([BINARY, "ping", "--router", fe, "--timeout", "5"], capture_output=True, text=True,
                              timeout=20 * SLOWDOWN, env=self.env(notify=False))
        self.assertEqual(ping.returncode, 0, ping.stderr)
        self.notify.receive("WATCHDOG", 5, "1")
        p.proc.send_signal(signal.SIGTERM)
        self.notify.receive("STOPPING", 10, "1")
        code, err = p.stop()
        self.assertEqual(code, 0, err)

    def test_store_is_ready_only_once_caught_up_with_the_router(self):
        fe, be, ev = (f"tcp://127.0.0.1:{free_port()}" for _ in range(3))
        port = free_port()
        self.start(["store", "--router", fe, "--events", ev, "--data", os.path.join(self.dir.name, "s"),
                    "--http", f"127.0.0.1:{port}"])
        # Listening, but no router: /readyz answers 503 and READY=1 is withheld.
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 503, 20,
                   "/readyz 503 without a router")
        with self.assertRaises(AssertionError):
            self.notify.receive("READY", 1)
        self.start(["router", "--data", os.path.join(self.dir.name, "r"), "--frontend", fe, "--backend", be,
                    "--events", ev], notify=False)
        self.notify.receive("STATUS", 30, f"store http=127.0.0.1:{port}")
        self.assertEqual(requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code, 200)
        worker = self.start(["worker", "--router", be, "-c", "1"])
        self.notify.receive("STATUS", 20, f"worker router={be}")
        worker.proc.send_signal(signal.SIGTERM)
        self.notify.receive("STOPPING", 10, "1")
        self.assertEqual(worker.stop()[0], 0)

    def test_sighup_reloads_the_log_level_from_the_file(self):
        port = free_port()
        conf = config_file(self.dir.name, '[log]\nlevel = "warn"\n')
        p = self.start(self.up_args(port, "--config", conf))
        self.notify.receive("READY", 30, "1")
        with open(conf, "w") as f:
            f.write('[log]\nlevel = "debug"\n')
        p.proc.send_signal(signal.SIGHUP)
        self.notify.receive("RELOADING", 10, "1")
        self.notify.receive("STATUS", 10, "reloaded")
        # A bad file changes nothing, and the process goes on.
        with open(conf, "w") as f:
            f.write('[log]\nlevel = "loud"\n')
        p.proc.send_signal(signal.SIGHUP)
        self.notify.receive_nth("STATUS", "reloaded", 2, 10)
        self.assertIsNone(p.proc.poll(), "a reload never stops the process")
        code, err = p.stop()
        self.assertEqual(code, 0, err)
        # At warn, the start-up info lines (and the SIGHUP's own) are not written; from the
        # reload on, info and debug lines are.
        before, marker, after = err.partition('log level=debug from="' + conf + ' [log] level"')
        self.assertTrue(marker, err)
        self.assertNotIn("level=info", before.rpartition("\n")[0])  # the marker's own line is info
        self.assertIn("level=info signal=SIGHUP action=reload", after)
        self.assertIn('[log] level: --log-level must be', after)
        self.assertIn("reload failed, settings unchanged", after)

    def test_flag_beats_the_file_on_reload(self):
        port = free_port()
        conf = config_file(self.dir.name, '[log]\nlevel = "debug"\n')
        p = self.start(["--log-level", "warn", *self.up_args(port, "--config", conf)])
        self.notify.receive("READY", 30, "1")
        p.proc.send_signal(signal.SIGHUP)
        self.notify.receive("STATUS", 10, "reloaded")
        code, err = p.stop()
        self.assertEqual(code, 0, err)
        self.assertNotIn("level=debug", err)

    def test_without_notify_socket_nothing_is_sent(self):
        port = free_port()
        p = self.start(self.up_args(port), notify=False, watchdog_usec=100_000)
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200, 30,
                   "/readyz 200")
        with self.assertRaises(AssertionError):
            self.notify.receive("READY", 0.5)
        code, err = p.stop()
        self.assertEqual(code, 0, err)
        self.assertNotIn("systemd", err)
        self.assertEqual(self.notify.messages, [])


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
