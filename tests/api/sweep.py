"""A malformed-request sweep over every identity and image route.

Builds one resource of each kind, then, for every route the two services
serve (read from their routers, so a new route is swept without being listed
here), sends requests with odd path segments, odd query strings, odd bodies
and methods the route does not have. ``sweep`` yields each request with its
response; the test module decides what a good answer is.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.routing import Mount, Route

# Odd path segments, already percent-encoded as they go on the wire.
ODD_SEGMENTS = {
    "nul": "a%00b",
    "newline": "a%0Ab",
    "carriage return": "a%0Db",
    "tab": "a%09b",
    "emoji": "%F0%9F%98%80",
    "bad utf-8": "%FF%FE",
    "overlong utf-8": "%C0%AF",
    "right-to-left override": "%E2%80%AEx",
    "long": "x" * 300,
    "space": "%20",
    "dot-dot": "%2E%2E",
}

# Odd query values (percent-encoded), each sent under every name in QUERY_NAMES.
ODD_QUERY_VALUES = ["%00", "%FF", "-1", "2147483648", "18446744073709551616", "1e999", "%F0%9F%98%80", "a%0Ab",
                    "x" * 2000, "", "lt:%00", "gt:9999-99-99"]
QUERY_NAMES = [
    "limit", "marker", "name", "enabled", "domain_id", "project_id", "user_id", "id", "type",
    "tags", "tags-any", "not-tags", "sort_key", "sort_dir", "status", "visibility", "owner",
    "member_status", "size_min", "size_max", "created_at", "updated_at", "os_hidden", "protected",
    "parent_id", "is_domain", "interface", "region_id", "service_id", "role.id", "scope.project.id",
    "scope.domain.id", "user.id", "group.id", "effective", "include_names", "include_subtree",
    "resource_type", "resource_types", "password_expires_at", "resource_name", "trustor_user_id",
    "trustee_user_id", "parents_as_list", "subtree_as_ids", "nocatalog", "allow_expired",
    "disk_format", "container_format", "checksum", "os_hash_value", "sort", "unknown\u00e9",
    "min_ram", "min_disk", "size", "virtual_size", "changes-since", "cascade", "default_limit",
]

# Odd values for a body field.
ODD_VALUES: list[Any] = [
    None, 0, -1, 1.5, True, "", [], {}, [None], {"a": {"b": [1]}},
    2**31, 2**63, 2**64 - 1, 10**30, "x" * 70000, "a\u0000b", "a\nb", "\U0001f600", "\u202ex",
]

# Odd raw bodies.
ODD_RAW_BODIES = [
    b"{", b"[", b"null", b"[]", b'"x"', b"1", b"1e999", b'{"a": "\\ud800"}',
    b"[" * 5000 + b"]" * 5000, b"\xff\xfe", b'{"a": 1, "a": 2}', b'{"\\u0000": 1}',
]

ODD_METHODS = ["PATCH", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "FOO"]


@dataclass
class Probe:
    method: str
    url: str
    label: str
    body: bytes | None = None
    content_type: str = "application/json"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def build_world(api: Any) -> dict[str, str]:
    """One resource of each kind; path parameter name -> a valid value."""
    V3 = "/identity/v3"

    def post(path: str, body: Any, key: str, status: int = 201) -> dict[str, Any]:
        r = api.post(path, json=body)
        assert r.status_code == status, (path, r.text)
        out = r.json()[key]
        return dict(out[0] if isinstance(out, list) else out)

    me = api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": api.token()}).json()["token"]
    user_id, project_id = me["user"]["id"], me["project"]["id"]
    domain = post(f"{V3}/domains", {"domain": {"name": _name("d")}}, "domain")
    project = post(f"{V3}/projects", {"project": {"name": _name("p"), "tags": ["t1"]}}, "project")
    user = post(f"{V3}/users", {"user": {"name": _name("u"), "password": "pw-sweep-1"}}, "user")
    group = post(f"{V3}/groups", {"group": {"name": _name("g")}}, "group")
    role = post(f"{V3}/roles", {"role": {"name": _name("r")}}, "role")
    implied = post(f"{V3}/roles", {"role": {"name": _name("r")}}, "role")
    assert api.put(f"{V3}/roles/{role['id']}/implies/{implied['id']}").status_code == 201
    region = post(f"{V3}/regions", {"region": {"description": "sweep"}}, "region")
    service = post(f"{V3}/services", {"service": {"type": _name("t"), "name": _name("s")}}, "service")
    endpoint = post(f"{V3}/endpoints", {"endpoint": {
        "service_id": service["id"], "interface": "public", "region_id": region["id"],
        "url": "http://127.0.0.1:9/x"}}, "endpoint")
    policy = post(f"{V3}/policies", {"policy": {"blob": "{}", "type": "application/json"}}, "policy")
    credential = post(f"{V3}/credentials", {"credential": {
        "blob": "b", "type": "cert", "user_id": user_id}}, "credential")
    group_ep = post(f"{V3}/OS-EP-FILTER/endpoint_groups", {"endpoint_group": {
        "name": _name("eg"), "filters": {"interface": "public"}}}, "endpoint_group")
    consumer = post(f"{V3}/OS-OAUTH1/consumers", {"consumer": {"description": "c"}}, "consumer")
    admin_role = api.get(f"{V3}/roles?name=admin").json()["roles"][0]["id"]
    trust = post(f"{V3}/OS-TRUST/trusts", {"trust": {
        "trustor_user_id": user_id, "trustee_user_id": user["id"], "project_id": project_id,
        "impersonation": False, "roles": [{"id": admin_role}]}}, "trust")
    app_cred = post(f"{V3}/users/{user_id}/application_credentials", {"application_credential": {
        "name": _name("ac"), "access_rules": [{"service": "image", "method": "GET", "path": "/v2/images"}]}},
        "application_credential")
    rule_id = app_cred["access_rules"][0]["id"]
    rl = post(f"{V3}/registered_limits", {"registered_limits": [{
        "service_id": service["id"], "resource_name": _name("res"), "default_limit": 5}]},
        "registered_limits")
    limit = post(f"{V3}/limits", {"limits": [{
        "service_id": service["id"], "project_id": project["id"], "resource_name": rl["resource_name"],
        "resource_limit": 3}]}, "limits")
    ec2 = post(f"{V3}/users/{user_id}/credentials/OS-EC2", {"tenant_id": project_id}, "credential")
    r = api.put(f"{V3}/domains/{domain['id']}/config", json={"config": {"ldap": {"url": "ldap://127.0.0.1:9"}}})
    assert r.status_code == 201, r.text

    image = api.post("/image/v2/images", json={"name": _name("i"), "disk_format": "raw",
                                               "container_format": "bare", "tags": ["t1"]})
    assert image.status_code == 201, image.text
    image_id = image.json()["id"]
    r = api.post(f"/image/v2/images/{image_id}/members", json={"member": project["id"]})
    assert r.status_code == 200, r.text
    ns = _name("ns")
    r = api.post("/image/v2/metadefs/namespaces", json={
        "namespace": ns, "objects": [{"name": "obj", "properties": {"p": {"type": "string", "title": "p"}}}],
        "properties": {"prop": {"type": "string", "title": "prop"}}, "tags": [{"name": "tag1"}],
        "resource_type_associations": [{"name": "OS::Glance::Image"}]})
    assert r.status_code == 201, r.text
    task = api.post("/image/v2/tasks", json={"type": "import", "input": {}})

    return {
        "domain_id": domain["id"], "project_id": project["id"], "user_id": user_id,
        "group_id": group["id"], "role_id": role["id"], "prior_id": role["id"],
        "implied_id": implied["id"], "region_id": region["id"], "service_id": service["id"],
        "endpoint_id": endpoint["id"], "policy_id": policy["id"], "credential_id": credential["id"],
        "group_id_ep": group_ep["id"], "consumer_id": consumer["id"], "trust_id": trust["id"],
        "app_cred_id": app_cred["id"], "rule_id": rule_id, "limit_id": limit["id"],
        "registered_limit_id": rl["id"], "access": ec2["access"], "tag": "t1", "group": "ldap",
        "option": "url", "targets": "projects", "target_id": project["id"], "actors": "users",
        "actor_id": user["id"], "image_id": image_id, "member_id": project["id"], "ns": ns,
        "name": "obj", "task_id": task.json().get("id", "x") if task.status_code == 201 else "x",
        "request_token_id": "x", "access_token_id": "x", "other_user_id": user["id"],
    }


# Routes where {user_id} must be the caller (a user may only manage their own).
_OWN_USER_PATHS = ("/application_credentials", "/access_rules", "/OS-EC2", "/OS-OAUTH1/access_tokens")


def _fill(path: str, world: dict[str, str], odd: tuple[str, str] | None = None) -> str:
    """``path`` with its ``{params}`` replaced by valid values (one by ``odd``'s value)."""
    out = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1].split(":")[0]
            if odd is not None and odd[0] == name:
                out.append(odd[1])
                continue
            if name == "group_id" and "/OS-EP-FILTER/" in path:
                name = "group_id_ep"
            if name == "user_id" and not any(own in path for own in _OWN_USER_PATHS):
                name = "other_user_id"  # never disable or re-password the caller
            value = world.get(name, "x")
            out.append(quote(value, safe=""))
        else:
            out.append(part)
    return "/".join(out)


SWEPT = ("/identity", "/image")  # the services whose routes and error shapes this knows


def routes_of(app: Any) -> Iterator[tuple[str, str, set[str]]]:
    """(mount prefix, path template, methods) of every route of the swept services."""
    for prefix, sub in app.app.mounts.items():
        if prefix not in SWEPT:
            continue
        while not hasattr(sub, "routes"):
            sub = sub.app  # ASGI wrappers in front of the service's Starlette app
        yield from _routes(prefix, sub.routes)


def _routes(prefix: str, routes: list[Any]) -> Iterator[tuple[str, str, set[str]]]:
    for route in routes:
        if isinstance(route, Route) and route.methods:
            yield prefix, route.path, set(route.methods) - {"HEAD"}
        elif isinstance(route, Mount):
            yield from _routes(prefix + route.path, route.routes)


@dataclass(frozen=True)
class Level:
    """How much to send: the test suite's quick sweep or the whole one (``python -m``)."""

    segments: list[str]
    query_names: list[str]
    query_values: list[str]
    raw_bodies: list[bytes]
    values: list[Any]
    methods: list[str]


FULL = Level(list(ODD_SEGMENTS), QUERY_NAMES, ODD_QUERY_VALUES, ODD_RAW_BODIES, ODD_VALUES, ODD_METHODS)
QUICK = Level(
    ["nul", "newline", "emoji", "bad utf-8", "long"],
    ["marker", "name", "min_ram"],
    ["%00", "%FF", "2147483648", "%F0%9F%98%80"],
    [b"{", b"[]", b"1e999", b'{"a": "\\ud800"}', b"[" * 5000 + b"]" * 5000, b"\xff\xfe"],
    [None, -1, [], {}, 2**31, 2**64 - 1, "x" * 70000, "a\u0000b", "\U0001f600"],
    ["PATCH", "PUT", "FOO"],
)


def probes(app: Any, world: dict[str, str], example: Callable[[str, str], Any],
           level: Level = FULL) -> Iterator[Probe]:
    """Every odd request for every route. ``example(method, path)`` gives a valid body
    for a route that takes one (or None)."""
    paths: dict[tuple[str, str], set[str]] = {}
    for prefix, path, methods in routes_of(app):
        paths.setdefault((prefix, path), set()).update(methods)
    for (prefix, path), methods in paths.items():
        params = [p[1:-1].split(":")[0] for p in path.split("/") if p.startswith("{")]
        url = prefix + _fill(path, world)
        for method in sorted(methods):
            # odd path segments (never all-valid for DELETE: that would delete the world)
            for param in params:
                for label in level.segments:
                    value = ODD_SEGMENTS[label]
                    yield Probe(method, prefix + _fill(path, world, (param, value)),
                                f"{param}={label}", b"{}" if method in ("POST", "PUT", "PATCH") else None)
            if method == "DELETE":
                continue
            if method == "GET":
                for name in level.query_names:
                    for value in level.query_values:
                        yield Probe(method, f"{url}?{quote(name)}={value}", f"?{name}={value[:20]}")
                continue
            for raw in level.raw_bodies:
                yield Probe(method, url, f"raw {raw[:20]!r}", raw)
            body = example(method, prefix + path)
            if isinstance(body, dict | list):
                yield from _field_probes(method, url, body, level.values)
        for method in level.methods:
            if method not in methods:
                yield Probe(method, url, f"method {method}")


def _field_probes(method: str, url: str, body: Any, values: list[Any]) -> Iterator[Probe]:
    def mutate(obj: Any, trail: list[str]) -> Iterator[tuple[str, Any]]:
        if isinstance(obj, dict):
            for key in list(obj):
                for value in values:
                    copy = dict(obj)
                    copy[key] = value
                    yield "/".join([*trail, key]) + f"={_short(value)}", copy
                for label, inner in mutate(obj[key], [*trail, key]):
                    copy = dict(obj)
                    copy[key] = inner
                    yield label, copy
        elif isinstance(obj, list) and obj:
            for label, inner in mutate(obj[0], [*trail, "0"]):
                yield label, [inner, *obj[1:]]

    for label, mutated in mutate(body, []):
        yield Probe(method, url, label, json.dumps(mutated).encode())


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def example_body(world: dict[str, str]) -> Callable[[str, str], Any]:
    """A valid body for each route that takes one, by (method, path template)."""
    name = _name
    V3 = "/identity/v3"
    user = world["user_id"]
    bodies: dict[tuple[str, str], Callable[[], Any]] = {
        ("POST", f"{V3}/auth/tokens"): lambda: {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "id": world["other_user_id"], "password": "pw-sweep-1"}}},
            "scope": {"project": {"id": world["project_id"]}}}},
        ("POST", f"{V3}/domains"): lambda: {"domain": {"name": name("d"), "description": "x", "enabled": True}},
        ("PATCH", f"{V3}/domains/{{domain_id}}"): lambda: {"domain": {"description": "y"}},
        ("POST", f"{V3}/projects"): lambda: {"project": {"name": name("p"), "description": "x",
                                                         "domain_id": "default", "tags": ["a"]}},
        ("PATCH", f"{V3}/projects/{{project_id}}"): lambda: {"project": {"description": "y", "tags": ["t1"]}},
        ("PUT", f"{V3}/projects/{{project_id}}/tags"): lambda: {"tags": ["t1", "t2"]},
        ("POST", f"{V3}/users"): lambda: {"user": {"name": name("u"), "password": "pw", "email": "e",
                                                   "default_project_id": world["project_id"]}},
        ("PATCH", f"{V3}/users/{{user_id}}"): lambda: {"user": {"email": "f"}},
        ("POST", f"{V3}/users/{{user_id}}/password"): lambda: {"user": {
            "password": "pw-new", "original_password": "wrong"}},
        ("POST", f"{V3}/groups"): lambda: {"group": {"name": name("g"), "description": "x"}},
        ("PATCH", f"{V3}/groups/{{group_id}}"): lambda: {"group": {"description": "y"}},
        ("POST", f"{V3}/roles"): lambda: {"role": {"name": name("r"), "description": "x",
                                                   "options": {"immutable": False}}},
        ("PATCH", f"{V3}/roles/{{role_id}}"): lambda: {"role": {"description": "y"}},
        ("POST", f"{V3}/regions"): lambda: {"region": {"description": "x", "parent_region_id": world["region_id"]}},
        ("PUT", f"{V3}/regions/{{region_id}}"): lambda: {"region": {"description": "x"}},
        ("PATCH", f"{V3}/regions/{{region_id}}"): lambda: {"region": {"description": "y"}},
        ("POST", f"{V3}/services"): lambda: {"service": {"type": name("t"), "name": "n", "enabled": True}},
        ("PATCH", f"{V3}/services/{{service_id}}"): lambda: {"service": {"name": "m"}},
        ("POST", f"{V3}/endpoints"): lambda: {"endpoint": {
            "service_id": world["service_id"], "interface": "internal", "region_id": world["region_id"],
            "url": "http://127.0.0.1:9/y", "enabled": True}},
        ("PATCH", f"{V3}/endpoints/{{endpoint_id}}"): lambda: {"endpoint": {"url": "http://127.0.0.1:9/z"}},
        ("POST", f"{V3}/policies"): lambda: {"policy": {"blob": "{}", "type": "application/json"}},
        ("PATCH", f"{V3}/policies/{{policy_id}}"): lambda: {"policy": {"blob": "{\"a\": 1}"}},
        ("POST", f"{V3}/credentials"): lambda: {"credential": {
            "blob": "b", "type": "cert", "user_id": user, "project_id": world["project_id"]}},
        ("PATCH", f"{V3}/credentials/{{credential_id}}"): lambda: {"credential": {"blob": "c"}},
        ("POST", f"{V3}/users/{{user_id}}/credentials/OS-EC2"): lambda: {"tenant_id": world["project_id"]},
        ("POST", f"{V3}/OS-EP-FILTER/endpoint_groups"): lambda: {"endpoint_group": {
            "name": name("eg"), "description": "x", "filters": {"interface": "public",
                                                               "service_id": world["service_id"]}}},
        ("PATCH", f"{V3}/OS-EP-FILTER/endpoint_groups/{{group_id}}"): lambda: {"endpoint_group": {
            "description": "y"}},
        ("POST", f"{V3}/OS-OAUTH1/consumers"): lambda: {"consumer": {"description": "x"}},
        ("PATCH", f"{V3}/OS-OAUTH1/consumers/{{consumer_id}}"): lambda: {"consumer": {"description": "y"}},
        ("PUT", f"{V3}/OS-OAUTH1/authorize/{{request_token_id}}"): lambda: {"roles": [{"id": world["role_id"]}]},
        ("POST", f"{V3}/OS-TRUST/trusts"): lambda: {"trust": {
            "trustor_user_id": user, "trustee_user_id": world["other_user_id"],
            "project_id": world["project_id"], "impersonation": False, "roles": [{"name": "admin"}],
            "expires_at": "2099-01-01T00:00:00Z", "remaining_uses": 3}},
        ("POST", f"{V3}/users/{{user_id}}/application_credentials"): lambda: {"application_credential": {
            "name": name("ac"), "description": "x", "expires_at": "2099-01-01T00:00:00Z",
            "roles": [{"name": "admin"}], "unrestricted": False,
            "access_rules": [{"service": "identity", "method": "GET", "path": "/v3/users"}]}},
        ("POST", f"{V3}/registered_limits"): lambda: {"registered_limits": [{
            "service_id": world["service_id"], "resource_name": name("res"), "default_limit": 5,
            "region_id": world["region_id"], "description": "x"}]},
        ("PATCH", f"{V3}/registered_limits/{{limit_id}}"): lambda: {"registered_limit": {"default_limit": 6}},
        ("POST", f"{V3}/limits"): lambda: {"limits": [{
            "service_id": world["service_id"], "project_id": world["project_id"],
            "resource_name": name("res"), "resource_limit": 3, "description": "x"}]},
        ("PATCH", f"{V3}/limits/{{limit_id}}"): lambda: {"limit": {"resource_limit": 4}},
        ("PUT", f"{V3}/domains/{{domain_id}}/config"): lambda: {"config": {"ldap": {"url": "ldap://127.0.0.1:9"}}},
        ("PATCH", f"{V3}/domains/{{domain_id}}/config"): lambda: {"config": {"ldap": {"url": "ldap://127.0.0.1:8"}}},
        ("PATCH", f"{V3}/domains/{{domain_id}}/config/{{group}}"): lambda: {"config": {"url": "ldap://127.0.0.1:7"}},
        ("PATCH", f"{V3}/domains/{{domain_id}}/config/{{group}}/{{option}}"): lambda: {"config": {
            "url": "ldap://127.0.0.1:6"}},
        ("POST", "/image/v2/images"): lambda: {"name": name("i"), "disk_format": "qcow2",
                                               "container_format": "bare", "min_disk": 1, "min_ram": 1,
                                               "visibility": "private", "tags": ["a"], "protected": False,
                                               "extra_prop": "v"},
        ("PATCH", "/image/v2/images/{image_id}"): lambda: [
            {"op": "replace", "path": "/name", "value": "n"},
            {"op": "add", "path": "/extra", "value": "v"}],
        ("POST", "/image/v2/images/{image_id}/members"): lambda: {"member": world["domain_id"]},
        ("PUT", "/image/v2/images/{image_id}/members/{member_id}"): lambda: {"status": "accepted"},
        ("POST", "/image/v2/images/{image_id}/import"): lambda: {"method": {"name": "glance-direct"}},
        ("POST", "/image/v2/tasks"): lambda: {"type": "import", "input": {"import_from": "http://127.0.0.1:9/",
                                                                          "import_from_format": "raw"}},
        ("POST", "/image/v2/metadefs/namespaces"): lambda: {"namespace": name("ns"), "display_name": "x",
                                                            "visibility": "private", "protected": False},
        ("PUT", "/image/v2/metadefs/namespaces/{ns}"): lambda: {"namespace": world["ns"], "description": "d"},
        ("POST", "/image/v2/metadefs/namespaces/{ns}/objects"): lambda: {
            "name": name("o"), "properties": {"p": {"type": "string", "title": "p"}}, "required": []},
        ("PUT", "/image/v2/metadefs/namespaces/{ns}/objects/{name}"): lambda: {"name": "obj", "description": "d"},
        ("POST", "/image/v2/metadefs/namespaces/{ns}/properties"): lambda: {
            "name": name("p"), "type": "integer", "title": "t", "minimum": 0, "maximum": 10},
        ("PUT", "/image/v2/metadefs/namespaces/{ns}/properties/{name}"): lambda: {
            "name": "prop", "type": "string", "title": "t"},
        ("POST", "/image/v2/metadefs/namespaces/{ns}/tags"): lambda: {"tags": [{"name": name("t")}]},
        ("POST", "/image/v2/metadefs/namespaces/{ns}/tags/{name}"): lambda: None,
        ("PUT", "/image/v2/metadefs/namespaces/{ns}/tags/{name}"): lambda: {"name": "tag1"},
        ("POST", "/image/v2/metadefs/namespaces/{ns}/resource_types"): lambda: {
            "name": "OS::Nova::Server", "prefix": "x_"},
    }

    def example(method: str, path: str) -> Any:
        make = bodies.get((method, path))
        return make() if make else None

    return example


# --- judging an answer -------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def problem(probe: Probe, status: int, headers: Any, body: bytes) -> str | None:
    """What is wrong with an answer to an odd request, or None: never a 5xx, never a header
    that cannot go on the wire, and every error in its service's own JSON shape."""
    if status >= 500:
        return f"{status}: {body[:200]!r}"
    for name, value in headers.items():
        if _CONTROL.search(value):
            return f"header {name}: {value[:100]!r}"
    if status < 400 or probe.method == "HEAD":
        return None
    try:
        err = json.loads(body)
    except ValueError:
        return f"{status} not JSON: {body[:100]!r}"
    if "/image/" in probe.url:
        ok = isinstance(err, dict) and str(err.get("code", "")).startswith(f"{status} ") and "message" in err
    else:
        inner = err.get("error") if isinstance(err, dict) else None
        ok = isinstance(inner, dict) and inner.get("code") == status and bool(inner.get("message"))
    return None if ok else f"{status} not in the service's error shape: {body[:150]!r}"


def run(api: Any, level: Level = FULL) -> tuple[int, list[str]]:
    """Send every probe through ``api`` (tests.api.conftest.Api); (count, problems)."""
    app = api.client.app
    world = build_world(api)
    count, problems = 0, []
    for probe in probes(app, world, example_body(world), level):
        count += 1
        headers = {"X-Auth-Token": api.token()}
        if probe.body is not None:
            image_patch = probe.method == "PATCH" and probe.url.startswith("/image/")
            headers["Content-Type"] = "application/openstack-images-v2.1-json-patch" if image_patch \
                else probe.content_type
        try:
            r = api.client.request(probe.method, probe.url, content=probe.body, headers=headers)
        except Exception as exc:  # a crash the server did not turn into an answer
            problems.append(f"{probe.method} {probe.url[:120]} [{probe.label}]: raised {exc!r}"[:400])
            continue
        found = problem(probe, r.status_code, r.headers, r.content)
        if found:
            problems.append(f"{probe.method} {probe.url[:120]} [{probe.label}]: {found}")
    return count, problems


def main() -> int:
    """The whole sweep on a fresh in-process cloud: ``python -m tests.api.sweep [--postgresql]``."""
    import sys
    import tempfile
    import time
    from pathlib import Path

    from tests.api.conftest import make_api

    server = None
    url = ""
    if "--postgresql" in sys.argv:
        from tests import pg

        server = pg.Server()
        url = server.new_database()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for api in make_api(Path(tmp) / "state", url):
                started = time.monotonic()
                count, problems = run(api)
                print(f"{count} requests in {time.monotonic() - started:.0f} s, {len(problems)} problems")
                print("\n".join(problems))
                return 1 if problems else 0
    finally:
        if server is not None:
            server.stop()
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
