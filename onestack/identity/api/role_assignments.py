"""GET /v3/role_assignments (filters, ``effective``, ``include_names``, ``include_subtree``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import BadRequest
from onestack.common.web import json_response, query_flag, run
from onestack.identity import wire
from onestack.identity.api._resources import identity_and_caller
from onestack.identity.service import role_assignments as svc

_INHERITED_TO = "scope.OS-INHERIT:inherited_to"


def _flag(request: Request, name: str) -> bool:
    """Keystone's query_filter_is_true: present and not '0'/'false' means true."""
    try:
        return bool(query_flag(request, name))
    except BadRequest:
        return True


async def list_role_assignments(request: Request) -> Response:
    identity, ctx = await identity_and_caller(request)
    params = request.query_params
    system = params.get("scope.system")  # Keystone treats any non-empty value as "all"
    q = svc.AssignmentQuery(
        user_id=params.get("user.id") or None,
        group_id=params.get("group.id") or None,
        role_id=params.get("role.id") or None,
        project_id=params.get("scope.project.id") or None,
        domain_id=params.get("scope.domain.id") or None,
        system=bool(system),
        inherited=(params[_INHERITED_TO] == "projects") if _INHERITED_TO in params else None,
        effective=_flag(request, "effective"),
        include_names=_flag(request, "include_names"),
        include_subtree=_flag(request, "include_subtree"),
    )
    entries = await run(svc.query_assignments, identity, ctx, q, wire.base_url(request))
    return json_response(wire.collection(request, "role_assignments", entries))


routes = [Route("/v3/role_assignments", list_role_assignments, methods=["GET", "HEAD"])]
