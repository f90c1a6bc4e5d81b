"""Errors of the host-effects layer.

Every failure of a host effect is a :class:`HostError`, so that an agent can
catch one type, record the reason on its resource and retry or give up.
"""

from __future__ import annotations

from collections.abc import Sequence


class HostError(Exception):
    """A host effect could not be applied."""


class CommandError(HostError):
    """An external command exited non-zero (its argv, exit code and stderr)."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        tail = self.stderr[-2000:]
        super().__init__(f"{argv[0]} exited {returncode}: {tail}" if tail
                         else f"{argv[0]} exited {returncode}")


class NotFound(HostError):
    """The named thing (namespace, link, process...) does not exist."""
