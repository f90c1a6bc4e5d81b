"""The task machinery's exceptions (no imports: agents load this without a database)."""

from __future__ import annotations


class LeaseLost(Exception):
    """The lease is no longer held with this claim token (expired, taken over
    by another claim, or the task finished): nothing was written."""


class BrokerError(Exception):
    """The broker could not be reached or refused the request (not a lease
    matter): e.g. the API is down, or the agent's credential was refused."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TaskFailed(Exception):
    """Raised by a handler to fail its task with this message (``retry`` to
    try again after the kind's backoff, while attempts remain)."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class TaskCancelled(Exception):
    """Raised by ``TaskContext.check()`` (and by a fenced write) when the task
    was cancelled or its lease lost: the handler must stop without writing."""
