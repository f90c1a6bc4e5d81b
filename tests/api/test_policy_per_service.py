"""Each service has its own policy: its own override file
(``<state-dir>/policy/<service>.yaml``), its own meaning of ``owner`` and
``default``, and the upstream ``scope_types`` of its rules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from onestack.common.ids import new_id
from tests.api.conftest import Api, make_api

V3 = "/identity/v3"
IMAGES = "/image/v2/images"


@contextmanager
def cloud(state: Path, **env: str) -> Iterator[Api]:
    gen = make_api(state, extra_env=env)
    try:
        yield next(gen)
    finally:
        gen.close()


def _scoped_token(api: Any, role: str, scope: str) -> str:
    """A new user holding ``role`` on a new domain / the system / a new project,
    and its token of that scope."""
    pw = "pw-" + new_id()
    user = api.post(f"{V3}/users", json={"user": {"name": "u-" + new_id()[:8], "password": pw}}).json()["user"]
    role_id = api.get(f"{V3}/roles", params={"name": role}).json()["roles"][0]["id"]
    if scope == "domain":
        target = api.post(f"{V3}/domains", json={"domain": {"name": "d-" + new_id()[:8]}}).json()["domain"]
        grant, want = f"domains/{target['id']}", {"domain": {"id": target["id"]}}
    elif scope == "system":
        grant, want = "system", {"system": {"all": True}}
    else:
        target = api.post(f"{V3}/projects", json={"project": {"name": "p-" + new_id()[:8]}}).json()["project"]
        grant, want = f"projects/{target['id']}", {"project": {"id": target["id"]}}
    assert api.put(f"{V3}/{grant}/users/{user['id']}/roles/{role_id}").status_code == 204
    r = api.client.post(f"{V3}/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"id": user["id"], "password": pw}}},
        "scope": want}})
    assert r.status_code == 201, r.text
    return str(r.headers["X-Subject-Token"])


def _as(api: Any, token: str, method: str, path: str, **kw: Any) -> Any:
    headers = {**kw.pop("headers", {}), "X-Auth-Token": token}
    return api.client.request(method, path, headers=headers, **kw)


def _keystone_403(r: Any, rule: str) -> None:
    assert r.status_code == 403, r.text
    assert r.json() == {"error": {"code": 403, "title": "Forbidden", "message":
                                  f"You are not authorized to perform the requested action: {rule}."}}


def _glance_403(r: Any, rule: str) -> None:
    assert r.status_code == 403, r.text
    assert r.json() == {"message": f"You are not authorized to complete {rule} action.",
                        "code": "403 Forbidden", "title": "Forbidden"}


# --------------------------------------------------------------------------- scope types


def test_a_domain_scoped_admin_is_refused_system_and_project_calls(api: Api) -> None:
    token = _scoped_token(api, "admin", "domain")
    # identity:list_users takes domain scope ...
    assert _as(api, token, "GET", f"{V3}/users").status_code == 200
    # ... identity:list_services and create_role do not: 403 although the
    # check string (rule:admin_required) is satisfied by the admin role
    _keystone_403(_as(api, token, "GET", f"{V3}/services"), "identity:list_services")
    _keystone_403(_as(api, token, "POST", f"{V3}/roles", json={"role": {"name": "r-" + new_id()[:8]}}),
                  "identity:create_role")
    # every image call is for project-scoped tokens
    _glance_403(_as(api, token, "GET", IMAGES), "get_images")


def test_a_system_scoped_admin_is_refused_project_calls(api: Api) -> None:
    token = _scoped_token(api, "admin", "system")
    assert _as(api, token, "GET", f"{V3}/services").status_code == 200
    _glance_403(_as(api, token, "GET", IMAGES), "get_images")
    _glance_403(_as(api, token, "POST", IMAGES, json={"name": "x"}), "add_image")
    user_id = _as(api, token, "GET", f"{V3}/auth/tokens", headers={"X-Subject-Token": token}).json()
    user_id = user_id["token"]["user"]["id"]
    r = _as(api, token, "POST", f"{V3}/users/{user_id}/application_credentials",
            json={"application_credential": {"name": "from-system"}})
    _keystone_403(r, "identity:create_application_credential")
    r = _as(api, token, "POST", f"{V3}/OS-TRUST/trusts", json={"trust": {
        "trustor_user_id": user_id, "trustee_user_id": user_id, "impersonation": False}})
    _keystone_403(r, "identity:create_trust")


def test_a_project_scoped_admin_may_do_both(api: Api) -> None:
    token = _scoped_token(api, "admin", "project")
    assert _as(api, token, "GET", f"{V3}/services").status_code == 200
    assert _as(api, token, "GET", IMAGES).status_code == 200


def test_scope_enforcement_can_be_turned_off(tmp_path: Path) -> None:
    with cloud(tmp_path / "state", ONESTACK_ENFORCE_SCOPE="false") as api:
        domain_admin = _scoped_token(api, "admin", "domain")
        assert _as(api, domain_admin, "GET", f"{V3}/services").status_code == 200
        system_admin = _scoped_token(api, "admin", "system")
        assert _as(api, system_admin, "GET", IMAGES).status_code == 200


# --------------------------------------------------------------------------- one file per service


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_each_service_reads_its_own_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # A rule for Glance's images in identity's file, and Keystone's admin rule in
    # image's file: neither touches the other service.
    _write(state / "policy" / "identity.yaml", '"identity:list_services": "!"\n"get_images": "!"\n')
    _write(state / "policy" / "image.yaml", '"admin_required": "!"\n"add_image": "!"\n')
    with cloud(state) as api:
        _keystone_403(api.get(f"{V3}/services"), "identity:list_services")
        assert api.get(f"{V3}/users").status_code == 200  # admin_required untouched
        assert api.get(IMAGES).status_code == 200  # get_images untouched
        _glance_403(api.post(IMAGES, json={"name": "x"}), "add_image")
        # edited while running: re-read
        _write(state / "policy" / "image.yaml", "{}\n")
        assert api.post(IMAGES, json={"name": "x"}).status_code == 201


def test_default_and_owner_are_per_service(tmp_path: Path) -> None:
    """``default`` closes what a service has no rule for - in that service only;
    ``owner`` is a user in Keystone (and would be a project in Neutron)."""
    state = tmp_path / "state"
    _write(state / "policy" / "image.yaml", '"default": "!"\n"owner": "project_id:%(project_id)s"\n'
           '"get_images": "rule:not_a_rule"\n')
    with cloud(state) as api:
        # an unknown rule falls to image's default ("!") ...
        _glance_403(api.get(IMAGES), "get_images")
        # ... which identity never sees: its own rules, its own owner rule
        demo = api.token("demo")
        me = _as(api, demo, "GET", f"{V3}/auth/tokens", headers={"X-Subject-Token": demo}).json()["token"]
        assert _as(api, demo, "GET", f"{V3}/users/{me['user']['id']}").status_code == 200
        assert api.get(f"{V3}/services").status_code == 200
        assert api.cloud.service("identity").enforcer.rules["owner"] == "user_id:%(user_id)s"
        assert api.cloud.service("image").enforcer.rules["owner"] == "project_id:%(project_id)s"
        assert "default" not in api.cloud.service("identity").enforcer.rules


def test_the_shared_file_of_earlier_versions_still_applies_until_the_directory_exists(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _write(state / "policy.yaml", '"identity:list_services": "!"\n"add_image": "!"\n')
    with cloud(state) as api:  # an upgraded cloud: nothing an operator restricted is reopened
        _keystone_403(api.get(f"{V3}/services"), "identity:list_services")
        _glance_403(api.post(IMAGES, json={"name": "x"}), "add_image")
    _write(state / "policy" / "image.yaml", '"add_image": "!"\n')
    with cloud(state) as api:  # split into per-service files: the shared file is ignored
        assert api.get(f"{V3}/services").status_code == 200
        _glance_403(api.post(IMAGES, json={"name": "x"}), "add_image")


def test_a_configured_policy_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc-onestack-policy"
    _write(elsewhere / "identity.yaml", '"identity:list_services": "!"\n')
    with cloud(tmp_path / "state", ONESTACK_POLICY_DIR=str(elsewhere)) as api:
        _keystone_403(api.get(f"{V3}/services"), "identity:list_services")


@pytest.mark.parametrize("service", ["identity", "image"])
def test_a_broken_file_keeps_the_defaults(tmp_path: Path, service: str) -> None:
    state = tmp_path / "state"
    _write(state / "policy" / f"{service}.yaml", "get_images: [unbalanced\n")
    with cloud(state) as api:
        assert api.get(f"{V3}/services").status_code == 200
        assert api.get(IMAGES).status_code == 200
