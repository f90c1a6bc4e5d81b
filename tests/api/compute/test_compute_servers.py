"""Servers through the API with the fake driver: boot to ACTIVE through the
durable tasks, what a server shows, its actions and their states, delete."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.api.compute.support import (
    Env,
    S,
    V,
    action,
    boot,
    eventually,
    make_image,
    nova_error,
    ports_of,
    show,
    version,
    wait,
    wait_gone,
)


def test_boot_goes_active_with_its_port_address_flavor_and_host(env: Env) -> None:
    created = boot(env, name="web one", metadata={"role": "web"})
    assert set(created) == {"id", "links", "OS-DCF:diskConfig", "security_groups", "adminPass"}
    assert created["security_groups"] == [{"name": "default"}]
    building = show(env, created["id"])
    assert building["status"] in ("BUILD", "ACTIVE")
    server = wait(env, created["id"], "ACTIVE")
    assert server["name"] == "web one"
    assert server["OS-EXT-SRV-ATTR:hostname"] == "web-one"
    assert server["metadata"] == {"role": "web"}
    assert server["OS-EXT-STS:power_state"] == 1 and server["OS-EXT-STS:vm_state"] == "active"
    assert server["flavor"]["original_name"] == "m1.nano" and server["flavor"]["ram"] == 128
    assert server["image"]["id"] == env.image_id
    (label, addresses), = server["addresses"].items()
    assert label == "admin-net" and addresses[0]["addr"].startswith("10.10.0.")
    assert addresses[0]["OS-EXT-IPS:type"] == "fixed" and addresses[0]["version"] == 4
    assert server["OS-EXT-SRV-ATTR:host"] == env.compute.this_host
    assert server["hostId"] and server["OS-SRV-USG:launched_at"]
    assert server["security_groups"] == [{"name": "default"}]
    assert server["pinned_availability_zone"] is None
    assert server["OS-EXT-AZ:availability_zone"] == "nova"
    assert env.driver.instances[created["id"]].spec.memory_mb == 128
    (port,) = ports_of(env, created["id"])
    assert port["binding:host_id"] == env.compute.this_host
    assert port["device_owner"] == "compute:nova" and port["binding:vif_type"] == "bridge"
    r = env.api.delete(f"{S}/{created['id']}", headers=V)
    assert r.status_code == 204
    wait_gone(env, created["id"])
    assert created["id"] not in env.driver.instances
    assert ports_of(env, created["id"]) == []  # released before the server went


def test_a_deleted_server_stays_until_its_ports_are_released(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """As Nova (the network deallocated, then the instance destroyed): a client
    that sees the server gone can delete its network at once."""
    import threading

    from onestack.compute.service import netinfo

    gate = threading.Event()
    release = netinfo.release

    def held(*args: Any, **kwargs: Any) -> None:
        gate.wait(30)
        release(*args, **kwargs)

    monkeypatch.setattr(netinfo, "release", held)
    sid = wait(env, boot(env, name="held")["id"], "ACTIVE")["id"]
    assert env.api.delete(f"{S}/{sid}", headers=V).status_code == 204
    eventually(lambda: sid not in env.driver.instances)  # the guest is destroyed
    time.sleep(0.3)
    shown = show(env, sid)
    assert shown["OS-EXT-STS:task_state"] == "deleting" and len(ports_of(env, sid)) == 1
    gate.set()
    wait_gone(env, sid)
    assert ports_of(env, sid) == []


def test_embedded_flavor_before_and_after_2_47(env: Env, server: dict[str, Any]) -> None:
    old = show(env, server["id"], headers=version("2.46"))["flavor"]
    assert old == {"id": "42", "links": [{"rel": "bookmark",
                                          "href": "http://127.0.0.1:8800/compute/flavors/42"}]}
    new = show(env, server["id"], headers=version("2.47"))["flavor"]
    assert new == {"vcpus": 1, "ram": 128, "disk": 1, "ephemeral": 0, "swap": 0,
                   "original_name": "m1.nano", "extra_specs": {"hw_rng:allowed": "True"}}


def test_fields_appear_with_their_microversions(env: Env, server: dict[str, Any]) -> None:
    v21 = show(env, server["id"], headers=version("2.1"))
    for key in ("locked", "description", "tags", "locked_reason", "pinned_availability_zone",
                "server_groups", "trusted_image_certificates", "host_status"):
        assert key not in v21, key
    assert "OS-EXT-SRV-ATTR:hostname" not in v21
    latest = show(env, server["id"])
    assert latest["locked"] is False and latest["tags"] == [] and latest["locked_reason"] is None
    assert latest["server_groups"] == [] and latest["host_status"] == "UP"
    demo = show(env, server["id"], headers=version("2.90"))
    assert demo["OS-EXT-SRV-ATTR:hostname"] == "vm"


def test_reboot_stop_start_pause_suspend(env: Env, server: dict[str, Any]) -> None:
    sid = server["id"]
    assert action(env, sid, {"reboot": {"type": "SOFT"}}).status_code == 202
    wait(env, sid, "ACTIVE")
    assert action(env, sid, {"reboot": {"type": "HARD"}}).status_code == 202
    wait(env, sid, "ACTIVE")
    assert action(env, sid, {"os-stop": None}).status_code == 202
    stopped = wait(env, sid, "SHUTOFF")
    assert stopped["OS-EXT-STS:power_state"] == 4
    msg = nova_error(action(env, sid, {"os-stop": None}), 409)
    assert msg == f"Cannot 'stop' instance {sid} while it is in vm_state stopped"
    assert action(env, sid, {"os-start": None}).status_code == 202
    wait(env, sid, "ACTIVE")
    assert action(env, sid, {"pause": None}).status_code == 202
    assert wait(env, sid, "PAUSED")["OS-EXT-STS:power_state"] == 3
    msg = nova_error(action(env, sid, {"suspend": None}), 409)
    assert msg == f"Cannot 'suspend' instance {sid} while it is in vm_state paused"
    assert action(env, sid, {"unpause": None}).status_code == 202
    wait(env, sid, "ACTIVE")
    assert action(env, sid, {"suspend": None}).status_code == 202
    assert wait(env, sid, "SUSPENDED")["OS-EXT-STS:power_state"] == 7
    assert action(env, sid, {"resume": None}).status_code == 202
    wait(env, sid, "ACTIVE")
    r = env.api.get(f"{S}/{sid}/os-instance-actions", headers=V)
    if r.status_code == 200:
        names = [a["action"] for a in r.json()["instanceActions"]]
        assert names[:3] == ["resume", "suspend", "unpause"]


def test_lock_keeps_a_member_out_but_not_the_admin(env: Env) -> None:
    created = boot(env, who="demo")
    sid = wait(env, created["id"], "ACTIVE", who="demo")["id"]
    r = action(env, sid, {"lock": {"locked_reason": "maintenance"}}, who="admin")
    assert r.status_code == 202
    shown = show(env, sid, who="demo")
    assert shown["locked"] is True and shown["locked_reason"] == "maintenance"
    assert nova_error(action(env, sid, {"os-stop": None}, who="demo"), 409) == \
        f"Instance {sid} is locked"
    assert nova_error(env.api.delete(f"{S}/{sid}", who="demo", headers=V), 409) == \
        f"Instance {sid} is locked"
    msg = nova_error(action(env, sid, {"unlock": None}, who="demo"), 403)
    assert msg == "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override " \
                  "to be performed."
    assert action(env, sid, {"unlock": None}, who="admin").status_code == 202
    assert show(env, sid, who="demo")["locked"] is False
    assert env.api.delete(f"{S}/{sid}", who="demo", headers=V).status_code == 204
    wait_gone(env, sid)


def test_resize_confirm_and_revert(env: Env, server: dict[str, Any]) -> None:
    sid = server["id"]
    assert action(env, sid, {"resize": {"flavorRef": "84"}}).status_code == 202
    resized = wait(env, sid, "VERIFY_RESIZE")
    assert resized["flavor"]["original_name"] == "m1.micro"
    assert env.driver.instances[sid].spec.memory_mb == 192
    assert action(env, sid, {"revertResize": None}).status_code == 202
    reverted = wait(env, sid, "ACTIVE")
    assert reverted["flavor"]["original_name"] == "m1.nano"
    assert env.driver.instances[sid].spec.memory_mb == 128
    assert action(env, sid, {"resize": {"flavorRef": "84"}}).status_code == 202
    wait(env, sid, "VERIFY_RESIZE")
    assert action(env, sid, {"confirmResize": None}).status_code == 204
    confirmed = wait(env, sid, "ACTIVE")
    assert confirmed["flavor"]["original_name"] == "m1.micro"
    msg = nova_error(action(env, sid, {"resize": {"flavorRef": "84"}}), 400)
    assert msg == "When resizing, instances must change flavor!"
    msg = nova_error(action(env, sid, {"confirmResize": None}), 409)
    assert msg == f"Cannot 'confirmResize' instance {sid} while it is in vm_state active"
    r = env.api.get(f"/compute/v2.1/os-migrations?instance_uuid={sid}", headers=V)
    moves = r.json()["migrations"]
    assert [m["status"] for m in moves] == ["confirmed", "reverted"]
    assert moves[0]["migration_type"] == "resize" and moves[0]["uuid"]
    assert moves[0]["source_compute"] == moves[0]["dest_compute"] == env.compute.this_host
    old = env.api.get(f"/compute/v2.1/os-migrations?instance_uuid={sid}",
                      headers=version("2.22")).json()["migrations"][0]
    assert "migration_type" not in old and "uuid" not in old
    assert env.api.get(f"{S}/{sid}/migrations", headers=V).json() == {"migrations": []}


def test_moves_to_another_host_and_diagnostics(env: Env, server: dict[str, Any]) -> None:
    sid = server["id"]
    assert nova_error(action(env, sid, {"migrate": None}), 400) == \
        "No valid host was found. No valid host found for cold migrate"
    body = {"os-migrateLive": {"host": None, "block_migration": "auto"}}
    assert nova_error(action(env, sid, body), 400) == \
        "No valid host was found. No valid host found for live migrate"
    assert action(env, "00000000-0000-0000-0000-000000000000", {"migrate": None}).status_code \
        == 404
    msg = nova_error(action(env, sid, {"migrate": None}, who="demo"), 404)
    assert msg == f"Instance {sid} could not be found."
    assert nova_error(env.api.get(f"{S}/{sid}/diagnostics", who="demo", headers=V), 404)


def test_diagnostics_read_from_the_hosts_driver(env: Env, server: dict[str, Any]) -> None:
    sid = server["id"]
    (port,) = server["addresses"]["admin-net"]
    mac = port["OS-EXT-IPS-MAC:mac_addr"]
    (port_id,) = [p["id"] for p in ports_of(env, sid)]
    diag = env.api.get(f"{S}/{sid}/diagnostics", headers=V).json()
    zero_nic = dict.fromkeys(("rx_octets", "rx_errors", "rx_drop", "rx_packets", "tx_octets",
                              "tx_errors", "tx_drop", "tx_packets"), 0)
    uptime = diag.pop("uptime")
    assert isinstance(uptime, int) and uptime >= 0
    # the fake driver's guest: 1 vCPU, its port's NIC, the root disk, no traffic
    assert diag == {
        "state": "running", "driver": "libvirt", "hypervisor": "qemu",
        "hypervisor_os": "linux", "config_drive": False, "num_cpus": 1, "num_nics": 1,
        "num_disks": 1, "cpu_details": [{"id": 0, "time": 0, "utilisation": None}],
        "nic_details": [{"mac_address": mac, **zero_nic, "rx_rate": None, "tx_rate": None}],
        "disk_details": [{"read_bytes": 0, "read_requests": 0, "write_bytes": 0,
                          "write_requests": 0, "errors_count": 0}],
        "memory_details": {"maximum": 128, "used": 128},
    }
    old = env.api.get(f"{S}/{sid}/diagnostics", headers=version("2.47")).json()
    tap = "tap" + port_id[:11]
    assert old == {"cpu0_time": 0, "vda_read_req": 0, "vda_read": 0, "vda_write_req": 0,
                   "vda_write": 0, "vda_errors": 0,
                   **{f"{tap}_{k}": 0 for k in ("rx", "rx_packets", "rx_errors", "rx_drop",
                                               "tx", "tx_packets", "tx_errors", "tx_drop")},
                   "memory": 131072, "memory-actual": 131072}
    # a stopped guest: Nova's 409 naming the power state
    assert action(env, sid, {"os-stop": None}).status_code == 202
    wait(env, sid, "SHUTOFF")
    assert nova_error(env.api.get(f"{S}/{sid}/diagnostics", headers=V), 409) == \
        f"Cannot 'get_diagnostics' instance {sid} while it is in power state shutdown"
    assert nova_error(env.api.get(f"{S}/{sid}/diagnostics", who="demo", headers=V), 404) == \
        f"Instance {sid} could not be found."


def test_rebuild_replaces_the_image_and_name(env: Env, server: dict[str, Any],
                                             tmp_path: Path) -> None:
    from tests.api.compute.support import make_image

    other = make_image(env.api, tmp_path, "other")
    sid = server["id"]
    r = action(env, sid, {"rebuild": {"imageRef": other, "name": "rebuilt",
                                      "metadata": {"a": "b"}}})
    assert r.status_code == 202, r.text
    body = r.json()["server"]
    assert body["name"] == "rebuilt" and body["image"]["id"] == other and "adminPass" in body
    assert body["status"] == "REBUILD"
    done = wait(env, sid, "ACTIVE")
    assert done["metadata"] == {"a": "b"} and done["image"]["id"] == other


def test_disk_config_and_the_answers_before_2_75(env: Env, server: dict[str, Any]) -> None:
    sid = server["id"]
    r = env.api.put(f"{S}/{sid}", headers=version("2.74"),
                    json={"server": {"OS-DCF:diskConfig": "AUTO"}})
    assert r.status_code == 200 and r.json()["server"]["OS-DCF:diskConfig"] == "AUTO"
    assert "x-compute-request-id" in r.headers
    (entries,) = r.json()["server"]["addresses"].values()
    assert set(entries[0]) == {"version", "addr"}  # the extended address fields came at 2.75
    r = action(env, sid, {"rebuild": {"imageRef": env.image_id,
                                      "OS-DCF:diskConfig": "MANUAL"}}, headers=version("2.74"))
    assert r.status_code == 202 and r.json()["server"]["OS-DCF:diskConfig"] == "MANUAL"
    (entries,) = r.json()["server"]["addresses"].values()
    assert set(entries[0]) == {"version", "addr"}
    wait(env, sid, "ACTIVE")
    full = show(env, sid)
    assert full["OS-DCF:diskConfig"] == "MANUAL"
    (entries,) = full["addresses"].values()
    assert "OS-EXT-IPS-MAC:mac_addr" in entries[0]


def test_create_image_uploads_a_snapshot(env: Env, server: dict[str, Any]) -> None:
    r = action(env, server["id"], {"createImage": {"name": "snap", "metadata": {"k": "v"}}})
    assert r.status_code == 202, r.text
    image_id = r.json()["image_id"]
    wait(env, server["id"], "ACTIVE")
    image = env.api.get(f"/image/v2/images/{image_id}").json()
    assert image["status"] == "active" and image["name"] == "snap"
    assert image["instance_uuid"] == server["id"] and image["image_type"] == "snapshot"
    assert image["k"] == "v" and image["disk_format"] == "qcow2"
    before = show(env, server["id"], headers=version("2.44"))
    assert before["status"] == "ACTIVE"
    r = action(env, server["id"], {"createImage": {"name": "old"}}, headers=version("2.44"))
    assert r.status_code == 202 and r.content == b""
    assert r.headers["Location"].startswith("http://127.0.0.1:8800/image/v2/images/")
    booted = boot(env, name="from-snap", imageRef=image_id)
    wait(env, booted["id"], "ACTIVE")
    env.api.delete(f"{S}/{booted['id']}", headers=V)


def test_create_backup_keeps_the_newest(env: Env, server: dict[str, Any]) -> None:
    sid = server["id"]

    def backups() -> list[str]:
        r = env.api.get(f"/image/v2/images?instance_uuid={sid}&image_type=backup")
        return [i["name"] for i in r.json()["images"] if i["status"] == "active"]

    for name in ("b1", "b2"):
        r = action(env, sid, {"createBackup": {"name": name, "backup_type": "daily",
                                               "rotation": 1}})
        assert r.status_code == 202, r.text
        image = env.api.get(f"/image/v2/images/{r.json()['image_id']}").json()
        assert image["backup_type"] == "daily" and image["image_type"] == "backup"
        eventually(lambda n=name: backups() == [n])  # type: ignore[misc]
        eventually(lambda: show(env, sid)["OS-EXT-STS:task_state"] is None)
    actions = env.api.get(f"{S}/{sid}/os-instance-actions", headers=V).json()
    assert actions["instanceActions"][0]["action"] == "createBackup"
    msg = nova_error(action(env, sid, {"createBackup": {"name": "x", "backup_type": "daily"}}),
                     400)
    assert "'rotation' is a required property" in msg


def test_shelve_offloads_and_unshelve_brings_it_back(env: Env, server: dict[str, Any]) -> None:
    sid = server["id"]
    assert action(env, sid, {"shelve": None}).status_code == 202
    shelved = wait(env, sid, "SHELVED_OFFLOADED")
    assert shelved["OS-EXT-SRV-ATTR:host"] is None and sid not in env.driver.instances
    assert action(env, sid, {"unshelve": None}).status_code == 202
    back = wait(env, sid, "ACTIVE")
    assert back["OS-EXT-SRV-ATTR:host"] == env.compute.this_host
    assert sid in env.driver.instances


def test_rescue_and_unrescue(env: Env, server: dict[str, Any]) -> None:
    sid = server["id"]
    r = action(env, sid, {"rescue": {"adminPass": "s3cret"}})
    assert r.status_code == 200 and r.json() == {"adminPass": "s3cret"}
    wait(env, sid, "RESCUE")
    assert env.driver.instances[sid].rescued
    assert action(env, sid, {"unrescue": None}).status_code == 202
    wait(env, sid, "ACTIVE")
    assert not env.driver.instances[sid].rescued


def test_a_rescue_image_asking_for_a_stable_device_rescue(
        env: Env, server: dict[str, Any], tmp_path: Path) -> None:
    """The rescue image's hw_rescue_device / hw_rescue_bus reach the driver
    (a stable device rescue), the server's own properties unchanged."""
    sid = server["id"]
    image = make_image(env.api, tmp_path, "rescue", hw_rescue_device="disk",
                       hw_rescue_bus="scsi")
    r = action(env, sid, {"rescue": {"rescue_image_ref": image}}, headers=version("2.87"))
    assert r.status_code == 200, r.text
    wait(env, sid, "RESCUE")
    props = env.driver.instances[sid].rescue_spec.properties
    assert (props["hw_rescue_device"], props["hw_rescue_bus"]) == ("disk", "scsi")
    assert action(env, sid, {"unrescue": None}).status_code == 202
    wait(env, sid, "ACTIVE")
    assert "hw_rescue_bus" not in env.driver.instances[sid].spec.properties
    assert env.api.delete(f"/image/v2/images/{image}").status_code == 204


def test_change_password_through_the_guest_agent(
        env: Env, server: dict[str, Any], tmp_path: Path) -> None:
    """changePassword: 202 once the host's driver set it (root, Administrator
    on Windows); Nova's 409 for a stopped server, 400 for a body without
    adminPass; the task state is back to none."""
    sid = server["id"]
    r = action(env, sid, {"changePassword": {"adminPass": "n3w pass"}})
    assert r.status_code == 202 and r.content == b"", r.text
    assert env.driver.instances[sid].passwords == {"root": "n3w pass"}
    assert show(env, sid)["OS-EXT-STS:task_state"] is None
    actions = env.api.get(f"{S}/{sid}/os-instance-actions", headers=V).json()["instanceActions"]
    assert actions[0]["action"] == "changePassword"
    env.driver.fail_next["set_admin_password"] = "the agent said no"
    assert nova_error(action(env, sid, {"changePassword": {"adminPass": "x"}}), 409) == (
        f"Failed to set admin password on {sid} because error setting admin password")
    assert show(env, sid)["OS-EXT-STS:task_state"] is None
    assert nova_error(action(env, sid, {"changePassword": {}}), 400) == (
        "Invalid input for field/attribute changePassword. Value: {}. "
        "'adminPass' is a required property")
    assert action(env, sid, {"os-stop": None}).status_code == 202
    wait(env, sid, "SHUTOFF")
    assert nova_error(action(env, sid, {"changePassword": {"adminPass": "x"}}), 409) == (
        f"Cannot 'changePassword' instance {sid} while it is in vm_state stopped")
    # a Windows image's administrator, or the one the image names
    image = make_image(env.api, tmp_path, "win", os_type="windows")
    other = wait(env, boot(env, name="w", imageRef=image)["id"], "ACTIVE")["id"]
    assert action(env, other, {"changePassword": {"adminPass": "p"}}).status_code == 202
    assert env.driver.instances[other].passwords == {"Administrator": "p"}
    assert env.api.delete(f"{S}/{other}").status_code == 204


def test_a_changed_password_is_kept_encrypted_with_the_rsa_key(env: Env) -> None:
    """As Nova's libvirt driver: the new password, encrypted with the server's
    SSH RSA key, is what os-server-password gives."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    r = env.api.post("/compute/v2.1/os-keypairs", headers=V,
                     json={"keypair": {"name": "pw-rsa", "public_key": public}})
    assert r.status_code == 201, r.text
    sid = wait(env, boot(env, name="pw", key_name="pw-rsa")["id"], "ACTIVE")["id"]
    assert env.api.get(f"{S}/{sid}/os-server-password", headers=V).json() == {"password": ""}
    assert action(env, sid, {"changePassword": {"adminPass": "0p3n s3same"}}).status_code == 202
    shown = env.api.get(f"{S}/{sid}/os-server-password", headers=V).json()["password"]
    assert private.decrypt(base64.b64decode(shown), padding.PKCS1v15()) == b"0p3n s3same"
    assert env.api.delete(f"{S}/{sid}").status_code == 204
    assert env.api.delete("/compute/v2.1/os-keypairs/pw-rsa", headers=V).status_code == 204


def test_console_output_is_the_guest_log(env: Env, server: dict[str, Any]) -> None:
    r = action(env, server["id"], {"os-getConsoleOutput": {"length": 2}})
    assert r.status_code == 200, r.text
    # Nova's tail: the empty piece after the last newline counts as a line.
    assert r.json()["output"] == "vm login: \n"
    full = action(env, server["id"], {"os-getConsoleOutput": {}}).json()["output"]
    assert "Linux version" in full


def test_reset_state_is_for_admins(env: Env, server: dict[str, Any]) -> None:
    sid = server["id"]
    assert action(env, sid, {"os-resetState": {"state": "error"}}).status_code == 202
    assert show(env, sid)["status"] == "ERROR"
    assert action(env, sid, {"os-resetState": {"state": "active"}}).status_code == 202
    assert show(env, sid)["status"] == "ACTIVE"


def test_unknown_action_and_bad_bodies(env: Env, server: dict[str, Any]) -> None:
    sid = server["id"]
    assert nova_error(action(env, sid, {"fly": None}), 400) == "There is no such action: fly"
    msg = nova_error(action(env, sid, {"reboot": {"type": "GENTLE"}}), 400)
    assert msg.startswith("Invalid input for field/attribute type. Value: GENTLE.")
    missing = "00000000-0000-0000-0000-000000000000"
    assert nova_error(action(env, missing, {"pause": None}), 404) == \
        f"Instance {missing} could not be found."
