"""openstacksdk (`openstack.connect(cloud=...)`) against a running onestack."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openstack
import openstack.exceptions
import pytest

from tests.conftest import CloudInfo

pytestmark = pytest.mark.clients


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sdk_env(running_cloud: CloudInfo, monkeypatch: pytest.MonkeyPatch) -> CloudInfo:
    """The process environment openstacksdk reads: only our clouds.yaml."""
    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(running_cloud.clouds_yaml))
    return running_cloud


@pytest.fixture
def admin(sdk_env: CloudInfo) -> Iterator[Any]:
    conn = connect(cloud="onestack-admin")
    yield conn
    conn.close()


@pytest.fixture
def demo(sdk_env: CloudInfo) -> Iterator[Any]:
    conn = connect(cloud="onestack")
    yield conn
    conn.close()


def connect(**kwargs: Any) -> Any:
    return openstack.connect(**kwargs)


def identity_url(info: CloudInfo) -> str:
    url = str(info.cloud("onestack-admin")["auth"]["auth_url"]).rstrip("/")
    return url.removesuffix("/v3")


def test_connect_and_authorize(admin: Any, sdk_env: CloudInfo) -> None:
    token = admin.authorize()
    assert token
    access = admin.session.auth.get_access(admin.session)
    assert access.project_name == sdk_env.cloud("onestack-admin")["auth"]["project_name"]
    assert "admin" in access.role_names
    assert access.service_catalog.url_for(service_type="identity", interface="public")


def test_catalog_services_and_endpoints(admin: Any, sdk_env: CloudInfo) -> None:
    services = {s.type: s for s in admin.identity.services()}
    assert "identity" in services
    endpoints = [e for e in admin.identity.endpoints() if e.service_id == services["identity"].id]
    assert any(e.url.startswith(sdk_env.url + "/identity") for e in endpoints), endpoints
    assert "RegionOne" in {r.id for r in admin.identity.regions()}


def test_project_lifecycle(admin: Any) -> None:
    name = unique("sdk-project")
    project = admin.identity.create_project(name=name, description="first", domain_id="default")
    assert project.name == name and project.is_enabled
    assert project.id in {p.id for p in admin.identity.projects()}
    assert [p.id for p in admin.identity.projects(name=name)] == [project.id]

    admin.identity.update_project(project, description="second", is_enabled=False)
    fetched = admin.identity.get_project(project.id)
    assert fetched.description == "second"
    assert fetched.is_enabled is False

    admin.identity.delete_project(project)
    with pytest.raises(openstack.exceptions.NotFoundException):
        admin.identity.get_project(project.id)


def test_user_role_assignment_and_login(admin: Any, sdk_env: CloudInfo) -> None:
    project = admin.identity.create_project(name=unique("sdk-proj"), domain_id="default")
    password = "pw-" + uuid.uuid4().hex
    user = admin.identity.create_user(name=unique("sdk-user"), password=password,
                                      domain_id="default", default_project_id=project.id)
    member = admin.identity.find_role("member")
    assert member is not None
    admin.identity.assign_project_role_to_user(project, user, member)
    assert admin.identity.validate_user_has_project_role(project, user, member)

    assignments = list(admin.identity.role_assignments(scope_project_id=project.id,
                                                       user_id=user.id))
    assert len(assignments) == 1
    assert assignments[0].role["id"] == member.id

    conn = connect(
        auth_url=identity_url(sdk_env), username=user.name, password=password,
        user_domain_id="default", project_id=project.id, identity_api_version="3",
        region_name="RegionOne",
    )
    try:
        access = conn.session.auth.get_access(conn.session)
        assert access.user_id == user.id
        assert access.project_id == project.id
        assert "member" in access.role_names
        assert "admin" not in access.role_names
    finally:
        conn.close()

    admin.identity.unassign_project_role_from_user(project, user, member)
    assert not admin.identity.validate_user_has_project_role(project, user, member)
    admin.identity.delete_user(user)
    admin.identity.delete_project(project)


def test_application_credential_authenticates(admin: Any, sdk_env: CloudInfo) -> None:
    me = admin.session.auth.get_access(admin.session)
    cred = admin.identity.create_application_credential(
        user=me.user_id, name=unique("sdk-appcred"), description="sdk test")
    assert cred.secret
    conn = connect(
        auth_type="v3applicationcredential", auth_url=identity_url(sdk_env),
        application_credential_id=cred.id, application_credential_secret=cred.secret,
        region_name="RegionOne",
    )
    try:
        access = conn.session.auth.get_access(conn.session)
        assert access.user_id == me.user_id
        assert access.project_id == me.project_id
        assert me.project_id in {p.id for p in conn.identity.projects()}
    finally:
        conn.close()
    admin.identity.delete_application_credential(me.user_id, cred.id)
    conn = connect(
        auth_type="v3applicationcredential", auth_url=identity_url(sdk_env),
        application_credential_id=cred.id, application_credential_secret=cred.secret,
        region_name="RegionOne",
    )
    with pytest.raises(openstack.exceptions.SDKException):
        conn.authorize()
    conn.close()


def test_token_revoke(admin: Any, sdk_env: CloudInfo) -> None:
    conn = connect(cloud="onestack-admin")
    token = conn.authorize()
    base = identity_url(sdk_env)
    ok = admin.session.get(base + "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert ok.status_code == 200
    r = admin.session.delete(base + "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert r.status_code == 204
    gone = admin.session.get(base + "/v3/auth/tokens", headers={"X-Subject-Token": token},
                             raise_exc=False)
    assert gone.status_code == 404
    # the revoked token no longer authenticates anything
    r = httpx.get(base + "/v3/auth/projects", headers={"X-Auth-Token": token})
    assert r.status_code == 401
    conn.close()


def test_demo_user_forbidden_to_list_users(demo: Any, admin: Any) -> None:
    assert demo.authorize()
    with pytest.raises(openstack.exceptions.ForbiddenException):
        list(demo.identity.users())
    # but sees its own project
    me = demo.session.auth.get_access(demo.session)
    assert me.project_id in {p.id for p in demo.identity.user_projects(me.user_id)}
    assert any(u.id == me.user_id for u in admin.identity.users())
