"""A small stand-in for an Ollama server's /api/chat, for tests only (no Ollama can run here).

It streams NDJSON like Ollama does: chunks {"message": {"role","content"}, "done": false},
then {"done": true, "done_reason", "prompt_eval_count", "eval_count", "total_duration"}.
The user message steers it: "[500]" answers 500, "[404]" answers 404 (model not found),
"[slow]" pauses 0.3 s between chunks, "[stream-error]" puts an error in the stream,
"[cut]" closes the connection before "done". Requests are kept for assertions.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOllama:
    def __init__(self):
        self.requests = []
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
                if self.path != "/api/chat":
                    return self.reply(404, {"error": "not found"})
                user = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
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

    def close(self):
        self.server.shutdown()
        self.server.server_close()
