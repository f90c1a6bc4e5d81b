"""The service catalog carried in tokens and served at ``/v3/auth/catalog``.

``build_catalog`` lists every enabled service that has enabled endpoints, with
Keystone's shape::

    [{"id", "type", "name", "endpoints": [{"id", "interface", "region",
      "region_id", "url"}]}]

URLs may hold ``$(project_id)s`` / ``%(project_id)s`` / ``$(tenant_id)s`` /
``%(tenant_id)s``: they are filled with the token's project (endpoints that need
a project are left out of catalogs without one).

``CATALOG_FILTERS`` lets other areas narrow a project's catalog (OS-EP-FILTER):
each is called as ``filter(session, project_id, endpoint_ids)`` and returns the
endpoint ids to keep, or None for "no filtering configured".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.identity.models import Endpoint, Service

CatalogFilter = Callable[[Session, str, set[str]], set[str] | None]
CATALOG_FILTERS: list[CatalogFilter] = []

_SUBST = re.compile(r"[$%]\((project_id|tenant_id|user_id)\)s")


def _fill(url: str, project_id: str | None) -> str | None:
    if not _SUBST.search(url):
        return url
    if project_id is None:
        return None
    failed = False

    def sub(m: re.Match[str]) -> str:
        nonlocal failed
        if m.group(1) == "user_id":
            failed = True
            return ""
        return project_id or ""

    out = _SUBST.sub(sub, url)
    return None if failed else out


def build_catalog(session: Session, project_id: str | None) -> list[dict[str, Any]]:
    services = {s.id: s for s in session.scalars(select(Service).where(Service.enabled.is_(True)))}
    endpoints = list(
        session.scalars(select(Endpoint).where(Endpoint.enabled.is_(True)).order_by(Endpoint.id))
    )
    keep: set[str] | None = None
    if project_id:
        ids = {e.id for e in endpoints}
        for flt in CATALOG_FILTERS:
            chosen = flt(session, project_id, ids)
            if chosen is not None:
                keep = chosen if keep is None else keep & chosen
    by_service: dict[str, list[dict[str, Any]]] = {}
    for ep in endpoints:
        if ep.service_id not in services or (keep is not None and ep.id not in keep):
            continue
        url = _fill(ep.url, project_id)
        if url is None:
            continue
        by_service.setdefault(ep.service_id, []).append(
            {
                "id": ep.id,
                "interface": ep.interface,
                "region": ep.region_id,
                "region_id": ep.region_id,
                "url": url,
            }
        )
    catalog = []
    for sid, svc in sorted(services.items(), key=lambda kv: (kv[1].type, kv[0])):
        eps = by_service.get(sid)
        if not eps:
            continue
        catalog.append(
            {"id": sid, "type": svc.type, "name": (svc.extra or {}).get("name", ""), "endpoints": eps}
        )
    return catalog
