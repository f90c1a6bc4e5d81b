"""Per-kind rules, registered once by the service that owns a task kind.

A rule says how many attempts a task gets, how long to wait between them
(exponential backoff, capped), whether an unexpected error is worth a retry,
what happens to a queued task pinned to a host that has died (fail it, or
re-target it to another live host running ``binary``), and the hooks through
which the owning service writes the outcome onto its resource in the same
transaction as the task's final state (a server's ``ACTIVE``, or its
``fault``). Hooks run in the process that records the outcome: an API
process when the agent is remote, so agents never need the database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from onestack.common.models import Task

FAIL: Literal["fail"] = "fail"
RETARGET: Literal["retarget"] = "retarget"

CompleteHook = Callable[["Session", "Task", "Mapping[str, Any] | None"], None]
FinishHook = Callable[["Session", "Task"], None]
ProgressHook = Callable[["Session", "Task", "Mapping[str, Any]"], None]
# (session, task, live hosts running the kind's binary) -> the new host, or None to fail
Retarget = Callable[["Session", "Task", "list[str]"], "str | None"]


@dataclass(frozen=True)
class KindRule:
    """How the queue treats tasks of one kind."""

    max_attempts: int = 3
    backoff_base: float = 2.0  # seconds before the 2nd attempt; doubles each time
    backoff_cap: float = 300.0  # never wait longer than this between attempts
    retry_unexpected: bool = True  # an exception other than TaskFailed is retried
    on_host_down: Literal["fail", "retarget"] = FAIL
    binary: str | None = None  # the host service that runs the kind (its heartbeat counts)
    agents: bool = True  # False: never handed to agents on other hosts (API processes only)
    on_complete: CompleteHook | None = None
    on_give_up: FinishHook | None = None  # task.state FAILED, task.reason says why
    on_cancel: FinishHook | None = None  # task.state CANCELLED, task.reason says why
    on_progress: ProgressHook | None = None
    retarget: Retarget | None = None  # default: the live host with the fewest unfinished tasks

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise ValueError("backoff times cannot be negative")
        if self.on_host_down not in (FAIL, RETARGET):
            raise ValueError(f"on_host_down must be {FAIL!r} or {RETARGET!r}")

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        if attempts < 1 or self.backoff_base <= 0:
            return 0.0
        exponent = min(attempts - 1, 62)
        return float(min(self.backoff_cap, self.backoff_base * (2**exponent)))


DEFAULT_RULE = KindRule()


class KindRegistry:
    """The rules of the kinds one queue knows (unknown kinds get ``default``)."""

    def __init__(self, default: KindRule = DEFAULT_RULE) -> None:
        self.default = default
        self._rules: dict[str, KindRule] = {}
        self._lock = threading.Lock()

    def register(self, kind: str, rule: KindRule) -> None:
        if not kind or len(kind) > 64:
            raise ValueError("a task kind is 1 to 64 characters")
        with self._lock:
            self._rules[kind] = rule

    def rule(self, kind: str) -> KindRule:
        return self._rules.get(kind, self.default)

    def __contains__(self, kind: object) -> bool:
        return kind in self._rules

    def items(self) -> list[tuple[str, KindRule]]:
        with self._lock:
            return sorted(self._rules.items(), key=lambda item: item[0])
