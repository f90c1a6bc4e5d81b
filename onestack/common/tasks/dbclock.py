"""The database's clock, as SQL: every lease, ``run_after`` and heartbeat
time is computed by the database, so hosts whose clocks disagree still agree
on who holds a lease.

Times are naive UTC (how every time is stored). On SQLite the expression
yields the very text SQLAlchemy stores for a ``DateTime`` (microseconds, six
digits), so comparisons with stored values are exact string comparisons.

Tests move the clock with :meth:`DbClock.advance`: an offset added to the
database's time in every expression built from this clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    String,
    bindparam,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f"


class DbClock:
    """Builds "now (+ seconds)" expressions on the database's clock."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def advance(self, seconds: float) -> None:
        """Move this clock's time forward (tests)."""
        self.offset += seconds

    def now(self, sqlite: bool, plus: float = 0.0) -> ColumnElement[datetime]:
        """The database's current UTC time plus ``plus`` seconds.

        The clock's offset is read when the statement executes (a bind
        parameter with a callable), so a statement built once stays right
        after :meth:`advance` - hot paths build their statements once.
        """
        if sqlite:
            modifier = bindparam(None, callable_=lambda: f"{plus + self.offset:+.6f} seconds",
                                 type_=String())
            expr = func.strftime(_SQLITE_FORMAT, "now", modifier).concat("000")
        else:
            seconds = bindparam(None, callable_=lambda: float(plus + self.offset), type_=Float())
            # The statement's start: one value throughout a statement, and
            # not held back to the transaction's start like now().
            base = func.timezone("UTC", func.statement_timestamp())
            expr = base + literal_column("interval '1 second'") * seconds
        return type_coerce(expr, DateTime())

    def after(self, sqlite: bool, name: str) -> ColumnElement[datetime]:
        """``now(sqlite, plus)`` with ``plus`` given at execution: the bind
        parameter ``name`` (SQLite: the text ``"+<seconds> seconds"``, see
        :func:`seconds_modifier`; PostgreSQL: the seconds as a number), so one
        statement serves every delay."""
        if sqlite:
            offset = bindparam(None, callable_=lambda: f"{self.offset:+.6f} seconds", type_=String())
            expr = func.strftime(_SQLITE_FORMAT, "now", offset, bindparam(name, type_=String())).concat("000")
        else:
            seconds = bindparam(None, callable_=lambda: float(self.offset), type_=Float()) + \
                bindparam(name, type_=Float())
            base = func.timezone("UTC", func.statement_timestamp())
            expr = base + literal_column("interval '1 second'") * seconds
        return type_coerce(expr, DateTime())

    def read(self, session: Session, sqlite: bool) -> datetime:
        """The database's time now (for display and tests)."""
        value = session.execute(select(self.now(sqlite))).scalar_one()
        assert isinstance(value, datetime)
        return value


def seconds_modifier(sqlite: bool, seconds: float) -> str | float:
    """The value of an :meth:`DbClock.after` parameter for ``seconds``."""
    return f"{seconds:+.6f} seconds" if sqlite else float(seconds)


def dialect_insert(sqlite: bool) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_*``: SQLite and PostgreSQL)."""
    if sqlite:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert
