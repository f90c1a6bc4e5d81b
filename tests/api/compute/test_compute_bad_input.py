"""Bad boot requests get Nova's status and message, and leave nothing behind:
no server row, no port, no task, no claim."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from onestack.common.models import Task
from onestack.compute.kinds import resource_key
from onestack.compute.models import Allocation, Server
from tests.api.compute.support import (
    Env,
    S,
    V,
    boot,
    create_network,
    eventually,
    make_image,
    nova_error,
    port_count,
    ports_of,
    version,
    wait,
)

MISSING = "00000000-0000-4000-8000-000000000000"


def counts(env: Env) -> tuple[int, int, int, int]:
    with env.api.cloud.db.read() as s:
        servers = s.scalar(select(func.count()).select_from(Server))
        # Compute's tasks only: other services enqueue their own meanwhile
        # (the object store's periodic jobs)
        tasks = s.scalar(select(func.count()).select_from(Task)
                         .where(Task.kind.startswith("compute.")))
        claims = s.scalar(select(func.count()).select_from(Allocation))
    return int(servers or 0), int(tasks or 0), int(claims or 0), port_count(env)


def settle(env: Env) -> None:
    """Wait until earlier tests' background work (deletes, port releases) is done."""
    from onestack.common.models import UNFINISHED

    def idle() -> bool:
        with env.api.cloud.db.read() as s:
            return not s.scalar(select(func.count()).select_from(Task)
                                .where(Task.state.in_(UNFINISHED),
                                       Task.kind.startswith("compute.")))

    eventually(idle)


def refused(env: Env, server: dict[str, Any], status: int, who: str = "admin",
            headers: dict[str, str] | None = None, **extra: Any) -> str:
    settle(env)
    before = counts(env)
    body = {"server": {"name": "bad", "imageRef": env.image_id, "flavorRef": "42",
                       "networks": [{"uuid": env.network_id if who == "admin"
                                     else env.demo_network_id}], **server}, **extra}
    r = env.api.post(S, who=who, json=body, headers=headers or V)
    message = nova_error(r, status)
    assert counts(env) == before, "a refused boot left something behind"
    return message


@pytest.mark.parametrize(("changes", "status", "message"), [
    ({"imageRef": MISSING}, 400, "Can not find requested image"),
    ({"flavorRef": "no-such-flavor"}, 400, "Flavor no-such-flavor could not be found."),
    ({"networks": [{"uuid": MISSING}]}, 400, f"Network {MISSING} could not be found."),
    ({"key_name": "nokey"}, 400, "Invalid key_name provided."),
    ({"user_data": "not base64!"}, 400,
     "Invalid input for field/attribute user_data. Value: not base64!. 'not base64!' is not "
     "a 'base64'"),
    ({"networks": [{"port": MISSING}]}, 400, f"Port id {MISSING} could not be found."),
    ({"availability_zone": "nowhere"}, 400, "The requested availability zone is not available"),
    ({"min_count": 3, "max_count": 2}, 400, "min_count must be <= max_count"),
    ({"metadata": {f"k{i}": "v" for i in range(129)}}, 403,
     "Maximum number of metadata items exceeds 128"),
    ({"networks": "auto"}, 409,
     "Multiple possible networks found, use a Network ID to be more specific."),
    ({"networks": [{"uuid": "not-a-uuid"}]}, 400,
     "Invalid input for field/attribute uuid. Value: not-a-uuid. 'not-a-uuid' is not a "
     "'uuid'"),
    ({"name": " padded"}, 400,
     "An invalid 'name' value was provided. The name must be: printable characters. "
     "Can not start or end with whitespace."),
    ({"hostname": "web", "max_count": 2}, 400,
     "Unable to allocate a single hostname to multiple instances"),
])
def test_bad_boot_requests(env: Env, changes: dict[str, Any], status: int, message: str) -> None:
    if changes.get("networks") == "auto" and not env.api.get(
            "/networking/v2.0/networks?name=another").json()["networks"]:
        create_network(env.api, "another", "10.9.0.0/24")
    assert refused(env, changes, status) == message


def _admin_project(env: Env) -> str:
    token = env.api.token("admin")
    r = env.api.client.get("/identity/v3/auth/tokens",
                           headers={"X-Auth-Token": token, "X-Subject-Token": token})
    return str(r.json()["token"]["project"]["id"])


def test_user_data_over_64_kib(env: Env) -> None:
    big = base64.b64encode(b"x" * 50000).decode()
    message = refused(env, {"user_data": big}, 400)
    assert message.startswith("Invalid input for field/attribute user_data. Value: ")
    assert message.endswith(" is too long")


def test_flavor_too_small_for_the_image(env: Env, tmp_path: Path) -> None:
    big_ram = make_image(env.api, tmp_path, "needs-ram", min_ram=4096)
    assert refused(env, {"imageRef": big_ram}, 400) == \
        "Flavor's memory is too small for requested image."
    big_disk = make_image(env.api, tmp_path, "needs-disk", min_disk=40)
    assert refused(env, {"imageRef": big_disk}, 400) == (
        "Flavor's disk is smaller than the minimum size specified in image metadata. "
        "Flavor disk is 1073741824 bytes, minimum size is 42949672960 bytes.")


def test_a_port_in_use(env: Env) -> None:
    server = boot(env)
    wait(env, server["id"], "ACTIVE")
    (port,) = ports_of(env, server["id"])
    assert refused(env, {"networks": [{"port": port["id"]}]}, 409) == \
        f"Port {port['id']} is still in use."
    env.api.delete(f"{S}/{server['id']}", headers=V)


def test_another_projects_network_is_not_found(env: Env) -> None:
    assert refused(env, {"networks": [{"uuid": env.network_id}]}, 400, who="demo") == \
        f"Network {env.network_id} could not be found."


def test_malformed_bodies(env: Env) -> None:
    r = env.api.post(S, content=b"{not json", headers={**V, "Content-Type": "application/json"})
    assert nova_error(r, 400) == "Malformed request body"
    assert nova_error(env.api.post(S, json={"server": {"name": "x"}}, headers=V), 400) == \
        "Invalid input for field/attribute server. Value: {'name': 'x'}. 'flavorRef' is a " \
        "required property"
    assert nova_error(env.api.post(S, json={"server": {"name": "x", "flavorRef": "42",
                                                       "imageRef": env.image_id}},
                                   headers=V), 400).endswith("'networks' is a required property")
    r = env.api.post(S, json={"server": {"name": "x", "flavorRef": "42", "imageRef": env.image_id,
                                         "bogus": 1, "networks": "none"}}, headers=V)
    assert nova_error(r, 400).endswith("Additional properties are not allowed ('bogus' was "
                                       "unexpected)")
    r = env.api.post(S, who="demo", json={"server": {"name": "x", "flavorRef": "42",
                                                     "imageRef": env.image_id}},
                     headers=version("2.36"))
    assert r.status_code == 202, r.text  # networks were optional before 2.37: the only one
    server = wait(env, r.json()["server"]["id"], "ACTIVE", who="demo")
    assert list(server["addresses"]) == ["private"]
    env.api.delete(f"{S}/{server['id']}", who="demo", headers=V)


def test_list_filters_refuse_what_nova_refuses(env: Env) -> None:
    assert nova_error(env.api.get(f"{S}?status=SLEEPING", headers=V), 400) == \
        "Invalid status value"
    assert env.api.get(f"{S}?status=SLEEPING", headers=version("2.37")).json() == \
        {"servers": []}
    assert nova_error(env.api.get(f"{S}?marker={MISSING}", headers=V), 400) == \
        f"marker [{MISSING}] not found"
    assert nova_error(env.api.get(f"{S}?sort_key=host", who="demo", headers=V), 403) == \
        "Only administrators can sort servers by host"
    assert nova_error(env.api.get(f"{S}?foo=bar", headers=V), 400) == \
        "Invalid input for query parameters foo. Value: bar. Additional properties are not " \
        "allowed ('foo' was unexpected)"
    assert env.api.get(f"{S}?foo=bar", headers=version("2.74")).status_code == 200
    assert nova_error(env.api.get(f"{S}?all_tenants=1", who="demo", headers=V), 403) == \
        "Policy doesn't allow os_compute_api:servers:index:get_all_tenants to be performed."


def test_other_projects_servers_are_not_found(env: Env) -> None:
    server = boot(env)
    wait(env, server["id"], "ACTIVE")
    r = env.api.get(f"{S}/{server['id']}", who="demo", headers=V)
    assert nova_error(r, 404) == f"Instance {server['id']} could not be found."
    r = env.api.delete(f"{S}/{server['id']}", who="demo", headers=V)
    assert nova_error(r, 404) == f"Instance {server['id']} could not be found."
    env.api.delete(f"{S}/{server['id']}", headers=V)


# --- over quota, actions in the wrong state, a locked server ----------------------------


@pytest.mark.parametrize(("quota", "resource", "requested"), [
    ("instances", "instances", "1"), ("cores", "cores", "1"), ("ram", "ram", "128")])
def test_over_quota_is_nova_403_and_leaves_nothing(env: Env, quota: str, resource: str,
                                                   requested: str) -> None:
    project = env.api.get("/identity/v3/auth/tokens", headers={
        "X-Subject-Token": env.api.token("demo")}).json()["token"]["project"]["id"]
    settle(env)
    r = env.api.get(f"/compute/v2.1/os-quota-sets/{project}/detail", headers=V)
    used = r.json()["quota_set"][quota]["in_use"]
    limit = used + (64 if quota == "ram" else 0)
    r = env.api.put(f"/compute/v2.1/os-quota-sets/{project}", headers=V,
                    json={"quota_set": {quota: limit}})
    assert r.status_code == 200, r.text
    try:
        # with a network: the port Networking would make must not outlive the refusal
        assert refused(env, {}, 403, who="demo") == (
            f"Quota exceeded for {resource}: Requested {requested}, but already used {used} "
            f"of {limit} {resource}")
    finally:
        env.api.delete(f"/compute/v2.1/os-quota-sets/{project}", headers=V)


def _server_trail(env: Env, sid: str) -> tuple[int, int, str, str | None]:
    """(tasks, instance actions, status, task_state) of one server."""
    with env.api.cloud.db.read() as s:
        tasks = s.scalar(select(func.count()).select_from(Task)
                         .where(Task.resource_key == resource_key(sid)))
    actions = env.api.get(f"{S}/{sid}/os-instance-actions", headers=V).json()
    shown = env.api.get(f"{S}/{sid}", headers=V).json()["server"]
    return (int(tasks or 0), len(actions["instanceActions"]), shown["status"],
            shown["OS-EXT-STS:task_state"])


@pytest.mark.parametrize(("body", "method"), [
    ({"os-start": None}, "start"), ({"unpause": None}, "unpause"),
    ({"resume": None}, "resume"), ({"revertResize": None}, "revertResize"),
    ({"confirmResize": None}, "confirmResize"), ({"unrescue": None}, "unrescue"),
    ({"unshelve": None}, "unshelve"),
])
def test_an_action_in_the_wrong_state_is_409_and_changes_nothing(
        env: Env, active: str, body: dict[str, Any], method: str) -> None:
    settle(env)
    before = _server_trail(env, active)
    r = env.api.post(f"{S}/{active}/action", json=body, headers=V)
    assert nova_error(r, 409) == \
        f"Cannot '{method}' instance {active} while it is in vm_state active"
    assert _server_trail(env, active) == before == (before[0], before[1], "ACTIVE", None)


@pytest.fixture(scope="module")
def active(env: Env) -> Iterator[str]:
    sid = str(boot(env, name="wrong-state")["id"])
    wait(env, sid, "ACTIVE")
    yield sid
    env.api.delete(f"{S}/{sid}", headers=V)


def test_a_locked_server_refuses_a_member_and_changes_nothing(env: Env) -> None:
    """Nova's ``check_instance_lock`` (409); a snapshot is not among them (Nova
    does not check the lock for ``createImage``)."""
    sid = str(boot(env, who="demo", name="locked", metadata={"k": "v"})["id"])
    wait(env, sid, "ACTIVE", who="demo")
    r = env.api.post(f"{S}/{sid}/action", json={"lock": {"locked_reason": "audit"}},
                     headers=V)
    assert r.status_code == 202, r.text
    settle(env)
    before = _server_trail(env, sid)
    locked = f"Instance {sid} is locked"
    for method, path, body in [
        ("POST", f"{S}/{sid}/action", {"reboot": {"type": "HARD"}}),
        ("POST", f"{S}/{sid}/action", {"os-stop": None}),
        ("POST", f"{S}/{sid}/action", {"pause": None}),
        ("POST", f"{S}/{sid}/action", {"resize": {"flavorRef": "84"}}),
        ("POST", f"{S}/{sid}/action", {"rebuild": {"imageRef": env.image_id}}),
        ("PUT", f"{S}/{sid}/metadata", {"metadata": {"k": "changed"}}),
        ("POST", f"{S}/{sid}/metadata", {"metadata": {"new": "x"}}),
        ("PUT", f"{S}/{sid}/metadata/k", {"meta": {"k": "changed"}}),
        ("DELETE", f"{S}/{sid}/metadata/k", None),
        ("DELETE", f"{S}/{sid}", None),
    ]:
        r = env.api.request(method, path, who="demo", json=body, headers=V)
        assert nova_error(r, 409) == locked, (method, path, body)
    assert _server_trail(env, sid) == before
    shown = env.api.get(f"{S}/{sid}", who="demo", headers=V).json()["server"]
    assert shown["metadata"] == {"k": "v"} and shown["locked_reason"] == "audit"
    # the admin may still change it, and may unlock it
    r = env.api.put(f"{S}/{sid}/metadata/k", json={"meta": {"k": "admin"}}, headers=V)
    assert r.status_code == 200, r.text
    assert env.api.post(f"{S}/{sid}/action", json={"unlock": None}, headers=V).status_code \
        == 202
    assert env.api.delete(f"{S}/{sid}", who="demo", headers=V).status_code == 204
