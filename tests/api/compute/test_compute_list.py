"""``GET /servers`` and ``/servers/detail``: a listed server is exactly what
``GET /servers/{id}`` shows at every microversion (the list reads plain rows,
the show a model: both must give the same wire shape), and the list's
filters, sorting, paging and ``changes-since``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.api.compute.support import (
    Env,
    S,
    V,
    action,
    boot,
    nova_error,
    show,
    version,
    wait,
    wait_gone,
)

VERSIONS = ["2.1", "2.3", "2.9", "2.16", "2.19", "2.26", "2.47", "2.63", "2.71", "2.73",
            "2.90", "2.96"]


@pytest.fixture(scope="module")
def servers(env: Env) -> Iterator[dict[str, str]]:
    """Four servers that differ in what the views show: metadata and tags, a
    stopped one, a locked one with a reason, and one of the demo project."""
    made = {
        "a": boot(env, name="list-a", metadata={"role": "web", "tier": "1"},
                  tags=["blue", "red"])["id"],
        "b": boot(env, name="list-b", tags=["blue"])["id"],
        "c": boot(env, name="list-c", description="locked one")["id"],
        "demo": boot(env, who="demo", name="list-demo")["id"],
    }
    for key, sid in made.items():
        wait(env, sid, "ACTIVE", who="demo" if key == "demo" else "admin")
    assert action(env, made["b"], {"os-stop": None}).status_code == 202
    wait(env, made["b"], "SHUTOFF")
    r = action(env, made["c"], {"lock": {"locked_reason": "maintenance"}})
    assert r.status_code == 202, r.text
    yield made
    for key, sid in made.items():
        if key == "c":
            action(env, sid, {"unlock": None})
        env.api.delete(f"{S}/{sid}", headers=V)
    for sid in made.values():
        wait_gone(env, sid)


def detail(env: Env, query: str = "", who: str = "admin",
           headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = env.api.get(f"{S}/detail{query}", who=who, headers=headers or V)
    assert r.status_code == 200, r.text
    return dict(r.json())


def mine(listed: list[dict[str, Any]], made: dict[str, str]) -> dict[str, dict[str, Any]]:
    wanted = set(made.values())
    return {s["id"]: s for s in listed if s["id"] in wanted}


@pytest.mark.parametrize("who", ["admin", "demo"])
def test_a_listed_server_is_what_show_shows_at_every_microversion(
        env: Env, servers: dict[str, str], who: str) -> None:
    expected = {servers["demo"]} if who == "demo" else {servers[k] for k in "abc"}
    for v in VERSIONS:
        listed = mine(detail(env, who=who, headers=version(v))["servers"], servers)
        assert set(listed) == expected, v
        for sid, entry in listed.items():
            shown = show(env, sid, who=who, headers=version(v))
            shown.pop("server_groups", None)  # 2.71: show, update and rebuild only
            assert entry == shown, (v, who)
    # what differs between the servers did reach the list (not only equal emptiness)
    at_96 = mine(detail(env, who=who)["servers"], servers)
    if who == "admin":
        a, b, c = (at_96[servers[k]] for k in "abc")
        assert a["metadata"] == {"role": "web", "tier": "1"} and sorted(a["tags"]) == [
            "blue", "red"]
        assert b["status"] == "SHUTOFF" and b["OS-EXT-STS:power_state"] == 4
        assert c["locked"] is True and c["locked_reason"] == "maintenance"
        assert c["description"] == "locked one"
        assert a["OS-EXT-SRV-ATTR:host"] and a["host_status"] == "UP"
        launched = a["OS-SRV-USG:launched_at"]
        assert len(launched) == 26 and launched[10] == "T", launched
        assert a["created"].endswith("Z") and len(a["created"]) == 20
    else:
        (d,) = at_96.values()
        assert "OS-EXT-SRV-ATTR:host" not in d and "host_status" not in d
        assert d["OS-EXT-SRV-ATTR:hostname"] == "list-demo"


def test_brief_list_has_id_name_and_links(env: Env, servers: dict[str, str]) -> None:
    r = env.api.get(S, headers=V)
    assert r.status_code == 200, r.text
    listed = mine(r.json()["servers"], servers)
    entry = listed[servers["a"]]
    assert set(entry) == {"id", "name", "links"} and entry["name"] == "list-a"
    assert [link["rel"] for link in entry["links"]] == ["self", "bookmark"]
    assert entry["links"][0]["href"].endswith(f"/compute/v2.1/servers/{servers['a']}")


def test_paging_follows_the_sort_and_the_marker(env: Env, servers: dict[str, str]) -> None:
    whole = [s["id"] for s in detail(env)["servers"]]
    assert len(whole) >= 3
    walked: list[str] = []
    query = "?limit=1"
    while query:
        page = detail(env, query)
        assert len(page["servers"]) <= 1
        walked += [s["id"] for s in page["servers"]]
        links = page.get("servers_links") or []
        if links:
            assert links[0]["rel"] == "next"
            params = parse_qs(urlsplit(links[0]["href"]).query)
            assert params["limit"] == ["1"] and params["marker"] == [walked[-1]]
            query = f"?limit=1&marker={walked[-1]}"
        else:
            query = ""
    assert walked == whole
    names = [s["name"] for s in detail(env, "?sort_key=display_name&sort_dir=asc")["servers"]]
    assert names == sorted(names)
    names = [s["name"] for s in detail(env, "?sort_key=display_name&sort_dir=desc")["servers"]]
    assert names == sorted(names, reverse=True)
    r = env.api.get(f"{S}/detail?marker=00000000-0000-0000-0000-000000000000", headers=V)
    assert nova_error(r, 400) == "marker [00000000-0000-0000-0000-000000000000] not found"


def test_filters(env: Env, servers: dict[str, str]) -> None:
    def ids(query: str, headers: dict[str, str] | None = None) -> set[str]:
        return set(mine(detail(env, query, headers=headers)["servers"], servers))

    assert ids("?name=^list-[ab]$") == {servers["a"], servers["b"]}
    assert ids("?status=SHUTOFF") == {servers["b"]}
    assert ids("?status=ACTIVE") == {servers["a"], servers["c"]}
    assert ids("?tags=blue") == {servers["a"], servers["b"]}
    assert ids("?tags=blue,red") == {servers["a"]}
    assert ids("?not-tags=blue") == {servers["c"]}
    assert ids("?locked=true") == {servers["c"]}
    assert ids("?all_tenants=1&name=^list-") == set(servers.values())
    # before 2.26 tag filters, before 2.73 the lock filter are ignored, as in Nova
    assert ids("?tags=blue", headers=version("2.25")) == {servers[k] for k in "abc"}
    r = env.api.get(f"{S}/detail?status=NOPE", headers=V)
    assert nova_error(r, 400) == "Invalid status value"


def test_changes_since_shows_deleted_servers(env: Env) -> None:
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    sid = boot(env, name="list-gone")["id"]
    wait(env, sid, "ACTIVE")
    assert env.api.delete(f"{S}/{sid}", headers=V).status_code == 204
    wait_gone(env, sid)
    assert sid not in {s["id"] for s in detail(env)["servers"]}
    gone = {s["id"]: s for s in detail(env, f"?changes-since={before}")["servers"]}
    assert gone[sid]["status"] == "DELETED"
    r = env.api.get(f"{S}/detail?changes-since=yesterday", headers=V)
    assert nova_error(r, 400).startswith("Invalid input for query parameters changes-since.")


def test_an_unpaginated_list_stops_at_max_limit_with_a_next_link(
        env: Env, servers: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Nova's ``[api] max_limit`` (1000): a list without ``limit`` is cut there
    and links to the rest (``server list`` follows it)."""
    whole = [s["id"] for s in detail(env)["servers"]]
    assert len(whole) >= 3
    monkeypatch.setattr(env.compute.conf, "max_limit", 2)
    first = detail(env)
    assert [s["id"] for s in first["servers"]] == whole[:2]
    (link,) = first["servers_links"]
    assert link["rel"] == "next"
    assert parse_qs(urlsplit(link["href"]).query) == {"marker": [whole[1]]}
    r = env.api.get(S, headers=V)  # the brief list alike
    assert [s["id"] for s in r.json()["servers"]] == whole[:2]
    assert parse_qs(urlsplit(r.json()["servers_links"][0]["href"]).query) == {
        "marker": [whole[1]]}
    # a larger limit is clamped to it
    assert len(detail(env, "?limit=50")["servers"]) == 2
