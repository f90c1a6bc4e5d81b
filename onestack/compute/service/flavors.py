"""Flavors: list, show, create, update (description), delete; extra specs;
access lists of private flavors.

A non-admin sees the public flavors and the private ones shared with their
project (Nova's flavor query); a private flavor is not found for anyone else.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.common.ids import utcnow
from onestack.common.pagination import PageParams
from onestack.compute import schemas
from onestack.compute.models import Flavor, FlavorAccess
from onestack.compute.service._paging import page_rows

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

_ROOT = "os_compute_api:"


def _visible(svc: ComputeService, ctx: AuthContext) -> Any:
    stmt = select(Flavor)
    if not svc.is_admin(ctx):
        shared = select(FlavorAccess.flavor_id).where(FlavorAccess.project_id == ctx.project_id)
        stmt = stmt.where(or_(Flavor.is_public.is_(True), Flavor.id.in_(shared)))
    return stmt


def find(svc: ComputeService, ctx: AuthContext, s: Session, flavorid: str) -> Flavor:
    """The flavor as ``ctx`` may see it, or Nova's 404."""
    flavor = s.execute(_visible(svc, ctx).where(Flavor.flavorid == flavorid)).scalars().first()
    if flavor is None:
        raise NotFound(f"Flavor {flavorid} could not be found.")
    return flavor


def get(svc: ComputeService, ctx: AuthContext, flavorid: str) -> Flavor:
    with svc.db.read() as s:
        flavor = find(svc, ctx, s, flavorid)
        s.expunge(flavor)
        return flavor


def can_see_extra_specs(svc: ComputeService, ctx: AuthContext) -> bool:
    return svc.allowed(_ROOT + "os-flavor-extra-specs:index", ctx)


def _parse_is_public(value: str | None) -> bool | None:
    if value is None:
        return True
    if value.strip().lower() == "none":
        return None
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true", "on", "y", "yes"):
        return True
    if lowered in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest(f"Invalid is_public filter [{value}]")


def list_flavors(svc: ComputeService, ctx: AuthContext, params: Any) -> tuple[list[Flavor], int | None]:
    """A page of flavors by Nova's filters; returns the rows and the page limit."""
    page = PageParams.from_query(params, max_limit=svc.conf.max_limit, zero_is_default=False)
    stmt = select(Flavor)
    if svc.is_admin(ctx):
        is_public = _parse_is_public(params.get("is_public"))
        if is_public is not None:
            if is_public:
                shared = select(FlavorAccess.flavor_id).where(
                    FlavorAccess.project_id == ctx.project_id)
                stmt = stmt.where(or_(Flavor.is_public.is_(True), Flavor.id.in_(shared)))
            else:
                stmt = stmt.where(Flavor.is_public.is_(False))
    else:
        shared = select(FlavorAccess.flavor_id).where(FlavorAccess.project_id == ctx.project_id)
        stmt = stmt.where(or_(Flavor.is_public.is_(True), Flavor.id.in_(shared)),
                          Flavor.disabled.is_(False))
    for param, column in (("minRam", Flavor.memory_mb), ("minDisk", Flavor.root_gb)):
        if param in params:
            try:
                minimum = int(params[param])
            except ValueError:
                raise BadRequest(f"Invalid {param} filter [{params[param]}]") from None
            stmt = stmt.where(column >= minimum)
    sort_key = params.get("sort_key") or "flavorid"
    sort_dir = params.get("sort_dir") or "asc"
    with svc.db.read() as s:
        rows = page_rows(s, stmt, Flavor, page, sort_keys=[sort_key], sort_dirs=[sort_dir],
                         marker_key="flavorid")
        s.expunge_all()
    return rows, page.limit


def create(svc: ComputeService, ctx: AuthContext, values: dict[str, Any],
           description: str | None) -> Flavor:
    svc.authorize(_ROOT + "os-flavor-manage:create", ctx, {})
    flavorid = values.get("id")
    if flavorid is None:
        flavorid = str(uuid.uuid4())
    flavorid = str(flavorid)
    name = values["name"]
    now = utcnow()
    with svc.db.write() as s:
        if s.scalar(select(Flavor.id).where(Flavor.name == name)) is not None:
            raise Conflict(f"Flavor with name {name} already exists.")
        if s.scalar(select(Flavor.id).where(Flavor.flavorid == flavorid)) is not None:
            raise Conflict(f"Flavor with ID {flavorid} already exists.")
        flavor = Flavor(
            flavorid=flavorid, name=name, memory_mb=int(values["ram"]), vcpus=int(values["vcpus"]),
            root_gb=int(values["disk"]),
            ephemeral_gb=int(values.get("OS-FLV-EXT-DATA:ephemeral", 0)),
            swap=int(values.get("swap", 0)), rxtx_factor=float(values.get("rxtx_factor", 1.0)),
            is_public=schemas.is_true(values.get("os-flavor-access:is_public", True)),
            disabled=False, description=description, extra_specs={}, created_at=now,
        )
        s.add(flavor)
        s.flush()
        s.expunge(flavor)
    return flavor


def update_description(svc: ComputeService, ctx: AuthContext, flavorid: str,
                       description: str | None) -> Flavor:
    svc.authorize(_ROOT + "os-flavor-manage:update", ctx, {})
    with svc.db.write() as s:
        flavor = find(svc, ctx, s, flavorid)
        flavor.description = description
        flavor.updated_at = utcnow()
        s.flush()
        s.expunge(flavor)
    return flavor


def delete_flavor(svc: ComputeService, ctx: AuthContext, flavorid: str) -> None:
    svc.authorize(_ROOT + "os-flavor-manage:delete", ctx, {})
    with svc.db.write() as s:
        flavor = s.execute(select(Flavor).where(Flavor.flavorid == flavorid)).scalars().first()
        if flavor is None:
            raise NotFound(f"Flavor {flavorid} could not be found.")
        s.execute(delete(FlavorAccess).where(FlavorAccess.flavor_id == flavor.id))
        s.delete(flavor)


# --- extra specs ---------------------------------------------------------------------


def _check_spec_values(specs: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in specs.items():
        text = str(value) if not isinstance(value, str) else value
        if isinstance(value, int | float) and len(text) > 255:
            raise BadRequest("extra_specs value has a length greater than 255 characters.")
        out[key] = text
    return out


def extra_specs(svc: ComputeService, ctx: AuthContext, flavorid: str) -> dict[str, str]:
    svc.authorize(_ROOT + "os-flavor-extra-specs:index", ctx)
    return dict(get(svc, ctx, flavorid).extra_specs)


def extra_spec(svc: ComputeService, ctx: AuthContext, flavorid: str, key: str) -> dict[str, str]:
    svc.authorize(_ROOT + "os-flavor-extra-specs:show", ctx)
    specs = get(svc, ctx, flavorid).extra_specs
    if key not in specs:
        raise NotFound(f"Flavor {flavorid} has no extra specs with key {key}.")
    return {key: specs[key]}


def set_extra_specs(svc: ComputeService, ctx: AuthContext, flavorid: str,
                    specs: dict[str, Any], *, rule: str = "create") -> dict[str, str]:
    svc.authorize(_ROOT + f"os-flavor-extra-specs:{rule}", ctx, {})
    values = _check_spec_values(specs)
    with svc.db.write() as s:
        flavor = find(svc, ctx, s, flavorid)
        flavor.extra_specs = {**flavor.extra_specs, **values}
        flavor.updated_at = utcnow()
    return values


def delete_extra_spec(svc: ComputeService, ctx: AuthContext, flavorid: str, key: str) -> None:
    svc.authorize(_ROOT + "os-flavor-extra-specs:delete", ctx, {})
    with svc.db.write() as s:
        flavor = find(svc, ctx, s, flavorid)
        if key not in flavor.extra_specs:
            raise NotFound(f"Flavor {flavorid} has no extra specs with key {key}.")
        specs = dict(flavor.extra_specs)
        del specs[key]
        flavor.extra_specs = specs
        flavor.updated_at = utcnow()


# --- access --------------------------------------------------------------------------


def _access_list(s: Session, flavor: Flavor) -> list[dict[str, str]]:
    rows = s.execute(select(FlavorAccess.project_id).where(FlavorAccess.flavor_id == flavor.id)
                     .order_by(FlavorAccess.project_id)).scalars()
    return [{"flavor_id": flavor.flavorid, "tenant_id": p} for p in rows]


def access_list(svc: ComputeService, ctx: AuthContext, flavorid: str) -> list[dict[str, str]]:
    svc.authorize(_ROOT + "os-flavor-access", ctx)
    with svc.db.read() as s:
        flavor = find(svc, ctx, s, flavorid)
        if flavor.is_public:
            raise NotFound("Access list not available for public flavors.")
        return _access_list(s, flavor)


def _verify_project(svc: ComputeService, project_id: str) -> None:
    from onestack.identity import interface as identity

    if identity.get_project(svc.cloud, project_id) is None:
        raise BadRequest(f"Project ID {project_id} is not a valid project.")


def add_access(svc: ComputeService, ctx: AuthContext, flavorid: str, project_id: str,
               *, refuse_public: bool) -> list[dict[str, str]]:
    svc.authorize(_ROOT + "os-flavor-access:add_tenant_access", ctx, {})
    _verify_project(svc, project_id)
    with svc.db.write() as s:
        flavor = find(svc, ctx, s, flavorid)
        if refuse_public and flavor.is_public:
            raise Conflict("Can not add access to a public flavor.")
        if s.get(FlavorAccess, (flavor.id, project_id)) is not None:
            raise Conflict(f"Flavor access already exists for flavor {flavorid} and project "
                           f"{project_id} combination.")
        s.add(FlavorAccess(flavor_id=flavor.id, project_id=project_id))
        s.flush()
        return _access_list(s, flavor)


def remove_access(svc: ComputeService, ctx: AuthContext, flavorid: str,
                  project_id: str) -> list[dict[str, str]]:
    svc.authorize(_ROOT + "os-flavor-access:remove_tenant_access", ctx, {})
    with svc.db.write() as s:
        flavor = find(svc, ctx, s, flavorid)
        row = s.get(FlavorAccess, (flavor.id, project_id))
        if row is None:
            raise NotFound(f"Flavor access not found for {flavorid} / {project_id} combination.")
        s.delete(row)
        s.flush()
        return _access_list(s, flavor)
