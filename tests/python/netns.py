"""Network namespaces for the multi-host tests: whether they can be made here, a shell, and a
LAN of hosts (one namespace each) on a switch that a test can unplug them from."""
import json
import os
import shutil
import subprocess


def sh(*args, check=True, timeout=30):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=check)


def why_no_namespaces():
    """None when this process can make network namespaces, else the reason."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        return "needs root and iproute2 (ip netns)"
    probe = f"zbprobe{os.getpid()}"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return "ip netns add failed: " + r.stderr.strip()
    sh("ip", "netns", "del", probe, check=False)
    return None


class Lan:
    """Hosts on one Ethernet segment: each host is a network namespace whose `eth0` is a veth
    pair's end, the other end a port of a bridge in the switch's own namespace. Nothing is
    added to the namespace the test runs in, so parallel runs cannot collide on addresses;
    the names carry `tag` (the test's pid) so they cannot collide on names either.

    `unplug(host)` takes the host's switch port down (its eth0 loses carrier, as when a cable
    is pulled or a switch port dies); `plug(host)` brings it back. `close()` stops what was
    started in the hosts and removes every namespace, whatever state the test left them in."""

    def __init__(self, tag, subnet="10.77.0"):
        self.tag = str(tag)
        self.subnet = subnet
        self.switch = f"zbsw{self.tag}"
        self.hosts = {}  # name -> (namespace, address)
        self.procs = []
        self._namespaces = []
        try:
            self._add_namespace(self.switch)
            sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        except BaseException:
            self.close()  # no namespace outlives a failed start
            raise

    def _add_namespace(self, ns):
        sh("ip", "netns", "add", ns)
        self._namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    def add_host(self, name):
        """A new host `name` at the next address of the subnet; returns its address."""
        ns, ip = f"zb{name}{self.tag}", f"{self.subnet}.{len(self.hosts) + 1}"
        self._add_namespace(ns)  # recorded before anything can fail, so close() removes it
        port = f"p{name}"[:15]
        sh("ip", "link", "add", "name", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
           "netns", self.switch)
        sh("ip", "-n", self.switch, "link", "set", port, "master", "br0")
        sh("ip", "-n", self.switch, "link", "set", port, "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        self.hosts[name] = (ns, ip)
        return ip

    def ns(self, host):
        return self.hosts[host][0]

    def ip(self, host):
        return self.hosts[host][1]

    def unplug(self, host):
        sh("ip", "-n", self.switch, "link", "set", f"p{host}"[:15], "down")

    def plug(self, host):
        sh("ip", "-n", self.switch, "link", "set", f"p{host}"[:15], "up")

    def link_up(self, host):
        """Whether both ends of the host's cable are up again as the kernel sees it (operstate
        UP, set by the kernel's link watch, which may lag `plug`): from then frames pass."""
        ends = ((self.ns(host), "eth0"), (self.switch, f"p{host}"[:15]))
        return all(" state UP " in sh("ip", "-n", ns, "-o", "link", "show", dev).stdout for ns, dev in ends)

    def run(self, host, argv, timeout=30, stdin=None):
        return subprocess.run(["ip", "netns", "exec", self.ns(host), *argv], input=stdin, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, host, argv, log_path):
        """Starts argv on `host` in a session of its own (so a stop reaches its children), its
        output appended to log_path; close() stops it if the test has not."""
        with open(log_path, "ab") as log:
            p = subprocess.Popen(["ip", "netns", "exec", self.ns(host), *argv], stdout=log, stderr=log,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def http(self, host, method, url, body=None, timeout=10):
        """An HTTP request made from `host` (curl in its namespace): (status, JSON or None).
        Status 0 when nothing answered."""
        argv = ["curl", "-s", "-m", str(timeout), "-X", method, "-o", "-", "-w", "\n%{http_code}", url]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        r = self.run(host, argv, timeout=timeout + 5, stdin=None if body is None else json.dumps(body))
        text, _, code = r.stdout.rpartition("\n")
        try:
            return int(code or 0), json.loads(text) if text else None
        except ValueError:
            return int(code or 0), None

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, 9)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
        for ns in reversed(self._namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self._namespaces.clear()
