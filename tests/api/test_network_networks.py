"""Networking API: discovery, networks, the all-in-one defaults, multi-tenancy,
filters / fields / sorting / paging, revisions and If-Match, error shapes."""

from __future__ import annotations

from tests.api._network import (
    N,
    as_token,
    name,
    network,
    neutron_error,
    ok,
    other_member,
    project_of,
)
from tests.api.conftest import Api


def test_version_documents(api: Api) -> None:
    versions = ok(api.client.get("/networking/"))
    assert versions == {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
        {"rel": "self", "href": "http://127.0.0.1:8800/networking/v2.0/"}]}]}
    resources = ok(api.get(f"{N}/"))["resources"]
    assert [r["name"] for r in resources] == ["network", "subnet", "subnetpool", "port"]
    assert resources[0]["links"][0]["href"] == "http://127.0.0.1:8800/networking/v2.0/networks"


def test_catalog_has_the_network_service(api: Api) -> None:
    r = api.post("/identity/v3/auth/tokens", json={"auth": {"identity": {"methods": ["token"], "token": {
        "id": api.token()}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    catalog = r.json()["token"]["catalog"]
    entry = [e for e in catalog if e["type"] == "network"]
    assert entry and entry[0]["name"] == "neutron"
    assert {e["url"] for e in entry[0]["endpoints"]} == {"http://127.0.0.1:8800/networking"}


def test_unauthenticated_and_unknown(api: Api) -> None:
    r = api.client.get(f"{N}/networks")
    assert r.status_code == 401
    assert r.json() == {"error": {"code": 401, "title": "Unauthorized",
                                  "message": "The request you have made requires authentication."}}
    neutron_error(api.get(f"{N}/foos"), 404, "HTTPNotFound", "The resource could not be found.")
    neutron_error(api.patch(f"{N}/networks/x", json={}), 405, "HTTPMethodNotAllowed",
                  "The server could not comply with the request since it is either malformed or "
                  "otherwise incorrect.")


def test_all_in_one_defaults(api: Api) -> None:
    nets = {n["name"]: n for n in ok(api.get(f"{N}/networks"))["networks"]}
    public, private = nets["public"], nets["private"]
    assert public["router:external"] is True and public["provider:network_type"] == "flat"
    assert public["provider:physical_network"] == "public" and public["mtu"] == 1500
    assert private["project_id"] == project_of(api, "demo") and private["mtu"] == 1450
    subnets = {s["name"]: s for s in ok(api.get(f"{N}/subnets"))["subnets"]}
    assert subnets["public-subnet"]["cidr"] == "172.24.4.0/24"
    assert subnets["public-subnet"]["gateway_ip"] == "172.24.4.1"
    assert subnets["public-subnet"]["enable_dhcp"] is False
    assert subnets["private-subnet"]["cidr"] == "10.0.0.0/26"
    assert subnets["private-subnet"]["allocation_pools"] == [{"start": "10.0.0.2", "end": "10.0.0.62"}]
    router = ok(api.get(f"{N}/routers?name=router1"))["routers"][0]
    assert router["project_id"] == project_of(api, "demo")
    assert router["external_gateway_info"]["network_id"] == public["id"]
    assert router["external_gateway_info"]["enable_snat"] is True
    interfaces = ok(api.get(f"{N}/ports?device_id={router['id']}&device_owner=network:router_interface"))
    assert interfaces["ports"][0]["fixed_ips"][0]["ip_address"] == "10.0.0.1"


def test_demo_sees_own_and_external_networks_only(api: Api) -> None:
    admin_only = network(api)
    names = {n["name"] for n in ok(api.get(f"{N}/networks", "demo"))["networks"]}
    assert {"public", "private"} <= names and admin_only["name"] not in names
    neutron_error(api.get(f"{N}/networks/{admin_only['id']}", "demo"), 404, "NetworkNotFound",
                  f"Network {admin_only['id']} could not be found.")
    # the provider attributes are admin only
    private = ok(api.get(f"{N}/networks?name=private", "demo"))["networks"][0]
    assert "provider:network_type" not in private and "provider:segmentation_id" not in private
    shared = network(api, shared=True)
    assert shared["id"] in {n["id"] for n in ok(api.get(f"{N}/networks", "demo"))["networks"]}


def test_create_show_update_delete(api: Api) -> None:
    net = network(api, "demo", description="d1", mtu=1400, admin_state_up=False)
    assert net["status"] == "ACTIVE" and net["mtu"] == 1400 and net["admin_state_up"] is False
    assert net["revision_number"] == 0 and net["description"] == "d1" and net["subnets"] == []
    assert net["created_at"].endswith("Z") and net["tags"] == []
    r = api.put(f"{N}/networks/{net['id']}", "demo", json={"network": {"name": "renamed"}})
    updated = ok(r)["network"]
    assert updated["name"] == "renamed" and updated["revision_number"] == 1
    shown = ok(api.get(f"{N}/networks/{net['id']}?fields=id&fields=name", "demo"))["network"]
    assert shown == {"id": net["id"], "name": "renamed"}
    assert api.delete(f"{N}/networks/{net['id']}", "demo").status_code == 204
    neutron_error(api.get(f"{N}/networks/{net['id']}", "demo"), 404, "NetworkNotFound")


def test_bulk_create_is_all_or_nothing(api: Api) -> None:
    before = len(ok(api.get(f"{N}/networks"))["networks"])
    names = [name(), name()]
    r = api.post(f"{N}/networks", json={"networks": [{"name": n} for n in names]})
    created = ok(r, 201)["networks"]
    assert [n["name"] for n in created] == names
    r = api.post(f"{N}/networks", json={"networks": [{"name": "ok"}, {"name": "x", "mtu": "abc"}]})
    neutron_error(r, 400, "InvalidInput", "Invalid input for operation: 'abc' is not an integer.")
    assert len(ok(api.get(f"{N}/networks"))["networks"]) == before + 2


def test_bad_bodies(api: Api) -> None:
    post = f"{N}/networks"
    neutron_error(api.post(post, content=b"{x"), 400, "HTTPBadRequest", "Body contains invalid data")
    neutron_error(api.post(post, json={"net": {}}), 400, "HTTPBadRequest",
                  "Unable to find 'network' in request body")
    neutron_error(api.post(post, json={"network": []}), 400, "HTTPBadRequest",
                  "Object 'network' contains invalid data")
    neutron_error(api.post(post, json={"network": {"foo": 1}}), 400, "HTTPBadRequest",
                  "Unrecognized attribute(s) 'foo'")
    neutron_error(api.post(post, json={"network": {"admin_state_up": "x"}}), 400, "InvalidInput",
                  "Invalid input for operation: 'x' cannot be converted to boolean.")
    neutron_error(api.post(post, json={"network": {"name": 5}}), 400, "HTTPBadRequest",
                  "Invalid input for name. Reason: '5' is not a valid string.")
    neutron_error(api.post(post, json={"network": {"name": "a" * 256}}), 400, "HTTPBadRequest",
                  f"Invalid input for name. Reason: '{'a' * 256}' exceeds maximum length of 255.")
    neutron_error(api.post(post, json={"network": {"status": "DOWN"}}), 400, "HTTPBadRequest",
                  "Attribute 'status' not allowed in POST")
    net = network(api)
    neutron_error(api.put(f"{N}/networks/{net['id']}", json={"network": {"id": "x"}}), 400,
                  "HTTPBadRequest", "Cannot update read-only attribute id")
    neutron_error(api.post(post, json={"network": {"mtu": 9000}}), 400, "InvalidInput",
                  "Invalid input for operation: Requested MTU is too big, maximum is 1450.")
    neutron_error(api.post(post, json={"network": {"provider:network_type": "vlan"}}), 400, "InvalidInput",
                  "Invalid input for operation: network_type value 'vlan' not supported.")
    neutron_error(api.post(post, json={"network": {"provider:network_type": "flat",
                                                   "provider:physical_network": "public"}}),
                  409, "FlatNetworkInUse",
                  "Unable to create the flat network. Physical network public is in use.")


def test_policy_on_create_and_other_projects(api: Api) -> None:
    r = api.post(f"{N}/networks", "demo", json={"network": {"shared": True}})
    neutron_error(r, 403, "PolicyNotAuthorized",
                  "(rule:create_network and rule:create_network:shared) is disallowed by policy")
    r = api.post(f"{N}/networks", "demo", json={"network": {"project_id": "someone-else"}})
    neutron_error(r, 400, "HTTPBadRequest",
                  "Specifying 'project_id' other than the authenticated project in request is not "
                  "allowed for the current user.")
    net = network(api, "demo")
    third = other_member(api)
    r = as_token(api, third, "PUT", f"{N}/networks/{net['id']}", json={"network": {"name": "x"}})
    neutron_error(r, 404, "NetworkNotFound")
    r = as_token(api, third, "DELETE", f"{N}/networks/{net['id']}")
    neutron_error(r, 404, "NetworkNotFound")
    # an admin may create for another project
    for_demo = network(api, project_id=project_of(api, "demo"))
    assert for_demo["project_id"] == project_of(api, "demo")


def test_system_scoped_token_is_refused(api: Api) -> None:
    a = api.admin_auth
    token = api.password_token(a["username"], a["password"], system=True)
    headers = {"X-Auth-Token": token}
    assert api.client.get(f"{N}/networks", headers=headers).json() == {"networks": []}
    r = api.client.post(f"{N}/networks", headers=headers, json={"network": {"project_id": "p"}})
    neutron_error(r, 403, "PolicyNotAuthorized")


def test_filters_fields_sorting(api: Api) -> None:
    tag = name("flt")
    a = network(api, description=tag, admin_state_up=False)
    b = network(api, description=tag)
    got = ok(api.get(f"{N}/networks?description={tag}&admin_state_up=False"))["networks"]
    assert [n["id"] for n in got] == [a["id"]]
    got = ok(api.get(f"{N}/networks?id={a['id']}&id={b['id']}&fields=id"))["networks"]
    assert sorted(n["id"] for n in got) == sorted([a["id"], b["id"]]) and all(set(n) == {"id"} for n in got)
    got = ok(api.get(f"{N}/networks?description={tag}&sort_key=name&sort_dir=desc"))["networks"]
    assert [n["name"] for n in got] == sorted([a["name"], b["name"]], reverse=True)
    assert ok(api.get(f"{N}/networks?name="))["networks"] == []
    neutron_error(api.get(f"{N}/networks?foo=bar"), 400, "HTTPBadRequest",
                  "['foo'] is invalid attribute for filtering")
    neutron_error(api.get(f"{N}/networks?sort_key=foo&sort_dir=asc"), 400, "HTTPBadRequest",
                  "['foo'] is invalid attribute for sort_keys")
    neutron_error(api.get(f"{N}/networks?sort_key=name&sort_dir=up"), 400, "HTTPBadRequest",
                  "['up'] is invalid value for sort_dirs, valid value is 'asc' and 'desc'")
    neutron_error(api.get(f"{N}/networks?sort_key=name"), 400, "HTTPBadRequest",
                  "The number of sort_keys and sort_dirs must be same")


def test_pagination_links(api: Api) -> None:
    tag = name("pg")
    ids = sorted(network(api, description=tag)["id"] for _ in range(5))
    seen: list[str] = []
    url = f"{N}/networks?description={tag}&limit=2"
    while url:
        body = ok(api.get(url))
        seen += [n["id"] for n in body["networks"]]
        nxt = [link["href"] for link in body.get("networks_links", []) if link["rel"] == "next"]
        url = nxt[0].replace("http://127.0.0.1:8800", "") if nxt else ""
    assert seen == ids
    body = ok(api.get(f"{N}/networks?description={tag}&limit=2&marker={ids[3]}&page_reverse=True"))
    assert [n["id"] for n in body["networks"]] == ids[1:3]
    neutron_error(api.get(f"{N}/networks?limit=x"), 400, "BadRequest",
                  "Bad limit request: Limit must be an integer 0 or greater and not 'x'.")
    neutron_error(api.get(f"{N}/networks?limit=1&marker=zzz"), 404, "NetworkNotFound",
                  "Network zzz could not be found.")


def test_revision_if_match(api: Api) -> None:
    net = network(api)
    path = f"{N}/networks/{net['id']}"
    r = api.put(path, json={"network": {"name": "a"}}, headers={"If-Match": "revision_number=5"})
    neutron_error(r, 412, "RevisionNumberConstraintFailed", "Constrained to 5, but current revision is 0")
    assert ok(api.get(path))["network"]["name"] == net["name"]
    r = api.put(path, json={"network": {"name": "a"}}, headers={"If-Match": "revision_number=0"})
    assert ok(r)["network"]["revision_number"] == 1
    neutron_error(api.put(path, json={"network": {}}, headers={"If-Match": "revision_number=a"}), 400,
                  "BadRequest",
                  "Bad if-match request: Revision number etag must be in the format of revision_number=<int>.")
    neutron_error(api.delete(path, headers={"If-Match": "revision_number=0"}), 412,
                  "RevisionNumberConstraintFailed")
    assert api.delete(path, headers={"If-Match": "revision_number=1"}).status_code == 204


def test_delete_network_in_use(api: Api) -> None:
    net = network(api)
    sub = ok(api.post(f"{N}/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.9.0.0/24",
                                                       "ip_version": 4}}), 201)["subnet"]
    port = ok(api.post(f"{N}/ports", json={"port": {"network_id": net["id"]}}), 201)["port"]
    neutron_error(api.delete(f"{N}/networks/{net['id']}"), 409, "NetworkInUse",
                  f"Unable to complete operation on network {net['id']}. There are one or more ports "
                  f"still in use on the network, id for these ports is: {port['id']}.")
    assert ok(api.get(f"{N}/networks/{net['id']}"))["network"]["subnets"] == [sub["id"]]
    assert api.delete(f"{N}/ports/{port['id']}").status_code == 204
    assert api.delete(f"{N}/networks/{net['id']}").status_code == 204
    neutron_error(api.get(f"{N}/subnets/{sub['id']}"), 404, "SubnetNotFound")
