"""Networking API: quotas (enforced, details, limits below usage), tags,
extensions, availability zones, IP availability, agents, the data-plane seam."""

from __future__ import annotations

from typing import Any

from onestack.network import dataplane
from tests.api._network import (
    N,
    as_token,
    name,
    network,
    neutron_error,
    ok,
    other_member,
    port,
    project_of,
    subnet,
)
from tests.api.conftest import Api


def test_quota_is_enforced_in_the_create(api: Api) -> None:
    third = other_member(api)
    pid = api.cloud.validator.validate(third).project_id  # type: ignore[union-attr]
    quota = ok(api.put(f"{N}/quotas/{pid}", json={"quota": {"network": 2, "security_group": 1}}))["quota"]
    assert quota["network"] == 2 and quota["port"] == 500
    for _ in range(2):
        ok(as_token(api, third, "POST", f"{N}/networks", json={"network": {"name": name()}}), 201)
    r = as_token(api, third, "POST", f"{N}/networks", json={"network": {"name": name()}})
    neutron_error(r, 409, "OverQuota", "Quota exceeded for resources: ['network'].")
    r = as_token(api, third, "POST", f"{N}/networks", json={"networks": [{"name": "a"}]})
    neutron_error(r, 409, "OverQuota")
    details = ok(api.get(f"{N}/quotas/{pid}/details"))["quota"]
    assert details["network"] == {"limit": 2, "used": 2, "reserved": 0}
    # the project's own default group counts as one of its security groups
    r = as_token(api, third, "POST", f"{N}/security-groups", json={"security_group": {"name": "x"}})
    neutron_error(r, 409, "OverQuota", "Quota exceeded for resources: ['security_group'].")
    r = api.put(f"{N}/quotas/{pid}", json={"quota": {"network": 1}})
    neutron_error(r, 400, "HTTPBadRequest", "Quota limit 1 for network must be greater than or equal to already used 2")
    assert ok(api.put(f"{N}/quotas/{pid}", json={"quota": {"network": 1, "check_limit": False}}))["quota"]["network"] == 1
    listed = [q for q in ok(api.get(f"{N}/quotas"))["quotas"] if q["project_id"] == pid]
    assert len(listed) == 1 and listed[0]["network"] == 1 and listed[0]["tenant_id"] == pid
    assert api.delete(f"{N}/quotas/{pid}").status_code == 204
    neutron_error(api.delete(f"{N}/quotas/{pid}"), 404, "TenantQuotaNotFound",
                  f"Quota for project {pid} could not be found.")
    assert ok(api.get(f"{N}/quotas/{pid}/default"))["quota"]["network"] == 100


def test_quota_bad_input_and_policy(api: Api) -> None:
    pid = project_of(api, "demo")
    neutron_error(api.put(f"{N}/quotas/{pid}", json={"quota": {"network": "x"}}), 400, "InvalidInput",
                  "Invalid input for operation: 'x' is not an integer.")
    neutron_error(api.put(f"{N}/quotas/{pid}", json={"quota": {"network": -5}}), 400, "HTTPBadRequest",
                  "Invalid input for network. Reason: '-5' is too small - must be at least '-1'.")
    neutron_error(api.put(f"{N}/quotas/{pid}", json={"quota": {"foo": 5}}), 400, "HTTPBadRequest",
                  "Unrecognized attribute(s) 'foo'")
    neutron_error(api.put(f"{N}/quotas/{pid}", "demo", json={"quota": {"network": 5}}), 403, "PolicyNotAuthorized",
                  "rule:update_quota is disallowed by policy")
    neutron_error(api.get(f"{N}/quotas/{pid}", "demo"), 403, "PolicyNotAuthorized")


def test_tags(api: Api) -> None:
    net = network(api, "demo")
    base = f"{N}/networks/{net['id']}/tags"
    assert ok(api.put(base, "demo", json={"tags": ["red", "blue"]})) == {"tags": ["blue", "red"]}
    r = api.put(f"{base}/green", "demo")
    assert r.status_code == 201 and r.json() is None
    assert api.get(f"{base}/green", "demo").status_code == 204
    neutron_error(api.get(f"{base}/nope", "demo"), 404, "TagNotFound", "Tag nope could not be found.")
    assert ok(api.post(base, "demo", json={"tags": ["x"]})) == {"tags": ["x"]}
    assert ok(api.get(base, "demo")) == {"tags": ["blue", "green", "red", "x"]}
    shown = ok(api.get(f"{N}/networks/{net['id']}", "demo"))["network"]
    assert shown["tags"] == ["blue", "green", "red", "x"] and shown["revision_number"] == 3
    other = network(api, "demo")
    api.put(f"{N}/networks/{other['id']}/tags", "demo", json={"tags": ["red"]})
    ids = {n["id"] for n in ok(api.get(f"{N}/networks?tags=red,blue", "demo"))["networks"]}
    assert ids == {net["id"]}
    ids = {n["id"] for n in ok(api.get(f"{N}/networks?tags-any=red", "demo"))["networks"]}
    assert ids == {net["id"], other["id"]}
    ids = {n["id"] for n in ok(api.get(f"{N}/networks?not-tags=blue&tags=red", "demo"))["networks"]}
    assert ids == {other["id"]}
    neutron_error(api.put(base, "demo", json={"tags": "x"}), 400, "InvalidInput",
                  "Invalid input for operation: 'x' is not a list.")
    neutron_error(api.put(base, "demo", json={"tagz": []}), 400, "InvalidInput",
                  "Invalid input for operation: Invalid tags body.")
    neutron_error(api.put(base, "demo", json={"tags": [f"t{i}" for i in range(51)]}), 400, "BadRequest",
                  "Bad networks request: The number of tags exceed the per-resource limit of 50.")
    assert api.delete(f"{base}/x", "demo").status_code == 204
    assert api.delete(base, "demo").status_code == 204
    assert ok(api.get(base, "demo")) == {"tags": []}
    third = other_member(api)
    neutron_error(as_token(api, third, "GET", base), 404, "NetworkNotFound")
    missing = "00000000-0000-0000-0000-000000000003"
    neutron_error(api.get(f"{N}/ports/{missing}/tags"), 404, "PortNotFound")


def test_extensions_list_only_what_is_implemented(api: Api) -> None:
    aliases = {e["alias"] for e in ok(api.get(f"{N}/extensions"))["extensions"]}
    assert {"router", "security-group", "quotas", "external-net", "binding", "provider", "extraroute",
            "standard-attr-tag", "revision-if-match", "floating-ip-port-forwarding"} <= aliases
    assert not aliases & {"agent", "dvr", "l3-ha", "rbac-policies", "qos", "trunk", "metering"}
    router = ok(api.get(f"{N}/extensions/router"))["extension"]
    assert router["name"] == "Neutron L3 Router" and router["links"] == []
    neutron_error(api.get(f"{N}/extensions/foo"), 404, "HTTPNotFound", "Extension with alias foo does not exist")


def test_ip_availability(api: Api) -> None:
    net = network(api)
    sub = subnet(api, net["id"], "10.70.0.0/28")
    port(api, net["id"])
    item = ok(api.get(f"{N}/network-ip-availabilities/{net['id']}"))["network_ip_availability"]
    assert item["total_ips"] == 13 and item["used_ips"] == 1
    assert item["subnet_ip_availability"][0]["subnet_id"] == sub["id"]
    listed = ok(api.get(f"{N}/network-ip-availabilities?network_id={net['id']}"))["network_ip_availabilities"]
    assert [i["network_id"] for i in listed] == [net["id"]]
    neutron_error(api.get(f"{N}/network-ip-availabilities", "demo"), 403, "PolicyNotAuthorized")


def test_agents_and_zones_come_from_the_agent_source(api: Api) -> None:
    assert ok(api.get(f"{N}/agents")) == {"agents": []}
    assert ok(api.get(f"{N}/availability_zones")) == {"availability_zones": []}
    net_service = api.cloud.service("network")
    agent = dataplane.AgentInfo(id="a1", agent_type="DHCP agent", binary="onestack-dhcp", host="h1",
                                availability_zone="nova", alive=True)
    before = net_service.agent_source
    net_service.agent_source = type("One", (), {"agents": lambda self: [agent]})()
    try:
        assert ok(api.get(f"{N}/agents"))["agents"][0]["host"] == "h1"
        assert ok(api.get(f"{N}/agents", "demo")) == {"agents": []}
        assert ok(api.get(f"{N}/availability_zones")) == {"availability_zones": [
            {"name": "nova", "resource": "network", "state": "available"}]}
        assert ok(api.post(f"{N}/networks", json={"network": {"availability_zone_hints": ["nova"]}}), 201)
    finally:
        net_service.agent_source = before
    neutron_error(api.post(f"{N}/networks", json={"network": {"availability_zone_hints": ["nova"]}}), 404,
                  "AvailabilityZoneNotFound", "AvailabilityZone nova could not be found.")


class _Recorder:
    def __init__(self) -> None:
        self.in_tx: list[list[dataplane.Change]] = []
        self.after: list[list[dataplane.Change]] = []

    def in_transaction(self, session: Any, changes: Any) -> None:
        self.in_tx.append(list(changes))

    def after_commit(self, changes: Any) -> None:
        self.after.append(list(changes))


def test_data_plane_notifier_sees_each_change_once(api: Api) -> None:
    net_service = api.cloud.service("network")
    recorder = _Recorder()
    before = net_service.notifier
    net_service.notifier = recorder
    try:
        net = network(api)
        sub = subnet(api, net["id"], "10.71.0.0/24")
        p = port(api, net["id"])
        api.put(f"{N}/ports/{p['id']}", json={"port": {"binding:host_id": "h1"}})
        api.delete(f"{N}/ports/{p['id']}")
        r = api.post(f"{N}/ports", json={"port": {"network_id": net["id"], "fixed_ips": [{"ip_address": "x"}]}})
        assert r.status_code == 400
    finally:
        net_service.notifier = before
    kinds = [(c.kind, c.action) for batch in recorder.after for c in batch]
    assert kinds == [("network", "created"), ("subnet", "created"), ("port", "created"), ("port", "updated"),
                     ("port", "deleted")]
    assert recorder.in_tx == recorder.after
    bound = recorder.after[3][0]
    assert bound.host == "h1" and bound.network_id == net["id"]
    deleted = recorder.after[4][0]
    assert deleted.details["fixed_ips"][0]["subnet_id"] == sub["id"]


def test_application_credential_access_rules_guard_networking(api: Api) -> None:
    """keystonemiddleware's access rules in front of Networking: service type
    ``network``, paths below ``/networking``."""
    from tests.api.test_access_rules_enforced import _denied, _restricted_token

    rules = [{"service": "network", "method": "GET", "path": "/v2.0/networks"}]
    token, _user, _project = _restricted_token(api, rules)
    assert as_token(api, token, "GET", f"{N}/networks").status_code == 200
    _denied(as_token(api, token, "POST", f"{N}/networks", json={"network": {"name": "no"}}))
    _denied(as_token(api, token, "GET", f"{N}/ports"))


def test_a_policy_file_for_networking_changes_only_networking(fresh_api: Api) -> None:
    """``<policy_dir>/network.yaml`` is Networking's own: read on the next request,
    and Identity's rules of the same names are untouched."""
    api = fresh_api
    path = api.cloud.service("network").policy_path
    assert path.name == "network.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('"get_network": "role:admin"\n"default": "!"\n')
    assert ok(api.get(f"{N}/networks", "demo"))["networks"] == []
    assert ok(api.get(f"{N}/networks"))["networks"]
    assert api.get("/identity/v3/auth/tokens", "demo",
                   headers={"X-Subject-Token": api.token("demo")}).status_code == 200
    path.unlink()
    assert ok(api.get(f"{N}/networks", "demo"))["networks"]
