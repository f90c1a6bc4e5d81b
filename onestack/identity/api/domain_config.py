"""Domain-specific configuration: ``/v3/domains/{domain_id}/config[/{group}[/{option}]]``
and the defaults at ``/v3/domains/config/default``, ``/v3/domains/config/{group}/default``
and ``/v3/domains/config/{group}/{option}/default``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import ValidationError
from onestack.common.web import empty, json_response
from onestack.identity.api._resources import call, read_json
from onestack.identity.service import domain_config as svc


async def _config_body(request: Request) -> Any:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object.")
    return body.get("config", {})


async def domain_config(request: Request) -> Response:
    domain_id = request.path_params["domain_id"]
    group = request.path_params.get("group")
    option = request.path_params.get("option")
    method = request.method
    if method == "PUT":
        config, created = await call(request, svc.create_config, domain_id, await _config_body(request))
        return json_response({"config": config}, status=201 if created else 200)
    if method == "PATCH":
        config = await call(request, svc.update_config, domain_id, await _config_body(request), group, option)
        return json_response({"config": config})
    if method == "DELETE":
        await call(request, svc.delete_config, domain_id, group, option)
        return empty(204)
    config = await call(request, svc.get_config, domain_id, group, option)
    if method == "HEAD":
        return empty(200)
    return json_response({"config": config})


async def default_config(request: Request) -> Response:
    group = request.path_params.get("group")
    option = request.path_params.get("option")
    config = await call(request, svc.get_default, group, option)
    if request.method == "HEAD":
        return empty(200)
    return json_response({"config": config})


_ALL = ["GET", "HEAD", "PUT", "PATCH", "DELETE"]
_PARTIAL = ["GET", "HEAD", "PATCH", "DELETE"]

routes = [
    Route("/v3/domains/config/default", default_config, methods=["GET", "HEAD"]),
    Route("/v3/domains/config/{group}/default", default_config, methods=["GET", "HEAD"]),
    Route("/v3/domains/config/{group}/{option}/default", default_config, methods=["GET", "HEAD"]),
    Route("/v3/domains/{domain_id}/config", domain_config, methods=_ALL),
    Route("/v3/domains/{domain_id}/config/{group}", domain_config, methods=_PARTIAL),
    Route("/v3/domains/{domain_id}/config/{group}/{option}", domain_config, methods=_PARTIAL),
]
