"""HTTP plumbing shared by the identity APIs: caller context, running a service
function for the caller, body root keys, links, query filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from onestack.common.auth import AuthContext, authenticate
from onestack.common.errors import BadRequest, UnsupportedMediaType, ValidationError
from onestack.common.web import NUL_IN_BODY, run
from onestack.common.web import read_json as read_any_json
from onestack.identity.service._resources import expecting, member
from onestack.identity.wire import self_link


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON body by Keystone's rules (its json_body request processing): no
    body is ``{}``; a body that does not say it is JSON is a 400 naming the Content-Type
    header; malformed JSON, or JSON that is not an object, a 400 "valid JSON"."""
    try:
        body = await read_any_json(request, required=False)
    except UnsupportedMediaType:
        raise expecting("application/json", "Content-Type header") from None
    except BadRequest as exc:
        if exc.message == NUL_IN_BODY:
            raise
        raise expecting("valid JSON", "request body") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise expecting("valid JSON", "request body")
    return body


def identity_of(request: Request) -> Any:
    return request.app.state.identity


async def caller(request: Request) -> AuthContext:
    return await authenticate(request)


async def identity_and_caller(request: Request) -> tuple[Any, AuthContext]:
    """(the Identity object, the caller's validated context)."""
    return identity_of(request), await authenticate(request)


async def call(request: Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Authenticate the caller, then run ``fn(identity, ctx, *args, **kwargs)`` off the loop."""
    ctx = await authenticate(request)
    return await run(fn, identity_of(request), ctx, *args, **kwargs)


async def body_of(request: Request, key: str) -> dict[str, Any]:
    """The request body's ``key`` object (400 when missing or not an object)."""
    return member(await read_json(request), key)


async def call_with_json(request: Request, fn: Callable[..., Any], *args: Any) -> Any:
    """Authenticate the caller, then read the JSON body, then run
    ``fn(identity, ctx, *args, body)`` (the service checks the body's shape)."""
    ctx = await authenticate(request)
    body = await read_json(request)
    return await run(fn, identity_of(request), ctx, *args, body)


async def call_with_root(request: Request, key: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Authenticate the caller, then read the body's ``key`` member (``required_root``), then
    run ``fn(identity, ctx, *args, member)``: who asks is checked before what they send."""
    ctx = await authenticate(request)
    member_ = await required_root(request, key)
    return await run(fn, identity_of(request), ctx, *args, member_)


async def call_with_object(request: Request, key: str, fn: Callable[..., Any], *args: Any) -> Any:
    """As ``call_with_root``, for a member that must be a JSON object (``body_of``)."""
    ctx = await authenticate(request)
    ref = await body_of(request, key)
    return await run(fn, identity_of(request), ctx, *args, ref)


async def root_of(request: Request, key: str) -> Any:
    """The request body's ``key`` member, of any type (400 "Expecting to find" when missing)."""
    body = await read_json(request)
    if not isinstance(body, dict) or key not in body:
        raise expecting(key, "request body")
    return body[key]


async def required_root(request: Request, key: str) -> Any:
    """The request body's ``key`` member, of any type (400 "'key' is a required property")."""
    body = await read_json(request)
    if not isinstance(body, dict) or key not in body:
        raise ValidationError(f"'{key}' is a required property.")
    return body[key]


def linked(request: Request, collection: str, item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    out["links"] = self_link(request, f"{collection}/{item['id']}")
    return out


def with_link(request: Request, ref: dict[str, Any], path: str) -> dict[str, Any]:
    """``ref`` with ``links.self`` pointing at ``path`` (under /v3)."""
    ref["links"] = self_link(request, path)
    return ref


def filters(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    """The query parameters among ``names`` that were given."""
    return {n: request.query_params[n] for n in names if n in request.query_params}


def query(request: Request) -> dict[str, str]:
    """Query parameters, the last value winning for repeated keys."""
    return dict(request.query_params)
