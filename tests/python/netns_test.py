"""Two hosts made of Linux network namespaces joined by a veth pair: a keyed cluster across
them, and the trust rules off loopback (unknown keys refused, plaintext refused unless opted
out). Skipped, saying why, where namespaces cannot be made (not root, no iproute2).
"""
import os
import subprocess
import sys
import tempfile
import unittest

from cluster import wait_until
from netns import sh, why_no_namespaces

BINARY = None
SUBNET = f"10.231.{os.getpid() % 200 + 20}"
ROUTER_IP, WORKER_IP = f"{SUBNET}.1", f"{SUBNET}.2"


WHY_NOT = why_no_namespaces()


@unittest.skipIf(WHY_NOT, f"network namespaces unavailable: {WHY_NOT}")
class TwoHosts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        tag = str(os.getpid())
        cls.ns_router, cls.ns_worker = f"zbr{tag}", f"zbw{tag}"
        cls.dir = tempfile.TemporaryDirectory(prefix="zbatch-netns-")
        cls.procs = []
        cls.addClassCleanup(cls.cleanup)  # also when the rest of setUpClass fails
        sh("ip", "netns", "add", cls.ns_router)
        sh("ip", "netns", "add", cls.ns_worker)
        sh("ip", "link", "add", f"vr{tag}", "type", "veth", "peer", "name", f"vw{tag}")
        sh("ip", "link", "set", f"vr{tag}", "netns", cls.ns_router)
        sh("ip", "link", "set", f"vw{tag}", "netns", cls.ns_worker)
        for ns, dev, ip in ((cls.ns_router, f"vr{tag}", ROUTER_IP), (cls.ns_worker, f"vw{tag}", WORKER_IP)):
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        for name in ("router", "w1", "store", "ops", "stranger"):
            r = sh(BINARY, "keygen", name, "--dir", cls.dir.name)
            setattr(cls, f"pub_{name}", r.stdout.strip())
        with open(cls.path("allow.list"), "w") as f:
            f.write(f"worker {cls.pub_w1} w1\nstore {cls.pub_store} store\nadmin {cls.pub_ops} ops\n")

    @classmethod
    def cleanup(cls):
        for p in cls.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        sh("ip", "netns", "del", cls.ns_router, check=False)
        sh("ip", "netns", "del", cls.ns_worker, check=False)
        cls.dir.cleanup()

    @classmethod
    def path(cls, name):
        return os.path.join(cls.dir.name, name)

    def start(self, ns, name, args):
        log = open(self.path(name + ".log"), "ab")
        p = subprocess.Popen(["ip", "netns", "exec", ns, BINARY] + args, stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL)
        log.close()
        self.procs.append(p)
        return p

    def log(self, name):
        with open(self.path(name + ".log"), errors="replace") as f:
            return f.read()

    def stop(self, p):
        p.terminate()
        self.assertEqual(p.wait(timeout=15), 0)

    def run_in(self, ns, args, timeout=30):
        return sh("ip", "netns", "exec", ns, BINARY, *args, check=False, timeout=timeout)

    def keys(self, name):
        return ["--curve-server-key", self.path("router.key"), "--curve-secret", self.path(f"{name}.key_secret")]

    def router_args(self, port0, extra=()):
        return ["router", "--data", self.path(f"data{port0}"), "--frontend", f"tcp://{ROUTER_IP}:{port0}",
                "--backend", f"tcp://{ROUTER_IP}:{port0 + 1}", "--events", f"tcp://{ROUTER_IP}:{port0 + 2}",
                "--heartbeat-ms", "200", *extra]

    def test_keyed_cluster_across_hosts_and_strangers_refused(self):
        router = self.start(self.ns_router, "router", self.router_args(
            5555, ["--curve-secret", self.path("router.key_secret"), "--curve-allow", self.path("allow.list")]))
        worker = self.start(self.ns_worker, "worker", ["worker", "--router", f"tcp://{ROUTER_IP}:5556", "-c", "2",
                                                       "--heartbeat-ms", "200", "--hostname", "w1@hostb",
                                                       *self.keys("w1")])
        fe = f"tcp://{ROUTER_IP}:5555"
        wait_until(lambda: '"workers":1' in self.run_in(self.ns_worker, ["ping", "--json", "--router", fe,
                                                                       *self.keys("ops")]).stdout,
                 20, "the worker online across the link")
        done = self.run_in(self.ns_worker, ["submit", "--router", fe, *self.keys("ops"), "--kind", "echo",
                                            '{"secret": "s3cr3t"}', "--wait"])
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("s3cr3t", done.stdout)

        store = self.start(self.ns_worker, "store", ["store", "--router", fe, "--events", f"tcp://{ROUTER_IP}:5557",
                                                     "--data", self.path("store-data"), "--http", "127.0.0.1:8000",
                                                     *self.keys("store")])
        wait_until(lambda: sh("ip", "netns", "exec", self.ns_worker, "curl", "-sf", "http://127.0.0.1:8000/readyz",
                            check=False).returncode == 0, 20, "the store caught up over CURVE")

        for who in ("stranger", "w1"):  # an unknown key; a worker's key on the client socket
            r = self.run_in(self.ns_worker, ["ping", "--router", fe, "--timeout", "1", *self.keys(who)])
            self.assertEqual(r.returncode, 3, f"{who}: {r.stdout}{r.stderr}")
        plain = self.run_in(self.ns_worker, ["ping", "--router", fe, "--timeout", "1", "--insecure-plaintext"])
        self.assertEqual(plain.returncode, 3, plain.stderr)
        self.assertIn(f"key={self.pub_stranger}", self.log("router"))
        # The refusals are counted where operators look: /metrics, in the exposition format.
        def refused_keys():
            text = sh("ip", "netns", "exec", self.ns_worker, "curl", "-sf", "http://127.0.0.1:8000/metrics").stdout
            for line in text.splitlines():
                if line.startswith('zbatch_router_refused_total{reason="unknown_keys"} '):
                    return int(line.split()[-1]), text
            return 0, text
        wait_until(lambda: refused_keys()[0] >= 2, 10, "the refused handshakes (a stranger, a worker key) counted in /metrics")
        checked = subprocess.run(["promtool", "check", "metrics"], input=refused_keys()[1], text=True,
                                 capture_output=True, timeout=30)
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        for p in (store, worker, router):
            self.stop(p)

    def test_plaintext_off_loopback_is_refused_unless_chosen(self):
        refused = self.run_in(self.ns_router, self.router_args(6555), timeout=15)
        self.assertEqual(refused.returncode, 2, refused.stderr)
        self.assertIn("not a loopback address", refused.stderr)
        worker_refused = self.run_in(self.ns_worker, ["worker", "--router", f"tcp://{ROUTER_IP}:6556"], timeout=15)
        self.assertEqual(worker_refused.returncode, 2, worker_refused.stderr)

        router = self.start(self.ns_router, "plain-router", self.router_args(6555, ["--insecure-plaintext"]))
        worker = self.start(self.ns_worker, "plain-worker", ["worker", "--router", f"tcp://{ROUTER_IP}:6556",
                                                             "--heartbeat-ms", "200", "--insecure-plaintext"])
        fe = f"tcp://{ROUTER_IP}:6555"
        wait_until(lambda: '"workers":1' in self.run_in(self.ns_worker, ["ping", "--json", "--router", fe,
                                                                       "--insecure-plaintext"]).stdout,
                 20, "a plaintext cluster the operator chose")
        self.assertIn("router INSECURE", self.log("plain-router"))
        self.assertIn("worker INSECURE", self.log("plain-worker"))
        for p in (worker, router):
            self.stop(p)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
