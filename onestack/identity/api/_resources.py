"""HTTP plumbing shared by the identity resource APIs (domains, projects,
users, groups, credentials): caller context, body root keys, links."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from onestack.common.auth import AuthContext, authenticate
from onestack.common.web import read_json
from onestack.identity.service._resources import member
from onestack.identity.wire import self_link


def identity_of(request: Request) -> Any:
    return request.app.state.identity


async def caller(request: Request) -> AuthContext:
    return await authenticate(request)


async def body_of(request: Request, key: str) -> dict[str, Any]:
    """The request body's ``key`` object (400 when missing or not an object)."""
    return member(await read_json(request), key)


def linked(request: Request, collection: str, item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    out["links"] = self_link(request, f"{collection}/{item['id']}")
    return out


def query(request: Request) -> dict[str, str]:
    """Query parameters, the last value winning for repeated keys."""
    return dict(request.query_params)
