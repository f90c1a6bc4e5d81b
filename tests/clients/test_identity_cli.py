"""The real `openstack` CLI (python-openstackclient) against a running onestack."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import CloudInfo

pytestmark = pytest.mark.clients

OPENSTACK = str(Path(sys.executable).parent / "openstack")


def osc(
    info: CloudInfo, *args: str, cloud: str | None = "onestack-admin",
    env: dict[str, str] | None = None, check: bool = True,
) -> subprocess.CompletedProcess[str]:
    cmd = [OPENSTACK, *(["--os-cloud", cloud] if cloud else []), *args]
    r = subprocess.run(cmd, env=env or info.env(), capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, f"{' '.join(args)} failed: {r.stderr[-2000:]}"
    return r


def osc_json(info: CloudInfo, *args: str, **kw: Any) -> Any:
    return json.loads(osc(info, *args, "-f", "json", **kw).stdout)


def normalized(row: dict[str, Any]) -> dict[str, Any]:
    """Keys as snake_case: newer OSC versions print "Project ID" where older print project_id."""
    return {k.lower().replace(" ", "_"): v for k, v in row.items()}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def env_with_clouds(info: CloudInfo, tmp_path: Path, extra: dict[str, Any]) -> dict[str, str]:
    """info.env() with a clouds.yaml holding the cloud's clouds plus `extra`."""
    clouds = yaml.safe_load(info.clouds_yaml.read_text())
    clouds["clouds"].update(extra)
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump(clouds))
    env = info.env()
    env["OS_CLIENT_CONFIG_FILE"] = str(path)
    return env


def base_cloud(info: CloudInfo) -> dict[str, Any]:
    admin = info.cloud("onestack-admin")
    cloud = {k: v for k, v in admin.items() if k != "auth"}
    cloud["auth"] = {"auth_url": admin["auth"]["auth_url"]}
    return cloud


def test_token_issue(running_cloud: CloudInfo) -> None:
    token = osc_json(running_cloud, "token", "issue")
    admin = running_cloud.cloud("onestack-admin")["auth"]
    assert token["id"]
    assert token["expires"]
    assert token["project_id"]
    assert token["user_id"]
    project = osc_json(running_cloud, "project", "show", token["project_id"])
    assert project["name"] == admin["project_name"]


def test_catalog_list_has_identity_at_this_cloud(running_cloud: CloudInfo) -> None:
    catalog = osc_json(running_cloud, "catalog", "list")
    by_type = {entry["Type"]: entry for entry in catalog}
    assert "identity" in by_type, catalog
    endpoints = by_type["identity"]["Endpoints"]
    urls = [e["url"] for e in endpoints] if isinstance(endpoints, list) else [str(endpoints)]
    assert any(running_cloud.url + "/identity" in u for u in urls), endpoints
    # every service the cloud runs is in the catalog, at this cloud's URL
    running = httpx.get(running_cloud.url + "/").json()["services"]
    for svc in running:
        assert svc["type"] in by_type, (svc, catalog)
        entry = by_type[svc["type"]]["Endpoints"]
        at = running_cloud.s3_url if svc["type"] == "s3" else running_cloud.url  # S3: its own port
        assert at in json.dumps(entry), entry


def test_project_create_list_show_set_delete(running_cloud: CloudInfo) -> None:
    name = unique("cli-project")
    created = osc_json(running_cloud, "project", "create", "--description", "first", name)
    assert created["name"] == name
    assert created["description"] == "first"
    assert created["enabled"] is True
    assert created["domain_id"] == "default"

    listed = osc_json(running_cloud, "project", "list")
    assert created["id"] in {p["ID"] for p in listed}

    new_name = unique("cli-renamed")
    osc(running_cloud, "project", "set", "--name", new_name, "--description", "second",
        "--disable", created["id"])
    shown = osc_json(running_cloud, "project", "show", created["id"])
    assert shown["name"] == new_name
    assert shown["description"] == "second"
    assert shown["enabled"] is False

    osc(running_cloud, "project", "delete", created["id"])
    gone = osc(running_cloud, "project", "show", created["id"], check=False)
    assert gone.returncode != 0
    assert created["id"] not in {p["ID"] for p in osc_json(running_cloud, "project", "list")}


def test_user_create_role_add_assignment_list_and_login(
    running_cloud: CloudInfo, tmp_path: Path,
) -> None:
    project = osc_json(running_cloud, "project", "create", unique("cli-proj"))
    user_name = unique("cli-user")
    password = "s3cret-" + uuid.uuid4().hex
    user = osc_json(running_cloud, "user", "create", "--domain", "default",
                    "--password", password, "--email", "u@example.org", user_name)
    assert user["name"] == user_name
    assert "password" not in user
    osc(running_cloud, "role", "add", "--user", user["id"], "--project", project["id"], "member")

    rows = osc_json(running_cloud, "role", "assignment", "list", "--names",
                    "--project", project["id"])
    assert {"Role": "member", "User": f"{user_name}@Default",
            "Project": f"{project['name']}@Default"}.items() <= rows[0].items(), rows
    assert len(rows) == 1

    env = env_with_clouds(running_cloud, tmp_path, {
        "new-user": {**base_cloud(running_cloud), "auth": {
            **base_cloud(running_cloud)["auth"],
            "username": user_name, "password": password, "user_domain_name": "Default",
            "project_name": project["name"], "project_domain_name": "Default",
        }},
    })
    token = osc_json(running_cloud, "token", "issue", cloud="new-user", env=env)
    assert token["user_id"] == user["id"]
    assert token["project_id"] == project["id"]

    wrong = env_with_clouds(running_cloud, tmp_path, {
        "wrong": {**base_cloud(running_cloud), "auth": {
            **base_cloud(running_cloud)["auth"],
            "username": user_name, "password": password + "x", "user_domain_name": "Default",
            "project_name": project["name"], "project_domain_name": "Default",
        }},
    })
    failed = osc(running_cloud, "token", "issue", cloud="wrong", env=wrong, check=False)
    assert failed.returncode != 0
    assert "401" in failed.stderr

    osc(running_cloud, "user", "delete", user["id"])
    osc(running_cloud, "project", "delete", project["id"])


def test_application_credential_create_then_authenticate(
    running_cloud: CloudInfo, tmp_path: Path,
) -> None:
    name = unique("cli-appcred")
    cred = normalized(osc_json(running_cloud, "application", "credential", "create",
                               "--description", "for the test", name))
    assert cred["name"] == name
    assert cred["secret"]
    assert cred["description"] == "for the test"
    assert {r["name"] for r in cred["roles"]} >= {"admin", "member", "reader"}
    admin_token = osc_json(running_cloud, "token", "issue")

    cloud = base_cloud(running_cloud)
    cloud["auth_type"] = "v3applicationcredential"
    cloud["auth"].update(application_credential_id=cred["id"],
                         application_credential_secret=cred["secret"])
    env = env_with_clouds(running_cloud, tmp_path, {"appcred": cloud})
    token = osc_json(running_cloud, "token", "issue", cloud="appcred", env=env)
    assert token["user_id"] == admin_token["user_id"]
    assert token["project_id"] == admin_token["project_id"]
    # the token works for the API
    projects = osc_json(running_cloud, "project", "list", cloud="appcred", env=env)
    assert admin_token["project_id"] in {p["ID"] for p in projects}

    # a wrong secret fails, and a deleted credential no longer authenticates
    bad = base_cloud(running_cloud)
    bad["auth_type"] = "v3applicationcredential"
    wrong_secret = ("A" if cred["secret"][0] != "A" else "B") + cred["secret"][1:]
    bad["auth"].update(application_credential_id=cred["id"],
                       application_credential_secret=wrong_secret)
    env_bad = env_with_clouds(running_cloud, tmp_path, {"appcred": cloud, "bad": bad})
    assert osc(running_cloud, "token", "issue", cloud="bad", env=env_bad,
               check=False).returncode != 0
    osc(running_cloud, "application", "credential", "delete", cred["id"])
    after = osc(running_cloud, "token", "issue", cloud="appcred", env=env, check=False)
    assert after.returncode != 0


def test_application_credential_access_rules_are_enforced(
    running_cloud: CloudInfo, tmp_path: Path,
) -> None:
    """`openstack application credential create --access-rules`, then use it:
    what the rules allow works, the rest is 401 (image and identity alike)."""
    image = osc_json(running_cloud, "image", "create", "--disk-format", "raw",
                     "--container-format", "bare", unique("guarded"))
    rules = [{"service": "image", "method": "GET", "path": "/v2/images"},
             {"service": "image", "method": "GET", "path": "/v2/images/*"}]
    cred = normalized(osc_json(running_cloud, "application", "credential", "create",
                               "--access-rules", json.dumps(rules), unique("cli-rules")))
    assert sorted((r["method"], r["path"]) for r in cred["access_rules"]) == [
        ("GET", "/v2/images"), ("GET", "/v2/images/*")]
    cloud = base_cloud(running_cloud)
    cloud["auth_type"] = "v3applicationcredential"
    cloud["auth"] = {"auth_url": cloud["auth"]["auth_url"], "application_credential_id": cred["id"],
                     "application_credential_secret": cred["secret"]}
    env = env_with_clouds(running_cloud, tmp_path, {"limited": cloud})
    listed = osc_json(running_cloud, "image", "list", cloud="limited", env=env)
    assert image["id"] in {i["ID"] for i in listed}
    shown = osc_json(running_cloud, "image", "show", image["id"], cloud="limited", env=env)
    assert shown["id"] == image["id"]
    denied = osc(running_cloud, "image", "delete", image["id"], cloud="limited", env=env, check=False)
    assert denied.returncode != 0
    assert "401" in denied.stderr or "requires authentication" in denied.stderr, denied.stderr
    assert osc_json(running_cloud, "image", "show", image["id"])["status"] == image["status"]
    denied = osc(running_cloud, "project", "list", cloud="limited", env=env, check=False)
    assert denied.returncode != 0
    assert "401" in denied.stderr or "requires authentication" in denied.stderr, denied.stderr
    osc(running_cloud, "image", "delete", image["id"])
    osc(running_cloud, "application", "credential", "delete", cred["id"])


def test_token_revoke(running_cloud: CloudInfo) -> None:
    token = osc_json(running_cloud, "token", "issue")
    auth_url = running_cloud.cloud("onestack-admin")["auth"]["auth_url"]
    env = running_cloud.env()
    env.pop("OS_CLIENT_CONFIG_FILE")
    env.update(OS_AUTH_TYPE="v3token", OS_TOKEN=token["id"], OS_AUTH_URL=auth_url,
               OS_PROJECT_ID=token["project_id"], OS_IDENTITY_API_VERSION="3")
    # the token works before it is revoked ...
    osc(running_cloud, "project", "show", token["project_id"], cloud=None, env=env)

    osc(running_cloud, "token", "revoke", token["id"])

    # ... and not after: neither to authenticate with nor to validate.
    failed = osc(running_cloud, "project", "show", token["project_id"], cloud=None, env=env,
                 check=False)
    assert failed.returncode != 0
    checker = osc_json(running_cloud, "token", "issue")
    r = httpx.get(auth_url.rstrip("/").removesuffix("/v3") + "/v3/auth/tokens",
                  headers={"X-Auth-Token": checker["id"], "X-Subject-Token": token["id"]})
    assert r.status_code == 404, r.text


def test_demo_user_cannot_list_users(running_cloud: CloudInfo) -> None:
    demo = osc_json(running_cloud, "token", "issue", cloud="onestack")
    assert demo["user_id"]
    r = osc(running_cloud, "user", "list", cloud="onestack", check=False)
    assert r.returncode != 0
    assert re.search(r"\b403\b", r.stderr), r.stderr
    assert "identity:list_users" in r.stderr or "not authorized" in r.stderr
    # while the admin can
    users = osc_json(running_cloud, "user", "list")
    assert demo["user_id"] in {u["ID"] for u in users}
