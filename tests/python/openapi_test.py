"""docs/openapi.yaml is a valid OpenAPI 3.1 document, and the server answers as it says.

- Two independent validators from npm check the document (installed on first use into the
  build folder): Redocly CLI's lint (its strict rule set, tests/docs/redocly.yaml) and
  @apidevtools/swagger-parser (the official OpenAPI schema, every $ref resolved). Any problem
  fails the test. Every schema is also checked against the JSON Schema 2020-12 meta-schema
  and for keywords that belong to no vocabulary (a misplaced comma in a flow mapping makes one).
- Real clusters (`zbatch up` with authentication, and router + worker + store as separate
  processes) are called on every documented operation with requests that produce each
  documented success status and the error statuses that can be provoked; each answer's status
  must be documented for that operation, its body must validate against the documented
  schema (Debian's python3-jsonschema, Draft 2020-12, formats checked) and its documented
  headers must be there when required and match their schemas. At the end every documented
  (operation, status) must have been seen, except the few listed in NOT_PROVOKED.
- The request schemas are held to the server's answers both ways: every JSON body the server
  accepts (2xx) must validate against the operation's documented request schema, and every
  body sent as one the schema refuses (an unknown field, a wrong type, a kind's missing or
  foreign field) must be refused by the server (400) and by the document.
- The routes the server installs (store/*_routes.cc, dashboard.cc, event_stream.cc, task_output.cc) are read
  from the source and must all be documented, and every documented one must be installed.

Usage: openapi_test.py ZBATCH_BINARY NPM_FOLDER
"""
import base64
import concurrent.futures
import copy
import glob
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import requests
import yaml

from cluster import Cluster, config_file, wait_until
from npm_packages import npm_install

try:
    from jsonschema import Draft202012Validator, FormatChecker
except ImportError:  # pragma: no cover - a set-up error, reported by the test
    Draft202012Validator = None

BINARY = sys.argv.pop(1)
NPM_DIR = sys.argv.pop(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC_PATH = os.path.join(ROOT, "docs", "openapi.yaml")
VALIDATORS = ["@redocly/cli@2.77.0", "@apidevtools/swagger-parser@12.1.0"]
NIL = "01a20e2d-f0d8-7000-8000-000000000000"  # a well-formed id that names nothing
TOKEN = "openapi-test-token-0123456789"
# A kind that writes to stderr as it runs: live output for GET /api/v1/tasks/{id}/stream.
STDERR_HANDLER = """
[[handler]]
kind = "chatty"
argv = ["/bin/sh", "-c", "echo first line >&2; sleep 0.3; echo second line >&2; echo '{}'"]
"""
BASIC = ("admin", "openapi-test-password")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
NOT_JSON = object()  # a request body sent as raw text, or no body at all

# Documented statuses no request of this test can cause, with the reason.
NOT_PROVOKED = {
    "403": "role_matrix_test calls every operation with every role and checks each 403",
    "500": "an internal failure of the store or the router has no request that causes it",
    "504": "the router would have to answer later than the store's deadline yet not fail",
    "507": "the router's data folder must be out of room: disk_full_test.py does it on a small filesystem",
}
NOT_PROVOKED_FOR = {
    ("retryTask", "422"): "the task's queue would have to vanish from the router's configuration",
}

with open(DOC_PATH) as f:
    DOC = yaml.safe_load(f)


def resolve(node):
    """Follows a local $ref ('#/components/...') to the object it names."""
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        target = DOC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def schema_validator(schema):
    """A Draft 2020-12 validator for one schema of the document; its $refs resolve into DOC."""
    root = dict(copy.deepcopy(schema))
    root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    root["components"] = DOC["components"]
    return Draft202012Validator(root, format_checker=FormatChecker())


def operations():
    for path, item in DOC["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def request_schema(op):
    """The JSON schema of an operation's request body, or None when it takes none."""
    if "requestBody" not in op:
        return None
    return resolve(op["requestBody"])["content"]["application/json"]["schema"]


def path_regex(template):
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


class Answer:
    """What check() needs of an answer, from requests or from a raw http.client exchange."""

    def __init__(self, status, headers, body):
        self.status_code = status
        self.headers = headers
        self.content = body

    @property
    def text(self):
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.content)


class Api:
    """Calls one cluster and checks every answer against the document."""

    def __init__(self, test, cluster, auth_headers=None):
        self.test = test
        self.cluster = cluster
        self.headers = dict(auth_headers or {})

    def call(self, method, template, fill=None, expect=None, params=None, body=None, data=None,
             headers=None, stream=False, timeout=15, schema_refuses=False):
        """`schema_refuses`: the body is one the documented request schema refuses, so the
        server must refuse it (400) and the document must too."""
        path = template
        for name, value in (fill or {}).items():
            path = path.replace("{" + name + "}", value)
        all_headers = dict(self.headers, **(headers or {}))
        kwargs = {"params": params, "headers": all_headers, "timeout": timeout, "stream": stream}
        if body is not None:
            kwargs["json"] = body
        elif data is not None:
            kwargs["data"] = data
        r = requests.request(method, self.cluster.url + path, **kwargs)
        if stream:
            answer = Answer(r.status_code, r.headers, b"" if r.status_code == 200 else r.content)
            if r.status_code != 200:
                r.close()
            else:
                answer.stream = r
        else:
            answer = Answer(r.status_code, r.headers, r.content)
        self.test.check(method, template, path, answer, expect, NOT_JSON if body is None else body, schema_refuses)
        return answer

    def raw(self, method, template, fill, head_lines, body=b"", expect=None):
        """Sends headers exactly as given (a false Content-Length, a chunked body)."""
        path = template
        for name, value in fill.items():
            path = path.replace("{" + name + "}", value)
        conn = http.client.HTTPConnection("127.0.0.1", self.cluster.http_port, timeout=15)
        try:
            conn.putrequest(method, path)
            for k, v in list(self.headers.items()) + head_lines:
                conn.putheader(k, v)
            conn.endheaders()
            if body:
                conn.send(body)
            resp = conn.getresponse()
            answer = Answer(resp.status, dict(resp.getheaders()), resp.read())
        finally:
            conn.close()
        self.test.check(method, template, path, answer, expect)
        return answer


class OpenApiDocument(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.modules = npm_install(NPM_DIR, VALIDATORS, [os.path.join("@redocly", "cli", "bin", "cli.js"),
                                                        os.path.join("@apidevtools", "swagger-parser", "package.json")])

    def test_redocly_lint_finds_no_problem(self):
        cli = os.path.join(self.modules, "@redocly", "cli", "bin", "cli.js")
        r = subprocess.run(["node", cli, "lint", "--config", os.path.join(ROOT, "tests", "docs", "redocly.yaml"),
                            "--format", "stylish", DOC_PATH], capture_output=True, text=True, timeout=120)
        report = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, report)
        self.assertIn("Your API description is valid", report)
        self.assertNotRegex(report, r"\b(error|warning)\b\s", report)

    def test_swagger_parser_validates_it(self):
        r = subprocess.run(["node", os.path.join(ROOT, "tests", "docs", "swagger_parser_validate.cjs"),
                            self.modules, DOC_PATH], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("valid: OpenAPI 3.1", r.stdout)

    def test_every_schema_is_json_schema_2020_12_with_known_keywords(self):
        self.assertIsNotNone(Draft202012Validator, "python3-jsonschema is missing: scripts/install-deps.sh test installs it")
        self.assertTrue(DOC["openapi"].startswith("3.1."), "the schemas below are read as JSON Schema 2020-12")
        known = {
            "$ref", "$schema", "$id", "$defs", "$comment", "$anchor", "$dynamicRef", "$dynamicAnchor",
            "type", "enum", "const", "properties", "required", "additionalProperties", "unevaluatedProperties",
            "patternProperties", "propertyNames", "dependentRequired", "dependentSchemas", "minProperties",
            "maxProperties", "items", "prefixItems", "contains", "minItems", "maxItems", "uniqueItems",
            "unevaluatedItems", "minContains", "maxContains", "allOf", "anyOf", "oneOf", "not", "if", "then",
            "else", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
            "maxLength", "pattern", "format", "contentMediaType", "contentEncoding", "contentSchema",
            "title", "description", "default", "examples", "example", "deprecated", "readOnly", "writeOnly",
            "discriminator", "xml", "externalDocs",
        }
        nested_maps = {"properties", "patternProperties", "$defs", "dependentSchemas"}
        nested_lists = {"allOf", "anyOf", "oneOf", "prefixItems"}
        nested_one = {"items", "not", "if", "then", "else", "contains", "additionalProperties",
                      "unevaluatedProperties", "propertyNames", "contentSchema", "unevaluatedItems"}
        problems = []

        def walk(schema, where):
            if isinstance(schema, bool):
                return
            if not isinstance(schema, dict):
                problems.append(f"{where}: not a schema: {schema!r}")
                return
            for key, value in schema.items():
                if key not in known and not key.startswith("x-"):
                    problems.append(f"{where}: unknown keyword {key!r}")
                if key in nested_maps:
                    for name, sub in value.items():
                        walk(sub, f"{where}/{key}/{name}")
                elif key in nested_lists:
                    for i, sub in enumerate(value):
                        walk(sub, f"{where}/{key}/{i}")
                elif key in nested_one:
                    walk(value, f"{where}/{key}")

        schemas = [(f"#/components/schemas/{n}", s) for n, s in DOC["components"]["schemas"].items()]
        for name, p in DOC["components"].get("parameters", {}).items():
            schemas.append((f"#/components/parameters/{name}", p["schema"]))
        for path, method, op in operations():
            for p in op.get("parameters", []):
                p = resolve(p)
                schemas.append((f"{method} {path} parameter {p['name']}", p["schema"]))
            bodies = [("requestBody", resolve(op["requestBody"]))] if "requestBody" in op else []
            bodies += [(f"response {s}", resolve(r)) for s, r in op["responses"].items()]
            for what, body in bodies:
                for media, content in body.get("content", {}).items():
                    for key in ("schema", "x-event-data"):
                        if key in content:
                            schemas.append((f"{method} {path} {what} {media} {key}", content[key]))
                for header, h in body.get("headers", {}).items():
                    schemas.append((f"{method} {path} {what} header {header}", resolve(h)["schema"]))
        for where, schema in schemas:
            walk(schema, where)
            try:
                Draft202012Validator.check_schema(schema)
            except Exception as e:  # jsonschema.SchemaError
                problems.append(f"{where}: {e}")
        self.assertEqual(problems, [])


class OpenApiRoutes(unittest.TestCase):
    """One test: the whole tour, so that the coverage at its end sees every call."""

    def setUp(self):
        self.assertIsNotNone(Draft202012Validator, "python3-jsonschema is missing: scripts/install-deps.sh test installs it")
        self.seen = {}  # operationId -> set of statuses
        self.lock = threading.Lock()
        self.by_regex = [(path_regex(p), p, m, op) for p, m, op in operations()]

    # --- checking one answer ------------------------------------------------------------------
    def check(self, method, template, path, answer, expect, request=NOT_JSON, schema_refuses=False):
        op = DOC["paths"][template][method.lower()]
        self.assertRegex(path.split("?")[0], path_regex(template), f"{path} is not an instance of {template}")
        status = str(answer.status_code)
        where = f"{method} {path} ({op['operationId']})"
        self.assertIn(status, op["responses"], f"{where} answered {status}, which is not documented: {answer.text[:500]}")
        if expect is not None:
            self.assertEqual(answer.status_code, expect, f"{where}: {answer.text[:500]}")
        response = resolve(op["responses"][status])
        self.check_request(op, where, status, request, schema_refuses)
        headers = {k.lower(): v for k, v in answer.headers.items()}
        for name, header in response.get("headers", {}).items():
            header = resolve(header)
            value = headers.get(name.lower())
            if header.get("required"):
                self.assertIsNotNone(value, f"{where} {status}: no {name} header, which is documented as required")
            if value is not None:
                errors = [e.message for e in schema_validator(header["schema"]).iter_errors(value)]
                self.assertEqual(errors, [], f"{where} {status}: header {name}: {value!r}")
        media = answer.headers.get("Content-Type", "").split(";")[0].strip()
        content = response.get("content", {})
        self.assertIn(media, content, f"{where} answered {status} as {media!r}; documented: {list(content)}")
        schema = content[media].get("schema")
        if media == "application/json":
            body = answer.json()
            errors = sorted(schema_validator(schema).iter_errors(body), key=lambda e: list(e.absolute_path))
            self.assertEqual([f"{list(e.absolute_path)}: {e.message}" for e in errors], [],
                             f"{where} {status} does not match its schema: {json.dumps(body)[:2000]}")
            # The document says a submission's answer names its key in the header and the body.
            key = headers.get("idempotency-key")
            named = body.get("idempotency_key") if isinstance(body, dict) else None
            if named is None and isinstance(body, dict) and isinstance(body.get("error"), dict):
                named = body["error"].get("idempotency_key")
            if key is not None or named is not None:
                self.assertEqual(key, named, f"{where} {status}: the Idempotency-Key header and the body's key differ")
        elif media != "text/event-stream":
            self.assertEqual(schema, {"type": "string"}, where)
            self.assertTrue(answer.text, f"{where}: empty {media}")
        with self.lock:
            self.seen.setdefault(op["operationId"], set()).add(status)

    def check_request(self, op, where, status, request, schema_refuses):
        schema = request_schema(op)
        if schema_refuses:
            self.assertEqual(status, "400", f"{where}: a body the document refuses was answered {status}")
            self.assertTrue(schema is not None and request is not NOT_JSON, f"{where}: no JSON body or no schema to refuse it")
        elif schema is None or request is NOT_JSON or not status.startswith("2"):
            return
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in schema_validator(schema).iter_errors(request)]
        if status.startswith("2"):
            self.assertEqual(errors, [], f"{where} accepted a body its documented schema refuses: {json.dumps(request)[:1000]}")
        if schema_refuses:
            self.assertNotEqual(errors, [], f"{where} refused a body that its documented schema allows: {json.dumps(request)[:1000]}")

    def matches(self, schema_name, instance):
        errors = list(schema_validator({"$ref": f"#/components/schemas/{schema_name}"}).iter_errors(instance))
        self.assertEqual([e.message for e in errors], [], f"not a {schema_name}: {json.dumps(instance)[:1000]}")

    # --- the tour -----------------------------------------------------------------------------
    def test_every_documented_operation_answers_as_documented(self):
        folder = tempfile.TemporaryDirectory(prefix="zbatch-openapi-")
        self.addCleanup(folder.cleanup)
        config = config_file(folder.name, STDERR_HANDLER)
        cluster = Cluster(BINARY, up_args=["--auth-basic", ":".join(BASIC), "--auth-token", TOKEN,
                                           "--max-streams", "8", "--config", config])
        try:
            api = Api(self, cluster, {"Authorization": f"Bearer {TOKEN}"})
            self.unauthenticated(cluster)
            self.credentials(cluster)
            self.seed_endpoints(api)
            self.tasks(api)
            self.groups(api)
            self.dead_letters(api)
            self.cluster_views(api)
            self.schedules(api)
            self.events(api)
            self.task_stream(api)
            self.dashboard_and_health(api)
            self.bodies_refused_before_reading(api)
        except BaseException:
            print(cluster.logs(), file=sys.stderr)
            raise
        finally:
            cluster.close()
        split = Cluster(BINARY, split=True)
        try:
            self.router_gone(Api(self, split))
        except BaseException:
            print(split.logs(), file=sys.stderr)
            raise
        finally:
            split.close()
        missing = []
        for path, method, op in operations():
            for status in op["responses"]:
                if status in NOT_PROVOKED or (op["operationId"], status) in NOT_PROVOKED_FOR:
                    continue
                if status not in self.seen.get(op["operationId"], set()):
                    missing.append(f"{method.upper()} {path} {status}")
        self.assertEqual(missing, [], "documented answers this test never saw")

    def fill_for(self, template, task=NIL, worker="nobody@nowhere", group=NIL):
        fill = {}
        if "{id}" in template:
            fill["id"] = group if "/group" in template else task
        if "{name}" in template:
            fill["name"] = worker
        if "{what}" in template:
            fill["what"] = "queues"
        if "{schedule}" in template:
            fill["schedule"] = "nightly"
        return fill

    def unauthenticated(self, cluster):
        anonymous = Api(self, cluster)
        for path, method, op in operations():
            r = anonymous.call(method.upper(), path, self.fill_for(path), body={} if method == "post" else None,
                               stream=path == "/api/v1/events")
            if op.get("security") == []:
                self.assertEqual(r.status_code, 200, f"{path} needs no credentials")
            else:
                self.assertEqual(r.status_code, 401, f"{method} {path} without credentials")
                self.assertEqual(r.headers.get("WWW-Authenticate"), 'Basic realm="zbatch", charset="UTF-8"')
        wrong = Api(self, cluster, {"Authorization": "Bearer not-the-token-at-all"})
        wrong.call("GET", "/api/v1/ping", expect=401)

    def credentials(self, cluster):
        basic = "Basic " + base64.b64encode(":".join(BASIC).encode()).decode()
        for headers in ({"Authorization": f"Bearer {TOKEN}"}, {"Authorization": basic},
                        {"Cookie": f"zbatch_token={TOKEN}"}):
            api = Api(self, cluster, headers)
            api.call("GET", "/api/v1/ping", expect=200)
            api.call("GET", "/", expect=200)

    def seed_endpoints(self, api):
        groups = []
        for path, method, op in operations():
            if not (method == "post" and path.startswith("/batch/")):
                continue
            batch = {"tasks": [{"id": "s1", "kind": "echo", "n": 1}, {"id": 2, "kind": "echo", "n": 2}], "parallel": 1}
            key = {"Idempotency-Key": "openapi-" + op["operationId"]}
            r = api.call("POST", path, body=batch, headers=key, expect=200)
            prefix = "/batch/celery/" if path.startswith("/batch/celery/") else "/batch/"
            self.assertEqual(r.json()["monitor_url"], prefix + "group/" + r.json()["group_id"])
            groups.append(r.json()["group_id"])
            again = api.call("POST", path, body=batch, headers=key, expect=200)
            self.assertEqual(again.json()["group_id"], r.json()["group_id"])
            api.call("POST", path, body=dict(batch, parallel=2), headers=key, expect=409)
            api.call("POST", path, data="{not json", headers={"Content-Type": "application/json"}, expect=400)
            api.call("POST", path, body={"tasks": []}, expect=400, schema_refuses=True)
            api.call("POST", path, body={"tasks": [{"kind": "echo"}], "queue": "default"}, expect=400, schema_refuses=True)
        api.call("POST", "/batch/tests", body={"tasks": [{}] * 100001}, expect=413, timeout=60)
        # Each endpoint's kind: its fields are accepted, foreign ones refused by server and document.
        api.call("POST", "/batch/validation", body={"tasks": [{"id": "v1", "language": "python", "code": "x = 1"}]},
                 expect=200)
        api.call("POST", "/batch/celery/agent-tasks", body={"tasks": [{"id": "a1", "description": "Create hello.py"}],
                                                            "countdown": 600}, expect=200)
        api.call("POST", "/batch/celery/validation", body={"kind": "echo", "tasks": [{"anything": "goes"}]}, expect=200)
        for path, task in (("/batch/agent-tasks", {"prompt": "Create hello.py"}),
                           ("/batch/validation", {"language": "cobol", "code": "x"}),
                           ("/batch/validation", {"language": "python", "code": "x", "files": ["a.py"]}),
                           ("/batch/tests", {"profile": "pytest", "argv": ["pytest"]}),
                           ("/batch/mcp-operations", {"server": "fs", "method": "tools/list", "tool": "x"}),
                           ("/batch/celery/tests", {"kind": "validate", "language": "json"})):
            api.call("POST", path, body={"tasks": [task]}, expect=400, schema_refuses=True)
        # A profile or a server that no worker announces: allowed by the schema, refused by the cluster.
        api.call("POST", "/batch/tests", body={"tasks": [{"profile": "pytest"}]}, expect=400)
        api.call("POST", "/batch/mcp-operations", body={"tasks": [{"server": "fs", "tool": "x"}]}, expect=400)
        gid = groups[0]
        for template in ("/batch/celery/group/{id}", "/batch/group/{id}"):
            wait_until(lambda: api.call("GET", template, {"id": gid}, expect=200).json()["ready"], 20, "seed group done")
            g = api.call("GET", template, {"id": gid}, params={"offset": 1, "limit": 1}, expect=200).json()
            self.assertEqual((g["offset"], len(g["results"]), g["results_truncated"]), (1, 1, False))
            api.call("GET", template, {"id": NIL}, expect=404)
            api.call("GET", template, {"id": "not-an-id"}, expect=404)
            api.call("GET", template, {"id": gid}, params={"offset": "-1"}, expect=400)
        results = api.call("GET", "/batch/group/{id}", {"id": gid}).json()["results"]
        self.assertEqual([(t["id"], t["status"], t["result"]["n"]) for t in results],
                         [("s1", "completed", 1), ("2", "completed", 2)])
        for template in ("/batch/celery/task/{id}", "/batch/task/{id}"):
            t = api.call("GET", template, {"id": results[0]["task_id"]}, expect=200).json()
            self.assertNotIn("payload", t)
            api.call("GET", template, {"id": NIL}, expect=404)
            api.call("GET", template, {"id": "not-an-id"}, expect=404)

    def tasks(self, api):
        one = api.call("POST", "/api/v1/tasks", body={"kind": "echo", "payload": {"x": 1}, "id": "t1"}, expect=201).json()
        t = api.call("GET", "/api/v1/tasks/{id}", {"id": one["task_id"]}, expect=200).json()
        self.assertEqual(t["payload"], {"x": 1})
        group = api.call("POST", "/api/v1/tasks", body={"tasks": [{"kind": "echo", "payload": i} for i in range(3)]},
                         expect=201).json()
        self.assertEqual(len(group["task_ids"]), 3)
        key = {"Idempotency-Key": "openapi-test-key"}
        first = api.call("POST", "/api/v1/tasks", body={"kind": "echo"}, headers=key, expect=201).json()
        again = api.call("POST", "/api/v1/tasks", body={"kind": "echo"}, headers=key, expect=200).json()
        self.assertEqual((again["task_id"], again["duplicate"]), (first["task_id"], True))
        api.call("POST", "/api/v1/tasks", body={"kind": "noop"}, headers=key, expect=409)
        api.call("POST", "/api/v1/tasks", body={"priority": 999}, expect=400, schema_refuses=True)
        api.call("POST", "/api/v1/tasks", body={"queue": "nope", "payload": {}}, expect=422)
        # The strict schemas: the group form's top-level fields, eta as a date-time, each kind's payload.
        soon = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 600))
        api.call("POST", "/api/v1/tasks", body={"kind": "echo", "priority": 3, "eta": soon, "parallel": None,
                                                "tasks": [{"payload": 1}, {"payload": 2, "priority": 9}]}, expect=201)
        api.call("POST", "/api/v1/tasks", body={"kind": "echo", "eta": time.strftime("%Y-%m-%d %H:%M+0000",
                                                                                    time.gmtime(time.time() + 600))},
                 expect=201)
        api.call("POST", "/api/v1/tasks", body={"queue": "validation", "payload": {"language": "json", "code": "{}"}},
                 expect=201)
        api.call("POST", "/api/v1/tasks", body={"queue": "validation", "tasks": [{"payload": {"language": "json", "code": "1"}},
                                                                                 {"kind": "echo", "payload": "any"}]},
                 expect=201)
        for body in ({"kind": "echo", "queu": "default"}, {"tasks": [{"kind": "echo", "prioirty": 1}]},
                     {"kind": "echo", "countdown": 1, "eta": 1}, {"kind": "echo", "parallel": 2},
                     {"tasks": [{"kind": "echo"}], "payload": 1}, {"tasks": [{"kind": "echo", "idempotency_key": "k"}]},
                     {"kind": "echo", "eta": "tomorrow"}, {"kind": "agent", "payload": {"prompt": "x"}},
                     {"queue": "validation", "payload": {"language": "python"}},
                     {"queue": "validation", "tasks": [{"payload": {"language": "cobol", "code": "x"}}]},
                     {"kind": "mcp", "payload": {"server": "fs", "uri": "x"}}):
            api.call("POST", "/api/v1/tasks", body=body, expect=400, schema_refuses=True)
        api.call("POST", "/api/v1/tasks", body={"tasks": [{}] * 100001}, expect=413, timeout=60)
        api.call("GET", "/api/v1/tasks/{id}", {"id": NIL}, expect=404)

        wait_until(lambda: api.call("GET", "/api/v1/tasks/{id}", {"id": one["task_id"]}).json()["state"] == "succeeded",
                   20, "echo task done")
        page = api.call("GET", "/api/v1/tasks", params={"limit": 2}, expect=200).json()
        self.assertEqual(len(page["tasks"]), 2)
        self.assertIsNotNone(page["next"])
        api.call("GET", "/api/v1/tasks", params={"state": "succeeded", "q": "t1"}, expect=200)
        api.call("GET", "/api/v1/tasks", params={"group": group["group_id"]}, expect=200)
        api.call("GET", "/api/v1/tasks", params={"state": "bogus"}, expect=400)
        api.call("GET", "/api/v1/tasks", params={"before": "not-an-id"}, expect=400)

        wait_until(lambda: api.call("GET", "/api/v1/tasks/{id}/events", {"id": one["task_id"]}).status_code == 200
                   and api.call("GET", "/api/v1/tasks/{id}/events", {"id": one["task_id"]}).json()["events"][-1]["event"]
                   == "task-succeeded", 20, "timeline")
        api.call("GET", "/api/v1/tasks/{id}/events", {"id": NIL}, expect=404)

        # Revoke: a scheduled task (200), a finished one (409), a running one without and with
        # terminate (409, 200), one held back by its group's `parallel` (200), bad input (400, 404).
        later = api.call("POST", "/api/v1/tasks", body={"kind": "echo", "countdown": 600}, expect=201).json()["task_id"]
        r = api.call("POST", "/api/v1/tasks/{id}/revoke", {"id": later}, expect=200).json()
        self.assertEqual(r, {"revoked": later, "was": "scheduled"})
        api.call("POST", "/api/v1/tasks/{id}/revoke", {"id": one["task_id"]}, expect=409)
        held = api.call("POST", "/api/v1/tasks", body={"parallel": 1, "tasks": [
            {"kind": "sleep", "payload": {"seconds": 60}}, {"kind": "echo"}]}, expect=201).json()["task_ids"]
        wait_until(lambda: api.call("GET", "/api/v1/tasks/{id}", {"id": held[0]}).json()["state"] == "started", 20,
                   "sleep task started")
        api.call("POST", "/api/v1/tasks/{id}/revoke", {"id": held[0]}, expect=409)
        self.assertEqual(api.call("POST", "/api/v1/tasks/{id}/revoke", {"id": held[1]}, expect=200).json()["was"], "held")
        r = api.call("POST", "/api/v1/tasks/{id}/revoke", {"id": held[0]}, body={"terminate": True}, expect=200).json()
        self.assertEqual(r["was"], "terminated")
        api.call("POST", "/api/v1/tasks/{id}/revoke", {"id": later}, body={"terminate": "yes"}, expect=400, schema_refuses=True)
        api.call("POST", "/api/v1/tasks/{id}/revoke", {"id": later}, body={"terminat": True}, expect=400, schema_refuses=True)
        api.call("POST", "/api/v1/tasks/{id}/revoke", {"id": "not-an-id"}, expect=400)
        api.call("POST", "/api/v1/tasks/{id}/revoke", {"id": NIL}, expect=404)

        # Retry: a revoked task (200), a succeeded one (409), bad input (400, 404).
        r = api.call("POST", "/api/v1/tasks/{id}/retry", {"id": later}, expect=200).json()
        self.assertEqual(r["retried"], later)
        api.call("POST", "/api/v1/tasks/{id}/retry", {"id": one["task_id"]}, expect=409)
        api.call("POST", "/api/v1/tasks/{id}/retry", {"id": "not-an-id"}, expect=400)
        api.call("POST", "/api/v1/tasks/{id}/retry", {"id": later}, body={"now": True}, expect=400, schema_refuses=True)
        api.call("POST", "/api/v1/tasks/{id}/retry", {"id": NIL}, expect=404)

        # Revoke a whole group: 200, then 409 once it has finished; bad input (400, 404).
        gone = api.call("POST", "/api/v1/tasks", body={"tasks": [{"kind": "echo", "countdown": 600},
                                                                 {"kind": "echo", "countdown": 600}]}, expect=201).json()
        r = api.call("POST", "/api/v1/groups/{id}/revoke", {"id": gone["group_id"]}, body={"terminate": False},
                     expect=200).json()
        self.assertEqual((r["group"], r["revoked"], r["running"], r["again"]), (gone["group_id"], 2, 0, False))
        api.call("POST", "/api/v1/groups/{id}/revoke", {"id": gone["group_id"]}, expect=409)
        api.call("POST", "/api/v1/groups/{id}/revoke", {"id": gone["group_id"]}, body={"terminate": "yes"}, expect=400,
                 schema_refuses=True)
        api.call("POST", "/api/v1/groups/{id}/revoke", {"id": "not-an-id"}, expect=400)
        api.call("POST", "/api/v1/groups/{id}/revoke", {"id": NIL}, expect=404)
        self.group_id = group["group_id"]

    def groups(self, api):
        gid = self.group_id
        wait_until(lambda: api.call("GET", "/api/v1/groups/{id}", {"id": gid}, expect=200).json()["ready"], 20, "group done")
        g = api.call("GET", "/api/v1/groups/{id}", {"id": gid}, params={"limit": 2}, expect=200).json()
        self.assertEqual((len(g["tasks"]), g["results_truncated"]), (2, True))
        api.call("GET", "/api/v1/groups/{id}", {"id": NIL}, expect=404)
        api.call("GET", "/api/v1/groups/{id}", {"id": gid}, params={"limit": "many"}, expect=400)
        listed = api.call("GET", "/api/v1/groups", params={"limit": 50}, expect=200).json()["groups"]
        self.assertIn(gid, [x["group_id"] for x in listed])
        api.call("GET", "/api/v1/groups", params={"running": "1"}, expect=200)
        api.call("GET", "/api/v1/groups", params={"running": "maybe"}, expect=400)
        # A webhook on a submission (its receiver refuses connections: the delivery stays pending),
        # seen in the task's view and in the list of deliveries; a bad one is refused.
        hooked = api.call("POST", "/api/v1/tasks", body={"kind": "noop", "webhook": {"url": "http://127.0.0.1:9/hook"}},
                          expect=201).json()["task_id"]
        wait_until(lambda: "webhook" in api.call("GET", "/api/v1/tasks/{id}", {"id": hooked}, expect=200).json(), 20,
                   "the task's webhook view")
        api.call("POST", "/api/v1/tasks", body={"kind": "noop", "webhook": {"url": "ftp://127.0.0.1/x"}}, expect=400,
                 schema_refuses=True)
        listed = api.call("GET", "/api/v1/webhooks/deliveries", expect=200).json()["deliveries"]
        self.assertIn(hooked, [x.get("task_id") for x in listed])
        api.call("GET", "/api/v1/webhooks/deliveries", params={"limit": "many"}, expect=400)
        lines = api.call("GET", "/api/v1/groups/{id}/export", {"id": gid}, expect=200).text.splitlines()
        self.assertEqual(len(lines), g["total"])
        self.assertTrue(api.call("GET", "/api/v1/groups/{id}/export", {"id": gid}, params={"format": "csv"},
                                 expect=200).text.startswith("task_id,"))
        api.call("GET", "/api/v1/groups/{id}/export", {"id": gid}, params={"format": "xml"}, expect=400)
        api.call("GET", "/api/v1/groups/{id}/export", {"id": NIL}, expect=404)

    def dead_letters(self, api):
        ids = [api.call("POST", "/api/v1/tasks", body={"kind": "fail", "payload": {"error": f"Boom: {i}"}, "max_retries": 0},
                        expect=201).json()["task_id"] for i in range(2)]
        wait_until(lambda: api.call("GET", "/api/v1/dead", expect=200).json()["total"] >= 2, 20, "dead letters")
        page = api.call("GET", "/api/v1/dead", params={"limit": 1}, expect=200).json()
        self.assertEqual(len(page["tasks"]), 1)
        self.assertIn(page["next"], ids)
        rest = api.call("GET", "/api/v1/dead", params={"after": page["next"], "queue": "default"}, expect=200).json()
        self.assertIn(rest["tasks"][0]["id"], ids)
        api.call("GET", "/api/v1/dead", params={"limit": "0"}, expect=400)
        api.call("GET", "/api/v1/dead", params={"queue": "nope"}, expect=422)
        api.call("GET", "/api/v1/inspect/{what}", {"what": "failed"}, expect=200)
        self.assertEqual(api.call("POST", "/api/v1/tasks/{id}/retry", {"id": ids[0]}, expect=200).json()["retried"], ids[0])
        r = api.call("POST", "/api/v1/dead/retry", body={"queue": "default", "limit": 10}, expect=200).json()
        self.assertGreaterEqual(r["retried"], 1)
        api.call("POST", "/api/v1/dead/retry", expect=200)
        api.call("POST", "/api/v1/dead/retry", body={"queue": "nope"}, expect=422)
        api.call("POST", "/api/v1/dead/retry", body={"limit": 0}, expect=400, schema_refuses=True)
        api.call("POST", "/api/v1/dead/retry", body={"queues": "default"}, expect=400, schema_refuses=True)

    def cluster_views(self, api):
        workers = api.call("GET", "/api/v1/workers", expect=200).json()
        self.assertEqual(len(workers), 1)
        name = workers[0]["name"]
        api.call("POST", "/api/v1/workers/{name}/pool", {"name": name}, body={"delta": 1}, expect=200)
        api.call("POST", "/api/v1/workers/{name}/pool", {"name": name}, body={"delta": 0}, expect=400, schema_refuses=True)
        api.call("POST", "/api/v1/workers/{name}/pool", {"name": name}, body={}, expect=400, schema_refuses=True)
        api.call("POST", "/api/v1/workers/{name}/pool", {"name": name}, body={"delta": 1, "x": 1}, expect=400,
                 schema_refuses=True)
        api.call("POST", "/api/v1/workers/{name}/shutdown", {"name": name}, body={"now": True}, expect=400,
                 schema_refuses=True)
        api.call("POST", "/api/v1/workers/{name}/pool", {"name": "nobody@nowhere"}, body={"delta": 1}, expect=404)
        api.call("POST", "/api/v1/workers/{name}/shutdown", {"name": "nobody@nowhere"}, expect=404)
        queues = api.call("GET", "/api/v1/queues", expect=200).json()
        self.assertIn("agent_tasks", [q["name"] for q in queues])
        api.call("GET", "/api/v1/ping", expect=200)
        variants = {"active": "InspectActive", "reserved": "InspectTasks", "scheduled": "InspectTasks",
                    "stats": "InspectStats", "registered": "InspectRegistered", "queues": "InspectQueues",
                    "failed": "DeadLetters"}
        documented = resolve(DOC["paths"]["/api/v1/inspect/{what}"]["get"]["parameters"][0])["schema"]["enum"]
        self.assertEqual(sorted(documented), sorted(variants))
        api.call("POST", "/api/v1/tasks", body={"kind": "echo", "countdown": 600}, expect=201)
        for what, schema in variants.items():
            self.matches(schema, api.call("GET", "/api/v1/inspect/{what}", {"what": what}, expect=200).json())
        self.assertTrue(api.call("GET", "/api/v1/inspect/{what}", {"what": "scheduled"}).json()["tasks"])
        api.call("GET", "/api/v1/inspect/{what}", {"what": "bogus"}, expect=404)
        api.call("POST", "/api/v1/tasks", body={"queue": "low_priority", "kind": "echo", "countdown": 0}, expect=201)
        api.call("POST", "/api/v1/purge", body={"queue": "low_priority"}, expect=200)
        api.call("POST", "/api/v1/purge", expect=200)
        api.call("POST", "/api/v1/purge", body={"queue": "nope"}, expect=422)
        api.call("POST", "/api/v1/purge", body={"queue": 5}, expect=400, schema_refuses=True)
        api.call("POST", "/api/v1/purge", body={"queue": "default", "all": True}, expect=400, schema_refuses=True)
        api.call("GET", "/api/v1/stats", expect=200)
        hist = api.call("GET", "/api/v1/series", expect=200).json()
        self.assertEqual(len(hist["t_ms"]), len(hist["received"]))
        api.call("GET", "/api/v1/series", params={"since": 2000, "until": 1000}, expect=400)
        api.call("GET", "/api/v1/series", params={"step": "x"}, expect=400)

    def schedules(self, api):
        made = api.call("POST", "/api/v1/schedules", expect=201,
                        body={"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Berlin", "catch_up": "all",
                              "task": {"queue": "low_priority", "kind": "echo", "payload": {"n": 1}, "priority": 3}})
        self.assertEqual(made.json()["source"], "api")
        api.call("POST", "/api/v1/schedules", body={"name": "every", "every_s": 60, "overlap": "skip"}, expect=201)
        api.call("POST", "/api/v1/schedules", body={"name": "nightly", "every_s": 60}, expect=409)
        api.call("POST", "/api/v1/schedules", body={"name": "z", "cron": "* * * * *", "timezone": "Mars/Base"},
                 expect=404)
        api.call("POST", "/api/v1/schedules", body={"name": "q", "every_s": 60, "task": {"queue": "nope"}}, expect=422)
        api.call("POST", "/api/v1/schedules", body={"name": "b", "cron": "*/0 * * * *"}, expect=400)
        api.call("POST", "/api/v1/schedules", body={"name": "b", "every_s": 60, "evry": 1}, expect=400,
                 schema_refuses=True)
        api.call("POST", "/api/v1/schedules", body={"name": "b/c", "every_s": 60}, expect=400, schema_refuses=True)
        api.call("POST", "/api/v1/schedules", body={"name": "b", "every_s": 60, "catch_up": "some"}, expect=400,
                 schema_refuses=True)
        listed = api.call("GET", "/api/v1/schedules", expect=200).json()["schedules"]
        self.assertEqual(sorted(s["name"] for s in listed), ["every", "nightly"])
        api.call("GET", "/api/v1/schedules/{schedule}", {"schedule": "nightly"}, expect=200)
        api.call("GET", "/api/v1/schedules/{schedule}", {"schedule": "nobody"}, expect=404)
        api.call("GET", "/api/v1/schedules/{schedule}", {"schedule": "a b"}, expect=400)
        for verb in ("pause", "resume", "run", "delete"):
            path = "/api/v1/schedules/{schedule}/" + verb
            api.call("POST", path, {"schedule": "nobody"}, expect=404)
            api.call("POST", path, {"schedule": "nightly"}, body={"now": True}, expect=400, schema_refuses=True)
            r = api.call("POST", path, {"schedule": "nightly"}, body={}, expect=200).json()
            if verb == "run":
                self.assertIsNotNone(r["task"])
        api.call("POST", "/api/v1/schedules/{schedule}/delete", {"schedule": "every"}, expect=200)

    def events(self, api):
        # The whole log from the start: every event's data matches the document.
        r = api.call("GET", "/api/v1/events", params={"after": 0}, stream=True, expect=200, timeout=10)
        schema = DOC["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]["x-event-data"]
        validator = schema_validator(schema)
        head = api.call("GET", "/api/v1/ping").json()["head_seq"]
        frames = read_frames(r.stream, lambda f: f.get("id") == str(head))
        self.assertEqual([int(f["id"]) for f in frames], list(range(1, head + 1)), "every event, in order")
        types = set()
        for f in frames:
            data = json.loads(f["data"])
            errors = [e.message for e in validator.iter_errors(data)]
            self.assertEqual(errors, [], f"event {f}")
            self.assertEqual((str(data["seq"]), data["type"]), (f["id"], f["event"]))
            types.add(data["type"])
        self.assertTrue({"task-received", "task-started", "task-succeeded", "task-failed", "task-revoked",
                         "worker-online", "queue-purged"} <= types, types)
        api.call("GET", "/api/v1/events", headers={"Last-Event-ID": "abc"}, stream=True, expect=400)
        api.call("GET", "/api/v1/events", params={"group": "not-an-id"}, stream=True, expect=400)
        # At most --max-streams (8 here) streams at once: the ninth is refused. (The server notices a closed stream
        # only at its next write, so the first ones may wait for the stream above to go.)
        streams = []

        def open_one():
            r = api.call("GET", "/api/v1/events", stream=True, timeout=10)
            if r.status_code == 200:
                streams.append(r.stream)
            return r.status_code == 200
        try:
            for _ in range(8):
                wait_until(open_one, 30, "an event stream")
            api.call("GET", "/api/v1/events", stream=True, expect=503)
        finally:
            for s in streams:
                s.close()

    def task_stream(self, api):
        # A task's live output: every frame's data matches the document, then its end.
        content = DOC["paths"]["/api/v1/tasks/{id}/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        task = api.call("POST", "/api/v1/tasks", body={"kind": "chatty"}, expect=201).json()["task_id"]
        r = api.call("GET", "/api/v1/tasks/{id}/stream", {"id": task}, stream=True, expect=200, timeout=20)
        frames = read_frames(r.stream, lambda f: f.get("event") == "end")
        self.assertEqual([f["event"] for f in frames][-1], "end", frames)
        outputs = [json.loads(f["data"]) for f in frames if f["event"] == "output"]
        for data in outputs:
            self.assertEqual([e.message for e in schema_validator(content["x-output-data"]).iter_errors(data)], [], data)
        self.assertIn("second line", "".join(d["text"] for d in outputs))
        end = json.loads(frames[-1]["data"])
        self.assertEqual([e.message for e in schema_validator(content["x-end-data"]).iter_errors(end)], [], end)
        self.assertEqual(end["state"], "succeeded")
        api.call("GET", "/api/v1/tasks/{id}/stream", {"id": "nope"}, stream=True, expect=400)
        api.call("GET", "/api/v1/tasks/{id}/stream", {"id": task}, headers={"Last-Event-ID": "x"}, stream=True, expect=400)
        api.call("GET", "/api/v1/tasks/{id}/stream", {"id": NIL}, stream=True, expect=404)
        # At most --max-streams (8) of them at once, apart from the event streams: the ninth is refused.
        slow = api.call("POST", "/api/v1/tasks", body={"kind": "sleep", "payload": {"seconds": 30}}, expect=201).json()["task_id"]
        streams = []
        try:
            for _ in range(8):
                streams.append(api.call("GET", "/api/v1/tasks/{id}/stream", {"id": slow}, stream=True, expect=200).stream)
            api.call("GET", "/api/v1/tasks/{id}/stream", {"id": slow}, stream=True, expect=503)
        finally:
            for s in streams:
                s.close()
        api.call("POST", "/api/v1/tasks/{id}/revoke", {"id": slow}, body={"terminate": True}, expect=200)

    def dashboard_and_health(self, api):
        for path, method, op in operations():
            if op["tags"] in (["dashboard"], ["health"]):
                r = api.call("GET", path, expect=200)
                if path == "/metrics":
                    self.assertIn("zbatch_tasks_total", r.text)
                    self.assertIn('zbatch_router_refused_total{reason="forbidden"} ', r.text)
                    # Prometheus's own linter reads it as a scraper would.
                    checked = subprocess.run(["promtool", "check", "metrics"], input=r.text, text=True,
                                             capture_output=True, timeout=30)
                    self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def bodies_refused_before_reading(self, api):
        # Every POST: a body above the limit (413) and a chunked body (400) are refused from
        # the headers alone.
        for path, method, op in operations():
            if method != "post":
                continue
            fill = self.fill_for(path)
            api.raw("POST", path, fill, [("Content-Type", "application/json"), ("Content-Length", str(64 << 20))],
                    expect=413)
            api.raw("POST", path, fill, [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
                    body=b"2\r\n{}\r\n0\r\n\r\n", expect=400)

    def router_gone(self, api):
        # A worker's warm shutdown, then the router killed: what the store forwards answers 503.
        name = "w0@test"
        wait_until(lambda: api.call("GET", "/api/v1/workers").json() != [], 20, "worker online")
        api.call("POST", "/api/v1/workers/{name}/shutdown", {"name": name}, expect=200)
        api.cluster.kill("router")
        wait_until(lambda: api.call("GET", "/readyz").status_code == 503, 20, "readyz 503")
        calls = []
        for path, method, op in operations():
            # The streams are the store's own (their 503: too many open), not forwarded.
            if "503" in op["responses"] and path not in ("/readyz", "/api/v1/events", "/api/v1/tasks/{id}/stream"):
                body = {"/api/v1/workers/{name}/pool": {"delta": 1}, "/api/v1/tasks": {"kind": "echo"},
                        "/api/v1/schedules": {"name": "gone", "every_s": 60}}.get(path)
                if path.startswith("/batch/") and method == "post":
                    body = {"tasks": [{"kind": "echo"}]}
                calls.append((method.upper(), path, self.fill_for(path, worker=name), body))
        with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
            futures = [pool.submit(api.call, m, p, f, 503, body=b, timeout=30) for m, p, f, b in calls]
            for fut in futures:
                self.assertEqual(fut.result().json()["error"]["code"], "unavailable")


def read_frames(stream, last):
    """Server-Sent Events frames ({field: value}) of a response read as they come, until the
    one `last` accepts; the response is closed."""
    frames, frame = [], {}
    try:
        for line in stream.iter_lines(chunk_size=1, decode_unicode=True):
            if line == "":
                if frame:
                    frames.append(frame)
                    if last(frame):
                        break
                frame = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                frame[field] = value
    finally:
        stream.close()
    return frames


class ServedRoutes(unittest.TestCase):
    FILES = ("batch_routes.cc", "export_routes.cc", "task_routes.cc", "control_routes.cc", "metrics_routes.cc", "dashboard.cc",
             "event_stream.cc", "task_output.cc", "webhook_routes.cc")

    def test_every_installed_route_is_documented_and_every_documented_one_installed(self):
        served = set()
        for name in self.FILES:
            with open(os.path.join(ROOT, "store", name)) as f:
                source = f.read()
            for m in re.finditer(r"\bserver\.(Get|Post|Put|Patch|Delete|Options)\(", source):
                where = f"store/{name}:{source.count(chr(10), 0, m.start()) + 1}"
                for path in self.expand(first_argument(source, m.end()), source, m.start(), where):
                    canonical = path.replace("([^/]+)", "{}")
                    self.assertNotRegex(canonical, r"[()\[\]*+?\\]", f"{where}: a route pattern this test cannot read")
                    served.add((m.group(1).upper(), canonical))
        documented = {(method.upper(), re.sub(r"\{[^}]+\}", "{}", path)) for path, method, _ in operations()}
        self.assertEqual(sorted(served - documented), [], "installed but not documented")
        self.assertEqual(sorted(documented - served), [], "documented but not installed")

    def expand(self, expr, source, pos, where):
        """The paths an argument like `prefix + "task/([^/]+)"` takes, reading the enclosing
        for-loops' lists; anything this cannot read fails the test."""
        tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z_.]*', expr)
        rest = expr
        for token in tokens:
            rest = rest.replace(token, "", 1)
        if rest.replace(" ", "") != "+" * (len(tokens) - 1):  # string literals and names joined by +
            self.fail(f"{where}: cannot read the route expression {expr!r}")
        paths = [""]
        for token in tokens:
            if re.fullmatch(r'"[^"]*"', token):
                values = [token[1:-1]]
            elif token == "e.path":
                values = re.findall(r'\{\s*"([^"]+)"\s*,\s*"[^"]+"\s*\}', loop_list(source, pos, "e", where))
            elif token == "path" and "dashboard_assets()" in source:
                values = dashboard_paths()
            elif re.fullmatch(r"[a-z_]+", token):
                values = re.findall(r'"([^"]*)"', loop_list(source, pos, token, where))
            else:
                self.fail(f"{where}: cannot read the route expression {expr!r}")
            self.assertTrue(values, f"{where}: no values for {token}")
            paths = [p + v for p in paths for v in values]
        return paths


def first_argument(source, start):
    depth, i, in_string = 0, start, False
    while i < len(source):
        ch = source[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif ch == "," and depth == 0:
            break
        i += 1
    return source[start:i].strip()


def loop_list(source, pos, name, where):
    """The braced list of the nearest `for (const ... NAME : {...})` before pos."""
    loops = list(re.finditer(r"for \(const (?:std::string|auto&) " + re.escape(name) + r" : \{", source[:pos]))
    if not loops:
        raise AssertionError(f"{where}: no for-loop over {name!r} before the route")
    start = loops[-1].end()
    depth, i = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(source[i], 0)
        i += 1
    return source[start:i - 1]


def dashboard_paths():
    """What store/dashboard/embed.cmake compiles in, and where install_dashboard serves it."""
    base = os.path.join(ROOT, "store", "dashboard")
    paths = []
    for f in glob.glob(os.path.join(base, "**", "*"), recursive=True):
        rel = os.path.relpath(f, base)
        if os.path.splitext(rel)[1] in (".html", ".js", ".css"):
            paths.append("/" if rel == "index.html" else "/dashboard/" + rel)
    return paths


if __name__ == "__main__":
    unittest.main(verbosity=2)
