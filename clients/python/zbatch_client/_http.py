"""One HTTP exchange with the store: http.client, a fresh connection per request (so a Client is
safe to share between threads), JSON in and out, errors turned into zbatch_client.errors."""
from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import urllib.parse
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from .errors import RequestTimeout, TransportError, TooManyRequests, error_for

JsonValue = Any


class Transport:
    """Where the store is and how to authenticate to it."""

    def __init__(self, url: str, token: Optional[str] = None, basic: Optional[Tuple[str, str]] = None,
                 timeout: float = 30.0, verify: Union[bool, str] = True) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http://HOST:PORT or https://HOST:PORT, got {url!r}")
        if token is not None and basic is not None:
            raise ValueError("give token or basic, not both")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.url = url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.headers: Dict[str, str] = {"Accept": "application/json", "User-Agent": "zbatch-client/0.1"}
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"
        elif basic is not None:
            user, password = basic
            self.headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.ssl_context: Optional[ssl.SSLContext] = None
        if self.scheme == "https":
            if verify is False:
                self.ssl_context = ssl._create_unverified_context()
            else:
                self.ssl_context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def path(self, path: str, query: Optional[Mapping[str, Any]] = None) -> str:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        return self.prefix + path + ("?" + urllib.parse.urlencode(q) if q else "")

    def request(self, method: str, path: str, body: JsonValue = None, query: Optional[Mapping[str, Any]] = None,
                headers: Optional[Mapping[str, str]] = None, timeout: Optional[float] = None,
                idempotency_key: Optional[str] = None) -> Tuple[int, JsonValue]:
        """(status, decoded JSON body) of a 2xx answer; raises an HTTPError for any other."""
        timeout = self.timeout if timeout is None else timeout
        full = self.path(path, query)
        h = dict(self.headers)
        h.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        conn = self.connection(max(timeout, 0.001))
        try:
            conn.request(method, full, body=data, headers=h)
            resp = conn.getresponse()
            raw = resp.read()
            status, resp_headers = resp.status, resp
        except socket.timeout as e:  # also TimeoutError
            raise RequestTimeout(f"{method} {full}: no answer within {timeout:g} s", idempotency_key) from e
        except (OSError, http.client.HTTPException) as e:
            raise TransportError(f"{method} {self.url}{full}: {e}", idempotency_key) from e
        finally:
            conn.close()
        decoded = decode(raw, resp_headers.getheader("Content-Type", ""))
        if 200 <= status < 300:
            return status, decoded
        err = error_for(status, decoded, resp_headers.getheader("Idempotency-Key") or idempotency_key, method, full)
        if isinstance(err, TooManyRequests):
            try:
                err.retry_after_s = float(resp_headers.getheader("Retry-After", ""))
            except ValueError:
                pass
        raise err


def decode(raw: bytes, content_type: str) -> JsonValue:
    """JSON when the body parses as JSON, else its text (a proxy's HTML page, say)."""
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type or text[:1] in "{[":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text
