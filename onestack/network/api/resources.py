"""The standard collections: list, create (one or bulk), show, update, delete.

Every Neutron collection has the same five operations; each is described
once here by its service functions, and the routes are generated from the
table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response, run
from onestack.network.api._http import (
    body_of,
    caller_of,
    fields_of,
    if_match,
    listing,
    listing_body,
    net_of,
    query_pairs,
    resource_item,
    resource_items,
)
from onestack.network.service import (
    floatingips,
    networks,
    port_list,
    port_views,
    ports,
    query,
    routers,
    security_groups,
    sg_rules,
    subnetpools,
    subnets,
)
from onestack.network.service.attributes import Resource
from onestack.network.service.resources import (
    ADDRESS_SCOPES,
    FLOATINGIPS,
    NETWORKS,
    PORTS,
    ROUTERS,
    SECURITY_GROUP_RULES,
    SECURITY_GROUPS,
    SUBNETPOOLS,
    SUBNETS,
)
from onestack.network.service.tags import TAGGABLE


@dataclass(frozen=True)
class Collection:
    resource: Resource
    list: Callable[..., Any]
    show: Callable[..., Any]
    create: Callable[..., Any]
    update: Callable[..., Any] | None
    delete: Callable[..., Any]
    revisions: bool = True  # If-Match applies
    # the list as serialised items (``port_list.JsonPage``), when the service has one
    list_json: Callable[..., Any] | None = None


COLLECTIONS = (
    Collection(NETWORKS, networks.list_networks, networks.show, networks.create, networks.update,
               networks.delete),
    Collection(SUBNETS, subnets.list_subnets, subnets.show, subnets.create, subnets.update, subnets.delete),
    Collection(PORTS, port_views.list_ports, port_views.show, ports.create, ports.update, ports.delete,
               list_json=port_list.list_json),
    Collection(SUBNETPOOLS, subnetpools.list_pools, subnetpools.show_pool, subnetpools.create_pools,
               subnetpools.update_pool, subnetpools.delete_pool),
    Collection(ADDRESS_SCOPES, subnetpools.list_scopes, subnetpools.show_scope, subnetpools.create_scopes,
               subnetpools.update_scope, subnetpools.delete_scope, revisions=False),
    Collection(ROUTERS, routers.list_routers, routers.show, routers.create, routers.update, routers.delete),
    Collection(FLOATINGIPS, floatingips.list_fips, floatingips.show, floatingips.create, floatingips.update,
               floatingips.delete),
    Collection(SECURITY_GROUPS, security_groups.list_groups, security_groups.show, security_groups.create,
               security_groups.update, security_groups.delete),
    Collection(SECURITY_GROUP_RULES, sg_rules.list_rules, sg_rules.show, sg_rules.create, None,
               sg_rules.delete, revisions=False),
)


def _handlers(c: Collection) -> list[Route]:
    resource = c.resource
    name, plural, path = resource.name, resource.collection, f"/v2.0/{resource.path}"
    taggable = resource.path in TAGGABLE

    async def list_(request: Request) -> Response:
        caller = await caller_of(request)
        net = net_of(request)

        def work() -> tuple[list[dict[str, Any]], Any]:
            q = query.parse(resource, query_pairs(request), taggable=taggable)
            return c.list(net, caller, q)  # type: ignore[no-any-return]

        if c.list_json is not None:
            list_json = c.list_json

            def work_json() -> bytes:
                q = query.parse(resource, query_pairs(request), taggable=taggable)
                got = list_json(net, caller, q)
                return listing_body(request, plural, got.parts, got.first_id, got.last_id, got.page)

            return Response(await run(work_json), media_type="application/json")
        items, page = await run(work)
        return listing(request, plural, items, page)

    async def create(request: Request) -> Response:
        caller = await caller_of(request)
        body = await body_of(request)
        bulk = isinstance(body, dict) and plural in body
        items = resource_items(body, name, plural)
        created = await run(c.create, net_of(request), caller, items)
        if bulk:
            return json_response({plural: created}, 201)
        return json_response({name: created[0]}, 201)

    async def show(request: Request) -> Response:
        caller = await caller_of(request)
        item = await run(c.show, net_of(request), caller, request.path_params["id"], fields_of(request))
        return json_response({name: item})

    async def update(request: Request) -> Response:
        caller = await caller_of(request)
        body = resource_item(await body_of(request), name)
        extra = {"if_match": if_match(request)} if c.revisions else {}
        assert c.update is not None
        item = await run(c.update, net_of(request), caller, request.path_params["id"], body, **extra)
        return json_response({name: item})

    async def delete(request: Request) -> Response:
        caller = await caller_of(request)
        extra = {"if_match": if_match(request)} if c.revisions else {}
        await run(c.delete, net_of(request), caller, request.path_params["id"], **extra)
        return empty(204)

    routes = [
        Route(path, list_, methods=["GET"]),
        Route(path, create, methods=["POST"]),
        Route(path + "/{id}", show, methods=["GET"]),
        Route(path + "/{id}", delete, methods=["DELETE"]),
    ]
    if c.update is not None:
        routes.append(Route(path + "/{id}", update, methods=["PUT"]))
    return routes


routes: list[Route] = [route for c in COLLECTIONS for route in _handlers(c)]
