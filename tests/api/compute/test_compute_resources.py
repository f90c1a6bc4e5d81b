"""Compute's resources besides servers: flavors, key pairs, quotas and limits,
zones, server groups, hypervisors, services, usage; and a server's metadata,
tags, instance actions, interfaces, password, metadata service, consoles."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.api.compute.support import (
    Env,
    S,
    V,
    boot,
    create_network,
    eventually,
    nova_error,
    port_exists,
    ports_of,
    show,
    version,
    wait,
    wait_gone,
)

C = "/compute/v2.1"


def project_of(env: Env, who: str) -> str:
    token = env.api.token(who)
    r = env.api.client.get("/identity/v3/auth/tokens",
                           headers={"X-Auth-Token": token, "X-Subject-Token": token})
    return str(r.json()["token"]["project"]["id"])


# --- discovery ---------------------------------------------------------------------


def test_version_documents_and_negotiation(env: Env) -> None:
    r = env.api.client.get("/compute/")
    assert r.status_code == 200
    v20, v21 = r.json()["versions"]
    assert v20["id"] == "v2.0" and v20["version"] == ""
    assert v21["id"] == "v2.1" and v21["min_version"] == "2.1" and v21["version"] == "2.96"
    r = env.api.client.get("/compute/v2.1/")
    assert r.json()["version"]["links"][0]["href"] == "http://127.0.0.1:8800/compute/v2.1/"
    r = env.api.get(f"{C}/flavors", headers={"X-OpenStack-Nova-API-Version": "2.55"})
    assert r.headers["OpenStack-API-Version"] == "compute 2.55"
    assert r.headers["X-OpenStack-Nova-API-Version"] == "2.55"
    assert "OpenStack-API-Version" in r.headers["Vary"]
    r = env.api.get(f"{C}/flavors", headers=version("latest"))
    assert r.headers["OpenStack-API-Version"] == "compute 2.96"
    assert nova_error(env.api.get(f"{C}/flavors", headers=version("2.97")), 406) == \
        "Version 2.97 is not supported by the API. Minimum is 2.1 and maximum is 2.96."
    assert nova_error(env.api.get(f"{C}/flavors", headers=version("two")), 400) == \
        "API Version String two is of invalid format. Must be of format MajorNum.MinorNum."
    project = project_of(env, "admin")
    assert env.api.get(f"{C}/{project}/flavors", headers=V).status_code == 200
    other = "0" * 32
    assert nova_error(env.api.get(f"{C}/{other}/flavors", headers=V), 400) == \
        f"Malformed request URL: URL's project_id '{other}' doesn't match Context's " \
        f"project_id '{project}'"


# --- flavors -------------------------------------------------------------------------


def test_devstack_flavors_and_private_flavor_access(env: Env) -> None:
    r = env.api.get(f"{C}/flavors/detail", headers=V)
    names = {f["name"]: f for f in r.json()["flavors"]}
    assert names["m1.nano"]["ram"] == 128 and names["m1.nano"]["id"] == "42"
    assert names["m1.tiny"]["vcpus"] == 1 and names["m1.xlarge"]["disk"] == 160
    body = {"flavor": {"name": "secret", "ram": 64, "vcpus": 1, "disk": 1, "id": "s1",
                       "os-flavor-access:is_public": False, "description": "hidden"}}
    r = env.api.post(f"{C}/flavors", json=body, headers=V)
    assert r.status_code == 200 and r.json()["flavor"]["description"] == "hidden"
    assert nova_error(env.api.get(f"{C}/flavors/s1", who="demo", headers=V), 404) == \
        "Flavor s1 could not be found."
    demo_project = project_of(env, "demo")
    r = env.api.post(f"{C}/flavors/s1/action", headers=V,
                     json={"addTenantAccess": {"tenant": demo_project}})
    assert r.json() == {"flavor_access": [{"flavor_id": "s1", "tenant_id": demo_project}]}
    assert env.api.get(f"{C}/flavors/s1", who="demo", headers=V).status_code == 200
    assert nova_error(env.api.post(f"{C}/flavors", json=body, headers=V), 409) == \
        "Flavor with name secret already exists."
    assert nova_error(env.api.post(f"{C}/flavors", json=body, who="demo", headers=V), 403) == \
        "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed."
    r = env.api.post(f"{C}/flavors/s1/os-extra_specs", headers=V,
                     json={"extra_specs": {"hw:cpu_policy": "shared"}})
    assert r.json() == {"extra_specs": {"hw:cpu_policy": "shared"}}
    assert env.api.get(f"{C}/flavors/s1", headers=V).json()["flavor"]["extra_specs"] == \
        {"hw:cpu_policy": "shared"}
    assert nova_error(env.api.get(f"{C}/flavors/s1/os-extra_specs/nope", headers=V), 404) == \
        "Flavor s1 has no extra specs with key nope."
    assert env.api.delete(f"{C}/flavors/s1", headers=V).status_code == 202
    r = env.api.get(f"{C}/flavors?limit=2&sort_key=memory_mb&sort_dir=desc", headers=V)
    page = r.json()
    assert [f["name"] for f in page["flavors"]] == ["m1.xlarge", "m1.large"]
    assert "marker=4" in page["flavors_links"][0]["href"]


# --- key pairs -------------------------------------------------------------------------


def test_keypairs_import_generate_and_per_user(env: Env) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    r = env.api.post(f"{C}/os-keypairs", who="demo", headers=V,
                     json={"keypair": {"name": "mine", "public_key": public}})
    assert r.status_code == 201, r.text
    kp = r.json()["keypair"]
    assert kp["type"] == "ssh" and kp["fingerprint"].count(":") == 15 and "private_key" not in kp
    r = env.api.post(f"{C}/os-keypairs", who="demo", headers=version("2.91"),
                     json={"keypair": {"name": "generated"}})
    assert r.status_code == 201 and r.json()["keypair"]["private_key"].startswith("-----BEGIN")
    msg = nova_error(env.api.post(f"{C}/os-keypairs", who="demo", headers=V,
                                  json={"keypair": {"name": "generated2"}}), 400)
    assert msg == "Invalid input for field/attribute keypair. Value: {'name': 'generated2'}. " \
                  "'public_key' is a required property"
    assert nova_error(env.api.post(f"{C}/os-keypairs", who="demo", headers=V, json={
        "keypair": {"name": "mine", "public_key": public}}), 409) == \
        "Key pair 'mine' already exists."
    assert nova_error(env.api.post(f"{C}/os-keypairs", who="demo", headers=V, json={
        "keypair": {"name": "bad", "public_key": "ssh-rsa nope"}}), 400) == \
        "Keypair data is invalid: failed to generate fingerprint"
    names = [k["keypair"]["name"] for k in
             env.api.get(f"{C}/os-keypairs", who="demo", headers=V).json()["keypairs"]]
    assert names == ["generated", "mine"]
    assert "mine" not in [k["keypair"]["name"] for k in
                          env.api.get(f"{C}/os-keypairs", headers=V).json()["keypairs"]]
    shown = env.api.get(f"{C}/os-keypairs/mine", who="demo", headers=V).json()["keypair"]
    assert shown["public_key"] == public and shown["deleted"] is False
    assert env.api.delete(f"{C}/os-keypairs/mine", who="demo", headers=V).status_code == 204
    user = shown["user_id"]
    assert nova_error(env.api.get(f"{C}/os-keypairs/mine", who="demo", headers=V), 404) == \
        f"Keypair mine not found for user {user}"
    env.api.delete(f"{C}/os-keypairs/generated", who="demo", headers=V)


# --- quotas and limits -------------------------------------------------------------------


def test_quota_sets_and_limits(env: Env) -> None:
    project = project_of(env, "demo")
    r = env.api.get(f"{C}/os-quota-sets/{project}", headers=V)
    assert r.json()["quota_set"] == {"id": project, "instances": 10, "cores": 20, "ram": 51200,
                                     "metadata_items": 128, "key_pairs": 100,
                                     "server_groups": 10, "server_group_members": 10}
    old = env.api.get(f"{C}/os-quota-sets/{project}", headers=version("2.35")).json()
    assert old["quota_set"]["floating_ips"] == 10 and old["quota_set"]["injected_files"] == 5
    r = env.api.put(f"{C}/os-quota-sets/{project}", headers=V,
                    json={"quota_set": {"instances": 7}})
    assert r.status_code == 200 and r.json()["quota_set"]["instances"] == 7
    assert "id" not in r.json()["quota_set"]
    limits = env.api.get(f"{C}/limits", who="demo", headers=V).json()["limits"]
    assert limits["rate"] == [] and limits["absolute"]["maxTotalInstances"] == 7
    assert "maxTotalFloatingIps" not in limits["absolute"]
    assert "maxPersonality" in env.api.get(f"{C}/limits", who="demo",
                                           headers=version("2.1")).json()["limits"]["absolute"]
    msg = nova_error(env.api.put(f"{C}/os-quota-sets/{project}", who="demo", headers=V,
                                 json={"quota_set": {"instances": 70}}), 403)
    assert msg == "Policy doesn't allow os_compute_api:os-quota-sets:update to be performed."
    detail = env.api.get(f"{C}/os-quota-sets/{project}/detail", headers=V).json()["quota_set"]
    assert detail["instances"] == {"in_use": detail["instances"]["in_use"], "limit": 7,
                                   "reserved": 0}
    assert env.api.delete(f"{C}/os-quota-sets/{project}", headers=V).status_code == 202
    assert env.api.get(f"{C}/os-quota-sets/{project}", headers=V).json()[
        "quota_set"]["instances"] == 10
    assert nova_error(env.api.get(f"{C}/os-quota-sets/nosuchproject", headers=V), 400) == \
        "Project ID nosuchproject is not a valid project."


def test_boot_over_quota_is_refused_and_leaves_nothing(env: Env) -> None:
    project = project_of(env, "demo")
    env.api.put(f"{C}/os-quota-sets/{project}", headers=V, json={"quota_set": {"instances": 0}})
    try:
        r = env.api.post(S, who="demo", headers=V, json={"server": {
            "name": "over", "imageRef": env.image_id, "flavorRef": "42", "networks": "none"}})
        assert nova_error(r, 403).startswith(
            "Quota exceeded for instances: Requested 1, but already used ")
        names = [s["name"] for s in env.api.get(S, who="demo", headers=V).json()["servers"]]
        assert "over" not in names
    finally:
        env.api.delete(f"{C}/os-quota-sets/{project}", headers=V)


# --- zones, hypervisors, services ------------------------------------------------------


def test_zones_hypervisors_and_services(env: Env) -> None:
    zones = env.api.get(f"{C}/os-availability-zone", who="demo", headers=V).json()
    assert zones["availabilityZoneInfo"] == [{"zoneName": "nova",
                                              "zoneState": {"available": True}, "hosts": None}]
    detail = env.api.get(f"{C}/os-availability-zone/detail", headers=V).json()
    host = env.compute.this_host
    nova = [z for z in detail["availabilityZoneInfo"] if z["zoneName"] == "nova"][0]
    assert nova["hosts"][host]["nova-compute"]["available"] is True
    hypervisors = env.api.get(f"{C}/os-hypervisors/detail", headers=V).json()["hypervisors"]
    (hyp,) = hypervisors
    assert hyp["hypervisor_hostname"] == host and hyp["state"] == "up"
    assert hyp["hypervisor_type"] == "QEMU" and hyp["service"]["host"] == host
    assert "vcpus" not in hyp
    old = env.api.get(f"{C}/os-hypervisors/detail", headers=version("2.87")).json()
    assert old["hypervisors"][0]["vcpus"] == 64
    shown = env.api.get(f"{C}/os-hypervisors/{hyp['id']}?with_servers=true", headers=V)
    assert shown.json()["hypervisor"]["id"] == hyp["id"]
    assert nova_error(env.api.get(f"{C}/os-hypervisors", who="demo", headers=V), 403) == \
        "Policy doesn't allow os_compute_api:os-hypervisors:list to be performed."
    services = env.api.get(f"{C}/os-services?binary=nova-compute", headers=V).json()["services"]
    (svc,) = services
    assert svc["host"] == host and svc["state"] == "up" and svc["status"] == "enabled"
    assert svc["zone"] == "nova" and svc["forced_down"] is False
    r = env.api.put(f"{C}/os-services/{svc['id']}", headers=V,
                    json={"status": "disabled", "disabled_reason": "maintenance"})
    assert r.json()["service"]["status"] == "disabled"
    assert r.json()["service"]["disabled_reason"] == "maintenance"
    try:
        r = env.api.post(S, headers=V, json={"server": {
            "name": "nowhere", "imageRef": env.image_id, "flavorRef": "42",
            "networks": "none"}})
        sid = r.json()["server"]["id"]
        failed = wait(env, sid, "ERROR")
        assert failed["fault"]["message"].startswith("No valid host was found.")
        assert failed["fault"]["code"] == 500
        env.api.delete(f"{S}/{sid}", headers=V)
        wait_gone(env, sid)
    finally:
        env.api.put(f"{C}/os-services/{svc['id']}", headers=V, json={"status": "enabled"})


def test_simple_tenant_usage(env: Env, server: dict[str, Any]) -> None:
    project = project_of(env, "admin")
    r = env.api.get(f"{C}/os-simple-tenant-usage/{project}?start=2000-01-01T00:00:00",
                    headers=V)
    usage = r.json()["tenant_usage"]
    assert usage["tenant_id"] == project
    ids = [u["instance_id"] for u in usage["server_usages"]]
    assert server["id"] in ids
    mine = [u for u in usage["server_usages"] if u["instance_id"] == server["id"]][0]
    assert mine["flavor"] == "m1.nano" and mine["vcpus"] == 1 and mine["state"] == "active"
    listing = env.api.get(f"{C}/os-simple-tenant-usage?detailed=1", headers=V).json()
    assert any(u["tenant_id"] == project for u in listing["tenant_usages"])


# --- server groups -----------------------------------------------------------------------


def test_server_groups_and_anti_affinity(env: Env) -> None:
    r = env.api.post(f"{C}/os-server-groups", headers=V,
                     json={"server_group": {"name": "spread", "policy": "anti-affinity"}})
    group = r.json()["server_group"]
    assert group["policy"] == "anti-affinity" and group["rules"] == {} and group["members"] == []
    old = env.api.get(f"{C}/os-server-groups/{group['id']}", headers=version("2.63")).json()
    assert old["server_group"]["policies"] == ["anti-affinity"]
    hints = {"group": group["id"]}
    r = env.api.post(S, headers=V, json={"server": {"name": "g1", "imageRef": env.image_id,
                                                    "flavorRef": "42", "networks": "none"},
                                         "os:scheduler_hints": hints})
    one = r.json()["server"]["id"]
    wait(env, one, "ACTIVE")
    r = env.api.post(S, headers=V, json={"server": {"name": "g2", "imageRef": env.image_id,
                                                    "flavorRef": "42", "networks": "none"},
                                         "os:scheduler_hints": hints})
    two = r.json()["server"]["id"]
    failed = wait(env, two, "ERROR")
    assert "ServerGroupAntiAffinityFilter" in failed["fault"]["message"]
    members = env.api.get(f"{C}/os-server-groups/{group['id']}", headers=V).json()
    assert sorted(members["server_group"]["members"]) == sorted([one, two])
    assert show(env, one)["server_groups"] == [group["id"]]
    for sid in (one, two):
        env.api.delete(f"{S}/{sid}", headers=V)
        wait_gone(env, sid)
    msg = nova_error(env.api.post(f"{C}/os-server-groups", headers=V, json={"server_group": {
        "name": "x", "policy": "affinity", "rules": {"max_server_per_host": 2}}}), 400)
    assert msg == "Only anti-affinity policy supports rules."
    assert env.api.delete(f"{C}/os-server-groups/{group['id']}", headers=V).status_code == 204


# --- a server's data -----------------------------------------------------------------------


def test_server_metadata_tags_and_actions(env: Env, server: dict[str, Any]) -> None:
    sid = server["id"]
    base = f"{S}/{sid}"
    r = env.api.post(f"{base}/metadata", headers=V, json={"metadata": {"a": "1", "b": "2"}})
    assert r.json() == {"metadata": {"a": "1", "b": "2"}}
    r = env.api.put(f"{base}/metadata/a", headers=V, json={"meta": {"a": "9"}})
    assert r.json() == {"meta": {"a": "9"}}
    assert env.api.get(f"{base}/metadata/a", headers=V).json() == {"meta": {"a": "9"}}
    assert nova_error(env.api.put(f"{base}/metadata/a", headers=V,
                                  json={"meta": {"b": "9"}}), 400) == \
        "Request body and URI mismatch"
    assert env.api.delete(f"{base}/metadata/b", headers=V).status_code == 204
    assert nova_error(env.api.get(f"{base}/metadata/b", headers=V), 404) == \
        "Metadata item was not found"
    r = env.api.put(f"{base}/metadata", headers=V, json={"metadata": {"z": "0"}})
    assert r.json() == {"metadata": {"z": "0"}}
    r = env.api.put(f"{base}/tags/blue", headers=V)
    assert r.status_code == 201 and r.headers["Location"].endswith(f"/servers/{sid}/tags/blue")
    assert env.api.put(f"{base}/tags/blue", headers=V).status_code == 204
    assert env.api.get(f"{base}/tags", headers=V).json() == {"tags": ["blue"]}
    assert env.api.get(f"{base}/tags/blue", headers=V).status_code == 204
    assert env.api.put(f"{base}/tags", headers=V, json={"tags": ["x", "y"]}).json() == \
        {"tags": ["x", "y"]}
    found = env.api.get(f"{S}?tags=x,y", headers=V).json()["servers"]
    assert [s["id"] for s in found] == [sid]
    assert sid not in [s["id"] for s in env.api.get(f"{S}?not-tags=x", headers=V).json()["servers"]]
    assert nova_error(env.api.get(f"{base}/tags", headers=version("2.25")), 404) == \
        "API version 2.25 is not supported on this method."
    assert env.api.delete(f"{base}/tags", headers=V).status_code == 204
    actions = env.api.get(f"{base}/os-instance-actions", headers=V).json()["instanceActions"]
    assert actions[-1]["action"] == "create" and actions[-1]["instance_uuid"] == sid
    request_id = actions[-1]["request_id"]
    detail = env.api.get(f"{base}/os-instance-actions/{request_id}", headers=V).json()
    events = detail["instanceAction"]["events"]
    assert [e["event"] for e in events] == ["conductor_schedule_and_build_instances",
                                            "compute__do_build_and_run_instance"]
    assert all(e["result"] == "Success" for e in events) and "traceback" in events[0]
    assert events[0]["hostId"]


def test_interfaces_attach_and_detach(env: Env, server: dict[str, Any]) -> None:
    sid = server["id"]
    base = f"{S}/{sid}/os-interface"
    (first,) = env.api.get(base, headers=V).json()["interfaceAttachments"]
    (port,) = ports_of(env, sid)
    assert first["net_id"] == env.network_id and first["port_id"] == port["id"]
    assert first["port_state"] == port["status"]  # what Networking says (its data plane's)
    other = create_network(env.api, "second", "10.2.0.0/24")
    r = env.api.post(base, headers=V, json={"interfaceAttachment": {
        "net_id": other["id"], "fixed_ips": [{"ip_address": "10.2.0.50"}], "tag": "mgmt"}})
    assert r.status_code == 200, r.text
    attached = r.json()["interfaceAttachment"]
    assert attached["fixed_ips"][0]["ip_address"] == "10.2.0.50" and attached["tag"] == "mgmt"
    assert attached["port_id"] in env.driver.instances[sid].vifs
    addresses = show(env, sid)["addresses"]
    assert addresses["second"][0]["addr"] == "10.2.0.50"
    assert env.api.delete(f"{base}/{attached['port_id']}", headers=V).status_code == 202
    eventually(lambda: not port_exists(env, attached["port_id"]))
    assert attached["port_id"] not in env.driver.instances[sid].vifs
    assert "second" not in show(env, sid)["addresses"]


def test_metadata_service_signed_headers_and_password(env: Env) -> None:
    user_data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    created = boot(env, user_data=user_data, metadata={"k": "v"})
    server = wait(env, created["id"], "ACTIVE")
    from onestack.compute import interface

    project = project_of(env, "admin")
    headers = {"X-Instance-ID": server["id"], "X-Tenant-ID": project,
               "X-Instance-ID-Signature": interface.sign_instance_id(env.api.cloud,
                                                                     server["id"])}
    meta = env.api.client.get("/compute/metadata/openstack/latest/meta_data.json",
                              headers=headers)
    assert meta.status_code == 200, meta.text
    doc = json.loads(meta.content)
    assert doc["uuid"] == server["id"] and doc["meta"] == {"k": "v"}
    assert doc["hostname"] == "vm.novalocal" and doc["project_id"] == project
    r = env.api.client.get("/compute/metadata/openstack/latest/user_data", headers=headers)
    assert r.content == b"#!/bin/sh\necho hi\n"
    r = env.api.client.get("/compute/metadata/latest/meta-data/local-ipv4", headers=headers)
    assert r.text.startswith("10.10.0.")
    r = env.api.client.get("/compute/metadata/latest/meta-data/instance-id", headers=headers)
    assert r.text.startswith("i-")
    network = env.api.client.get("/compute/metadata/openstack/latest/network_data.json",
                                 headers=headers).json()
    (port,) = ports_of(env, server["id"])
    assert network["links"][0]["vif_id"] == port["id"]
    assert network["links"][0]["ethernet_mac_address"] == port["mac_address"]
    bad = dict(headers, **{"X-Instance-ID-Signature": "0" * 64})
    r = env.api.client.get("/compute/metadata/openstack/latest/meta_data.json", headers=bad)
    assert r.status_code == 403 and "Invalid proxy request signature." in r.text
    r = env.api.client.get("/compute/metadata/openstack/latest/meta_data.json",
                           headers={"X-Instance-ID": server["id"]})
    assert r.status_code == 400 and "X-Instance-ID-Signature header is missing" in r.text
    assert env.api.client.post("/compute/metadata/openstack/2013-04-04/password",
                               content=b"c2VjcmV0", headers=headers).status_code == 200
    assert env.api.client.post("/compute/metadata/openstack/2013-04-04/password",
                               content=b"again", headers=headers).status_code == 409
    pw = env.api.get(f"{S}/{server['id']}/os-server-password", headers=V).json()
    assert pw == {"password": "c2VjcmV0"}
    assert env.api.delete(f"{S}/{server['id']}/os-server-password", headers=V).status_code == 204
    assert env.api.get(f"{S}/{server['id']}/os-server-password", headers=V).json() == \
        {"password": ""}
    env.api.delete(f"{S}/{server['id']}", headers=V)


def test_serial_console_through_the_proxy(env: Env, server: dict[str, Any]) -> None:
    r = env.api.post(f"{S}/{server['id']}/remote-consoles", headers=V,
                     json={"remote_console": {"protocol": "serial", "type": "serial"}})
    assert r.status_code == 200, r.text
    url = r.json()["remote_console"]["url"]
    assert url.startswith("ws://127.0.0.1:8800/compute/console/serial?token=")
    path = url.split("127.0.0.1:8800", 1)[1]
    with env.api.client.websocket_connect(path, subprotocols=["binary"]) as ws:
        banner = b""
        while b"login:" not in banner:
            banner += ws.receive_bytes()
        assert b"Welcome to the onestack test guest" in banner
        ws.send_bytes(b"root\r\n")
        assert ws.receive_bytes() == b"root\r\n"
    r = env.api.post(f"{S}/{server['id']}/remote-consoles", headers=V,
                     json={"remote_console": {"protocol": "vnc", "type": "novnc"}})
    assert "/compute/novnc/vnc_lite.html?path=compute%2Fconsole%2Fvnc%3Ftoken%3D" in \
        r.json()["remote_console"]["url"]
    assert nova_error(env.api.post(f"{S}/{server['id']}/remote-consoles", headers=V, json={
        "remote_console": {"protocol": "spice", "type": "spice-html5"}}), 400) == \
        "Unavailable console type spice-html5."
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect):
        with env.api.client.websocket_connect("/compute/console/serial?token=forged") as ws:
            ws.receive_bytes()
