"""What the HTTP hardening suites share: `zbatch up` with any --http address and flags, a
self-signed certificate made with openssl, connections from a chosen loopback source address,
and this machine's non-loopback address."""
import os
import signal
import socket
import subprocess
import tempfile
import time

import requests

from cluster import free_port, wait_until

TOKENS = {  # role -> token
    "read": "read-token-0123456789abcdef",
    "submit": "submit-token-0123456789abcdef",
    "admin": "admin-token-0123456789abcdef",
}


def bearer(role):
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def token_args():
    return [x for role, token in TOKENS.items() for x in ("--auth-token", f"{role}:{token}")]


class Up:
    """`zbatch up` bound to HTTP_HOST:free port, with extra flags; stopped (and its group
    killed if it lingers) on close. `url` reaches it over loopback unless `connect` says where."""

    def __init__(self, binary, args=(), http_host="127.0.0.1", connect="127.0.0.1", scheme="http", verify=None,
                 wait=True, preexec_fn=None):
        self.dir = tempfile.TemporaryDirectory(prefix="zbatch-http-")
        self.port = free_port() if http_host.startswith("127.") or http_host == "localhost" else free_port_on_all_addresses()
        self.verify = verify
        self.url = f"{scheme}://{connect}:{self.port}"
        self.backend = f"tcp://127.0.0.1:{free_port()}"
        self.log_path = os.path.join(self.dir.name, "up.log")
        shown_host = f"[{http_host}]" if ":" in http_host else http_host
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "up", "--data", os.path.join(self.dir.name, "data"), "--http", f"{shown_host}:{self.port}",
                 "--frontend", f"tcp://127.0.0.1:{free_port()}", "--backend", self.backend,
                 "--events", f"tcp://127.0.0.1:{free_port()}", "-c", "2", *args],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=preexec_fn)
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.close()
                raise

    def wait_ready(self, timeout=20):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"zbatch up exited with {self.proc.returncode}:\n{self.logs()}")
            return requests.get(self.url + "/readyz", timeout=1, verify=self.verify).status_code == 200
        wait_until(ready, timeout, "readyz")

    def logs(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def close(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_store(binary, args, timeout=20):
    """`zbatch store` that is expected to stop at start-up: (exit status, stderr)."""
    with tempfile.TemporaryDirectory(prefix="zbatch-store-") as d:
        r = subprocess.run([binary, "store", "--router", f"tcp://127.0.0.1:{free_port()}", "--events",
                            f"tcp://127.0.0.1:{free_port()}", "--data", d, *args],
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return r.returncode, r.stderr


def make_certificate(directory, names=("localhost",), ips=("127.0.0.1",)):
    """A self-signed certificate and key (PEM) for these names and addresses: (cert, key)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{ip}" for ip in ips])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=zbatch-test",
                    "-addext", f"subjectAltName={san}"], check=True, capture_output=True, timeout=30)
    return cert, key


def _ports_above_the_ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            high = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        high = 65535
    return list(range(high + 1, 65536))


_SOURCE_PORTS = _ports_above_the_ephemeral_range()
_next_source_port = {}


def connect_from(source_ip, port, timeout=5):
    """A TCP connection to 127.0.0.1:port from source_ip (any 127.x address is this machine).

    Its source port lies above the kernel's ephemeral range where there is room: a port no
    other test is handed by free_port(), so that holding thousands of connections open cannot
    make another test's bind of 0.0.0.0 fail."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port of an earlier run in TIME_WAIT
    s.settimeout(timeout)
    used = _next_source_port.get(source_ip, 0)
    source_port = _SOURCE_PORTS[used] if used < len(_SOURCE_PORTS) else 0
    _next_source_port[source_ip] = used + 1
    try:
        s.bind((source_ip, source_port))
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


def accept_queue(port):
    """Connections to a listening TCP port of this machine that its server has not accepted yet
    (the kernel's accept queue, as /proc/net/tcp and tcp6 show it for a listener); 0 when none."""
    waiting = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: listening
                waiting += int(queues.split(":")[1], 16)  # a listener's rx_queue: its accept queue
    return waiting


def connect_many(sources, port, count, batch=64):
    """`count` connections to 127.0.0.1:port, taking the source addresses in turn, `batch` at a
    time: after each batch, until the server has accepted all of them. A connection that finds
    the accept queue full (on a busy machine, or a kernel whose somaxconn is 128) is completed by
    a SYN cookie on the client's side only, and never reaches the server while it sends nothing;
    paced like this, each one does."""
    held = []
    try:
        for i in range(count):
            held.append(connect_from(sources[i % len(sources)], port))
            if len(held) % batch == 0 or len(held) == count:
                wait_until(lambda: accept_queue(port) == 0, 10, "the server to accept every connection")
    except BaseException:
        for s in held:
            s.close()
        raise
    return held


def free_port_on_all_addresses():
    """A port free on every address, for servers that bind 0.0.0.0."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def http_from(source_ip, port, method, path, headers=None, body=None, timeout=5):
    """One HTTP request from source_ip: (status, headers dict, body bytes)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source_ip, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def is_open(sock):
    """True while the server has not closed the connection (nothing to read, no EOF); never waits."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)


def wait_closed(sock, timeout):
    """Seconds until the server closed the connection; AssertionError after timeout."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return time.monotonic() - start
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - start
    except socket.timeout:
        raise AssertionError(f"the server kept the connection open for more than {timeout} s")


def non_loopback_address():
    """An IPv4 address of this machine's interfaces other than loopback, or None."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        out = []
    for ip in out:
        if "." in ip and not ip.startswith("127."):
            return ip
    return None
