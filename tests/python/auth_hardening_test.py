"""Authentication that cannot be sidestepped: the loopback decision is made on the address
actually bound (names and shorthands resolved first), failed attempts are rate-limited per
client address and logged without the credential, credentials are checked at start-up, and
serving off loopback without TLS warns that credentials travel in clear text."""
import base64
import os
import socket
import sys
import tempfile
import time
import unittest

import requests

from cluster import free_port, wait_until
from http_support import TOKENS, Up, bearer, http_from, non_loopback_address, run_store, token_args

BINARY = sys.argv.pop(1)


class LoopbackDecision(unittest.TestCase):
    def refused_without_credentials(self, host):
        rc, err = run_store(BINARY, ["--http", f"{host}:{free_port()}"])
        self.assertEqual(rc, 2, err)
        self.assertIn("which is not a loopback address", err)
        self.assertIn("--no-auth", err)
        return err

    def test_unspecified_addresses_and_shorthands_for_them_are_off_loopback(self):
        self.refused_without_credentials("0.0.0.0")
        err = self.refused_without_credentials("0")  # inet_aton's shorthand for 0.0.0.0
        self.assertIn("binds 0.0.0.0:", err)
        if socket.has_ipv6:
            with socket.socket(socket.AF_INET6) as probe:
                try:
                    probe.bind(("::", 0))
                except OSError:
                    return
            self.refused_without_credentials("[::]")

    def test_an_interface_address_of_this_machine_is_off_loopback(self):
        ip = non_loopback_address()
        if ip is None:
            self.skipTest("this machine has no non-loopback IPv4 address")
        self.refused_without_credentials(ip)
        # With credentials it serves there, and warns that they travel in clear text.
        with Up(BINARY, token_args(), http_host=ip, connect=ip) as up:
            self.assertEqual(requests.get(f"{up.url}/api/v1/stats", headers=bearer("read"), timeout=10).status_code, 200)
            self.assertEqual(requests.get(f"{up.url}/api/v1/stats", timeout=10).status_code, 401)
            self.assertIn(f"store http serves {ip}:{up.port} without TLS: credentials and data travel in clear text",
                          up.logs())

    def test_names_count_by_where_they_resolve(self):
        # "127.lan.example" begins like a loopback address but is a name (.example never
        # resolves): it is not served, instead of being taken for loopback by its text.
        rc, err = run_store(BINARY, ["--http", f"127.lan.example:{free_port()}"])
        self.assertNotEqual(rc, 0)
        self.assertIn("cannot resolve '127.lan.example'", err)
        # Names and shorthands that resolve to loopback are served without credentials.
        for host in ("localhost", "127.1", socket.gethostname()):
            resolved = {a[4][0] for a in socket.getaddrinfo(host, None, socket.AF_INET)}
            if not all(ip.startswith("127.") for ip in resolved):
                self.refused_without_credentials(host)
                continue
            with self.subTest(host=host), Up(BINARY, http_host=host) as up:
                self.assertEqual(requests.get(f"{up.url}/api/v1/stats", timeout=10).status_code, 200)
                self.assertNotIn("clear text", up.logs())

    def test_no_auth_off_loopback_is_an_explicit_logged_choice(self):
        with Up(BINARY, ["--no-auth"], http_host="0.0.0.0") as up:
            self.assertEqual(requests.get(f"{up.url}/api/v1/stats", timeout=10).status_code, 200)
            self.assertIn("without authentication (--no-auth)", up.logs())


class FailedLogins(unittest.TestCase):
    def test_failures_lock_out_one_client_address_only(self):
        with Up(BINARY, [*token_args(), "--auth-max-failures", "3", "--auth-lockout", "2"]) as up:
            wrong = {"Authorization": "Bearer not-the-token-at-all-0123"}
            right = bearer("read")
            for i in range(3):
                status, headers, _ = http_from("127.0.0.2", up.port, "GET", "/api/v1/stats", wrong)
                self.assertEqual(status, 401, i)
            # Locked: whatever the client sends, even the right token, for the lockout.
            locked_at = time.monotonic()
            status, headers, body = http_from("127.0.0.2", up.port, "GET", "/api/v1/stats", right)
            self.assertEqual(status, 429, body)
            self.assertIn(headers["retry-after"], ("1", "2"))
            self.assertIn(b"too_many_requests", body)
            # The probes stay open to it.
            self.assertEqual(http_from("127.0.0.2", up.port, "GET", "/healthz")[0], 200)
            # Another address is neither locked nor slowed down.
            t0 = time.monotonic()
            self.assertEqual(http_from("127.0.0.3", up.port, "GET", "/api/v1/stats", right)[0], 200)
            self.assertEqual(http_from("127.0.0.3", up.port, "GET", "/api/v1/stats", wrong)[0], 401)
            # Not made to wait out the 2 s lockout (the bound leaves room for a loaded machine).
            self.assertLess(time.monotonic() - t0, 1.5)
            # The lockout ends.
            wait_until(lambda: http_from("127.0.0.2", up.port, "GET", "/api/v1/stats", right)[0] != 429,
                       max(0.1, locked_at + 5 - time.monotonic()), "the lockout to end")
            self.assertGreater(time.monotonic() - locked_at, 1.0)
            log = up.logs()
            self.assertIn("store http auth failed client=127.0.0.2 method=GET path=\"/api/v1/stats\" scheme=bearer "
                          "failures=3/3", log)
            self.assertIn("store http auth locked client=127.0.0.2 failures=3", log)
            self.assertNotIn("not-the-token-at-all", log)
            for token in TOKENS.values():
                self.assertNotIn(token, log)

    def test_requests_without_credentials_are_not_failures(self):
        with Up(BINARY, [*token_args(), "--auth-max-failures", "2"]) as up:
            for _ in range(5):
                self.assertEqual(http_from("127.0.0.4", up.port, "GET", "/api/v1/stats")[0], 401)
            self.assertEqual(http_from("127.0.0.4", up.port, "GET", "/api/v1/stats", bearer("read"))[0], 200)
            self.assertNotIn("auth failed", up.logs())

    def test_wrong_basic_passwords_and_cookies_count_too(self):
        with Up(BINARY, ["--auth-basic", "ops:right-password", "--auth-token", TOKENS["admin"],
                         "--auth-max-failures", "2"]) as up:
            bad_basic = {"Authorization": "Basic " + base64.b64encode(b"ops:wrong").decode()}
            self.assertEqual(http_from("127.0.0.5", up.port, "GET", "/api/v1/stats", bad_basic)[0], 401)
            self.assertEqual(http_from("127.0.0.5", up.port, "GET", "/", {"Cookie": "zbatch_token=nope"})[0], 401)
            self.assertEqual(http_from("127.0.0.5", up.port, "GET", "/api/v1/stats", bearer("admin"))[0], 429)
            log = up.logs()
            self.assertIn("scheme=basic failures=1/2", log)
            self.assertIn("scheme=cookie failures=2/2", log)
            self.assertNotIn(bad_basic["Authorization"].split()[1], log)
            self.assertNotIn("right-password", log)


class Credentials(unittest.TestCase):
    def test_bad_credentials_stop_the_start_with_a_reason(self):
        with tempfile.TemporaryDirectory() as d:
            written = []

            def auth_file(text):
                written.append(text)
                path = os.path.join(d, f"creds-{len(written)}.toml")
                with open(path, "w") as f:
                    f.write(text)
                os.chmod(path, 0o600)
                return path
            cases = [
                (["--auth-token", "short"], "at least 16 characters"),
                (["--auth-token", "read:short"], "at least 16 characters"),
                (["--auth-basic", "nocolon"], "USER:PASSWORD[:ROLE]"),
                (["--auth-token", TOKENS["read"], "--auth-token", f"admin:{TOKENS['read']}"], "the same token is given twice"),
                (["--auth-basic", "ops:a", "--auth-basic", "ops:b:read"], "user 'ops' is given twice"),
                (["--auth-token", "read:has spaces in the token"], "printable characters without spaces"),
                (["--auth-file", auth_file('[[token]]\ntoken = "0123456789abcdefgh"\nrole = "root"\n')],
                 "role must be read, submit or admin, got 'root'"),
                (["--auth-file", auth_file('[[user]]\nname = "ops"\n')], "needs a password"),
                (["--auth-file", auth_file('[[token]]\ntoken = "0123456789abcdefgh"\nexpires = "never"\n')],
                 "expires is not a known key"),
                (["--auth-file", auth_file('[tokens]\n')], "[tokens] is not known"),
                (["--auth-file", auth_file('[[token\n')], "--auth-file"),
                (["--auth-file", os.path.join(d, "missing.toml")], "--auth-file"),
                (["--auth-max-failures", "0"], "--auth-max-failures"),
            ]
            for args, message in cases:
                with self.subTest(args=args):
                    rc, err = run_store(BINARY, ["--http", f"127.0.0.1:{free_port()}", *args])
                    self.assertEqual(rc, 2, err)
                    self.assertIn(message, err)

    def test_an_auth_file_others_can_read_is_warned_about(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "creds.toml")
            with open(path, "w") as f:
                f.write(f'[[token]]\ntoken = "{TOKENS["read"]}"\nrole = "read"\n')
            os.chmod(path, 0o644)
            with Up(BINARY, ["--auth-file", path]) as up:
                self.assertEqual(requests.get(f"{up.url}/api/v1/stats", headers=bearer("read"), timeout=10).status_code,
                                 200)
                self.assertIn("others can read these credentials; chmod 600 it", up.logs())

    def test_the_environment_and_a_single_legacy_token_mean_admin(self):
        # ZBATCH_AUTH_TOKEN=TOKEN (no role) is one admin token, as --auth-token TOKEN always was.
        os.environ["ZBATCH_AUTH_TOKEN"] = TOKENS["admin"]
        try:
            with Up(BINARY) as up:
                r = requests.post(f"{up.url}/api/v1/purge", json={}, headers=bearer("admin"), timeout=10)
                self.assertEqual(r.status_code, 200, r.text)
                self.assertIn('auth="1 token (admin)"', up.logs())
        finally:
            del os.environ["ZBATCH_AUTH_TOKEN"]


if __name__ == "__main__":
    unittest.main(verbosity=2)
