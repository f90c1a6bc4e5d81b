"""GET /v3/role_assignments: filters, effective expansion, names, subtree."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api
from tests.api.test_assignments import make, role_id, user
from tests.api.test_roles import error, make_role

V3 = "/identity/v3"


def ras(api: Api, query: str, who: str = "admin") -> list[dict[str, Any]]:
    r = api.get(f"{V3}/role_assignments?{query}", who=who)
    assert r.status_code == 200, r.text
    assert r.json()["links"]["self"].endswith(f"/v3/role_assignments?{query}")
    return list(r.json()["role_assignments"])


@pytest.fixture(scope="module")
def world(api: Api) -> dict[str, Any]:
    """domain default > top > mid > leaf; group g holds u; roles chain r1 -> r2."""
    g = make(api, "group")
    u = user(api)
    assert api.put(f"{V3}/groups/{g['id']}/users/{u['id']}").status_code == 204
    top = make(api, "project")
    mid = make(api, "project", parent_id=top["id"])
    leaf = make(api, "project", parent_id=mid["id"])
    r1, r2 = make_role(api), make_role(api)
    assert api.put(f"{V3}/roles/{r1['id']}/implies/{r2['id']}").status_code == 201
    grants = [
        f"projects/{top['id']}/users/{u['id']}/roles/{r1['id']}",
        f"projects/{mid['id']}/groups/{g['id']}/roles/{r2['id']}",
        f"OS-INHERIT/projects/{top['id']}/groups/{g['id']}/roles/{r2['id']}/inherited_to_projects",
        f"domains/default/users/{u['id']}/roles/{r2['id']}",
        f"system/groups/{g['id']}/roles/{r2['id']}",
    ]
    for path in grants:
        assert api.put(f"{V3}/{path}").status_code == 204, path
    return {"g": g, "u": u, "top": top, "mid": mid, "leaf": leaf, "r1": r1, "r2": r2}


def test_direct_listing_by_actor(api: Api, world: dict[str, Any]) -> None:
    u, g, top, r1 = world["u"], world["g"], world["top"], world["r1"]
    mine = ras(api, f"user.id={u['id']}")
    assert len(mine) == 2
    project_one = next(a for a in mine if "project" in a["scope"])
    assert project_one == {
        "role": {"id": r1["id"]},
        "user": {"id": u["id"]},
        "scope": {"project": {"id": top["id"]}},
        "links": {"assignment": project_one["links"]["assignment"]},
    }
    assert project_one["links"]["assignment"].endswith(
        f"/identity/v3/projects/{top['id']}/users/{u['id']}/roles/{r1['id']}"
    )
    group_ones = ras(api, f"group.id={g['id']}")
    assert len(group_ones) == 3
    inherited = [a for a in group_ones if a["scope"].get("OS-INHERIT:inherited_to") == "projects"]
    assert len(inherited) == 1
    assert inherited[0]["links"]["assignment"].endswith(
        f"/v3/OS-INHERIT/projects/{top['id']}/groups/{g['id']}/roles/{world['r2']['id']}/inherited_to_projects"
    )
    system = [a for a in group_ones if "system" in a["scope"]]
    assert system[0]["scope"] == {"system": {"all": True}}
    assert system[0]["links"]["assignment"].endswith(
        f"/v3/system/groups/{g['id']}/roles/{world['r2']['id']}"
    )


def test_scope_filters(api: Api, world: dict[str, Any]) -> None:
    u, top, r2 = world["u"], world["top"], world["r2"]
    on_top = ras(api, f"scope.project.id={top['id']}")
    assert len(on_top) == 2
    assert (
        len(ras(api, f"scope.project.id={top['id']}&scope.OS-INHERIT:inherited_to=projects")) == 1
    )
    assert len(ras(api, f"scope.domain.id=default&user.id={u['id']}")) == 1
    assert [a["role"]["id"] for a in ras(api, f"scope.system=all&group.id={world['g']['id']}")] == [
        r2["id"]
    ]
    assert all("system" in a["scope"] for a in ras(api, "scope.system=all"))
    assert all(a["role"]["id"] == r2["id"] for a in ras(api, f"role.id={r2['id']}"))


def test_effective_expands_groups_inheritance_and_implied(api: Api, world: dict[str, Any]) -> None:
    u, g, top, mid, leaf, r1, r2 = (world[k] for k in ("u", "g", "top", "mid", "leaf", "r1", "r2"))
    eff = ras(api, f"user.id={u['id']}&effective")
    assert all("group" not in a for a in eff)
    assert all(a["user"]["id"] == u["id"] for a in eff)

    def on(project: dict[str, Any]) -> list[dict[str, Any]]:
        return [a for a in eff if a["scope"].get("project", {}).get("id") == project["id"]]

    # top: r1 directly, and r2 implied by r1 (with its prior_role link)
    top_roles = on(top)
    assert sorted(a["role"]["id"] for a in top_roles) == sorted([r1["id"], r2["id"]])
    implied = next(a for a in top_roles if a["role"]["id"] == r2["id"])
    assert implied["links"]["assignment"].endswith(
        f"/v3/projects/{top['id']}/users/{u['id']}/roles/{r1['id']}"
    )
    assert "prior_role" in implied["links"]
    # mid: r2 through the group (membership link), and r2 inherited from top through the group
    mid_roles = on(mid)
    assert len(mid_roles) == 2 and all(a["role"]["id"] == r2["id"] for a in mid_roles)
    assert all(
        a["links"]["membership"].endswith(f"/v3/groups/{g['id']}/users/{u['id']}")
        for a in mid_roles
    )
    inherited = [a for a in mid_roles if a["scope"].get("OS-INHERIT:inherited_to") == "projects"]
    assert len(inherited) == 1
    assert inherited[0]["links"]["assignment"].endswith(
        f"/v3/OS-INHERIT/projects/{top['id']}/groups/{g['id']}/roles/{r2['id']}/inherited_to_projects"
    )
    # leaf: inherited only
    assert [a["role"]["id"] for a in on(leaf)] == [r2["id"]]
    # domain and system
    assert any(a["scope"].get("domain", {}).get("id") == "default" for a in eff)
    assert any("system" in a["scope"] for a in eff)
    # effective + project filter
    leaf_eff = ras(api, f"scope.project.id={leaf['id']}&effective")
    assert [(a["user"]["id"], a["role"]["id"]) for a in leaf_eff] == [(u["id"], r2["id"])]
    # role filter applies after implied expansion
    assert {
        a["role"]["id"] for a in ras(api, f"user.id={u['id']}&effective&role.id={r2['id']}")
    } == {r2["id"]}


def test_include_names(api: Api, world: dict[str, Any]) -> None:
    u, top, r1 = world["u"], world["top"], world["r1"]
    named = ras(api, f"user.id={u['id']}&scope.project.id={top['id']}&include_names")
    assert named == [
        {
            "role": {"id": r1["id"], "name": r1["name"]},
            "user": {
                "id": u["id"],
                "name": u["name"],
                "domain": {"id": "default", "name": "Default"},
            },
            "scope": {
                "project": {
                    "id": top["id"],
                    "name": top["name"],
                    "domain": {"id": "default", "name": "Default"},
                }
            },
            "links": named[0]["links"],
        }
    ]
    dom = ras(api, f"user.id={u['id']}&scope.domain.id=default&include_names=true")
    assert dom[0]["scope"] == {"domain": {"id": "default", "name": "Default"}}
    grp = ras(api, f"group.id={world['g']['id']}&include_names")
    assert all(a["group"]["name"] == world["g"]["name"] for a in grp)
    assert ras(api, f"user.id={u['id']}&include_names=0")[0]["user"] == {"id": u["id"]}


def test_include_subtree(api: Api, world: dict[str, Any]) -> None:
    top, mid = world["top"], world["mid"]
    sub = ras(api, f"scope.project.id={top['id']}&include_subtree=true")
    assert {a["scope"]["project"]["id"] for a in sub} == {top["id"], mid["id"]}
    error(api.get(f"{V3}/role_assignments?include_subtree=true"), 400)
    error(api.get(f"{V3}/role_assignments?include_subtree=true&scope.project.id=nope"), 404)


@pytest.mark.parametrize(
    "query",
    [
        "scope.project.id=a&scope.domain.id=b",
        "scope.system=all&scope.domain.id=b",
        "scope.system=all&scope.project.id=a",
        "user.id=a&group.id=b",
        "effective&group.id=b",
        "effective&scope.domain.id=b&scope.OS-INHERIT:inherited_to=projects",
    ],
)
def test_invalid_combinations(api: Api, query: str) -> None:
    error(api.get(f"{V3}/role_assignments?{query}"), 400)


def test_policy(api: Api, world: dict[str, Any]) -> None:
    error(api.get(f"{V3}/role_assignments", who="demo"), 403)
    error(api.get(f"{V3}/role_assignments", who=None), 401)
    # the admin's own system-scoped token works too
    a = api.admin_auth
    tok = api.password_token(a["username"], a["password"], system=True)
    r = api.client.get(f"{V3}/role_assignments?scope.system=all", headers={"X-Auth-Token": tok})
    assert r.status_code == 200, r.text
    assert r.json()["role_assignments"]
    assert role_id(api, "admin") in {x["role"]["id"] for x in r.json()["role_assignments"]}


def test_domain_reader_sees_only_its_domain(api: Api, world: dict[str, Any]) -> None:
    dom = api.post(
        f"{V3}/domains", json={"domain": {"name": f"dom-{world['u']['id'][:8]}"}}
    ).json()["domain"]
    name, password = f"dr-{dom['id'][:8]}", "Domain-reader-1"
    r = api.post(
        f"{V3}/users", json={"user": {"name": name, "password": password, "domain_id": dom["id"]}}
    )
    assert r.status_code == 201, r.text
    reader_id = r.json()["user"]["id"]
    proj = api.post(
        f"{V3}/projects", json={"project": {"name": "p", "domain_id": dom["id"]}}
    ).json()["project"]
    reader = role_id(api, "reader")
    assert api.put(f"{V3}/domains/{dom['id']}/users/{reader_id}/roles/{reader}").status_code == 204
    assert (
        api.put(f"{V3}/projects/{proj['id']}/users/{reader_id}/roles/{reader}").status_code == 204
    )
    auth = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": name, "domain": {"id": dom["id"]}, "password": password}},
        },
        "scope": {"domain": {"id": dom["id"]}},
    }
    r = api.client.post(f"{V3}/auth/tokens", json={"auth": auth})
    assert r.status_code == 201, r.text
    h = {"X-Auth-Token": r.headers["X-Subject-Token"]}
    r = api.client.get(f"{V3}/role_assignments", headers=h)
    assert r.status_code == 200, r.text
    seen = r.json()["role_assignments"]
    assert len(seen) == 2
    assert {a["scope"].get("domain", a["scope"].get("project"))["id"] for a in seen} == {
        dom["id"],
        proj["id"],
    }
    # a domain reader may not grant
    error(
        api.client.put(
            f"{V3}/projects/{proj['id']}/users/{reader_id}/roles/{world['r1']['id']}", headers=h
        ),
        403,
    )
    # but may check grants in its domain
    r = api.client.head(f"{V3}/projects/{proj['id']}/users/{reader_id}/roles/{reader}", headers=h)
    assert r.status_code == 204
