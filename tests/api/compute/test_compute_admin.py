"""Compute's operator resources: host aggregates and the availability zones
they make, and Nova's older resources still served at old microversions
(os-hosts, os-networks, os-tenant-networks, the usage audit log,
/extensions, quota classes)."""

from __future__ import annotations

from typing import Any

from tests.api.compute.support import (
    Env,
    S,
    V,
    boot,
    nova_error,
    version,
    wait,
    wait_gone,
)

C = "/compute/v2.1"
AG = f"{C}/os-aggregates"


def _action(env: Env, aggregate_id: int, body: dict[str, Any]) -> Any:
    return env.api.post(f"{AG}/{aggregate_id}/action", headers=V, json=body)


def test_aggregate_zone_places_servers(env: Env) -> None:
    host = env.compute.this_host
    r = env.api.post(AG, headers=V, json={"aggregate": {"name": "rack1",
                                                        "availability_zone": "az1"}})
    assert r.status_code == 200, r.text
    agg = r.json()["aggregate"]
    assert agg["availability_zone"] == "az1" and "hosts" not in agg and agg["uuid"]
    assert nova_error(env.api.post(AG, headers=V, json={"aggregate": {"name": "rack1"}}),
                      409) == "Aggregate rack1 already exists."
    assert nova_error(env.api.get(AG, who="demo", headers=V), 403) == \
        "Policy doesn't allow os_compute_api:os-aggregates:index to be performed."
    try:
        r = _action(env, agg["id"], {"add_host": {"host": host}})
        assert r.status_code == 200 and r.json()["aggregate"]["hosts"] == [host]
        assert nova_error(_action(env, agg["id"], {"add_host": {"host": "nowhere"}}), 404) \
            == "Compute host nowhere could not be found."
        r = _action(env, agg["id"], {"set_metadata": {"metadata": {"ssd": "true"}}})
        assert r.json()["aggregate"]["metadata"] == {"availability_zone": "az1", "ssd": "true"}
        zones = env.api.get(f"{C}/os-availability-zone", who="demo", headers=V).json()
        assert [z["zoneName"] for z in zones["availabilityZoneInfo"]] == ["az1"]
        created = boot(env, name="in-az1", availability_zone="az1")
        server = wait(env, created["id"], "ACTIVE")
        assert server["OS-EXT-AZ:availability_zone"] == "az1"
        r = env.api.post(S, headers=V, json={"server": {
            "name": "x", "imageRef": env.image_id, "flavorRef": "42", "networks": "none",
            "availability_zone": "elsewhere"}})
        assert nova_error(r, 400) == "The requested availability zone is not available"
        env.api.delete(f"{S}/{created['id']}", headers=V)
        wait_gone(env, created["id"])
        listed = env.api.get(AG, headers=V).json()["aggregates"]
        assert [a["name"] for a in listed] == ["rack1"]
        r = env.api.put(f"{AG}/{agg['id']}", headers=V, json={"aggregate": {"name": "rack-1"}})
        assert r.json()["aggregate"]["name"] == "rack-1"
        assert nova_error(env.api.delete(f"{AG}/{agg['id']}", headers=V), 400).endswith(
            "Host aggregate is not empty.")
        r = _action(env, agg["id"], {"remove_host": {"host": host}})
        assert r.status_code == 200 and r.json()["aggregate"]["hosts"] == []
    finally:
        _action(env, agg["id"], {"remove_host": {"host": host}})
        assert env.api.delete(f"{AG}/{agg['id']}", headers=V).status_code == 200
    zones = env.api.get(f"{C}/os-availability-zone", who="demo", headers=V).json()
    assert [z["zoneName"] for z in zones["availabilityZoneInfo"]] == ["nova"]
    assert nova_error(env.api.get(f"{AG}/{agg['id']}", headers=V), 404) == \
        f"Aggregate {agg['id']} could not be found."


def test_os_hosts_until_2_42(env: Env) -> None:
    host = env.compute.this_host
    old = version("2.42")
    hosts = env.api.get(f"{C}/os-hosts", headers=old).json()["hosts"]
    assert {"host_name": host, "service": "compute", "zone": "nova"} in hosts
    assert env.api.get(f"{C}/os-hosts", headers=version("2.43")).status_code == 404
    shown = env.api.get(f"{C}/os-hosts/{host}", headers=old).json()["host"]
    assert [r["resource"]["project"] for r in shown[:3]] == ["(total)", "(used_now)",
                                                             "(used_max)"]
    assert nova_error(env.api.get(f"{C}/os-hosts/nowhere", headers=old), 404) == \
        "Compute host nowhere could not be found."
    r = env.api.put(f"{C}/os-hosts/{host}", headers=old, json={"status": "disable"})
    assert r.json() == {"host": host, "status": "disabled"}
    r = env.api.put(f"{C}/os-hosts/{host}", headers=old, json={"status": "Enable"})
    assert r.json() == {"host": host, "status": "enabled"}
    assert env.api.get(f"{C}/os-hosts/{host}/reboot", headers=old).status_code == 501
    assert nova_error(env.api.get(f"{C}/os-hosts", who="demo", headers=old), 403) == \
        "Policy doesn't allow os_compute_api:os-hosts:list to be performed."


def test_networks_until_2_35(env: Env) -> None:
    old = version("2.35")
    nets = env.api.get(f"{C}/os-networks", headers=old).json()["networks"]
    mine = [n for n in nets if n["id"] == env.network_id]
    assert mine and mine[0]["label"] == "admin-net" and "cidr" in mine[0]
    assert env.api.get(f"{C}/os-networks", headers=version("2.36")).status_code == 404
    shown = env.api.get(f"{C}/os-tenant-networks/{env.demo_network_id}", who="demo",
                        headers=old).json()
    assert shown["network"] == {"id": env.demo_network_id, "cidr": "None", "label": "private"}
    assert env.api.post(f"{C}/os-networks", headers=old, json={}).status_code == 410


def test_audit_log_extensions_and_quota_classes(env: Env) -> None:
    log = env.api.get(f"{C}/os-instance_usage_audit_log", headers=V).json()
    assert log["instance_usage_audit_logs"]["num_hosts"] >= 1
    r = env.api.get(f"{C}/os-instance_usage_audit_log/2020-01-15 10:00:00", headers=V)
    assert r.json()["instance_usage_audit_log"]["period_beginning"] == "2019-12-01 00:00:00"
    assert env.api.get(f"{C}/os-instance_usage_audit_log/junk", headers=V).status_code == 400
    extensions = env.api.get(f"{C}/extensions", who="demo", headers=V).json()["extensions"]
    assert any(e["alias"] == "os-aggregates" for e in extensions)
    assert env.api.get(f"{C}/extensions/os-nothing", headers=V).status_code == 404
    r = env.api.get(f"{C}/os-quota-class-sets/default", headers=V).json()
    assert r["quota_class_set"]["id"] == "default" and r["quota_class_set"]["instances"] == 10
    assert "injected_files" in env.api.get(f"{C}/os-quota-class-sets/default",
                                           headers=version("2.56")).json()["quota_class_set"]
    try:
        r = env.api.put(f"{C}/os-quota-class-sets/default", headers=V,
                        json={"quota_class_set": {"instances": 12}})
        assert r.status_code == 200 and r.json()["quota_class_set"]["instances"] == 12
        project = env.api.get(f"{C}/limits", who="demo", headers=V).json()
        assert project["limits"]["absolute"]["maxTotalInstances"] == 12
        assert nova_error(env.api.put(f"{C}/os-quota-class-sets/default", headers=V,
                                      json={"quota_class_set": {"force": True}}), 400)
    finally:
        env.api.put(f"{C}/os-quota-class-sets/default", headers=V,
                    json={"quota_class_set": {"instances": 10}})
