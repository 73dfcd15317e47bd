"""The HTTP server's limits, each seen from a real client: a request must arrive whole within
--request-timeout of its first byte (408) and a silent connection goes after --idle-timeout;
heads too large are 414 and 431 (never 500); event streams are limited by --max-streams and take
no request thread; connections are capped per client and in all, the open-file limit is raised
at start-up and its cap refuses new connections while open ones are served; request bytes held
in memory are bounded (503)."""
import http.client
import json
import resource
import socket
import sys
import threading
import time
import unittest

import requests

from cluster import wait_until
from http_support import Up, connect_from, connect_many, http_from, is_open, wait_closed

BINARY = sys.argv.pop(1)


def read_answer(sock, timeout=5):
    """Everything the server sends until it closes: (status, JSON body or None)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    if not data:
        return None, None
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body.startswith(b"{") else None


def raw_request(port, head_lines, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(("\r\n".join(head_lines) + "\r\n\r\n").encode())
        return read_answer(s, timeout)
    finally:
        s.close()


class Deadlines(unittest.TestCase):
    def test_a_request_must_arrive_whole_within_the_request_timeout(self):
        with Up(BINARY, ["--request-timeout", "1.5", "--idle-timeout", "3"]) as up:
            def slow(first, then, every):
                s = socket.create_connection(("127.0.0.1", up.port))
                s.sendall(first)
                started = time.monotonic()
                stop = threading.Event()

                def drip():
                    while not stop.wait(every):
                        try:
                            s.send(then)
                        except OSError:
                            return
                t = threading.Thread(target=drip)
                t.start()
                try:
                    status, body = read_answer(s, timeout=10)
                    return status, body, time.monotonic() - started
                finally:
                    stop.set()
                    t.join()
                    s.close()

            # Slowloris: the head never ends, a byte every 0.25 s renews nothing.
            status, body, took = slow(b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X", 0.25)
            self.assertEqual(status, 408)
            self.assertEqual(body["error"]["code"], "request_timeout")
            self.assertGreater(took, 1.3)
            self.assertLess(took, 2.8)
            # A slow body: the whole request counts, not the head alone.
            status, body, took_body = slow(b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
                                           b" ", 0.25)
            self.assertEqual(status, 408)
            self.assertLess(took_body, 2.8)
            # Silent: closed after the idle timeout.
            s = socket.create_connection(("127.0.0.1", up.port))
            closed_after = wait_closed(s, 10)
            s.close()
            self.assertGreater(closed_after, 2.7)
            self.assertLess(closed_after, 4.5)
            # A connection in use is not idle: requests 0.5 s apart go on over one connection
            # for longer than both timeouts.
            conn = http.client.HTTPConnection("127.0.0.1", up.port, timeout=5)
            conn.connect()
            first_socket = conn.sock
            for _ in range(9):
                conn.request("GET", "/healthz")
                self.assertEqual(conn.getresponse().read(), b'{"status":"ok"}')
                time.sleep(0.5)  # the pause between a keep-alive client's requests
            self.assertIs(conn.sock, first_socket)
            conn.close()
            print(f"\ndeadlines: slowloris closed {took:.2f} s after its first byte (--request-timeout 1.5), "
                  f"slow body {took_body:.2f} s, silent connection {closed_after:.2f} s (--idle-timeout 3)",
                  file=sys.stderr)


class Heads(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = Up(BINARY)

    @classmethod
    def tearDownClass(cls):
        cls.up.close()

    def tearDown(self):
        self.assertEqual(requests.get(self.up.url + "/healthz", timeout=5).status_code, 200)

    def error(self, r, status, code):
        self.assertEqual(r.status_code, status, r.text[:300])
        self.assertEqual(r.json()["error"]["code"], code)
        self.assertEqual(r.headers["Connection"], "close")

    def test_a_request_line_of_a_megabyte_is_414(self):
        self.error(requests.get(self.up.url + "/" + "a" * (1 << 20), timeout=10), 414, "uri_too_long")

    def test_ten_thousand_headers_are_431(self):
        r = requests.get(self.up.url + "/healthz", headers={f"X-H{i}": "v" for i in range(10_000)}, timeout=10)
        self.error(r, 431, "headers_too_large")
        self.assertIn("more than 100 headers", r.json()["error"]["message"])

    def test_header_count_line_and_total_limits(self):
        hundred = ["GET /healthz HTTP/1.1", "Host: x"] + [f"X-{i}: v" for i in range(99)]
        self.assertEqual(raw_request(self.up.port, hundred)[0], 200)
        self.assertEqual(raw_request(self.up.port, hundred + ["X-100: v"])[0], 431)
        status, body = raw_request(self.up.port, ["GET /healthz HTTP/1.1", "Host: x", "X-Long: " + "v" * 9000])
        self.assertEqual((status, body["error"]["code"]), (431, "headers_too_large"))
        # Total: 20 lines of 4,000 bytes each are within the line limit, the head is not.
        status, body = raw_request(self.up.port, ["GET /healthz HTTP/1.1", "Host: x"] +
                                   [f"X-{i}: " + "v" * 4000 for i in range(20)])
        self.assertEqual(status, 431)
        self.assertIn("65536 bytes", body["error"]["message"])

    def test_bodies_the_server_would_have_to_decode_are_refused(self):
        r = requests.post(self.up.url + "/api/v1/tasks", data=b"\x1f\x8b...", timeout=10,
                          headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        self.error(r, 415, "unsupported_media_type")
        status, body = raw_request(self.up.port, ["POST /api/v1/tasks HTTP/1.1", "Host: x", "Content-Length: 2",
                                                  "Content-Length: 3"])
        self.assertEqual((status, body["error"]["code"]), (400, "bad_request"))

    def test_the_defaults_are_logged(self):
        log = self.up.logs()
        for field in ("max_streams=256", "http_threads=32", "request_timeout_s=30", "idle_timeout_s=60",
                      "max_connections_per_client=1024"):
            self.assertIn(field, log)


class Streams(unittest.TestCase):
    def test_event_streams_are_limited_and_take_no_request_thread(self):
        with Up(BINARY, ["--max-streams", "4", "--http-threads", "2"]) as up:
            streams = []
            try:
                for _ in range(4):
                    r = requests.get(up.url + "/api/v1/events", stream=True, timeout=10)
                    self.assertEqual(r.status_code, 200)
                    streams.append(r)
                r = requests.get(up.url + "/api/v1/events", stream=True, timeout=10)
                self.assertEqual(r.status_code, 503)
                self.assertEqual(r.json()["error"]["message"], "too many event streams open")
                r.close()
                # Four streams and two request threads: requests are still answered at once.
                worst = 0
                for _ in range(20):
                    t0 = time.monotonic()
                    self.assertEqual(requests.get(up.url + "/api/v1/queues", timeout=5).status_code, 200)
                    worst = max(worst, time.monotonic() - t0)
                self.assertLess(worst, 1.0)
                # An event still reaches every open stream.
                requests.post(up.url + "/api/v1/tasks", json={"kind": "noop"}, timeout=5)
                for s in streams:
                    lines = s.iter_lines()
                    self.assertTrue(any(line.startswith(b"data: ") for line in (next(lines) for _ in range(3))))
                # A stream that ends makes room for another.
                streams.pop().close()

                def another():
                    r = requests.get(up.url + "/api/v1/events", stream=True, timeout=10)
                    if r.status_code == 200:
                        streams.append(r)
                        return True
                    r.close()
                    return False
                wait_until(another, 5, "a free stream")
                print(f"\nstreams: 4 open with 2 request threads; slowest of 20 requests {worst * 1000:.1f} ms",
                      file=sys.stderr)
            finally:
                for s in streams:
                    s.close()


class Connections(unittest.TestCase):
    def test_connections_are_capped_per_client_and_in_all_while_open_ones_are_served(self):
        with Up(BINARY, ["--max-connections-per-client", "20", "--max-connections", "40"]) as up:
            held = []
            try:
                a = [connect_from("127.0.0.40", up.port) for _ in range(25)]
                held += a
                # The five beyond the client's 20 are closed by the server; the others stay open.
                wait_until(lambda: sum(not is_open(s) for s in a) == 5, 5, "five connections closed")
                b = [connect_from("127.0.0.41", up.port) for _ in range(15)]
                c = [connect_from("127.0.0.42", up.port) for _ in range(10)]
                held += b + c
                # 20 + 15 + 5 = 40 in all: the other five of the third client are closed.
                wait_until(lambda: sum(not is_open(s) for s in c) == 5, 5, "the total cap")
                self.assertTrue(all(is_open(s) for s in b))
                late = connect_from("127.0.0.43", up.port)
                held.append(late)
                wait_closed(late, 5)
                # An open connection is still served.
                open_one = b[0]
                open_one.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(open_one.recv(1000).startswith(b"HTTP/1.1 200 OK"))
                # Room again once connections go.
                for s in b:
                    s.close()
                def served():
                    try:
                        return http_from("127.0.0.44", up.port, "GET", "/healthz")[0] == 200
                    except OSError:  # still at the cap: accepted and closed
                        return False
                wait_until(served, 5, "room again")
                self.assertIn("store http connections refused", up.logs())
            finally:
                for s in held:
                    s.close()

    def test_the_open_file_limit_is_raised_and_its_cap_refuses_new_connections(self):
        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1200))
        with Up(BINARY, ["--max-connections", "5000"], preexec_fn=low_limit) as up:
            log = up.logs()
            self.assertIn("store raised open-file limit from=256 to=1200", log)
            self.assertIn("using 688", log)  # 1200 less the 512 kept for everything else
            self.assertIn("max_connections=688", log)
            held = connect_many([f"127.0.1.{i}" for i in range(1, 8)], up.port, 700)
            try:
                refused = lambda: sum(not is_open(s) for s in held)
                try:
                    wait_until(lambda: refused() == 12, 10, "12 connections refused")
                except AssertionError:
                    self.fail(f"{refused()} of 700 connections refused, not 700 - 688 = 12:\n{up.logs()[-3000:]}")
                served = next(s for s in held if is_open(s))
                served.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(served.recv(1000).startswith(b"HTTP/1.1 200 OK"))
            finally:
                for s in held:
                    s.close()


class Memory(unittest.TestCase):
    def test_request_bytes_held_in_memory_are_bounded(self):
        # The default budget is 256 MiB (or four bodies of --max-body-bytes): eight bodies of
        # 30 MiB under way, then a ninth 32 MiB one does not fit and is told to come back.
        with Up(BINARY) as up:
            chunk = b" " * (1 << 20)
            uploads = []
            try:
                for _ in range(8):
                    s = socket.create_connection(("127.0.0.1", up.port))
                    s.sendall(b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 33554432\r\n\r\n")
                    for _ in range(30):
                        s.sendall(chunk)
                    uploads.append(s)

                def refused():
                    status, _, body = http_from("127.0.0.1", up.port, "POST", "/api/v1/tasks",
                                                headers={"Content-Length": str(32 << 20)}, body=None)
                    return status == 503 and b"too many request bytes" in body
                wait_until(refused, 10, "a 503 for a body that does not fit")
                for s in uploads:
                    s.close()
                uploads = []
                big = json.dumps({"kind": "noop", "payload": {"pad": "x" * (8 << 20)}}).encode()
                wait_until(lambda: requests.post(up.url + "/api/v1/tasks", data=big, timeout=10,
                                                 headers={"Content-Type": "application/json"}).status_code == 201,
                           10, "room for a large body again")
            finally:
                for s in uploads:
                    s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
