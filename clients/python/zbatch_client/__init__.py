"""A Python client for zbatch's HTTP API, with Celery's calling conventions.

    from zbatch_client import Client, task
    app = Client("http://127.0.0.1:8000")
    r = app.apply_async({"x": 1}, queue="default", kind="echo", countdown=5)
    print(r.get(timeout=30))
    g = app.group([task({"n": i}, kind="echo") for i in range(10)], parallel=4)
    print(g.join(timeout=60))

Standard library only. Chains, chords and periodic (beat) schedules do not exist in zbatch yet;
see docs/CELERY.md for what does and what to use instead.
"""
from .client import Client, TaskSpec, task, task_options
from .errors import (AuthError, BadRequest, Conflict, Forbidden, HTTPError, NotFound, OutcomeUnknown,
                     RequestTimeout, ResultTimeout, ServerError, StorageFull, StreamError, TaskFailed,
                     TaskRevoked, TooLarge, TooManyRequests, TransportError, Unauthorized, Unavailable,
                     Unprocessable, Unsupported, ZbatchError)
from .events import Event, EventStream
from .results import CELERY_STATES, READY_STATES, AsyncResult, GroupProgress, GroupResult

__version__ = "0.1.0"
__all__ = [
    "Client", "TaskSpec", "task", "task_options", "AsyncResult", "GroupResult", "GroupProgress", "Event",
    "EventStream", "CELERY_STATES", "READY_STATES", "ZbatchError", "HTTPError", "BadRequest", "AuthError",
    "Unauthorized", "Forbidden", "NotFound", "Conflict", "TooLarge", "Unprocessable", "TooManyRequests",
    "ServerError", "Unavailable", "OutcomeUnknown", "StorageFull", "TransportError", "RequestTimeout",
    "ResultTimeout", "TaskFailed", "TaskRevoked", "StreamError", "Unsupported",
]
