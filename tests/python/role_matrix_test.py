"""Every route of the route table (store/routes.cc), called with every role: no credentials ->
401, a smaller role -> 403 (forbidden), the role it needs or a larger one -> 2xx; the probes are
open to all. docs/openapi.yaml documents the same role for each operation. The dashboard works
with a read token, and its actions say they are refused. Credentials come from --auth-token
ROLE:TOKEN, --auth-basic USER:PASSWORD:ROLE and an --auth-file at once."""
import glob
import os
import re
import subprocess
import sys
import tempfile
import unittest
import uuid

import requests
import yaml

from cluster import wait_until
from http_support import TOKENS, Up, bearer, token_args

BINARY = sys.argv.pop(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RANK = {"none": 0, "read": 1, "submit": 2, "admin": 3}
FILE_TOKEN = "file-read-token-0123456789"


def route_table():
    """(method, pattern, role) as store/routes.cc lists them."""
    with open(os.path.join(ROOT, "store", "routes.cc")) as f:
        source = f.read()
    rows = re.findall(r'\{"(GET|POST)", "([^"]+)", Role::k(\w+)', source)
    assert rows, "no routes read from store/routes.cc"
    return [(m, p, role.lower()) for m, p, role in rows]


def dashboard_paths():
    base = os.path.join(ROOT, "store", "dashboard")
    return sorted("/dashboard/" + os.path.relpath(f, base) for f in glob.glob(os.path.join(base, "**", "*"), recursive=True)
                  if os.path.splitext(f)[1] in (".js", ".css"))


class RoleMatrix(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.files = tempfile.TemporaryDirectory(prefix="zbatch-roles-")
        cls.auth_file = os.path.join(cls.files.name, "credentials.toml")
        with open(cls.auth_file, "w") as f:
            f.write(f'[[token]]\ntoken = "{FILE_TOKEN}"\nrole = "read"\n\n'
                    '[[user]]\nname = "auditor"\npassword = "file-password"\nrole = "submit"\n')
        os.chmod(cls.auth_file, 0o600)
        cls.up = Up(BINARY, [*token_args(), "--auth-basic", "ops:basic-password:admin", "--auth-file", cls.auth_file])
        # A worker of its own, for the pool and shutdown routes.
        cls.worker_log = open(os.path.join(cls.files.name, "victim.log"), "ab")
        cls.victim = subprocess.Popen([BINARY, "worker", "--router", cls.up.backend, "--hostname", "victim@test", "-c", "1"],
                                      stdout=cls.worker_log, stderr=cls.worker_log, start_new_session=True)
        wait_until(lambda: any(w["name"] == "victim@test" for w in cls.get("/api/v1/workers", "read").json()),
                   20, "the second worker online")

    @classmethod
    def tearDownClass(cls):
        if cls.victim.poll() is None:
            cls.victim.terminate()
            cls.victim.wait(timeout=15)
        cls.worker_log.close()
        cls.up.close()
        cls.files.cleanup()

    @classmethod
    def get(cls, path, role):
        return requests.get(cls.up.url + path, headers=bearer(role), timeout=10)

    def submit(self, body):
        r = requests.post(self.up.url + "/api/v1/tasks", json=body, headers=bearer("admin"), timeout=10)
        self.assertIn(r.status_code, (200, 201), r.text)
        return r.json()

    def request(self, method, path, role, body):
        headers = bearer(role) if role != "none" else {}
        if method == "GET":
            return requests.get(self.up.url + path, headers=headers, timeout=10, stream=path == "/api/v1/events")
        return requests.post(self.up.url + path, headers=headers, json=body, timeout=10)

    def concrete(self, method, pattern, fresh):
        """Concrete (path, body) calls for a pattern; `fresh()` makes objects each call needs."""
        if pattern == "/dashboard/*":
            return [(p, None) for p in dashboard_paths()]
        if "([^/]+)" not in pattern:
            body = {"tasks": [{"id": "m", "kind": "echo"}]} if pattern.startswith("/batch/") and method == "POST" else None
            if pattern == "/api/v1/tasks" and method == "POST":
                body = {"kind": "noop"}
            if pattern == "/api/v1/purge":
                body = {"queue": "low_priority"}
            if pattern == "/api/v1/dead/retry":
                body = {}
            if pattern == "/api/v1/schedules" and method == "POST":
                body = {"name": "m-" + uuid.uuid4().hex[:12], "every_s": 3600}
            return [(pattern, body)]
        if "/schedules/" in pattern:
            value, body = fresh("schedule"), ({} if method == "POST" else None)
        elif "/workers/" in pattern:
            value, body = "victim@test", ({"delta": 1} if pattern.endswith("/pool") else {})
        elif "/inspect/" in pattern:
            value, body = "queues", None
        elif "group" in pattern and pattern.endswith("/revoke"):
            value, body = fresh("waiting group"), {}
        elif "group" in pattern:
            value, body = fresh("group"), None
        elif pattern.endswith("/revoke"):
            value, body = fresh("scheduled"), {}
        elif pattern.endswith("/retry"):
            value, body = fresh("revoked"), {}
        else:
            value, body = fresh("task"), None
        return [(pattern.replace("([^/]+)", value, 1), body)]

    def fresh(self, what):
        if what == "schedule":
            name = "s-" + uuid.uuid4().hex[:12]
            r = requests.post(self.up.url + "/api/v1/schedules", json={"name": name, "every_s": 3600},
                              headers=bearer("admin"), timeout=10)
            self.assertEqual(r.status_code, 201, r.text)
            return name
        if what in ("group", "waiting group"):  # a waiting one has a task an hour away: it can be revoked
            task = {"kind": "noop", "countdown": 3600} if what == "waiting group" else {"kind": "noop"}
            r = requests.post(self.up.url + "/api/v1/tasks", json={"tasks": [task]}, headers=bearer("admin"),
                              timeout=10)
            self.assertEqual(r.status_code, 201, r.text)
            return r.json()["group_id"]
        if what == "task":
            task = self.submit({"kind": "noop"})["task_id"]
            wait_until(lambda: self.get(f"/api/v1/tasks/{task}/events", "read").status_code == 200, 10,
                       "the store to apply the task's events")
            return task
        task = self.submit({"kind": "noop", "countdown": 3600})["task_id"]
        if what == "revoked":
            r = requests.post(f"{self.up.url}/api/v1/tasks/{task}/revoke", json={}, headers=bearer("admin"), timeout=10)
            self.assertEqual(r.status_code, 200, r.text)
        return task

    def test_every_route_with_every_role(self):
        table = route_table()
        # The worker shutdown goes last: it stops the worker the pool route uses.
        table.sort(key=lambda row: row[1].endswith("/shutdown"))
        calls = 0
        for method, pattern, needed in table:
            for path, body in self.concrete(method, pattern, self.fresh):
                for role in ("none", "read", "submit", "admin"):
                    # Each allowed call acts (revoke, retry): it gets an object of its own.
                    if role != "none" and RANK[role] >= RANK[needed] and "([^/]+)" in pattern \
                            and not ("/workers/" in pattern or "/inspect/" in pattern):
                        path, body = self.concrete(method, pattern, self.fresh)[0]
                    with self.subTest(method=method, path=pattern, role=role):
                        r = self.request(method, path, role, body)
                        calls += 1
                        detail = "(an event stream)" if path == "/api/v1/events" and r.ok else r.text[:300]
                        try:
                            if needed == "none":
                                self.assertEqual(r.status_code, 200, detail)
                            elif role == "none":
                                self.assertEqual(r.status_code, 401, detail)
                                self.assertEqual(r.json()["error"]["code"], "unauthorized")
                            elif RANK[role] < RANK[needed]:
                                self.assertEqual(r.status_code, 403, detail)
                                error = r.json()["error"]
                                self.assertEqual(error["code"], "forbidden")
                                self.assertIn(f"needs the {needed} role", error["message"])
                                self.assertIn(f"has the {role} role", error["message"])
                            else:
                                self.assertTrue(200 <= r.status_code < 300, f"{r.status_code}: {detail}")
                        finally:
                            r.close()
        print(f"role matrix: {len(table)} routes, {calls} calls", file=sys.stderr)
        self.assertGreater(calls, 4 * len(table) - 1)

    def test_every_credential_form_carries_its_role(self):
        basic_admin = ("ops", "basic-password")
        basic_submit = ("auditor", "file-password")
        url = self.up.url
        # --auth-basic USER:PASSWORD:admin
        self.assertEqual(requests.post(f"{url}/api/v1/purge", json={"queue": "low_priority"}, auth=basic_admin,
                                       timeout=10).status_code, 200)
        # the file's [[user]] with role submit
        self.assertEqual(requests.post(f"{url}/api/v1/tasks", json={"kind": "noop"}, auth=basic_submit,
                                       timeout=10).status_code, 201)
        self.assertEqual(requests.post(f"{url}/api/v1/purge", json={}, auth=basic_submit, timeout=10).status_code, 403)
        # the file's [[token]] with role read, as a header and as the dashboard's cookie
        file_read = {"Authorization": f"Bearer {FILE_TOKEN}"}
        self.assertEqual(requests.get(f"{url}/api/v1/stats", headers=file_read, timeout=10).status_code, 200)
        self.assertEqual(requests.post(f"{url}/api/v1/tasks", json={"kind": "noop"}, headers=file_read,
                                       timeout=10).status_code, 403)
        self.assertEqual(requests.get(f"{url}/api/v1/stats", cookies={"zbatch_token": FILE_TOKEN},
                                      timeout=10).status_code, 200)
        # wrong passwords and unknown tokens are 401, with the basic challenge
        r = requests.get(f"{url}/api/v1/stats", auth=("ops", "wrong"), timeout=10)
        self.assertEqual(r.status_code, 401)
        self.assertIn("Basic", r.headers["WWW-Authenticate"])
        logs = self.up.logs()
        for secret in [*TOKENS.values(), FILE_TOKEN, "basic-password", "file-password"]:
            self.assertNotIn(secret, logs, "credentials are never logged")
        self.assertIn('auth="4 tokens (read, submit, admin, read), 2 users (admin, submit)"', logs)

    def test_the_dashboard_works_with_a_read_token_and_its_actions_are_refused(self):
        url, cookie = self.up.url, {"zbatch_token": TOKENS["read"]}
        page = requests.get(f"{url}/", cookies=cookie, timeout=10)
        self.assertEqual(page.status_code, 200)
        self.assertIn('id="forbidden"', page.text)  # where the page says an action was refused
        for path in ("/dashboard/app.js", "/api/v1/stats", "/api/v1/workers", "/api/v1/groups", "/api/v1/tasks",
                     "/api/v1/dead", "/api/v1/queues"):
            self.assertEqual(requests.get(url + path, cookies=cookie, timeout=10).status_code, 200, path)
        with requests.get(f"{url}/api/v1/events", cookies=cookie, stream=True, timeout=10) as r:
            self.assertEqual(r.status_code, 200)
            self.assertEqual(r.headers["Content-Type"], "text/event-stream")
        script = requests.get(f"{url}/dashboard/app.js", cookies=cookie, timeout=10).text
        self.assertIn("res.status === 403", script)
        for path, body in (("/api/v1/workers/victim@test/pool", {"delta": 1}), ("/api/v1/dead/retry", {})):
            r = requests.post(url + path, json=body, cookies=cookie, timeout=10)
            self.assertEqual(r.status_code, 403, path)
            self.assertIn("needs the admin role; this credential has the read role", r.json()["error"]["message"])

    def test_openapi_documents_each_route_with_its_role(self):
        with open(os.path.join(ROOT, "docs", "openapi.yaml")) as f:
            doc = yaml.safe_load(f)
        roles = {}
        for method, pattern, role in route_table():
            paths = dashboard_paths() if pattern == "/dashboard/*" else [re.sub(r"\(\[\^/\]\+\)", "{}", pattern)]
            for p in paths:
                roles[(method.lower(), p)] = role
        seen = set()
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                key = (method, re.sub(r"\{[^}]+\}", "{}", path))
                seen.add(key)
                with self.subTest(operation=op["operationId"]):
                    self.assertIn(key, roles, "documented but not in the route table")
                    self.assertEqual(op.get("x-zbatch-role"), roles[key])
                    self.assertEqual("403" in op["responses"], RANK[roles[key]] > RANK["read"],
                                     "403 is documented exactly where a read credential is refused")
                    self.assertEqual(op.get("security") == [], roles[key] == "none")
        self.assertEqual(sorted(set(roles) - seen), [], "in the route table but not documented")


if __name__ == "__main__":
    unittest.main(verbosity=2)
