"""HTTP plumbing of the Networking API: the caller, request bodies as Neutron
reads them, ``If-Match``, list responses with Neutron's pagination links, and
errors in the ``NeutronError`` shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from onestack.common.auth import authenticate
from onestack.common.errors import ApiError, MethodNotAllowed, NotFound, Unauthorized
from onestack.common.pagination import with_query
from onestack.common.web import dumps, json_response, run
from onestack.network.core import NetworkService
from onestack.network.service.errors import HTTPBadRequest, bad_request
from onestack.network.service.policy import Caller, caller_for


def net_of(request: Request) -> NetworkService:
    net: NetworkService = request.app.state.network
    return net


async def caller_of(request: Request) -> Caller:
    return caller_for(net_of(request), await authenticate(request))


async def call(request: Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Authenticate, then run ``fn(network_service, caller, *args)`` off the event loop."""
    caller = await caller_of(request)
    return await run(fn, net_of(request), caller, *args, **kwargs)


async def body_of(request: Request) -> Any:
    """The JSON body; malformed JSON is Neutron's "Body contains invalid data"."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise HTTPBadRequest("Body contains invalid data") from None
    if b"\\u0000" in raw and _has_nul(body):
        # No database column holds a NUL character (PostgreSQL refuses one).
        raise HTTPBadRequest("Body contains invalid data")
    return body


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def resource_items(body: Any, resource: str, collection: str, *, allow_bulk: bool = True) -> list[dict[str, Any]]:
    """The resource dicts of a create body: ``{"network": {...}}`` or a bulk
    ``{"networks": [...]}`` (Neutron's ``prepare_request_body`` checks and words)."""
    if body is None or body == {}:
        raise HTTPBadRequest(f"Unable to find '{resource}' in request body")
    if not isinstance(body, dict):
        raise HTTPBadRequest("Body contains invalid data")
    if collection in body:
        if not allow_bulk:
            raise HTTPBadRequest("Bulk operation not supported")
        items = body[collection]
        if not items:
            raise HTTPBadRequest("Resources required")
        if not isinstance(items, list):
            raise HTTPBadRequest("Body contains invalid data")
        out = []
        for item in items:
            inner = item.get(resource, item) if isinstance(item, dict) else item
            if not isinstance(inner, dict):
                raise HTTPBadRequest(f"Object '{resource}' contains invalid data")
            out.append(inner)
        return out
    return [resource_item(body, resource)]


def resource_item(body: Any, resource: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise HTTPBadRequest("Body contains invalid data") if body is not None else HTTPBadRequest(
            f"Unable to find '{resource}' in request body"
        )
    item = body.get(resource)
    if item is None:
        raise HTTPBadRequest(f"Unable to find '{resource}' in request body")
    if not isinstance(item, dict):
        raise HTTPBadRequest(f"Object '{resource}' contains invalid data")
    return item


def if_match(request: Request) -> int | None:
    """``If-Match: revision_number=N`` (400 when malformed or repeated)."""
    header = request.headers.get("if-match")
    if not header:
        return None
    revision: int | None = None
    for token in header.split(","):
        tag = token.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tag = tag.strip('"')
        if not tag.startswith("revision_number="):
            continue
        if revision is not None:
            raise bad_request("if-match", "Multiple revision_number etags are not supported.")
        try:
            revision = int(tag.split("revision_number=", 1)[1])
        except ValueError:
            raise bad_request(
                "if-match", "Revision number etag must be in the format of revision_number=<int>"
            ) from None
    return revision


def query_pairs(request: Request) -> list[tuple[str, str]]:
    pairs = list(request.query_params.multi_items())
    if "\x00" in request.url.query or "%00" in request.url.query:
        for key, value in pairs:
            if "\x00" in key or "\x00" in value:
                raise bad_request(key.replace("\x00", ""), "Invalid input: NUL character in the query string.")
    return pairs


def fields_of(request: Request) -> list[str]:
    return [f for f in request.query_params.getlist("fields") if f]


def collection_url(request: Request) -> str:
    return str(request.url.replace(query=""))


def page_links(request: Request, collection: str, items: list[dict[str, Any]], page: Any) -> dict[str, Any]:
    """Neutron's ``<collection>_links``: "next" while more rows follow, "previous"
    when the page started after a marker (reversed when paging backwards)."""
    if not items:
        return {}
    return links_between(request, collection, items[0].get("id"), items[-1].get("id"), page)


def links_between(request: Request, collection: str, first: str | None, last: str | None,
                  page: Any) -> dict[str, Any]:
    """``page_links`` of a page whose first and last items have these ids (None: the
    items show no ``id``)."""
    if page is None or page.limit is None:
        return {}
    url = collection_url(request)
    params = request.query_params
    links = []
    forward_more = page.has_more if not page.reverse else page.marker is not None
    backward_more = page.marker is not None if not page.reverse else page.has_more
    if forward_more and last is not None:
        links.append({"rel": "next", "href": with_query(url, params, limit=page.limit,
                                                        marker=last, page_reverse=None)})
    if backward_more and first is not None:
        links.append({"rel": "previous", "href": with_query(url, params, limit=page.limit,
                                                            marker=first, page_reverse="True")})
    return {f"{collection}_links": links} if links else {}


def listing(request: Request, collection: str, items: list[dict[str, Any]], page: Any = None) -> Response:
    body: dict[str, Any] = {collection: items}
    body.update(page_links(request, collection, items, page))
    return json_response(body)


def listing_body(request: Request, collection: str, parts: list[bytes], first: str | None,
                 last: str | None, page: Any) -> bytes:
    """``listing``'s JSON, byte for byte, from items already serialised (``parts``)."""
    links = links_between(request, collection, first, last, page) if parts else {}
    head = b'{"' + collection.encode() + b'":['
    tail = b"]," + dumps(links)[1:-1] + b"}" if links else b"]}"
    if not parts:
        return head + tail
    # one copy of the (large) body: the head and tail go onto the first and last item
    ends = [head + parts[0]] if len(parts) == 1 else [head + parts[0], *parts[1:-1], parts[-1]]
    ends[-1] = ends[-1] + tail
    return b",".join(ends)


# --- errors ---------------------------------------------------------------------------------------

_GENERIC = {NotFound: "HTTPNotFound", MethodNotAllowed: "HTTPMethodNotAllowed"}


def render_error(exc: ApiError) -> Response:
    """``{"NeutronError": {"type", "message", "detail"}}``; a 401 as keystonemiddleware
    writes it; anything unexpected as Neutron's opaque 500."""
    if isinstance(exc, Unauthorized):
        body: Any = {"error": {"code": 401, "title": "Unauthorized", "message": exc.message}}
        headers = dict(exc.headers)
        headers.setdefault("WWW-Authenticate", 'Keystone uri="/identity"')
        return json_response(body, 401, headers)
    kind = _GENERIC.get(type(exc), type(exc).__name__)
    message = exc.message
    if type(exc) is ApiError and exc.status >= 500:
        kind = "HTTPInternalServerError"
        message = "Request Failed: internal server error while processing your request."
    elif type(exc) is MethodNotAllowed:
        message = (
            "The server could not comply with the request since it is either malformed or otherwise incorrect."
        )
    body = {"NeutronError": {"type": kind, "message": message, "detail": ""}}
    return json_response(body, exc.status, exc.headers)
