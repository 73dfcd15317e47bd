"""docs/openapi.yaml and the server agree: every documented path and method is served, and
the routes the server answers are documented."""
import os
import re
import sys
import unittest

import requests
import yaml

from cluster import Cluster

BINARY = sys.argv.pop(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NIL = "01a20e2d-f0d8-7000-8000-000000000000"


class OpenApi(unittest.TestCase):
    def test_documented_routes_exist_and_served_routes_are_documented(self):
        with open(os.path.join(ROOT, "docs", "openapi.yaml")) as f:
            doc = yaml.safe_load(f)
        documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
        with Cluster(BINARY) as c:
            for method, path in sorted(documented):
                url = c.url + path.replace("{id}", NIL).replace("{what}", "queues")
                r = requests.request(method, url, json={} if method == "POST" else None, timeout=10, stream=True)
                body = b"" if "event-stream" in r.headers.get("Content-Type", "") else r.content
                r.close()  # /api/v1/events would stream forever: its headers are enough
                self.assertNotIn(b"no route", body, f"{method} {path} is documented but not served")
                self.assertLess(r.status_code, 500, f"{method} {path}: {r.text}")
        # Every route the HTTP code installs appears in the document.
        source = ""
        for name in ("http_api.cc", "event_stream.cc", "dashboard.cc"):
            with open(os.path.join(ROOT, "store", name)) as f:
                source += f.read()
        served = set()
        for op in ("revoke", "retry"):
            served.add(("POST", "/api/v1/tasks/{id}/" + op))
        for action in ("shutdown", "pool"):
            served.add(("POST", "/api/v1/workers/{id}/" + action))
        served.add(("GET", "/"))  # the dashboard's page; its files are under /dashboard/
        for method, path in re.findall(r'server\.(Get|Post)\("([^"]+)"', source):
            served.add((method.upper(), re.sub(r"\(\[\^/\]\+\)", "{id}", path).replace("inspect/{id}", "inspect/{what}")))
        for method, tail in re.findall(r'server\.(Get|Post)\(prefix \+ "([^"]+)"', source):
            for prefix in ("/batch/celery/", "/batch/"):
                served.add((method.upper(), prefix + re.sub(r"\(\[\^/\]\+\)", "{id}", tail)))
        for seed in ("agent-tasks", "validation", "tests", "mcp-operations"):
            for prefix in ("/batch/celery/", "/batch/"):
                served.add(("POST", prefix + seed))
        served = {s for s in served if "e.path" not in s[1] and not s[1].endswith("/")}
        self.assertEqual(served - documented, set(), "served but not documented")


if __name__ == "__main__":
    unittest.main(verbosity=2)
