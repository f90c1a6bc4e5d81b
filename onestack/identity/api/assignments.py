"""Role grants: users and groups on projects, domains and the system, and
their OS-INHERIT (inherited_to_projects) forms.

    PUT/HEAD/GET/DELETE /v3/{projects|domains}/{t}/{users|groups}/{a}/roles/{r}
    GET/HEAD            /v3/{projects|domains}/{t}/{users|groups}/{a}/roles
    PUT/HEAD/GET/DELETE /v3/system/{users|groups}/{a}/roles/{r}
    GET/HEAD            /v3/system/{users|groups}/{a}/roles
    PUT/HEAD/GET/DELETE /v3/OS-INHERIT/{projects|domains}/{t}/{users|groups}/{a}/roles/{r}
                            /inherited_to_projects
    GET                 /v3/OS-INHERIT/{projects|domains}/{t}/{users|groups}/{a}/roles
                            /inherited_to_projects
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from onestack.common.web import empty, json_response, run
from onestack.identity import wire
from onestack.identity.api._resources import identity_and_caller, with_link
from onestack.identity.models import SYSTEM_TARGET
from onestack.identity.service import grants as svc

_ACTOR = {"users": "user", "groups": "group"}
_TARGET = {"projects": "project", "domains": "domain", "system": "system"}


def _grant(request: Request, *, role: bool, inherited: bool) -> svc.Grant:
    p = request.path_params
    target = _TARGET[p.get("targets", "system")]
    return svc.Grant(
        actor=_ACTOR[p["actors"]],
        actor_id=p["actor_id"],
        target=target,
        target_id=SYSTEM_TARGET if target == "system" else p["target_id"],
        role_id=p["role_id"] if role else None,
        inherited=inherited,
    )


Handler = Callable[[Request], Awaitable[Response]]


def _one(inherited: bool) -> Handler:
    async def handler(request: Request) -> Response:
        identity, ctx = await identity_and_caller(request)
        grant = _grant(request, role=True, inherited=inherited)
        if request.method == "PUT":
            await run(svc.create_grant, identity, ctx, grant)
        elif request.method == "DELETE":
            await run(svc.revoke_grant, identity, ctx, grant)
        else:
            await run(svc.check_grant, identity, ctx, grant)
        return empty()

    return handler


def _many(inherited: bool) -> Handler:
    async def handler(request: Request) -> Response:
        identity, ctx = await identity_and_caller(request)
        grant = _grant(request, role=False, inherited=inherited)
        refs = await run(svc.list_grants, identity, ctx, grant)
        items = [with_link(request, r, f"roles/{r['id']}") for r in refs]
        return json_response(wire.collection(request, "roles", items))

    return handler


_SCOPED = "/v3/{targets:str}/{target_id}/{actors:str}/{actor_id}/roles"
_SYSTEM = "/v3/system/{actors:str}/{actor_id}/roles"
_INHERIT = "/v3/OS-INHERIT/{targets:str}/{target_id}/{actors:str}/{actor_id}/roles"
_ONE = ["GET", "HEAD", "PUT", "DELETE"]


class _GrantRoute(Route):
    """A Route that only matches the grant URLs' fixed words (projects/domains, users/groups)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        params = child.get("path_params", {})
        if params:
            if params.get("actors") not in _ACTOR:
                return Match.NONE, {}
            if "targets" in params and params["targets"] not in ("projects", "domains"):
                return Match.NONE, {}
        return match, child


routes: list[BaseRoute] = [
    _GrantRoute(_SCOPED + "/{role_id}", _one(False), methods=_ONE),
    _GrantRoute(_SCOPED, _many(False), methods=["GET", "HEAD"]),
    _GrantRoute(_SYSTEM + "/{role_id}", _one(False), methods=_ONE),
    _GrantRoute(_SYSTEM, _many(False), methods=["GET", "HEAD"]),
    _GrantRoute(_INHERIT + "/{role_id}/inherited_to_projects", _one(True), methods=_ONE),
    _GrantRoute(_INHERIT + "/inherited_to_projects", _many(True), methods=["GET", "HEAD"]),
]
