"""The event stream (GET /api/v1/events, Server-Sent Events) as an iterator of Event.

The iterator resumes where it stopped: after a broken connection, a server restart or a read
that took longer than `read_timeout` (the server sends a comment every 15 s, so silence means
the connection is gone) it reconnects with `Last-Event-ID` set to the last id received, so no
event is lost and none is delivered twice. Events the server no longer holds come as one Event
of type "gap" whose data names the missing range and a snapshot to re-sync from, never as a
silent skip. `close()`, from any thread, ends the iteration.
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional

from .errors import (AuthError, BadRequest, HTTPError, NotFound, StreamError, TransportError,
                     Unavailable, error_for)
from ._http import decode

if TYPE_CHECKING:
    from .client import Client

MAX_LINE_BYTES = 1 << 20  # an event's data is at most a 16 KiB result plus its fields


@dataclass(frozen=True)
class Event:
    """One event: `id` its sequence number, `type` (task-succeeded, worker-online, gap, ...)
    and `data` its JSON object."""
    id: int
    type: str
    data: Dict[str, Any] = field(default_factory=dict)


class EventStream:
    """Iterate over it for events; `close()` stops it. Use `with` to close it at the end.

    `after`: deliver events after this sequence number (0: every event the store holds); None
    (the default) starts with the events after the store's position when the stream is created. `group`, `queue`
    keep only the events of that group or queue. `last_id` is the id of the last event
    delivered: pass it as `after` to a new stream to go on from there later."""

    def __init__(self, client: "Client", after: Optional[int] = None, group: Optional[str] = None,
                 queue: Optional[str] = None, read_timeout: float = 45.0, max_backoff: float = 5.0) -> None:
        if after is not None and after < 0:
            raise ValueError(f"after must be >= 0, got {after}")
        self.client = client
        self.group = group
        self.queue = queue
        self.read_timeout = read_timeout
        self.max_backoff = max_backoff
        # The position is taken now, not at the first iteration: events of what the caller does
        # between creating the stream and reading it are delivered.
        self.last_id: int = self._store_position() if after is None else after
        self.reconnects = 0  # connections made after the first
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._conn: Optional[http.client.HTTPConnection] = None
        self._sock: Optional[socket.socket] = None  # the connection's socket (http.client may drop its own reference)
        self._resp: Optional[http.client.HTTPResponse] = None

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Ends the iteration (wakes a reader blocked on the socket); safe from any thread."""
        self._closed.set()
        self._drop()

    def drop_connection(self) -> None:
        """Breaks the current connection as a network fault would; the iteration reconnects."""
        self._drop()

    def _drop(self) -> None:
        with self._lock:
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __iter__(self) -> Iterator[Event]:
        backoff = 0.1
        first = True
        while not self._closed.is_set():
            if not first:
                self.reconnects += 1
            first = False
            try:
                resp = self._connect()
            except (TransportError, Unavailable):
                if self._closed.wait(backoff):  # the pause before the next attempt
                    return
                backoff = min(backoff * 2, self.max_backoff)
                continue
            try:
                for event in self._frames(resp):
                    backoff = 0.1
                    self.last_id = event.id
                    yield event
                    if self._closed.is_set():
                        return
            except (OSError, http.client.HTTPException):
                pass  # broken: reconnect from last_id
            finally:
                self._disconnect()

    def _store_position(self) -> int:
        try:
            body = self.client._get("/readyz")
        except HTTPError as e:  # 503 while the router is away still says where the store is
            body = e.body
            if not isinstance(body, dict) or "applied_seq" not in body:
                raise
        return int(body["applied_seq"])

    def _connect(self) -> http.client.HTTPResponse:
        t = self.client._transport
        query = {"group": self.group, "queue": self.queue}
        path = t.path("/api/v1/events", query)
        headers = dict(t.headers, Accept="text/event-stream", **{"Last-Event-ID": str(self.last_id)})
        conn = t.connection(self.read_timeout)
        with self._lock:
            self._conn = conn
        if self._closed.is_set():
            raise TransportError("closed")
        try:
            conn.connect()
            with self._lock:
                self._sock = conn.sock
            if self._closed.is_set():
                raise OSError("closed")
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            self._disconnect()
            raise TransportError(f"GET {t.url}{path}: {e}") from e
        if resp.status != 200:
            body = decode(resp.read(MAX_LINE_BYTES), resp.getheader("Content-Type", ""))
            self._disconnect()
            err = error_for(resp.status, body, None, "GET", path)
            if isinstance(err, (AuthError, BadRequest, NotFound)) or resp.status < 500:
                self.close()
                raise err
            raise Unavailable(err.status, err.code, err.message, err.body, None, "GET", path)
        if not resp.getheader("Content-Type", "").startswith("text/event-stream"):
            self._disconnect()
            self.close()
            raise StreamError(f"GET {path}: answered {resp.getheader('Content-Type')!r}, not text/event-stream")
        self._resp = resp
        return resp

    def _disconnect(self) -> None:
        with self._lock:
            conn, resp = self._conn, self._resp
            self._conn, self._resp, self._sock = None, None, None
        if resp is not None:
            resp.close()
        if conn is not None:
            conn.close()

    def _frames(self, resp: http.client.HTTPResponse) -> Iterator[Event]:
        fields: Dict[str, str] = {}
        while True:
            line = resp.readline(MAX_LINE_BYTES + 1)
            if not line:
                return  # the server closed: reconnect
            if len(line) > MAX_LINE_BYTES:
                raise StreamError(f"an event line above {MAX_LINE_BYTES} bytes")
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if text == "":
                if "data" in fields:
                    yield parse_event(fields, self.last_id)
                fields = {}
                continue
            if text.startswith(":"):
                continue  # a comment (the server's ping)
            key, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields[key] = fields[key] + "\n" + value if key == "data" and key in fields else value


def parse_event(fields: Dict[str, str], last_id: int) -> Event:
    """An Event of one frame's fields; StreamError for a frame the API never sends."""
    raw_id = fields.get("id", "")
    if not raw_id.isdigit():
        raise StreamError(f"an event whose id is not a sequence number: {raw_id[:40]!r}")
    event_id = int(raw_id)
    if event_id <= last_id:
        raise StreamError(f"event {event_id} after {last_id}: the stream went backwards")
    try:
        data = json.loads(fields["data"])
    except ValueError as e:
        raise StreamError(f"event {event_id}: data is not JSON ({e})") from None
    if not isinstance(data, dict):
        raise StreamError(f"event {event_id}: data is not a JSON object")
    return Event(id=event_id, type=fields.get("event") or str(data.get("type", "message")), data=data)
