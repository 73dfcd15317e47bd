"""Client: submits tasks and groups to a zbatch store over HTTP, with Celery's option names."""
from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._http import Transport
from .errors import Unsupported
from .events import EventStream
from .results import AsyncResult, GroupResult

Seconds = Union[int, float, _dt.timedelta]
When = Union[int, float, str, _dt.datetime]

_UNSET: Any = object()


def _seconds(value: Seconds, name: str) -> float:
    s = value.total_seconds() if isinstance(value, _dt.timedelta) else value
    if isinstance(s, bool) or not isinstance(s, (int, float)):
        raise TypeError(f"{name} must be seconds (a number or a timedelta), got {value!r}")
    if s < 0:
        raise ValueError(f"{name} must be >= 0, got {s}")
    return float(s)


def _eta(value: When) -> Union[float, str]:
    """A datetime with a zone as it is; a naive one is local time (what datetime.now() gives)."""
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise TypeError(f"eta must be a datetime, unix seconds or an ISO 8601 string, got {value!r}")


@dataclass
class TaskSpec:
    """One task to submit, as `task()` builds it (Celery's signature): what `Client.group` takes."""
    payload: Any = None
    options: Dict[str, Any] = field(default_factory=dict)

    def fields(self) -> Dict[str, Any]:
        """The task's fields of POST /api/v1/tasks."""
        out = dict(self.options)
        if self.payload is not None:
            out["payload"] = self.payload
        return out


def _payload(payload: Any, args: Optional[Sequence[Any]], kwargs: Optional[Mapping[str, Any]]) -> Any:
    if args is None and kwargs is None:
        return payload
    if payload is not None:
        raise TypeError("give payload, or args/kwargs, not both")
    out: Dict[str, Any] = {}
    if args is not None:
        out["args"] = list(args)
    if kwargs is not None:
        out["kwargs"] = dict(kwargs)
    return out


def task_options(queue: Optional[str] = None, kind: Optional[str] = None, priority: Optional[int] = None,
                 countdown: Optional[Seconds] = None, eta: Optional[When] = None, expires: Any = None,
                 max_retries: Optional[int] = None, time_limit: Optional[Seconds] = None,
                 soft_time_limit: Optional[Seconds] = None, id: Optional[Union[str, int]] = None, *,
                 traceparent: Optional[str] = None, unique_key: Optional[str] = None,
                 on_duplicate: Optional[str] = None, depends_on: Optional[Iterable[Any]] = None,
                 when: Optional[str] = None) -> Dict[str, Any]:
    """Celery's apply_async options as zbatch's task fields (None: the queue's default)."""
    if on_duplicate is not None and on_duplicate not in ("refuse", "existing"):
        raise ValueError('on_duplicate must be "refuse" or "existing"')
    if when is not None and when not in TRIGGERS:
        raise ValueError('when must be "success", "failure" or "always"')
    if expires is not None:
        raise Unsupported("expires: zbatch tasks do not expire; revoke a task that must not run late "
                          "(AsyncResult.revoke), or give its handler the deadline in the payload")
    if countdown is not None and eta is not None:
        raise TypeError("give countdown or eta, not both")
    out: Dict[str, Any] = {}
    if queue is not None:
        out["queue"] = queue
    if kind is not None:
        out["kind"] = kind
    if priority is not None:
        out["priority"] = int(priority)
    if countdown is not None:
        out["countdown"] = _seconds(countdown, "countdown")
    if eta is not None:
        out["eta"] = _eta(eta)
    if max_retries is not None:
        out["max_retries"] = int(max_retries)
    if time_limit is not None:
        out["time_limit"] = _seconds(time_limit, "time_limit")
    if soft_time_limit is not None:
        out["soft_time_limit"] = _seconds(soft_time_limit, "soft_time_limit")
    if id is not None:
        out["id"] = id
    if traceparent is not None:
        out["traceparent"] = traceparent
    if unique_key is not None:
        out["unique_key"] = unique_key
    if on_duplicate is not None:
        out["on_duplicate"] = on_duplicate
    if depends_on is not None:
        out["depends_on"] = [_dependency(d) for d in depends_on]
    if when is not None:
        out["when"] = when
    return out


TRIGGERS = ("success", "failure", "always")


def _dependency(d: Any) -> str:
    """A task a task depends on: an AsyncResult, a task id, or the `id` of a task of the same group."""
    if isinstance(d, AsyncResult):
        return d.id
    if isinstance(d, (str, int)) and not isinstance(d, bool):
        return str(d)
    raise TypeError(f"a dependency is an AsyncResult, a task id or a task's own id, not {type(d).__name__}")


def task(payload: Any = None, *, args: Optional[Sequence[Any]] = None, kwargs: Optional[Mapping[str, Any]] = None,
         queue: Optional[str] = None, kind: Optional[str] = None, priority: Optional[int] = None,
         countdown: Optional[Seconds] = None, eta: Optional[When] = None, expires: Any = None,
         max_retries: Optional[int] = None, time_limit: Optional[Seconds] = None,
         soft_time_limit: Optional[Seconds] = None, id: Optional[Union[str, int]] = None,
         traceparent: Optional[str] = None, depends_on: Optional[Iterable[Any]] = None,
         when: Optional[str] = None) -> TaskSpec:
    """One task of a group, with the options of `Client.apply_async`; nothing is sent yet.

    `depends_on` may name other tasks of the same group by their `id` (docs/WORKFLOWS.md)."""
    return TaskSpec(_payload(payload, args, kwargs),
                    task_options(queue, kind, priority, countdown, eta, expires, max_retries, time_limit,
                                 soft_time_limit, id, traceparent=traceparent, depends_on=depends_on, when=when))


class Client:
    """A zbatch store's HTTP API (`zbatch up` or `zbatch store`, http://127.0.0.1:8000 by default).

    `token` (Bearer) or `basic=(user, password)` authenticate when the store requires it.
    `timeout` bounds each HTTP request, in seconds. `verify` for https: True (the system's CAs),
    a CA file path, or False. A Client holds no connection and may be shared between threads."""

    def __init__(self, url: str = "http://127.0.0.1:8000", token: Optional[str] = None,
                 basic: Optional[Tuple[str, str]] = None, timeout: float = 30.0,
                 verify: Union[bool, str] = True) -> None:
        self._transport = Transport(url, token=token, basic=basic, timeout=timeout, verify=verify)

    @property
    def url(self) -> str:
        return self._transport.url

    # --- the HTTP calls the result objects share ---------------------------------------------
    def _get(self, path: str, query: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        return self._transport.request("GET", path, query=query, timeout=timeout)[1]

    def _post(self, path: str, body: Any, timeout: Optional[float] = None,
              idempotency_key: Optional[str] = None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._transport.request("POST", path, body=body, headers=headers, timeout=timeout,
                                       idempotency_key=idempotency_key)[1]

    # --- submitting ---------------------------------------------------------------------------
    def apply_async(self, payload: Any = None, *, args: Optional[Sequence[Any]] = None,
                    kwargs: Optional[Mapping[str, Any]] = None, queue: Optional[str] = None,
                    kind: Optional[str] = None, priority: Optional[int] = None, countdown: Optional[Seconds] = None,
                    eta: Optional[When] = None, expires: Any = None, max_retries: Optional[int] = None,
                    time_limit: Optional[Seconds] = None, soft_time_limit: Optional[Seconds] = None,
                    id: Optional[Union[str, int]] = None, idempotency_key: Optional[str] = None,
                    traceparent: Optional[str] = None, unique_key: Optional[str] = None,
                    on_duplicate: Optional[str] = None, depends_on: Optional[Iterable[Any]] = None,
                    depends_on_group: Optional[Any] = None, when: Optional[str] = None) -> AsyncResult:
        """Submits one task (POST /api/v1/tasks) and returns its AsyncResult once it is durable.

        `payload` is the task's JSON input (or `args`/`kwargs`, sent as {"args": [...], "kwargs":
        {...}}). `queue` (default "default"), `kind` (default: the queue's), `priority` (0-255,
        higher first), `countdown` (seconds or timedelta) or `eta` (datetime — naive means local
        time —, unix seconds or ISO 8601), `max_retries`, `time_limit`/`soft_time_limit` (seconds
        of one attempt), `id` (your own id, shown with the result). `expires` does not exist in
        zbatch and raises Unsupported. `traceparent` (a W3C trace context) travels with the task
        to its handler. `unique_key`: while a task of the queue with this key is queued or
        running, another is refused with Conflict (409), or with `on_duplicate="existing"`
        answered with that task's AsyncResult.

        `depends_on` (AsyncResults or task ids) and `depends_on_group` (a GroupResult or group
        id) make it wait until they have ended; it then runs when `when` holds ("success", the
        default: all succeeded; "failure": one did not; "always"), and its handler receives
        their results as `inputs` (docs/WORKFLOWS.md).

        Every submission carries an idempotency key (a new one unless given): after a
        RequestTimeout, TransportError or OutcomeUnknown, repeat the call with
        `idempotency_key=err.idempotency_key` and the task runs at most once."""
        body = TaskSpec(_payload(payload, args, kwargs),
                        task_options(queue, kind, priority, countdown, eta, expires, max_retries, time_limit,
                                     soft_time_limit, id, traceparent=traceparent, unique_key=unique_key,
                                     on_duplicate=on_duplicate, depends_on=depends_on, when=when)).fields()
        if depends_on_group is not None:
            body["depends_on_group"] = depends_on_group.id if isinstance(depends_on_group, GroupResult) \
                else str(depends_on_group)
        key = idempotency_key or f"py-{uuid.uuid4()}"
        answer = self._post("/api/v1/tasks", body, idempotency_key=key)
        return AsyncResult(self, answer["task_id"])

    submit = apply_async

    def group(self, tasks: Iterable[Any], *, parallel: Optional[int] = None, queue: Optional[str] = None,
              kind: Optional[str] = None, priority: Optional[int] = None, countdown: Optional[Seconds] = None,
              eta: Optional[When] = None, expires: Any = None, max_retries: Optional[int] = None,
              time_limit: Optional[Seconds] = None, soft_time_limit: Optional[Seconds] = None,
              idempotency_key: Optional[str] = None, traceparent: Optional[str] = None,
              chain: bool = False, callbacks: Optional[Iterable[Any]] = None,
              budget_tokens: Optional[int] = None, budget_run_seconds: Optional[Seconds] = None) -> GroupResult:
        """Submits tasks as one group, accepted or refused whole; returns its GroupResult.

        Each item is a `task(...)` (its own options) or a bare payload. The options here apply
        to every task that does not set its own (a task's countdown or eta replaces the
        group's); `parallel` caps how many of the group run at once (Celery has no such cap).
        `chain`: each task runs after the one before it, given its result. `callbacks`: tasks
        (`task(...)` or payloads) run once the whole group has ended, given every result;
        their AsyncResults are the GroupResult's `callbacks` (docs/WORKFLOWS.md).
        `budget_tokens` / `budget_run_seconds`: once the group's tasks have spent that many model
        tokens (the agent kind reports them) or that much run time, no more of them starts; the
        rest end revoked with "BudgetExceeded: batch ..." (docs/kinds/agent.md)."""
        items = [t.fields() if isinstance(t, TaskSpec) else ({"payload": t} if t is not None else {}) for t in tasks]
        if not items:
            raise ValueError("a group needs at least one task")
        body: Dict[str, Any] = {"tasks": items}
        body.update(task_options(queue, kind, priority, countdown, eta, expires, max_retries, time_limit,
                                 soft_time_limit, traceparent=traceparent))
        if parallel is not None:
            body["parallel"] = int(parallel)
        if chain:
            body["chain"] = True
        if budget_tokens is not None or budget_run_seconds is not None:
            body["budget"] = {}
            if budget_tokens is not None:
                body["budget"]["tokens"] = int(budget_tokens)
            if budget_run_seconds is not None:
                body["budget"]["run_seconds"] = _seconds(budget_run_seconds, "budget_run_seconds")
        if callbacks is not None:
            body["callbacks"] = [c.fields() if isinstance(c, TaskSpec) else ({"payload": c} if c is not None else {})
                                 for c in callbacks]
        key = idempotency_key or f"py-{uuid.uuid4()}"
        answer = self._post("/api/v1/tasks", body, idempotency_key=key)
        g = GroupResult(self, answer["group_id"], answer["task_ids"])
        g.callbacks = [AsyncResult(self, t, parent=g) for t in answer.get("callback_ids", [])]
        return g

    def chain(self, tasks: Iterable[Any], **options: Any) -> AsyncResult:
        """Celery's chain: each task runs after the one before it has succeeded, given its result
        as `inputs`; returns the last task's AsyncResult (its `parent`: the whole GroupResult).
        A failed step fails the rest with DependencyFailed. `options` are those of `group`."""
        g = self.group(tasks, chain=True, **options)
        return AsyncResult(self, g.task_ids[-1], parent=g)

    def chord(self, header: Iterable[Any], callback: Any, **options: Any) -> AsyncResult:
        """Celery's chord: `callback` (a `task(...)` or a payload) runs once every task of `header`
        has ended, given all their results; returns its AsyncResult (`parent`: the group).
        `options` are those of `group`."""
        g = self.group(header, callbacks=[callback], **options)
        return g.callbacks[0]

    # --- reading ------------------------------------------------------------------------------
    def AsyncResult(self, task_id: str) -> AsyncResult:  # noqa: N802 - Celery's spelling
        """The result of a task submitted earlier, by its id."""
        return AsyncResult(self, task_id)

    def GroupResult(self, group_id: str) -> GroupResult:  # noqa: N802 - Celery's spelling
        """A group submitted earlier, by its id (reads its task ids from the store)."""
        g = GroupResult(self, group_id, [])
        g.task_ids = [t["task_id"] for t in g.iter_tasks()]
        return g

    def events(self, after: Optional[int] = None, group: Optional[str] = None, queue: Optional[str] = None,
               read_timeout: float = 45.0) -> EventStream:
        """The event stream, resuming by itself after a broken connection (see EventStream)."""
        return EventStream(self, after=after, group=group, queue=queue, read_timeout=read_timeout)

    def revoke(self, task_id: str, terminate: bool = False) -> Dict[str, Any]:
        """Revokes a task by id (AsyncResult.revoke)."""
        return AsyncResult(self, task_id).revoke(terminate=terminate)

    def ping(self) -> Dict[str, Any]:
        """Whether the router answers (GET /api/v1/ping)."""
        return self._get("/api/v1/ping")

    def workers(self) -> List[Dict[str, Any]]:
        """The workers online."""
        return list(self._get("/api/v1/workers"))

    def queues(self) -> List[Dict[str, Any]]:
        """Every queue with its depth."""
        return list(self._get("/api/v1/queues"))

    def stats(self) -> Dict[str, Any]:
        """The store's totals."""
        return self._get("/api/v1/stats")
