"""OS-EP-FILTER: which endpoints a project's catalog shows.

A project is associated with endpoints directly (``project_endpoint``) or
through endpoint groups (a group is a filter on ``service_id``, ``interface``
and ``region_id``). A project with no association at all sees every endpoint,
as Keystone does with ``return_all_endpoints_if_no_filter``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import Conflict, NotFound, ValidationError
from onestack.common.ids import new_id
from onestack.identity.models import (
    Endpoint,
    EndpointGroup,
    Project,
    ProjectEndpoint,
    ProjectEndpointGroup,
)
from onestack.identity.service._resources import authorize_action, get_row, project_row
from onestack.identity.service._rows import project_dicts
from onestack.identity.service.endpoints import endpoint_ref

if TYPE_CHECKING:
    from onestack.identity.core import Identity

ADMIN = "rule:admin_required"
ADMIN_OR_SYSTEM_READER = "rule:admin_required or (role:reader and system_scope:all)"

POLICIES: dict[str, str] = {
    "identity:add_endpoint_to_project": ADMIN,
    "identity:check_endpoint_in_project": ADMIN_OR_SYSTEM_READER,
    "identity:list_projects_for_endpoint": ADMIN_OR_SYSTEM_READER,
    "identity:list_endpoints_for_project": ADMIN_OR_SYSTEM_READER,
    "identity:remove_endpoint_from_project": ADMIN,
    "identity:create_endpoint_group": ADMIN,
    "identity:list_endpoint_groups": ADMIN_OR_SYSTEM_READER,
    "identity:get_endpoint_group": ADMIN_OR_SYSTEM_READER,
    "identity:update_endpoint_group": ADMIN,
    "identity:delete_endpoint_group": ADMIN,
    "identity:list_projects_associated_with_endpoint_group": ADMIN_OR_SYSTEM_READER,
    "identity:list_endpoints_associated_with_endpoint_group": ADMIN_OR_SYSTEM_READER,
    "identity:get_endpoint_group_in_project": ADMIN_OR_SYSTEM_READER,
    "identity:list_endpoint_groups_for_project": ADMIN_OR_SYSTEM_READER,
    "identity:add_endpoint_group_to_project": ADMIN,
    "identity:remove_endpoint_group_from_project": ADMIN,
}

FILTER_KEYS = ("service_id", "interface", "region_id")
INTERFACES = ("public", "internal", "admin")


# --- the catalog hook ---------------------------------------------------------


def filter_endpoints(session: Session, project_id: str | None, endpoints: list[Endpoint]) -> list[Endpoint]:
    """The endpoints of ``endpoints`` the project's catalog may show."""
    if not project_id:
        return endpoints
    allowed = _allowed_endpoint_ids(session, project_id)
    if allowed is None:
        return endpoints
    return [e for e in endpoints if e.id in allowed]


def _allowed_endpoint_ids(session: Session, project_id: str) -> set[str] | None:
    """Ids of the existing endpoints the project is associated with (directly or
    through endpoint groups), or None when that is none at all - then Keystone
    shows the whole catalog."""
    direct = set(
        session.scalars(select(ProjectEndpoint.endpoint_id).where(ProjectEndpoint.project_id == project_id))
    )
    groups = list(
        session.scalars(
            select(EndpointGroup)
            .join(ProjectEndpointGroup, ProjectEndpointGroup.endpoint_group_id == EndpointGroup.id)
            .where(ProjectEndpointGroup.project_id == project_id)
        )
    )
    if not direct and not groups:
        return None
    allowed = {
        e.id
        for e in session.scalars(select(Endpoint))
        if e.id in direct or any(matches(g.filters, e) for g in groups)
    }
    return allowed or None


def catalog_filter(session: Session, project_id: str, endpoint_ids: set[str]) -> set[str] | None:
    """``catalog.CATALOG_FILTERS`` adapter: the ids to keep, None when unfiltered."""
    allowed = _allowed_endpoint_ids(session, project_id)
    return None if allowed is None else allowed & endpoint_ids


def register() -> None:
    """Narrow every project's catalog through OS-EP-FILTER associations."""
    from onestack.identity import catalog

    if catalog_filter not in catalog.CATALOG_FILTERS:
        catalog.CATALOG_FILTERS.append(catalog_filter)


def matches(filters: dict[str, Any], endpoint: Endpoint) -> bool:
    return all(getattr(endpoint, key, None) == value for key, value in (filters or {}).items())


# --- wire shapes -----------------------------------------------------------------


def group_dict(g: EndpointGroup) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "description": g.description, "filters": dict(g.filters or {})}


# --- lookups ---------------------------------------------------------------------


def _endpoint(session: Session, endpoint_id: str) -> Endpoint:
    return get_row(session, Endpoint, endpoint_id, "endpoint")


def _group(session: Session, group_id: str) -> EndpointGroup:
    return get_row(session, EndpointGroup, group_id, "endpoint group")


# --- project <-> endpoint --------------------------------------------------------


def add_endpoint_to_project(identity: Identity, ctx: AuthContext, project_id: str, endpoint_id: str) -> None:
    authorize_action(identity, ctx, "add_endpoint_to_project")
    with identity.db.write() as s:
        project_row(s, project_id)
        _endpoint(s, endpoint_id)
        if s.get(ProjectEndpoint, (endpoint_id, project_id)) is not None:
            raise Conflict(
                f"Conflict occurred attempting to store project_endpoint - endpoint {endpoint_id} "
                f"is already associated with project {project_id}."
            )
        s.add(ProjectEndpoint(endpoint_id=endpoint_id, project_id=project_id))
    identity.touch()


def check_endpoint_in_project(identity: Identity, ctx: AuthContext, project_id: str, endpoint_id: str) -> None:
    authorize_action(identity, ctx, "check_endpoint_in_project")
    with identity.db.read() as s:
        project_row(s, project_id)
        _endpoint(s, endpoint_id)
        if s.get(ProjectEndpoint, (endpoint_id, project_id)) is None:
            raise NotFound(f"Endpoint {endpoint_id} not found in project {project_id}.")


def remove_endpoint_from_project(identity: Identity, ctx: AuthContext, project_id: str, endpoint_id: str) -> None:
    authorize_action(identity, ctx, "remove_endpoint_from_project")
    with identity.db.write() as s:
        row = s.get(ProjectEndpoint, (endpoint_id, project_id))
        if row is None:
            raise NotFound(f"Endpoint {endpoint_id} not found in project {project_id}.")
        s.delete(row)
    identity.touch()


def list_endpoints_for_project(identity: Identity, ctx: AuthContext, project_id: str) -> list[dict[str, Any]]:
    """Endpoints associated directly or through endpoint groups."""
    authorize_action(identity, ctx, "list_endpoints_for_project")
    with identity.db.read() as s:
        project_row(s, project_id)
        allowed = _allowed_endpoint_ids(s, project_id) or set()
        endpoints = s.scalars(select(Endpoint).where(Endpoint.id.in_(allowed)).order_by(Endpoint.id))
        return [endpoint_ref(e) for e in endpoints]


def list_projects_for_endpoint(identity: Identity, ctx: AuthContext, endpoint_id: str) -> list[dict[str, Any]]:
    authorize_action(identity, ctx, "list_projects_for_endpoint")
    with identity.db.read() as s:
        _endpoint(s, endpoint_id)
        projects = s.scalars(
            select(Project)
            .join(ProjectEndpoint, ProjectEndpoint.project_id == Project.id)
            .where(ProjectEndpoint.endpoint_id == endpoint_id)
            .order_by(Project.id)
        )
        return project_dicts(s, list(projects))


# --- endpoint groups ---------------------------------------------------------------


def _check_filters(filters: Any) -> dict[str, Any]:
    if not isinstance(filters, dict):
        raise ValidationError("Invalid input for field 'filters': it must be an object.")
    if not filters:
        raise ValidationError("Invalid input for field 'filters': it must not be empty.")
    for key, value in filters.items():
        if key not in FILTER_KEYS:
            raise ValidationError(
                f"{key} is not a valid endpoint group filter; valid filters are "
                f"{', '.join(FILTER_KEYS)}."
            )
        if not isinstance(value, str) or not value:
            raise ValidationError(f"Invalid input for field 'filters.{key}': it must be a non-empty string.")
    if "interface" in filters and filters["interface"] not in INTERFACES:
        raise ValidationError(
            f"Invalid input for field 'filters.interface': {filters['interface']!r} is not one of "
            f"{', '.join(INTERFACES)}."
        )
    return dict(filters)


def _check_group_fields(body: Any, *, create: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("Invalid input for field 'endpoint_group': it must be an object.")
    if create:
        for required in ("name", "filters"):
            if required not in body:
                raise ValidationError(f"'{required}' is a required property.")
    elif not body:
        raise ValidationError("At least one property must be given to update an endpoint group.")
    for key in ("id", "links"):
        if key in body:
            raise ValidationError(f"Additional properties are not allowed ('{key}' was unexpected).")
    if "name" in body and (not isinstance(body["name"], str) or not body["name"].strip()):
        raise ValidationError("Invalid input for field 'name': it must be a non-empty string.")
    if "name" in body and len(body["name"]) > 255:
        raise ValidationError("Invalid input for field 'name': it is too long (255 characters at most).")
    if "description" in body and body["description"] is not None and not isinstance(body["description"], str):
        raise ValidationError("Invalid input for field 'description': it must be a string.")
    return body


def create_endpoint_group(identity: Identity, ctx: AuthContext, body: Any) -> dict[str, Any]:
    authorize_action(identity, ctx, "create_endpoint_group")
    fields = _check_group_fields(body, create=True)
    with identity.db.write() as s:
        group = EndpointGroup(
            id=new_id(),
            name=fields["name"],
            description=fields.get("description"),
            filters=_check_filters(fields["filters"]),
        )
        s.add(group)
        s.flush()
        result = group_dict(group)
    identity.touch()
    return result


def get_endpoint_group(identity: Identity, ctx: AuthContext, group_id: str) -> dict[str, Any]:
    authorize_action(identity, ctx, "get_endpoint_group")
    with identity.db.read() as s:
        return group_dict(_group(s, group_id))


def list_endpoint_groups(identity: Identity, ctx: AuthContext, name: str | None = None) -> list[dict[str, Any]]:
    authorize_action(identity, ctx, "list_endpoint_groups")
    with identity.db.read() as s:
        query = select(EndpointGroup).order_by(EndpointGroup.id)
        if name is not None:
            query = query.where(EndpointGroup.name == name)
        return [group_dict(g) for g in s.scalars(query)]


def update_endpoint_group(identity: Identity, ctx: AuthContext, group_id: str, body: Any) -> dict[str, Any]:
    authorize_action(identity, ctx, "update_endpoint_group")
    fields = _check_group_fields(body, create=False)
    with identity.db.write() as s:
        group = _group(s, group_id)
        if "filters" in fields:
            group.filters = _check_filters(fields["filters"])
        if "name" in fields:
            group.name = fields["name"]
        if "description" in fields:
            group.description = fields["description"]
        s.flush()
        result = group_dict(group)
    identity.touch()
    return result


def delete_endpoint_group(identity: Identity, ctx: AuthContext, group_id: str) -> None:
    authorize_action(identity, ctx, "delete_endpoint_group")
    with identity.db.write() as s:
        group = _group(s, group_id)
        for assoc in s.scalars(select(ProjectEndpointGroup).where(ProjectEndpointGroup.endpoint_group_id == group_id)):
            s.delete(assoc)
        s.delete(group)
    identity.touch()


def list_endpoints_for_group(identity: Identity, ctx: AuthContext, group_id: str) -> list[dict[str, Any]]:
    authorize_action(identity, ctx, "list_endpoints_associated_with_endpoint_group")
    with identity.db.read() as s:
        group = _group(s, group_id)
        endpoints = s.scalars(select(Endpoint).order_by(Endpoint.id))
        return [endpoint_ref(e) for e in endpoints if matches(group.filters, e)]


def list_projects_for_group(identity: Identity, ctx: AuthContext, group_id: str) -> list[dict[str, Any]]:
    authorize_action(identity, ctx, "list_projects_associated_with_endpoint_group")
    with identity.db.read() as s:
        _group(s, group_id)
        projects = s.scalars(
            select(Project)
            .join(ProjectEndpointGroup, ProjectEndpointGroup.project_id == Project.id)
            .where(ProjectEndpointGroup.endpoint_group_id == group_id)
            .order_by(Project.id)
        )
        return project_dicts(s, list(projects))


def list_groups_for_project(identity: Identity, ctx: AuthContext, project_id: str) -> list[dict[str, Any]]:
    authorize_action(identity, ctx, "list_endpoint_groups_for_project")
    with identity.db.read() as s:
        project_row(s, project_id)
        groups = s.scalars(
            select(EndpointGroup)
            .join(ProjectEndpointGroup, ProjectEndpointGroup.endpoint_group_id == EndpointGroup.id)
            .where(ProjectEndpointGroup.project_id == project_id)
            .order_by(EndpointGroup.id)
        )
        return [group_dict(g) for g in groups]


def add_group_to_project(identity: Identity, ctx: AuthContext, group_id: str, project_id: str) -> None:
    authorize_action(identity, ctx, "add_endpoint_group_to_project")
    with identity.db.write() as s:
        _group(s, group_id)
        project_row(s, project_id)
        if s.get(ProjectEndpointGroup, (group_id, project_id)) is not None:
            raise Conflict(
                f"Conflict occurred attempting to store project_endpoint_group - endpoint group "
                f"{group_id} is already associated with project {project_id}."
            )
        s.add(ProjectEndpointGroup(endpoint_group_id=group_id, project_id=project_id))
    identity.touch()


def get_group_in_project(identity: Identity, ctx: AuthContext, group_id: str, project_id: str) -> dict[str, Any]:
    """The project, when the endpoint group is associated with it."""
    authorize_action(identity, ctx, "get_endpoint_group_in_project")
    with identity.db.read() as s:
        _group(s, group_id)
        project = project_row(s, project_id)
        if s.get(ProjectEndpointGroup, (group_id, project_id)) is None:
            raise NotFound(f"Could not find endpoint group {group_id} associated with project {project_id}.")
        return project_dicts(s, [project])[0]


def remove_group_from_project(identity: Identity, ctx: AuthContext, group_id: str, project_id: str) -> None:
    authorize_action(identity, ctx, "remove_endpoint_group_from_project")
    with identity.db.write() as s:
        _group(s, group_id)
        row = s.get(ProjectEndpointGroup, (group_id, project_id))
        if row is None:
            raise NotFound(f"Could not find endpoint group {group_id} associated with project {project_id}.")
        s.delete(row)
    identity.touch()


register()
