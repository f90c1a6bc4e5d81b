"""One page of rows in Nova's way: the marker looked up among the visible
rows by its public id (a missing one is ``marker [x] not found``, 400), the
rows ordered by the sort keys with a unique tie-breaker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest
from onestack.common.pagination import PageParams, find_marker, paginate_query


def page_rows(
    s: Session,
    stmt: Select[Any],
    model: Any,
    page: PageParams,
    *,
    sort_keys: Sequence[str],
    sort_dirs: Sequence[str],
    marker_key: str = "id",
    tie_breaker: str = "id",
    columns: Sequence[Any] | None = None,
) -> list[Any]:
    """The page's rows: model instances, or plain rows of ``columns`` (no ORM
    bookkeeping: what a long list reads)."""
    marker = find_marker(s, model, page.marker, key=marker_key, stmt=stmt,
                         error=lambda m: BadRequest(f"marker [{m}] not found"))
    query = paginate_query(stmt, model, limit=page.limit, sort_keys=sort_keys,
                           sort_dirs=sort_dirs, marker=marker, tie_breaker=tie_breaker)
    if columns is not None:
        # through Core: the ORM's row loading adds nothing to plain columns
        return list(s.connection().execute(query.with_only_columns(*columns)).all())
    return list(s.execute(query).scalars())
