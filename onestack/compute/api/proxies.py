"""Nova's proxy APIs of before 2.36: ``/os-security-groups``,
``/os-security-group-rules``, ``/os-floating-ips``, ``/os-floating-ip-pools``,
``/images`` (and its ``metadata``, to 2.38); the ``addFloatingIp`` /
``removeFloatingIp`` actions (to 2.43) and ``injectNetworkInfo``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import BadRequest, NotFound
from onestack.common.pagination import PageParams, nova_links
from onestack.common.web import empty, json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, body, call
from onestack.compute.service import proxy_images, proxy_network
from onestack.compute.service._common import get
from onestack.compute.validation import validate

_MAX = "2.35"

# --- os-security-groups, os-security-group-rules ------------------------------------------


def _group_body(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("security_group"), dict):
        raise BadRequest("Missing parameter security_group")
    return dict(data["security_group"])


def _limited(c: Call, items: list[Any]) -> list[Any]:
    """Nova's ``common.limited``: ``offset`` and ``limit`` over a whole list."""
    try:
        offset = int(c.params.get("offset", 0))
        limit = int(c.params.get("limit", c.svc.conf.max_limit))
    except ValueError:
        raise BadRequest("limit param must be an integer") from None
    if offset < 0:
        raise BadRequest("offset param must be positive")
    if limit < 0:
        raise BadRequest("limit param must be positive")
    limit = min(limit or c.svc.conf.max_limit, c.svc.conf.max_limit)
    return items[offset:offset + limit]


async def list_groups(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    every = c.params.get("all_tenants") is not None
    groups = await run(proxy_network.list_groups, c.svc, c.ctx, every)
    return json_response({"security_groups": _limited(c, groups)})


async def create_group(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    group = _group_body(await body(request))
    made = await run(proxy_network.create_group, c.svc, c.ctx, group.get("name"),
                     group.get("description"))
    return json_response({"security_group": made})


async def show_group(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    group = await run(proxy_network.show_group, c.svc, c.ctx, request.path_params["gid"])
    return json_response({"security_group": group})


async def update_group(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    group = _group_body(await body(request))
    updated = await run(proxy_network.update_group, c.svc, c.ctx, request.path_params["gid"],
                        group.get("name"), group.get("description"))
    return json_response({"security_group": updated})


async def delete_group(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    await run(proxy_network.delete_group, c.svc, c.ctx, request.path_params["gid"])
    return empty(202)


async def create_rule(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    data = await body(request)
    if not isinstance(data, dict) or not isinstance(data.get("security_group_rule"), dict):
        raise BadRequest("Missing parameter security_group_rule")
    rule = await run(proxy_network.create_rule, c.svc, c.ctx, data["security_group_rule"])
    return json_response({"security_group_rule": rule})


async def delete_rule(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    await run(proxy_network.delete_rule, c.svc, c.ctx, request.path_params["rid"])
    return empty(202)


# --- os-floating-ips, os-floating-ip-pools ---------------------------------------------


async def list_fips(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    return json_response({"floating_ips": await run(proxy_network.list_fips, c.svc, c.ctx)})


async def create_fip(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    data = await body(request)
    pool = data.get("pool") if isinstance(data, dict) else None
    fip = await run(proxy_network.create_fip, c.svc, c.ctx, pool)
    return json_response({"floating_ip": fip})


async def show_fip(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    fip = await run(proxy_network.show_fip, c.svc, c.ctx, request.path_params["fid"])
    return json_response({"floating_ip": fip})


async def delete_fip(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    await run(proxy_network.delete_fip, c.svc, c.ctx, request.path_params["fid"])
    return empty(202)


async def list_pools(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    return json_response({"floating_ip_pools": await run(proxy_network.pools, c.svc, c.ctx)})


def _action_schema(action: str, properties: dict[str, Any], required: str) -> dict[str, Any]:
    """The body of a server action ``{action: {...}}`` with these properties, one required."""
    return {"type": "object", "properties": {action: {
        "type": "object", "properties": properties,
        "required": [required], "additionalProperties": False}},
        "required": [action], "additionalProperties": False}


async def add_floating_ip(c: Call, sid: str, data: dict[str, Any]) -> Response:
    c.require("2.1", "2.43")
    validate(_action_schema("addFloatingIp", {"address": schemas.IP_ADDRESS,
                                              "fixed_address": schemas.IP_ADDRESS}, "address"),
             data)
    params = data["addFloatingIp"]
    await run(proxy_network.add_fip, c.svc, c.ctx, sid, params["address"],
              params.get("fixed_address"))
    return empty(202)


async def remove_floating_ip(c: Call, sid: str, data: dict[str, Any]) -> Response:
    c.require("2.1", "2.43")
    validate(_action_schema("removeFloatingIp", {"address": schemas.IP_ADDRESS}, "address"), data)
    await run(proxy_network.remove_fip, c.svc, c.ctx, sid, data["removeFloatingIp"]["address"])
    return empty(202)


# Nova's multinic schemas: a network id as Nova's ``name`` parameter; an IPv4 or IPv6 address.
_NETWORK_ID = {"type": ["string", "number"], "minLength": 1, "maxLength": 255,
               "pattern": "^(?! )[a-zA-Z0-9. _-]+(?<! )$"}


async def add_fixed_ip(c: Call, sid: str, data: dict[str, Any]) -> Response:
    c.require("2.1", "2.43")
    validate(_action_schema("addFixedIp", {"networkId": _NETWORK_ID}, "networkId"), data)
    await run(proxy_network.add_fixed_ip, c.svc, c.ctx, sid, str(data["addFixedIp"]["networkId"]))
    return empty(202)


async def remove_fixed_ip(c: Call, sid: str, data: dict[str, Any]) -> Response:
    c.require("2.1", "2.43")
    validate(_action_schema("removeFixedIp", {"address": schemas.IP_ADDRESS}, "address"), data)
    await run(proxy_network.remove_fixed_ip, c.svc, c.ctx, sid, data["removeFixedIp"]["address"])
    return empty(202)


async def inject_network_info(c: Call, sid: str, data: dict[str, Any]) -> Response:
    """Nova's admin action; the guest reads its network from DHCP and the
    metadata service here, so there is nothing to inject (as Nova's libvirt)."""
    await run(get, c.svc, c.ctx, sid, "os_compute_api:os-admin-actions:inject_network_info")
    return empty(202)


# --- /images ---------------------------------------------------------------------------


def _image_links(c: Call, image_id: str) -> list[dict[str, str]]:
    return [*c.links("images", image_id),
            {"rel": "alternate", "type": "application/vnd.openstack.image",
             "href": f"{c.svc.settings.base_url}/image/images/{image_id}"}]


def _image_view(c: Call, image: dict[str, Any]) -> dict[str, Any]:
    props = proxy_images.properties(image)
    out: dict[str, Any] = {
        "id": image["id"], "name": image.get("name"),
        "minRam": int(image.get("min_ram") or 0), "minDisk": int(image.get("min_disk") or 0),
        "metadata": props, "created": image.get("created_at"),
        "updated": image.get("updated_at"), "status": proxy_images.status(image),
        "progress": proxy_images.progress(image), "OS-EXT-IMG-SIZE:size": image.get("size"),
        "links": _image_links(c, image["id"]),
    }
    server = props.get("instance_uuid")
    if server is not None:
        out["server"] = {"id": server, "links": c.links("servers", str(server))}
    auto = props.get("auto_disk_config")
    if auto is not None:
        out["OS-DCF:diskConfig"] = "AUTO" if str(auto).lower() in (
            "1", "t", "true", "on", "y", "yes") else "MANUAL"
    return out


async def _images(request: Request, detail: bool) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    images = await run(proxy_images.list_images, c.svc, c.ctx, c.params)
    page = PageParams.from_query(c.params, max_limit=c.svc.conf.max_limit,
                                 zero_is_default=False)
    if page.marker is not None:
        ids = [i["id"] for i in images]
        if page.marker not in ids:
            raise BadRequest(f"marker [{page.marker}] not found")
        images = images[ids.index(page.marker) + 1:]
    if page.limit is not None:
        images = images[:page.limit]
    items = [_image_view(c, i) if detail else
             {"id": i["id"], "name": i.get("name"), "links": _image_links(c, i["id"])}
             for i in images]
    out: dict[str, Any] = {"images": items}
    out.update(nova_links(c.url("/images" + ("/detail" if detail else "")), c.params,
                          "images", items, page.limit))
    return json_response(out)


async def list_images(request: Request) -> Response:
    return await _images(request, False)


async def list_images_detail(request: Request) -> Response:
    return await _images(request, True)


async def show_image(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    image = await run(proxy_images.get_image, c.svc, c.ctx, request.path_params["iid"])
    return json_response({"image": _image_view(c, image)})


async def delete_image(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _MAX)
    await run(proxy_images.delete_image, c.svc, c.ctx, request.path_params["iid"])
    return empty(204)


_META_MAX = "2.38"
_METADATA = {"type": "object", "properties": {"metadata": schemas.METADATA},
             "required": ["metadata"], "additionalProperties": False}
_META_ITEM = {"type": "object", "properties": {"meta": {
    **schemas.METADATA, "minProperties": 1, "maxProperties": 1}},
    "required": ["meta"], "additionalProperties": False}


async def image_metadata(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _META_MAX)
    image = await run(proxy_images.get_image, c.svc, c.ctx, request.path_params["iid"])
    return json_response({"metadata": proxy_images.properties(image)})


async def set_image_metadata(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _META_MAX)
    data = await body(request, _METADATA)
    found = await run(proxy_images.set_metadata, c.svc, c.ctx, request.path_params["iid"],
                      data["metadata"], replace=request.method == "PUT")
    return json_response({"metadata": found})


async def image_metadata_item(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _META_MAX)
    key = request.path_params["key"]
    image = await run(proxy_images.get_image, c.svc, c.ctx, request.path_params["iid"])
    props = proxy_images.properties(image)
    if key not in props:
        raise NotFound("Invalid metadata key")
    return json_response({"meta": {key: props[key]}})


async def set_image_metadata_item(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _META_MAX)
    key = request.path_params["key"]
    data = await body(request, _META_ITEM)
    if key not in data["meta"]:
        raise BadRequest("Request body and URI mismatch")
    await run(proxy_images.set_metadata, c.svc, c.ctx, request.path_params["iid"],
              {key: data["meta"][key]}, replace=False)
    return json_response({"meta": {key: data["meta"][key]}})


async def delete_image_metadata_item(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", _META_MAX)
    await run(proxy_images.delete_metadata_item, c.svc, c.ctx, request.path_params["iid"],
              request.path_params["key"])
    return empty(204)


V = "/v2.1"
SG, FIP, IM = V + "/os-security-groups", V + "/os-floating-ips", V + "/images"

routes = [
    Route(SG, list_groups, methods=["GET"]),
    Route(SG, create_group, methods=["POST"]),
    Route(SG + "/{gid}", show_group, methods=["GET"]),
    Route(SG + "/{gid}", update_group, methods=["PUT"]),
    Route(SG + "/{gid}", delete_group, methods=["DELETE"]),
    Route(V + "/os-security-group-rules", create_rule, methods=["POST"]),
    Route(V + "/os-security-group-rules/{rid}", delete_rule, methods=["DELETE"]),
    Route(FIP, list_fips, methods=["GET"]),
    Route(FIP, create_fip, methods=["POST"]),
    Route(FIP + "/{fid}", show_fip, methods=["GET"]),
    Route(FIP + "/{fid}", delete_fip, methods=["DELETE"]),
    Route(V + "/os-floating-ip-pools", list_pools, methods=["GET"]),
    Route(IM, list_images, methods=["GET"]),
    Route(IM + "/detail", list_images_detail, methods=["GET"]),
    Route(IM + "/{iid}", show_image, methods=["GET"]),
    Route(IM + "/{iid}", delete_image, methods=["DELETE"]),
    Route(IM + "/{iid}/metadata", image_metadata, methods=["GET"]),
    Route(IM + "/{iid}/metadata", set_image_metadata, methods=["POST", "PUT"]),
    Route(IM + "/{iid}/metadata/{key}", image_metadata_item, methods=["GET"]),
    Route(IM + "/{iid}/metadata/{key}", set_image_metadata_item, methods=["PUT"]),
    Route(IM + "/{iid}/metadata/{key}", delete_image_metadata_item, methods=["DELETE"]),
]
