"""What other services may ask Identity directly (in-process), besides
validating tokens (``common.auth.TokenValidator``): look-ups by name."""

from __future__ import annotations

from typing import Any


def project_id(identity: Any, name: str, domain_id: str = "default") -> str | None:
    """The id of the project ``name`` in ``domain_id`` (None if there is none)."""
    from sqlalchemy import select

    from onestack.identity.models import Project

    with identity.db.read() as s:
        found = s.scalar(
            select(Project.id).where(
                Project.domain_id == domain_id, Project.name == name, Project.is_domain.is_(False)
            )
        )
    return str(found) if found else None
