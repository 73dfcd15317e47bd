"""The exceptions of zbatch_client. Every one is a ZbatchError.

An HTTP answer of 4xx/5xx is an HTTPError subclass chosen by its status, carrying the server's
error body (`code`, `message`, and for a submission the `idempotency_key` to repeat it with).
Timeouts are also builtin TimeoutErrors; a connection that could not be made is also a builtin
ConnectionError.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Type


class ZbatchError(Exception):
    """The base of every error this package raises."""


class Unsupported(ZbatchError, TypeError):
    """A Celery option that zbatch does not have (the message says what to use instead)."""


class TransportError(ZbatchError, ConnectionError):
    """The server could not be reached, or the connection broke before an answer."""

    def __init__(self, message: str, idempotency_key: Optional[str] = None) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key


class RequestTimeout(ZbatchError, TimeoutError):
    """No answer within the request's timeout. For a submission the outcome is unknown: repeat
    it with `idempotency_key=err.idempotency_key` and nothing runs twice."""

    def __init__(self, message: str, idempotency_key: Optional[str] = None) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key


class ResultTimeout(ZbatchError, TimeoutError):
    """`get(timeout=)` / `join(timeout=)`: the task (group) had not finished by the deadline."""


class TaskFailed(ZbatchError):
    """`get(propagate=True)` of a task that failed; `error` is its "Class: message"."""

    def __init__(self, task_id: str, error: Optional[str]) -> None:
        super().__init__(f"task {task_id} failed: {error}")
        self.task_id = task_id
        self.error = error


class TaskRevoked(ZbatchError):
    """`get(propagate=True)` of a task that was revoked."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} was revoked")
        self.task_id = task_id


class HTTPError(ZbatchError):
    """An error answer: `status` (HTTP), `code` and `message` (the server's error body), `body`
    (the whole decoded body, or the text when it is not JSON) and `idempotency_key`."""

    def __init__(self, status: int, code: str, message: str, body: Any = None,
                 idempotency_key: Optional[str] = None, method: str = "", path: str = "") -> None:
        where = f" ({method} {path})" if method else ""
        super().__init__(f"HTTP {status} {code}: {message}{where}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body
        self.idempotency_key = idempotency_key


class BadRequest(HTTPError):
    """400: malformed or refused input; nothing was accepted."""


class AuthError(HTTPError):
    """401 or 403: credentials missing or wrong, or a role too small."""


class Unauthorized(AuthError):
    """401: credentials missing or wrong."""


class Forbidden(AuthError):
    """403: the credential's role is smaller than the operation's."""


class NotFound(HTTPError):
    """404: no such task, group, worker or route."""


class Conflict(HTTPError):
    """409: the task's state does not allow it, or an idempotency key reused for another body."""


class TooLarge(HTTPError):
    """413: a body, a batch or a payload above its limit."""


class Unprocessable(HTTPError):
    """422: well-formed but meaningless, such as an unknown queue."""


class TooManyRequests(HTTPError):
    """429: this address failed authentication too often; `retry_after_s` says how long to wait."""

    retry_after_s: Optional[float] = None


class ServerError(HTTPError):
    """500 and any other 5xx not listed below."""


class Unavailable(ServerError):
    """503: the router never received the request; nothing was done, repeating it is safe."""


class OutcomeUnknown(ServerError):
    """504: sent, not answered in time; it may or may not have been carried out. Repeating a
    submission with its `idempotency_key` is safe."""


class StorageFull(ServerError):
    """507: the router's data folder is out of room; nothing was accepted."""


_BY_STATUS: Dict[int, Type[HTTPError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: TooLarge,
    422: Unprocessable, 429: TooManyRequests, 503: Unavailable, 504: OutcomeUnknown, 507: StorageFull,
}


def error_for(status: int, body: Any, idempotency_key: Optional[str], method: str, path: str) -> HTTPError:
    """The HTTPError subclass for an answer of `status` with decoded `body`."""
    code, message = "http_error", ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code", code))
        message = str(err.get("message", ""))
        idempotency_key = err.get("idempotency_key") or idempotency_key
    elif isinstance(body, str):
        message = body[:500]
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else HTTPError)
    return cls(status, code, message, body, idempotency_key, method, path)


class StreamError(ZbatchError):
    """The event stream sent something that is not Server-Sent Events as the API defines them."""
