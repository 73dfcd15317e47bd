"""A small stand-in for an Ollama server's /api/chat, for tests only (no Ollama can run here).

It streams NDJSON like Ollama does: chunks {"message": {"role","content"}, "done": false},
then {"done": true, "done_reason", "prompt_eval_count", "eval_count", "total_duration"}.
The user message steers it: "[500]" answers 500, "[404]" answers 404 (model not found),
"[slow]" pauses 0.3 s between chunks, "[stream-error]" puts an error in the stream,
"[cut]" closes the connection before "done". Requests are kept for assertions.

Scripted replies, for the agent loop: a request whose first user message holds "[script:NAME]"
is answered with the next reply of script NAME (set with script(); the last one repeats).
A reply is a dict:
  {"content": "text", "tool_calls": [...], "prompt_eval_count": N, "eval_count": M}
      streamed as content chunks, then a chunk with message.tool_calls (when given), then
      the "done" chunk with the counts;
  {"status": 429|503|..., "retry_after": "2", "error": "..."}   an HTTP error answer;
  {"slow": S, ...}    S seconds between chunks (the fake server's own pacing);
  {"stall": S, ...}   S seconds before the first chunk;
  {"cut": True, ...}  the connection closes mid-stream, before "done";
  {"raw": "bytes"}    these bytes as the whole body (invalid JSON lines, for instance).
Each request is kept with its arrival time (monotonic) in `arrivals`, and in `finished` once
answered; `max_active` is the most requests it answered at once. A scripted reply the client
stopped reading (its connection closed mid-stream) is named in `aborted`.
"""
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOllama:
    def __init__(self):
        self.requests = []
        self.request_headers = []  # the headers of each request, in order (names lower-cased)
        self.arrivals = []  # (monotonic time, body)
        self.scripts = {}
        self.aborted = []  # names of scripts whose reply the client cut off
        self.active = 0  # requests being answered now, and the most at once
        self.max_active = 0
        self.finished = []  # (monotonic time, body) of each request answered, in order
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner.lock:
                    owner.requests.append(body)
                    owner.request_headers.append({k.lower(): v for k, v in self.headers.items()})
                    owner.arrivals.append((time.monotonic(), body))
                    owner.active += 1
                    owner.max_active = max(owner.max_active, owner.active)
                try:
                    return self.answer(body)
                finally:
                    with owner.lock:
                        owner.active -= 1
                        owner.finished.append((time.monotonic(), body))

            def answer(self, body):
                if self.path != "/api/chat":
                    return self.reply(404, {"error": "not found"})
                user = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
                name = re.search(r"\[script:([\w.-]+)\]", user)
                if name:
                    try:
                        return self.scripted(body, owner.next_reply(name.group(1)))
                    except (BrokenPipeError, ConnectionResetError):
                        with owner.lock:  # the client went away mid-reply
                            owner.aborted.append(name.group(1))
                        return None
                if "[500]" in user:
                    return self.reply(500, {"error": "model runner crashed"})
                if "[404]" in user or body.get("model") == "missing":
                    return self.reply(404, {"error": f"model '{body.get('model')}' not found"})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                words = ("You said: " + user.splitlines()[0]).split(" ")
                for i, w in enumerate(words):
                    self.chunk({"model": body.get("model"), "message": {"role": "assistant",
                                "content": w + (" " if i + 1 < len(words) else "")}, "done": False})
                    if "[slow]" in user:
                        time.sleep(0.3)  # the fake server's own pacing, not a test wait
                    if "[stream-error]" in user and i == 1:
                        self.chunk({"error": "out of memory while generating"})
                        return self.end()
                if "[cut]" in user:
                    self.wfile.flush()
                    self.close_connection = True
                    return self.end()
                self.chunk({"model": body.get("model"), "message": {"role": "assistant", "content": ""},
                            "done": True, "done_reason": "stop", "prompt_eval_count": len(user.split()),
                            "eval_count": len(words), "total_duration": 1234567})
                self.end()

            def scripted(self, body, r):
                if "status" in r:
                    data = json.dumps({"error": r.get("error", "busy")}).encode()
                    self.send_response(r["status"])
                    self.send_header("Content-Type", "application/json")
                    if "retry_after" in r:
                        self.send_header("Retry-After", r["retry_after"])
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if "raw" in r:
                    data = r["raw"].encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    return self.end()
                if r.get("stall"):
                    time.sleep(r["stall"])  # the fake server's own pacing, not a test wait
                model = body.get("model")
                words = r.get("content", "").split(" ") if r.get("content") else []
                for piece in [w + (" " if i + 1 < len(words) else "") for i, w in enumerate(words)]:
                    self.chunk({"model": model, "message": {"role": "assistant", "content": piece}, "done": False})
                    if r.get("slow"):
                        time.sleep(r["slow"])  # the fake server's own pacing, not a test wait
                if r.get("cut"):
                    self.wfile.flush()
                    self.close_connection = True
                    return self.end()
                if "tool_calls" in r:
                    self.chunk({"model": model, "message": {"role": "assistant", "content": "",
                                                            "tool_calls": r["tool_calls"]}, "done": False})
                self.chunk({"model": model, "message": {"role": "assistant", "content": ""}, "done": True,
                            "done_reason": "stop", "prompt_eval_count": r.get("prompt_eval_count", 10),
                            "eval_count": r.get("eval_count", 5), "total_duration": 1000})
                self.end()

            def chunk(self, obj):
                data = (json.dumps(obj) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def end(self):
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def reply(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def script(self, name, replies):
        """The replies, in order, to requests marked "[script:NAME]"; the last one repeats."""
        with self.lock:
            self.scripts[name] = list(replies)

    def next_reply(self, name):
        with self.lock:
            replies = self.scripts.get(name) or [{"content": f"no script named {name}"}]
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def requests_of(self, name):
        """(arrival time, body) of the requests marked "[script:NAME]"."""
        marker = f"[script:{name}]"
        with self.lock:
            return [(t, b) for t, b in self.arrivals
                    if any(marker in m.get("content", "") for m in b.get("messages", []) if m.get("role") == "user")]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
