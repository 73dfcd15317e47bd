"""An MCP server over Streamable HTTP that misbehaves on purpose, for tests only: the hostile
input a worker must survive (the real server, @modelcontextprotocol/server-everything, covers
the protocol done right). The first path segment picks the behaviour (/MODE/mcp):

  paged      tools/list in three pages (nextCursor p2, p3)
  loop       tools/list whose nextCursor is always the same
  badjson    requests answered 200 application/json "{oops"
  wrongid    requests answered with the response to another id
  nodata     an event stream of comments and events without data, then the end
  html       requests answered 200 text/html
  huge       a 65 MiB application/json reply
  hang       an event stream that never sends the response (until the server stops)
  expire     the first request after an initialize is answered 404, once (the session is forgotten)
  oldrev     initialize answers protocol revision 2025-03-26, without a session id
  newrev     initialize answers a revision nobody speaks
  toolerror  tools/call answers a result with isError
  rpcerror   tools/call answers a JSON-RPC error
  ping       tools/call streams a ping request of the server first, and answers only once the
             client has POSTed the ping's response
  stateless  the 2026-07-28 revision: initialize is "method not found" (HTTP 404, -32601),
             server/discover lists 2026-07-28, and any request without the three _meta
             fields, without a matching MCP-Protocol-Version header or with a session id is
             refused (400, -32602); then it echoes as below
  nodiscover initialize is "method not found", and so is server/discover
Anything else answers initialize (2025-06-18, a session id) and echoes tools/call as text over
an event stream. Every request is kept (mode, HTTP method, headers, body) for assertions.
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HostileMcp:
    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.sessions = 0
        self.expired = False
        self.pong = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def record(self, body):
                mode = self.path.strip("/").split("/")[0]
                entry = {"mode": mode, "verb": self.command, "body": body,
                         "headers": {k.lower(): v for k, v in self.headers.items()}}
                with owner.lock:
                    owner.requests.append(entry)
                return mode

            def do_DELETE(self):
                self.record(None)
                self.send_json(200, None)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except ValueError:
                    body = None
                mode = self.record(body)
                if not isinstance(body, dict):
                    return self.send_json(400, {"jsonrpc": "2.0", "id": None,
                                                "error": {"code": -32700, "message": "parse error"}})
                if "id" not in body or "method" not in body:  # a notification, or a response of the client
                    if body.get("id") == "server-ping" and "result" in body:
                        owner.pong.set()
                    return self.send_json(202, None)
                method, rid = body.get("method"), body["id"]
                if mode in ("stateless", "nodiscover"):
                    return self.stateless(mode, method, rid, body.get("params"))
                if method == "initialize":
                    return self.initialize(mode, rid)
                if mode == "expire" and not owner.expired:
                    owner.expired = True
                    return self.send_json(404, {"jsonrpc": "2.0", "id": None,
                                                "error": {"code": -32001, "message": "Session not found"}})
                return self.answer(mode, method, rid, body.get("params") or {})

            def stateless(self, mode, method, rid, params):
                unknown = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"Method not found: {method}"}}
                if method == "initialize" or (mode == "nodiscover" and method == "server/discover"):
                    return self.send_json(404, unknown)
                meta = (params or {}).get("_meta") or {}
                version = meta.get("io.modelcontextprotocol/protocolVersion")
                complete = all(k in meta for k in ("io.modelcontextprotocol/clientInfo",
                                                   "io.modelcontextprotocol/clientCapabilities"))
                if (version != "2026-07-28" or not complete or self.headers.get("MCP-Protocol-Version") != version
                        or self.headers.get("Mcp-Method") != method or "Mcp-Session-Id" in self.headers):
                    return self.send_json(400, {"jsonrpc": "2.0", "id": rid, "error": {
                        "code": -32602, "message": "Invalid params: a stateless request needs its _meta and headers"}})
                if method == "server/discover":
                    return self.send_json(200, {"jsonrpc": "2.0", "id": rid, "result": {
                        "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
                        "serverInfo": {"name": "hostile-stateless", "version": "0"}}})
                return self.answer(mode, method, rid, params or {})

            def initialize(self, mode, rid):
                revision = {"oldrev": "2025-03-26", "newrev": "2099-01-01"}.get(mode, "2025-06-18")
                result = {"protocolVersion": revision, "capabilities": {"tools": {}},
                          "serverInfo": {"name": "hostile", "version": "0"}}
                headers = {}
                if mode != "oldrev":
                    with owner.lock:
                        owner.sessions += 1
                        headers["Mcp-Session-Id"] = f"session-{owner.sessions}"
                self.send_json(200, {"jsonrpc": "2.0", "id": rid, "result": result}, headers)

            def answer(self, mode, method, rid, params):
                if mode in ("paged", "loop") and method == "tools/list":
                    cursor = params.get("cursor")
                    if mode == "loop":
                        page = {"tools": [{"name": "again"}], "nextCursor": "same"}
                    else:
                        pages = {None: (["t1", "t2"], "p2"), "p2": (["t3"], "p3"), "p3": (["t4"], None)}
                        names, after = pages.get(cursor, ([], None))
                        page = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in names]}
                        if after:
                            page["nextCursor"] = after
                    return self.send_json(200, {"jsonrpc": "2.0", "id": rid, "result": page})
                if mode == "badjson":
                    return self.send_raw(200, "application/json", b"{oops")
                if mode == "wrongid":
                    return self.send_json(200, {"jsonrpc": "2.0", "id": rid + 1000, "result": {}})
                if mode == "html":
                    return self.send_raw(200, "text/html", b"<html>login first</html>")
                if mode == "nodata":
                    return self.send_stream([b": keep-alive\n\n", b"event: endpoint\n\n", b"id: 1\n\n"])
                if mode == "huge":
                    return self.send_huge()
                if mode == "hang":
                    return self.hang()
                if mode == "ping":
                    self.start_stream()
                    self.wfile.write(b'data: {"jsonrpc":"2.0","id":"server-ping","method":"ping"}\n\n')
                    self.wfile.flush()
                    text = "pong" if owner.pong.wait(10) else "no pong"
                    message = {"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": text}]}}
                    self.wfile.write(f"data: {json.dumps(message)}\n\n".encode())
                    return None
                if mode == "toolerror":
                    return self.send_json(200, {"jsonrpc": "2.0", "id": rid, "result": {
                        "isError": True, "content": [{"type": "text", "text": "the tool broke"}]}})
                if mode == "rpcerror":
                    return self.send_json(200, {"jsonrpc": "2.0", "id": rid,
                                                "error": {"code": -32601, "message": "Method not found"}})
                text = json.dumps(params.get("arguments", {}), sort_keys=True)
                message = {"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": text}]}}
                return self.send_stream([f"data: {json.dumps(message)}\n\n".encode()])

            def send_json(self, status, value, headers=None):
                body = b"" if value is None else json.dumps(value).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def send_raw(self, status, content_type, body):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def start_stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

            def send_stream(self, chunks):
                self.start_stream()
                for c in chunks:
                    self.wfile.write(c)
                    self.wfile.flush()

            def send_huge(self):
                chunk = b" " * (1 << 20)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(65 * len(chunk)))
                self.end_headers()
                self.close_connection = True
                try:
                    for _ in range(65):
                        self.wfile.write(chunk)
                except OSError:
                    pass  # the client stopped reading at its limit

            def hang(self):
                self.start_stream()
                try:
                    self.wfile.write(b": the response never comes\n\n")
                    self.wfile.flush()
                except OSError:
                    return
                owner.stopping.wait(60)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, mode):
        return f"http://127.0.0.1:{self.port}/{mode}/mcp"

    def seen(self, mode):
        with self.lock:
            return [r for r in self.requests if r["mode"] == mode]

    def close(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
