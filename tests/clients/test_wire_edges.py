"""Odd requests over a real socket to a real `onestack up` (uvicorn): a project tag with
CR, LF or an emoji used to drop the connection or answer 500 after storing the tag;
paths outside the services answered 500. Each now gets a complete HTTP answer."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import CloudInfo

pytestmark = pytest.mark.clients


def _token(cloud: CloudInfo) -> str:
    auth = yaml.safe_load(cloud.clouds_yaml.read_text())["clouds"]["onestack-admin"]["auth"]
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth["username"], "password": auth["password"], "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": auth["project_name"], "domain": {"name": "Default"}}}}}
    r = httpx.post(cloud.url + "/identity/v3/auth/tokens", json=body)
    assert r.status_code == 201, r.text
    return str(r.headers["X-Subject-Token"])


def _raw(cloud: CloudInfo, request: str) -> bytes:
    """Send one request as given (no client-side quoting) and read the whole answer."""
    host, port = cloud.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request.encode("ascii"))
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="module")
def project(running_cloud: CloudInfo) -> dict[str, Any]:
    token = _token(running_cloud)
    r = httpx.post(running_cloud.url + "/identity/v3/projects", headers={"X-Auth-Token": token},
                   json={"project": {"name": "wire-edges"}})
    assert r.status_code == 201, r.text
    return {"id": r.json()["project"]["id"], "token": token}


@pytest.mark.parametrize(("wire", "location_tail"), [
    ("a%0Ab", "a%0Ab"), ("a%0Db", "a%0Db"), ("%F0%9F%98%80", "%F0%9F%98%80"),
])
def test_odd_tags_get_a_whole_answer(running_cloud: CloudInfo, project: dict[str, Any], wire: str,
                                     location_tail: str) -> None:
    answer = _raw(running_cloud, f"PUT /identity/v3/projects/{project['id']}/tags/{wire} HTTP/1.1\r\n"
                                 f"Host: x\r\nX-Auth-Token: {project['token']}\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n")
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower().splitlines()
    assert head[0] == "http/1.1 201 created", answer
    location = f"location: {running_cloud.url}/identity/v3/projects/{project['id']}/tags/{location_tail}".lower()
    assert location in head, head


def test_a_nul_tag_is_400_and_not_stored(running_cloud: CloudInfo, project: dict[str, Any]) -> None:
    answer = _raw(running_cloud, f"PUT /identity/v3/projects/{project['id']}/tags/a%00b HTTP/1.1\r\n"
                                 f"Host: x\r\nX-Auth-Token: {project['token']}\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert answer.endswith(b'{"error":{"code":400,"title":"Bad Request",'
                           b'"message":"The request URL holds a NUL character (%00)."}}')
    r = httpx.get(f"{running_cloud.url}/identity/v3/projects/{project['id']}/tags",
                  headers={"X-Auth-Token": project["token"]})
    assert "a\x00b" not in r.json()["tags"]


@pytest.mark.parametrize("path", ["/foo", "/openapi.json", "/volume/v3"])
def test_unknown_paths_are_json_404(running_cloud: CloudInfo, path: str) -> None:
    r = httpx.get(running_cloud.url + path)
    assert r.status_code == 404
    assert r.json() == {"error": {"code": 404, "title": "Not Found", "message": "The resource could not be found."}}
