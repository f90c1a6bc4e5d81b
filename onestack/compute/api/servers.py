"""``/servers``: create, list, detail, show, update, delete; ``/ips``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import NotFound
from onestack.common.pagination import nova_links
from onestack.common.web import empty, json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, body, call
from onestack.compute.models import Server
from onestack.compute.service import boot, listing, servers
from onestack.compute.validation import validate_query
from onestack.compute.views import servers as views

_LIST_QUERY_BASE = {name: schemas.STRING for name in (
    "user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image", "kernel_id",
    "ramdisk_id", "hostname", "key_name", "power_state", "vm_state", "task_state", "host",
    "node", "flavor", "reservation_id", "launched_at", "terminated_at", "availability_zone",
    "name", "display_name", "description", "display_description", "locked_by", "uuid",
    "root_device_name", "config_drive", "access_ip_v4", "access_ip_v6", "auto_disk_config",
    "progress", "sort_dir", "all_tenants", "soft_deleted", "deleted", "status", "ip", "ip6",
    "created_at", "marker", *listing._JOINED)}


def _list_query(c: Call) -> dict[str, Any]:
    q: dict[str, Any] = dict(_LIST_QUERY_BASE)
    q["limit"] = schemas.NON_NEGATIVE_INTEGER
    q["changes-since"] = {"type": "string", "format": "date-time"}
    keys = [k for k in listing.SORT_COLUMNS if k != "locked" or c.at_least("2.73")]
    if not c.at_least("2.75"):
        keys += sorted(listing.IGNORED_SORT_KEYS)
    q["sort_key"] = {"type": "string", "enum": sorted(set(keys))}
    if c.at_least("2.26"):
        q.update({name: schemas.STRING for name in listing.TAG_FILTERS})
    if c.at_least("2.66"):
        q["changes-before"] = {"type": "string", "format": "date-time"}
    if c.at_least("2.73"):
        q["locked"] = schemas.STRING
    return q


def _view(c: Call, rows: list[Server], *, groups: bool = False) -> views.Context:
    return servers.view_context(c.svc, c.ctx, c.version, c.links, c.bookmark, rows,
                                groups=groups)


async def _list(request: Request, detail: bool) -> Response:
    c = await call(request)
    validate_query(c.params, _list_query(c), additional=not c.at_least("2.75"))
    if detail:
        items, rows, limit = await run(servers.detail_page, c.svc, c.ctx, c.params, c.version,
                                       c.links, c.bookmark)
        path = "/servers/detail"
    else:
        rows, limit = await run(listing.list_servers, c.svc, c.ctx, c.params, detail=detail,
                                version=c.version)
        view = views.Context(version=c.version, links=c.links, bookmark=c.bookmark)
        items = [views.brief(r, view) for r in rows]
        path = "/servers"
    out: dict[str, Any] = {"servers": items}
    out.update(nova_links(c.url(path), c.params, "servers", rows, limit))
    return json_response(out)


async def list_servers(request: Request) -> Response:
    return await _list(request, detail=False)


async def list_detail(request: Request) -> Response:
    return await _list(request, detail=True)


async def show(request: Request) -> Response:
    c = await call(request)
    server = await run(servers.show, c.svc, c.ctx, request.path_params["server_id"])
    view = await run(_view, c, [server], groups=True)
    return json_response({"server": views.full(server, view)})


def _boot_request(c: Call, data: dict[str, Any]) -> boot.BootRequest:
    srv = data["server"]
    hints = data.get("os:scheduler_hints") or data.get("OS-SCH-HNT:scheduler_hints") or {}
    groups = None
    if srv.get("security_groups") is not None:
        groups = list(dict.fromkeys(g["name"] for g in srv["security_groups"] if g.get("name")))
    min_count = int(srv.get("min_count", 1))
    bdms = list(srv.get("block_device_mapping_v2") or srv.get("block_device_mapping") or [])
    image_ref = srv.get("imageRef", "")
    for bdm in bdms:
        if bdm.get("source_type") == "image" and bdm.get("destination_type", "local") == "local" \
                and str(bdm.get("boot_index", "")) == "0":
            image_ref = image_ref or bdm.get("uuid") or ""
    volume_bdms = [b for b in bdms if b.get("destination_type") == "volume"
                   or b.get("source_type") in ("volume", "snapshot") or b.get("volume_id")]
    return boot.BootRequest(
        name=srv["name"].strip(), flavor_ref=srv["flavorRef"], image_ref=image_ref,
        description=srv.get("description") if c.at_least("2.19") else srv["name"],
        hostname=srv.get("hostname") if c.at_least("2.90") else None,
        metadata=dict(srv.get("metadata") or {}), networks=srv.get("networks"),
        key_name=srv.get("key_name"), user_data=srv.get("user_data"),
        config_drive=schemas.is_true(srv.get("config_drive", False)),
        security_groups=groups, availability_zone=srv.get("availability_zone"),
        min_count=min_count, max_count=int(srv.get("max_count", min_count)),
        scheduler_hints=dict(hints), tags=list(srv.get("tags") or []),
        access_ip_v4=srv.get("accessIPv4"), access_ip_v6=_ipv6(srv.get("accessIPv6")),
        auto_disk_config=srv.get("OS-DCF:diskConfig") == "AUTO",
        trusted_certs=srv.get("trusted_image_certificates"),
        requested_host=srv.get("host"), requested_node=srv.get("hypervisor_hostname"),
        block_device_mapping=volume_bdms,
    )


async def create(request: Request) -> Response:
    c = await call(request)
    data = await body(request, schemas.server_create(c.version))
    req = _boot_request(c, data)
    created, reservation = await run(boot.create_servers, c.svc, c.ctx, req)
    if schemas.is_true(data["server"].get("return_reservation_id", False)):
        return json_response({"reservation_id": reservation}, 202)
    first = created[0]
    admin_pass = data["server"].get("adminPass") or _password()
    out = {
        "id": first.id,
        "links": c.links("servers", first.id),
        "OS-DCF:diskConfig": "AUTO" if req.auto_disk_config else "MANUAL",
        "security_groups": data["server"].get("security_groups", [{"name": "default"}]),
        "adminPass": admin_pass,
    }
    return json_response({"server": out}, 202,
                         headers={"Location": c.url(f"/servers/{first.id}")})


def _ipv6(value: str | None) -> str | None:
    """An IPv6 address as Nova keeps it (netaddr's canonical, compressed form)."""
    if not value:
        return value
    import ipaddress

    return ipaddress.IPv6Address(value).compressed


def _password(length: int = 12) -> str:
    import secrets
    import string

    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


async def update(request: Request) -> Response:
    c = await call(request)
    data = await body(request, schemas.server_update(c.version))
    srv = data["server"]
    changes: dict[str, Any] = {}
    if "name" in srv:
        changes["name"] = srv["name"].strip()
    if "description" in srv:
        changes["description"] = srv["description"]
    if "hostname" in srv:
        changes["hostname"] = srv["hostname"]
    if "accessIPv4" in srv:
        changes["access_ip_v4"] = srv["accessIPv4"] or None
    if "accessIPv6" in srv:
        changes["access_ip_v6"] = _ipv6(srv["accessIPv6"]) or None
    if "OS-DCF:diskConfig" in srv:
        changes["auto_disk_config"] = srv["OS-DCF:diskConfig"] == "AUTO"
    server = await run(servers.update, c.svc, c.ctx, request.path_params["server_id"], changes)
    view = await run(_view, c, [server], groups=True)
    return json_response({"server": views.full(server, view, minimal=not c.at_least("2.75"))})


async def delete(request: Request) -> Response:
    c = await call(request)
    await run(servers.delete, c.svc, c.ctx, request.path_params["server_id"])
    return empty(204)


async def ips(request: Request) -> Response:
    c = await call(request)
    server = await run(_server_for_ips, c, request.path_params["server_id"], "index")
    return json_response(views.ips(server))


async def ips_network(request: Request) -> Response:
    c = await call(request)
    server = await run(_server_for_ips, c, request.path_params["server_id"], "show")
    network = request.path_params["network"]
    found = views.ips(server, network)
    if not found:
        raise NotFound("Instance is not a member of specified network")
    return json_response(found)


def _server_for_ips(c: Call, server_id: str, action: str) -> Server:
    from onestack.compute.service._common import get

    return get(c.svc, c.ctx, server_id, f"os_compute_api:ips:{action}")


S = "/v2.1/servers/{server_id}"

routes = [
    Route("/v2.1/servers", list_servers, methods=["GET"]),
    Route("/v2.1/servers", create, methods=["POST"]),
    Route("/v2.1/servers/detail", list_detail, methods=["GET"]),
    Route(S, show, methods=["GET"]),
    Route(S, update, methods=["PUT"]),
    Route(S, delete, methods=["DELETE"]),
    Route(S + "/ips", ips, methods=["GET"]),
    Route(S + "/ips/{network}", ips_network, methods=["GET"]),
]
