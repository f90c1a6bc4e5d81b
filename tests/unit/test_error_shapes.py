"""Each service's error body, as its real OpenStack counterpart writes it."""

from __future__ import annotations

import json

from onestack.common.errors import BadRequest, Conflict, NotFound, Unauthorized
from onestack.common.web import glance_error, keystone_error, neutron_error, nova_error


def body(response: object) -> dict:
    return json.loads(response.body)  # type: ignore[attr-defined]


def test_keystone() -> None:
    r = keystone_error(Unauthorized("The request you have made requires authentication."))
    assert r.status_code == 401
    assert body(r) == {"error": {"code": 401, "title": "Unauthorized",
                                 "message": "The request you have made requires authentication."}}
    assert "Keystone uri=" in r.headers["www-authenticate"]


def test_nova_and_cinder() -> None:
    r = nova_error(NotFound("Server x could not be found."))
    assert r.status_code == 404
    assert body(r) == {"itemNotFound": {"code": 404, "message": "Server x could not be found."}}
    assert body(nova_error(BadRequest("bad")))["badRequest"]["code"] == 400
    assert "conflictingRequest" in body(nova_error(Conflict("busy")))


def test_glance() -> None:
    r = glance_error(NotFound("No image found with ID x"))
    assert body(r) == {"message": "No image found with ID x", "code": "404 Not Found", "title": "Not Found"}


def test_neutron() -> None:
    r = neutron_error(NotFound("Network x could not be found."))
    assert r.status_code == 404
    assert body(r) == {"NeutronError": {"type": "NotFound", "message": "Network x could not be found.",
                                        "detail": ""}}
