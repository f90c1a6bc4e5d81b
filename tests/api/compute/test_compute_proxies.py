"""Nova's proxy APIs of before 2.36 (security groups and their rules,
floating IPs and pools, images and their metadata) over the cloud's
Networking and Image services, and the floating IP actions."""

from __future__ import annotations

from tests.api.compute.support import (
    Env,
    S,
    V,
    action,
    boot,
    eventually,
    nova_error,
    show,
    version,
    wait,
)

C = "/compute/v2.1"
OLD = version("2.35")
SG = f"{C}/os-security-groups"
FIP = f"{C}/os-floating-ips"


def test_security_groups_and_rules(env: Env) -> None:
    api = env.api
    r = api.post(SG, who="demo", headers=OLD,
                 json={"security_group": {"name": "web", "description": "web servers"}})
    assert r.status_code == 200, r.text
    group = r.json()["security_group"]
    assert group["name"] == "web" and group["rules"] == [] and group["tenant_id"]
    listed = api.get(SG, who="demo", headers=OLD).json()["security_groups"]
    assert {"default", "web"} <= {g["name"] for g in listed}
    r = api.post(f"{C}/os-security-group-rules", who="demo", headers=OLD, json={
        "security_group_rule": {"parent_group_id": group["id"], "ip_protocol": "tcp",
                                "from_port": 22, "to_port": 22, "cidr": "10.0.0.0/8"}})
    assert r.status_code == 200, r.text
    rule = r.json()["security_group_rule"]
    assert rule == {"id": rule["id"], "parent_group_id": group["id"], "ip_protocol": "tcp",
                    "from_port": 22, "to_port": 22, "group": {},
                    "ip_range": {"cidr": "10.0.0.0/8"}}
    r = api.post(f"{C}/os-security-group-rules", who="demo", headers=OLD, json={
        "security_group_rule": {"parent_group_id": group["id"], "ip_protocol": "icmp",
                                "from_port": -1, "to_port": -1, "group_id": group["id"]}})
    assert r.json()["security_group_rule"]["group"] == {"name": "web",
                                                        "tenant_id": group["tenant_id"]}
    shown = api.get(f"{SG}/{group['id']}", who="demo", headers=OLD).json()["security_group"]
    assert len(shown["rules"]) == 2  # egress rules are not Nova's to show
    bad = {"parent_group_id": group["id"], "ip_protocol": "tcp", "from_port": 30,
           "to_port": 20, "cidr": "10.0.0.0/8"}
    assert nova_error(api.post(f"{C}/os-security-group-rules", who="demo", headers=OLD,
                               json={"security_group_rule": bad}), 400) == \
        "Invalid port range 30:20. Former value cannot be greater than the later"
    bad = {**bad, "ip_protocol": "gre", "from_port": 1}
    assert nova_error(api.post(f"{C}/os-security-group-rules", who="demo", headers=OLD,
                               json={"security_group_rule": bad}), 400) == \
        "Invalid IP protocol gre."
    dup = {"parent_group_id": group["id"], "ip_protocol": "tcp", "from_port": 22,
           "to_port": 22, "cidr": "10.0.0.0/8"}
    assert api.post(f"{C}/os-security-group-rules", who="demo", headers=OLD,
                    json={"security_group_rule": dup}).status_code == 400
    assert api.delete(f"{C}/os-security-group-rules/{rule['id']}", who="demo",
                      headers=OLD).status_code == 202
    r = api.put(f"{SG}/{group['id']}", who="demo", headers=OLD,
                json={"security_group": {"name": "web2", "description": "d"}})
    assert r.json()["security_group"]["name"] == "web2"
    default = [g for g in listed if g["name"] == "default"][0]
    assert api.delete(f"{SG}/{default['id']}", who="demo", headers=OLD).status_code == 400
    assert api.delete(f"{SG}/{group['id']}", who="demo", headers=OLD).status_code == 202
    assert nova_error(api.get(f"{SG}/{group['id']}", who="demo", headers=OLD), 404) == \
        f"Security group {group['id']} not found."
    assert api.get(SG, who="demo", headers=version("2.36")).status_code == 404
    assert nova_error(api.post(SG, who="demo", headers=OLD, json={
        "security_group": {"name": " ", "description": "x"}}), 400).startswith(
        "Invalid input received: name has a minimum character requirement")


def test_a_security_group_name_keeps_its_spaces(env: Env) -> None:
    """Nova checks the stripped name's length but stores the name as given."""
    api = env.api
    r = api.post(SG, who="demo", headers=OLD,
                 json={"security_group": {"name": " two words ", "description": " d "}})
    assert r.status_code == 200, r.text
    group = r.json()["security_group"]
    assert (group["name"], group["description"]) == (" two words ", " d ")
    assert api.get(f"{SG}/{group['id']}", who="demo", headers=OLD).json()["security_group"] \
        == group
    assert nova_error(api.post(SG, who="demo", headers=OLD, json={
        "security_group": {"name": " " + "x" * 256 + " ", "description": "d"}}), 400) == \
        "Invalid input received: name has more than 255 characters."
    assert api.delete(f"{SG}/{group['id']}", who="demo", headers=OLD).status_code == 202


def test_a_method_a_path_does_not_serve_is_not_found(env: Env) -> None:
    """Nova routes on path and method together: no route, 404 (Tempest deletes
    ``/images/`` and ``/os-security-groups/`` to check a blank id)."""
    api = env.api
    for path in ("/images", "/os-security-groups", "/servers", "/os-keypairs"):
        assert nova_error(api.delete(C + path, who="demo", headers=OLD), 404) == \
            "The resource could not be found.", path
    assert nova_error(api.put(f"{C}/os-keypairs", who="demo"), 404) == \
        "The resource could not be found."


def test_floating_ips_through_the_proxy(env: Env) -> None:
    api = env.api
    pools = api.get(f"{C}/os-floating-ip-pools", who="demo", headers=OLD).json()
    assert {"name": "public"} in pools["floating_ip_pools"]
    assert nova_error(api.post(FIP, who="demo", headers=OLD, json={"pool": "nowhere"}), 404) \
        == "Floating IP pool not found."
    r = api.post(FIP, who="demo", headers=OLD, json={"pool": "public"})
    assert r.status_code == 200, r.text
    fip = r.json()["floating_ip"]
    assert fip["pool"] == "public" and fip["instance_id"] is None and fip["fixed_ip"] is None
    assert api.get(f"{FIP}/{fip['id']}", who="demo", headers=OLD).json()["floating_ip"] == fip
    server = boot(env, who="demo", name="fip-vm")
    sid = server["id"]
    wait(env, sid, "ACTIVE", who="demo")
    r = action(env, sid, {"addFloatingIp": {"address": fip["ip"]}}, who="demo", headers=OLD)
    assert r.status_code == 202, r.text
    eventually(lambda: any(a["addr"] == fip["ip"] and a["OS-EXT-IPS:type"] == "floating"
                           for addrs in show(env, sid, who="demo")["addresses"].values()
                           for a in addrs))
    shown = api.get(f"{FIP}/{fip['id']}", who="demo", headers=OLD).json()["floating_ip"]
    assert shown["instance_id"] == sid and shown["fixed_ip"]
    assert nova_error(action(env, sid, {"addFloatingIp": {"address": "0.0.0.0"}},
                             who="demo", headers=OLD), 404) == "floating IP not found"
    r = action(env, sid, {"removeFloatingIp": {"address": fip["ip"]}}, who="demo", headers=OLD)
    assert r.status_code == 202
    assert nova_error(action(env, sid, {"removeFloatingIp": {"address": fip["ip"]}},
                             who="demo", headers=OLD), 409).startswith(
        f"Floating IP {fip['ip']} is not associated with instance")
    assert api.delete(f"{FIP}/{fip['id']}", who="demo", headers=OLD).status_code == 202
    assert nova_error(api.get(f"{FIP}/{fip['id']}", who="demo", headers=OLD), 404) == \
        f"Floating IP not found for ID {fip['id']}"
    assert action(env, sid, {"addFloatingIp": {"address": "1.2.3.4"}}, who="demo",
                  headers=version("2.44")).status_code == 404
    api.delete(f"{S}/{sid}", who="demo")


def test_a_floating_ip_associated_through_networking_shows_in_the_servers_addresses(env: Env) -> None:
    """As Neutron's network-changed event refreshes Nova's cache: openstacksdk's
    auto_ip (and `server add floating ip`) associate through the Networking API
    and wait for the server's addresses to show the floating IP."""
    api = env.api
    server = boot(env, who="demo", name="fip-neutron")
    sid = server["id"]
    wait(env, sid, "ACTIVE", who="demo")
    public = api.get("/networking/v2.0/networks?name=public", who="demo").json()["networks"][0]
    port = api.get(f"/networking/v2.0/ports?device_id={sid}", who="demo").json()["ports"][0]
    r = api.post("/networking/v2.0/floatingips", who="demo", json={"floatingip": {
        "floating_network_id": public["id"], "port_id": port["id"]}})
    assert r.status_code == 201, r.text
    fip = r.json()["floatingip"]
    fixed = port["fixed_ips"][0]["ip_address"]
    addresses = show(env, sid, who="demo")["addresses"]
    assert [(a["addr"], a["OS-EXT-IPS:type"]) for a in addresses["private"]] == [
        (fixed, "fixed"), (fip["floating_ip_address"], "floating")]
    # the list shows the cache the show brought up to date
    listed = api.get(f"{S}/detail?name=fip-neutron", who="demo", headers=V).json()["servers"]
    assert listed[0]["addresses"] == addresses
    r = api.put(f"/networking/v2.0/floatingips/{fip['id']}", who="demo",
                json={"floatingip": {"port_id": None}})
    assert r.status_code == 200, r.text
    assert [a["addr"] for a in show(env, sid, who="demo")["addresses"]["private"]] == [fixed]
    api.delete(f"/networking/v2.0/floatingips/{fip['id']}", who="demo")
    api.delete(f"{S}/{sid}", who="demo")


def test_images_and_their_metadata(env: Env) -> None:
    api = env.api
    images = api.get(f"{C}/images", headers=OLD).json()["images"]
    assert any(i["id"] == env.image_id and i["name"] == "cirros" for i in images)
    detail = api.get(f"{C}/images/detail?name=cirros", headers=OLD).json()["images"]
    mine = [i for i in detail if i["id"] == env.image_id][0]
    assert mine["status"] == "ACTIVE" and mine["progress"] == 100
    assert mine["OS-EXT-IMG-SIZE:size"] > 0 and mine["minRam"] == 0
    assert api.get(f"{C}/images?limit=1", headers=OLD).json()["images"].__len__() == 1
    url = f"{C}/images/{env.image_id}/metadata"
    r = api.post(url, headers=OLD, json={"metadata": {"os_distro": "cirros", "a": "1"}})
    assert r.status_code == 200 and r.json()["metadata"]["os_distro"] == "cirros"
    assert api.get(f"{url}/a", headers=OLD).json() == {"meta": {"a": "1"}}
    r = api.put(f"{url}/a", headers=OLD, json={"meta": {"a": "2"}})
    assert r.json() == {"meta": {"a": "2"}}
    assert nova_error(api.put(f"{url}/a", headers=OLD, json={"meta": {"b": "2"}}), 400) == \
        "Request body and URI mismatch"
    assert api.delete(f"{url}/a", headers=OLD).status_code == 204
    assert nova_error(api.get(f"{url}/a", headers=OLD), 404) == "Invalid metadata key"
    shown = api.get(f"{C}/images/{env.image_id}", headers=OLD).json()["image"]
    assert shown["metadata"]["os_distro"] == "cirros" and "a" not in shown["metadata"]
    assert nova_error(api.get(f"{C}/images/00000000-0000-0000-0000-000000000000",
                              headers=OLD), 404) == "Image not found."
    assert api.get(f"{C}/images", headers=version("2.36")).status_code == 404
    assert api.get(url, headers=version("2.38")).status_code == 200
    assert api.get(url, headers=version("2.39")).status_code == 404


def test_add_and_remove_fixed_ip(env: Env) -> None:
    """Nova's multinic actions (2.1 - 2.43, as Tempest's AttachInterfacesUnderV243Test):
    a second fixed IP on the server's port from its network, shown in its
    addresses; removed again; bad bodies and later microversions refused."""
    api = env.api
    server = boot(env, who="demo", name="multinic-vm")
    sid = server["id"]
    wait(env, sid, "ACTIVE", who="demo")
    port = api.get(f"/networking/v2.0/ports?device_id={sid}", who="demo").json()["ports"][0]
    first = port["fixed_ips"][0]["ip_address"]

    def fixed() -> list[str]:
        return [a["addr"] for addrs in api.get(f"{S}/{sid}/ips", who="demo").json()[
            "addresses"].values() for a in addrs]

    assert fixed() == [first]
    r = action(env, sid, {"addFixedIp": {"networkId": port["network_id"]}}, who="demo", headers=OLD)
    assert r.status_code == 202, r.text
    assert r.content == b""
    port = api.get(f"/networking/v2.0/ports/{port['id']}", who="demo").json()["port"]
    assert len(port["fixed_ips"]) == 2
    added = port["fixed_ips"][1]["ip_address"]
    assert fixed() == [first, added]
    r = action(env, sid, {"removeFixedIp": {"address": added}}, who="demo", headers=OLD)
    assert r.status_code == 202, r.text
    assert fixed() == [first]
    assert [f["ip_address"] for f in api.get(f"/networking/v2.0/ports/{port['id']}", who="demo")
            .json()["port"]["fixed_ips"]] == [first]
    # bad bodies: Nova's schema errors
    assert nova_error(action(env, sid, {"addFixedIp": {}}, who="demo", headers=OLD), 400) == (
        "Invalid input for field/attribute addFixedIp. Value: {}. "
        "'networkId' is a required property")
    assert nova_error(action(env, sid, {"removeFixedIp": {"address": "nope"}}, who="demo",
                             headers=OLD), 400) == (
        "Invalid input for field/attribute address. Value: nope. "
        "'nope' is not valid under any of the given schemas")
    # removed at 2.44
    assert action(env, sid, {"addFixedIp": {"networkId": port["network_id"]}}, who="demo",
                  headers=version("2.44")).status_code == 404
    assert action(env, sid, {"removeFixedIp": {"address": first}}, who="demo",
                  headers=version("2.44")).status_code == 404
    api.delete(f"{S}/{sid}", who="demo")
