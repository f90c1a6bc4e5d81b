"""Version discovery: ``/compute/`` lists the versions, ``/compute/v2.1/``
describes v2.1 with its microversion range (no token needed)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import json_response
from onestack.compute.api._common import compute

UPDATED = "2013-07-23T11:33:21Z"


def _v21(request: Request) -> dict[str, Any]:
    svc = compute(request)
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "updated": UPDATED,
        **svc.versions.version_info(),
        "links": [{"rel": "self", "href": svc.public_url + "/"}],
    }


def _v20(request: Request) -> dict[str, Any]:
    """The legacy v2.0 API: v2.1 at its minimum microversion (Nova's v2 compat)."""
    svc = compute(request)
    return {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
            "updated": "2011-01-21T11:33:21Z",
            "links": [{"rel": "self", "href": svc.settings.base_url + "/compute/v2/"}]}


async def versions(request: Request) -> Response:
    return json_response({"versions": [_v20(request), _v21(request)]})


async def version_v20(request: Request) -> Response:
    doc = _v20(request)
    doc["links"].append({"rel": "describedby", "type": "text/html",
                         "href": "http://docs.openstack.org/"})
    doc["media-types"] = [{"base": "application/json",
                           "type": "application/vnd.openstack.compute+json;version=2"}]
    return json_response({"version": doc})


async def version_v21(request: Request) -> Response:
    doc = _v21(request)
    doc["links"].append({"rel": "describedby", "type": "text/html",
                         "href": "http://docs.openstack.org/"})
    doc["media-types"] = [{"base": "application/json",
                           "type": "application/vnd.openstack.compute+json;version=2.1"}]
    return json_response({"version": doc})


routes = [
    Route("/", versions, methods=["GET", "HEAD"]),
    Route("/v2", version_v20, methods=["GET", "HEAD"]),
    Route("/v2/", version_v20, methods=["GET", "HEAD"]),
    Route("/v2.1", version_v21, methods=["GET", "HEAD"]),
    Route("/v2.1/", version_v21, methods=["GET", "HEAD"]),
]
