"""AsyncResult and GroupResult: a submitted task or group, read from the store.

Waiting (`get`, `join`) polls the store with a growing interval and never outlasts its timeout:
every request is bounded by the time left. The HTTP API has no long-poll for one task; the
event stream (`Client.events`) is the push alternative.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, TypeVar

from .errors import Conflict, NotFound, RequestTimeout, ResultTimeout, TaskFailed, TaskRevoked

if TYPE_CHECKING:
    from .client import Client

T = TypeVar("T")

SETTLE_S = 2.0  # how long revoke() and retry() wait for the store to show their change
READY_STATES = frozenset({"succeeded", "failed", "revoked"})
# zbatch's task states under the names Celery gives them.
CELERY_STATES = {"scheduled": "PENDING", "queued": "PENDING", "started": "STARTED", "retrying": "RETRY",
                 "succeeded": "SUCCESS", "failed": "FAILURE", "revoked": "REVOKED",
                 "waiting": "PENDING"}


def _wait(poll: Callable[[Optional[float]], Optional[T]], timeout: Optional[float], interval: float,
          what: str) -> T:
    """Calls poll(time_left) until it returns non-None; ResultTimeout once `timeout` has passed."""
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be >= 0, got {timeout}")
    if interval <= 0:
        raise ValueError(f"interval must be > 0, got {interval}")
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = min(0.05, interval)
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        try:
            done = poll(None if left is None else max(left, 0.05))
        except RequestTimeout:
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(f"{what}: not finished within {timeout:g} s") from None
            raise
        if done is not None:
            return done
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise ResultTimeout(f"{what}: not finished within {timeout:g} s")
        time.sleep(pause if left is None else min(pause, left))  # the back-off between two polls
        pause = min(pause * 1.5, interval)


class AsyncResult:
    """One task: `id`, its `state`, and its result once it has finished (Celery's AsyncResult)."""

    def __init__(self, client: "Client", task_id: str, parent: Optional["GroupResult"] = None) -> None:
        self.client = client
        self.id = task_id
        self.parent = parent  # the group of a chain or chord it ends (Celery's `parent`)

    def __repr__(self) -> str:
        return f"<AsyncResult {self.id}>"

    @property
    def task_id(self) -> str:
        return self.id

    def info(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """The task as the store has it (GET /api/v1/tasks/{id}): state, result, error, worker,
        attempt, timings and payload. NotFound for an unknown id."""
        return self.client._get(f"/api/v1/tasks/{self.id}", timeout=timeout)

    @property
    def state(self) -> str:
        """zbatch's state: waiting, scheduled, queued, started, retrying, succeeded, failed or revoked."""
        return str(self.info()["state"])

    @property
    def celery_state(self) -> str:
        """The state in Celery's words: PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED."""
        return CELERY_STATES[self.state]

    @property
    def result(self) -> Any:
        """The result now (None until it has succeeded)."""
        return self.info().get("result")

    def ready(self) -> bool:
        """True once the task has finished: succeeded, failed or revoked."""
        return self.state in READY_STATES

    def successful(self) -> bool:
        return self.state == "succeeded"

    def failed(self) -> bool:
        return self.state == "failed"

    def get(self, timeout: Optional[float] = None, propagate: bool = True, interval: float = 0.5) -> Any:
        """Waits until the task has finished and returns its result.

        `timeout` (seconds; None waits as long as it takes) bounds the whole wait: ResultTimeout
        after it. With `propagate` a failed task raises TaskFailed and a revoked one TaskRevoked;
        without, the task's error text is returned instead (for a revoked task, "revoked"). `interval` caps the pause between
        two reads of the store."""
        def poll(left: Optional[float]) -> Optional[Dict[str, Any]]:
            t = self.info(timeout=left)
            return t if t["state"] in READY_STATES else None
        t = _wait(poll, timeout, interval, f"task {self.id}")
        if t["state"] == "succeeded":
            return t.get("result")
        if not propagate:
            return t.get("error")
        if t["state"] == "revoked":
            raise TaskRevoked(self.id)
        raise TaskFailed(self.id, t.get("error"))

    wait = get

    def revoke(self, terminate: bool = False) -> Dict[str, Any]:
        """Revokes the task (admin role): a waiting one never runs; a running one is stopped only
        with `terminate=True` (Conflict otherwise), as is a finished one. Answers
        {"revoked": id, "was": "queued"|"held"|"scheduled"|"terminated"}."""
        return self._change("revoke", {"terminate": bool(terminate)}, "task-revoked")

    def retry(self) -> Dict[str, Any]:
        """Queues a failed or revoked task again (admin role): {"retried": id, "attempts_so_far": n}."""
        return self._change("retry", None, "task-retried")

    def _change(self, op: str, body: Any, event: str) -> Dict[str, Any]:
        # The router answers a change before the store has applied its event; so that a read
        # right after (state, get) sees it, wait until the task's history holds one more
        # `event`, at most SETTLE_S: the change is made either way.
        before = self._count(event)
        answer = self.client._post(f"/api/v1/tasks/{self.id}/{op}", body)
        deadline = time.monotonic() + SETTLE_S
        pause = 0.01
        while self._count(event) <= before and time.monotonic() < deadline:
            time.sleep(pause)  # polling the store for the change's event, bounded by SETTLE_S
            pause = min(pause * 2, 0.2)
        return dict(answer)

    def _count(self, event: str) -> int:
        try:
            return sum(1 for e in self.events() if e.get("event") == event)
        except NotFound:  # the store has not applied the task's first event yet
            return 0

    def events(self) -> List[Dict[str, Any]]:
        """The task's history, oldest first (GET /api/v1/tasks/{id}/events)."""
        return list(self.client._get(f"/api/v1/tasks/{self.id}/events")["events"])


@dataclass(frozen=True)
class GroupProgress:
    """A group's counters, as the store has them."""
    total: int
    completed: int  # succeeded + failed + revoked
    successful: int
    failed: int
    revoked: int
    running: int
    progress: float  # percent completed
    ready: bool


class GroupResult:
    """Tasks submitted together (Celery's GroupResult): progress, and results in submission order."""

    def __init__(self, client: "Client", group_id: str, task_ids: List[str]) -> None:
        self.client = client
        self.id = group_id
        self.task_ids = list(task_ids)
        self.callbacks: List[AsyncResult] = []  # a chord's callbacks (Client.group(callbacks=...))

    def __repr__(self) -> str:
        return f"<GroupResult {self.id} ({len(self.task_ids)} tasks)>"

    def __len__(self) -> int:
        return len(self.task_ids)

    @property
    def results(self) -> List[AsyncResult]:
        """One AsyncResult per task, in submission order."""
        return [AsyncResult(self.client, t) for t in self.task_ids]

    def progress(self, timeout: Optional[float] = None) -> GroupProgress:
        """The counters now (GET /api/v1/groups/{id}, no tasks)."""
        g = self.client._get(f"/api/v1/groups/{self.id}", query={"limit": 0}, timeout=timeout)
        return GroupProgress(total=g["total"], completed=g["completed"], successful=g["successful"],
                             failed=g["failed"], revoked=g["revoked"], running=g["running"],
                             progress=float(g["progress"]), ready=bool(g["ready"]))

    def completed_count(self) -> int:
        """Tasks that succeeded (Celery counts only successes here)."""
        return self.progress().successful

    def ready(self) -> bool:
        """True once every task has finished."""
        return self.progress().ready

    def successful(self) -> bool:
        """True once every task has succeeded."""
        p = self.progress()
        return p.ready and p.successful == p.total

    def failed(self) -> bool:
        """True when a task failed or was revoked."""
        p = self.progress()
        return p.failed + p.revoked > 0

    def waiting(self) -> bool:
        """True while a task has not finished."""
        return not self.ready()

    def page(self, offset: int = 0, limit: int = 1000) -> List[Dict[str, Any]]:
        """Tasks offset..offset+limit-1 of the group, in submission order (at most 1000)."""
        g = self.client._get(f"/api/v1/groups/{self.id}", query={"offset": offset, "limit": limit})
        return list(g["tasks"])

    def iter_tasks(self, page_size: int = 1000) -> Iterator[Dict[str, Any]]:
        """Every task of the group, in submission order, read a page at a time."""
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be 1..1000, got {page_size}")
        offset = 0
        while True:
            g = self.client._get(f"/api/v1/groups/{self.id}", query={"offset": offset, "limit": page_size})
            yield from g["tasks"]
            offset += len(g["tasks"])
            if not g["results_truncated"] or not g["tasks"]:
                return

    def join(self, timeout: Optional[float] = None, propagate: bool = True, interval: float = 0.5) -> List[Any]:
        """Waits until every task has finished; their results in submission order.

        `timeout` bounds the wait (ResultTimeout). With `propagate` the first failed (revoked)
        task in submission order raises TaskFailed (TaskRevoked); without, its place holds its
        error text (None for a revoked one)."""
        def poll(left: Optional[float]) -> Optional[GroupProgress]:
            p = self.progress(timeout=left)
            return p if p.ready else None
        _wait(poll, timeout, interval, f"group {self.id}")
        out = []
        for t in self.iter_tasks():
            if t["state"] == "succeeded":
                out.append(t.get("result"))
            elif propagate:
                raise TaskRevoked(t["task_id"]) if t["state"] == "revoked" else TaskFailed(t["task_id"], t.get("error"))
            else:
                out.append(t.get("error"))
        return out

    get = join

    def revoke(self, terminate: bool = False) -> int:
        """Revokes the whole group in the router (admin role; POST /api/v1/groups/{id}/revoke):
        every task not finished yet never runs, running ones stop with `terminate=True`, and the
        group takes no more tasks. How many tasks were revoked at once (queued ones beyond the
        router's first sweep follow within a few of its turns); 0 when the group has finished."""
        try:
            answer = self.client._post(f"/api/v1/groups/{self.id}/revoke", {"terminate": bool(terminate)})
        except Conflict:  # finished already
            return 0
        return int(answer["revoked"])
