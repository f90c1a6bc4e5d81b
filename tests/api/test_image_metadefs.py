"""Metadata definitions catalog: namespaces, objects, properties, tags, resource types."""

from __future__ import annotations

import uuid

import pytest

from tests.api.conftest import Api
from tests.api.test_image import V2, assert_glance_error

MD = f"{V2}/metadefs"


def new_namespace(api: Api, **body: object) -> str:
    name = f"ns-{uuid.uuid4().hex[:8]}"
    r = api.post(f"{MD}/namespaces", json={"namespace": name, **body})
    assert r.status_code == 201, r.text
    return name


def test_resource_types(api: Api) -> None:
    types = api.get(f"{MD}/resource_types", "demo").json()["resource_types"]
    assert types[0]["name"] == "OS::Glance::Image" and "created_at" in types[0]


def test_namespace_life_cycle(api: Api) -> None:
    name = f"ns-{uuid.uuid4().hex[:8]}"
    body = {"namespace": name, "display_name": "Test", "description": "d", "visibility": "public",
            "protected": True, "resource_type_associations": [{"name": "OS::Glance::Image"}]}
    r = api.post(f"{MD}/namespaces", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["self"] == f"/v2/metadefs/namespaces/{name}"
    assert_glance_error(api.post(f"{MD}/namespaces", json=body), 409)
    assert name in [n["namespace"] for n in api.get(f"{MD}/namespaces", "demo").json()["namespaces"]]
    shown = api.get(f"{MD}/namespaces/{name}", "demo").json()
    assert shown["visibility"] == "public" and shown["resource_type_associations"][0]["name"] == "OS::Glance::Image"
    assert_glance_error(api.delete(f"{MD}/namespaces/{name}"), 403)  # protected
    assert_glance_error(api.put(f"{MD}/namespaces/{name}", "demo", json={"namespace": name}), 403)
    r = api.put(f"{MD}/namespaces/{name}", json={"namespace": name, "visibility": "private", "protected": False})
    assert r.status_code == 200 and r.json()["visibility"] == "private" and r.json()["protected"] is False
    assert_glance_error(api.get(f"{MD}/namespaces/{name}", "demo"), 404)  # private now
    assert api.delete(f"{MD}/namespaces/{name}").status_code == 204
    assert_glance_error(api.get(f"{MD}/namespaces/{name}"), 404)


@pytest.mark.parametrize(
    "body",
    [{}, {"namespace": ""}, {"namespace": "a/b"}, {"namespace": "x" * 81},
     {"namespace": "ok", "visibility": "shared"}, {"namespace": "ok", "protected": "yes"}],
)
def test_bad_namespaces(api: Api, body: dict[str, object]) -> None:
    assert_glance_error(api.post(f"{MD}/namespaces", json=body), 400)


def test_only_admin_creates_namespaces(api: Api) -> None:
    assert_glance_error(api.post(f"{MD}/namespaces", "demo", json={"namespace": "demo-ns"}), 403)


def test_objects(api: Api) -> None:
    ns = new_namespace(api)
    url = f"{MD}/namespaces/{ns}/objects"
    r = api.post(url, json={"name": "obj1", "required": ["a"],
                            "properties": {"a": {"title": "A", "type": "string"}}})
    assert r.status_code == 201, r.text
    assert r.json()["self"].endswith("/objects/obj1")
    assert_glance_error(api.post(url, json={"name": "obj1"}), 409)
    assert [o["name"] for o in api.get(url).json()["objects"]] == ["obj1"]
    r = api.put(f"{url}/obj1", json={"name": "obj2"})
    assert r.status_code == 200 and r.json()["name"] == "obj2"
    assert_glance_error(api.get(f"{url}/obj1"), 404)
    assert api.get(f"{url}/obj2").json()["name"] == "obj2"
    assert api.delete(f"{url}/obj2").status_code == 204
    assert api.get(url).json()["objects"] == []
    assert_glance_error(api.post(url, json={"name": "bad", "properties": {"p": {"type": "nope", "title": "x"}}}),
                        400)


def test_properties(api: Api) -> None:
    ns = new_namespace(api)
    url = f"{MD}/namespaces/{ns}/properties"
    body = {"name": "hypervisor", "title": "Hypervisor", "type": "string", "enum": ["kvm", "qemu"]}
    r = api.post(url, json=body)
    assert r.status_code == 201 and r.json()["title"] == "Hypervisor"
    assert_glance_error(api.post(url, json=body), 409)
    assert_glance_error(api.post(url, json={"name": "x", "type": "string"}), 400)
    assert api.get(f"{url}/hypervisor").json()["enum"] == ["kvm", "qemu"]
    assert set(api.get(url).json()["properties"]) == {"hypervisor"}
    r = api.put(f"{url}/hypervisor", json={**body, "title": "HV"})
    assert r.json()["title"] == "HV"
    assert api.delete(f"{url}/hypervisor").status_code == 204
    assert api.get(url).json()["properties"] == {}
    assert_glance_error(api.delete(f"{url}/hypervisor"), 404)


def test_tags(api: Api) -> None:
    ns = new_namespace(api)
    url = f"{MD}/namespaces/{ns}/tags"
    r = api.post(url, json={"tags": [{"name": "t1"}, {"name": "t2"}]})
    assert r.status_code == 201 and len(r.json()["tags"]) == 2
    assert sorted(t["name"] for t in api.get(url).json()["tags"]) == ["t1", "t2"]
    assert api.post(f"{url}/t3").status_code == 201
    assert_glance_error(api.post(f"{url}/t3"), 409)
    assert api.get(f"{url}/t3").json()["name"] == "t3"
    r = api.put(f"{url}/t3", json={"name": "t4"})
    assert r.json()["name"] == "t4"
    assert_glance_error(api.get(f"{url}/t3"), 404)
    assert api.delete(f"{url}/t4").status_code == 204
    assert api.delete(url).status_code == 204
    assert api.get(url).json()["tags"] == []


def test_resource_type_associations(api: Api) -> None:
    ns = new_namespace(api)
    url = f"{MD}/namespaces/{ns}/resource_types"
    r = api.post(url, json={"name": "OS::Nova::Flavor", "prefix": "hw:"})
    assert r.status_code == 201 and r.json()["prefix"] == "hw:"
    assert_glance_error(api.post(url, json={"name": "OS::Nova::Flavor"}), 409)
    assert [a["name"] for a in api.get(url).json()["resource_type_associations"]] == ["OS::Nova::Flavor"]
    assert api.delete(f"{url}/OS::Nova::Flavor").status_code == 204
    assert api.get(url).json()["resource_type_associations"] == []
    assert_glance_error(api.delete(f"{url}/OS::Nova::Flavor"), 404)


@pytest.mark.parametrize(
    ("path", "name"),
    [("namespace", "namespace"), ("namespaces", "namespaces"), ("object", "object"),
     ("objects", "objects"), ("property", "property"), ("properties", "properties"),
     ("tag", "tag"), ("tags", "tags"), ("resource_type", "resource_type_association"),
     ("resource_types", "resource_type_associations")],
)
def test_metadef_schemas(api: Api, path: str, name: str) -> None:
    r = api.get(f"{V2}/schemas/metadefs/{path}", "demo")
    assert r.status_code == 200 and r.json()["name"] == name
