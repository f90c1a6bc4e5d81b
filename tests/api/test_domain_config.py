"""Domain-specific configuration: /v3/domains/{id}/config and the defaults."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api._auth_helpers import keystone_error as _error

V3 = "/identity/v3"
CUSTOM = {
    "identity": {"driver": "ldap"},
    "ldap": {"url": "ldap://myldap.com:389/", "user_tree_dn": "ou=Users,dc=my_new_root,dc=org"},
}


def _domain(api: Any) -> str:
    r = api.post(f"{V3}/domains", json={"domain": {"name": f"dc-{uuid.uuid4().hex[:8]}"}})
    assert r.status_code == 201, r.text
    return str(r.json()["domain"]["id"])


@pytest.fixture(scope="module")
def domain_id(api: Any) -> str:
    return _domain(api)


def test_default_config_lists_identity_and_ldap(api: Any) -> None:
    config = api.get(f"{V3}/domains/config/default").json()["config"]
    assert config["identity"] == {"driver": "sql", "list_limit": None}
    assert "password" not in config["ldap"]
    assert config["ldap"]["url"] == "ldap://localhost"
    group = api.get(f"{V3}/domains/config/ldap/default").json()["config"]
    assert set(group) == {"ldap"} and group["ldap"] == config["ldap"]
    for option in config["ldap"]:
        r = api.get(f"{V3}/domains/config/ldap/{option}/default")
        assert r.status_code == 200 and option in r.json()["config"]


def test_default_config_rejects_unknown_or_sensitive(api: Any) -> None:
    _error(api.get(f"{V3}/domains/config/nova/default"), 403)
    _error(api.get(f"{V3}/domains/config/ldap/bogus/default"), 403)
    err = _error(api.get(f"{V3}/domains/config/ldap/password/default"), 403)
    assert "password" in err["message"]


def test_create_show_groups_and_options(api: Any) -> None:
    domain_id = _domain(api)
    r = api.put(f"{V3}/domains/{domain_id}/config", json={"config": CUSTOM})
    assert r.status_code == 201, r.text
    assert r.json()["config"] == CUSTOM
    assert api.get(f"{V3}/domains/{domain_id}/config").json()["config"] == CUSTOM
    for group, options in CUSTOM.items():
        got = api.get(f"{V3}/domains/{domain_id}/config/{group}").json()["config"]
        assert got == {group: options}
        for option, value in options.items():
            got = api.get(f"{V3}/domains/{domain_id}/config/{group}/{option}").json()["config"]
            assert got == {option: value}
    # A second PUT replaces the whole config and answers 200.
    r = api.put(f"{V3}/domains/{domain_id}/config", json={"config": {"identity": {"driver": "sql"}}})
    assert r.status_code == 200 and r.json()["config"] == {"identity": {"driver": "sql"}}
    _error(api.get(f"{V3}/domains/{domain_id}/config/ldap"), 404)


def test_sensitive_option_is_stored_but_never_returned(api: Any) -> None:
    domain_id = _domain(api)
    config = {"ldap": {"url": "ldap://x", "password": "s3cret"}}
    r = api.put(f"{V3}/domains/{domain_id}/config", json={"config": config})
    assert r.status_code == 201
    assert "s3cret" not in r.text
    assert api.get(f"{V3}/domains/{domain_id}/config").json()["config"] == {"ldap": {"url": "ldap://x"}}
    _error(api.get(f"{V3}/domains/{domain_id}/config/ldap/password"), 404)
    # The sensitive option exists, so updating or deleting it works.
    r = api.patch(f"{V3}/domains/{domain_id}/config/ldap/password", json={"config": {"password": "other"}})
    assert r.status_code == 200 and "other" not in r.text
    assert api.delete(f"{V3}/domains/{domain_id}/config/ldap/password").status_code == 204
    _error(api.delete(f"{V3}/domains/{domain_id}/config/ldap/password"), 404)


def test_update_whole_group_and_option(api: Any) -> None:
    domain_id = _domain(api)
    api.put(f"{V3}/domains/{domain_id}/config", json={"config": CUSTOM})
    new = {"ldap": {"url": "ldap://new"}}
    r = api.patch(f"{V3}/domains/{domain_id}/config", json={"config": new})
    assert r.status_code == 200
    assert r.json()["config"]["ldap"] == {"url": "ldap://new", "user_tree_dn": CUSTOM["ldap"]["user_tree_dn"]}
    r = api.patch(f"{V3}/domains/{domain_id}/config/identity",
                  json={"config": {"identity": {"driver": "d2", "list_limit": 5}}})
    assert r.status_code == 200 and r.json()["config"]["identity"] == {"driver": "d2", "list_limit": 5}
    r = api.patch(f"{V3}/domains/{domain_id}/config/identity/driver", json={"config": {"driver": "d3"}})
    assert r.status_code == 200 and r.json()["config"]["identity"]["driver"] == "d3"
    # Group in the URL and in the body must agree; only that group.
    _error(api.patch(f"{V3}/domains/{domain_id}/config/identity", json={"config": new}), 403)
    _error(api.patch(f"{V3}/domains/{domain_id}/config/identity/driver",
                     json={"config": {"list_limit": 3}}), 403)
    # Updating a group/option the domain does not have is 404.
    other = _domain(api)
    api.put(f"{V3}/domains/{other}/config", json={"config": {"identity": {"driver": "sql"}}})
    _error(api.patch(f"{V3}/domains/{other}/config/ldap", json={"config": new}), 404)


def test_delete_option_group_and_all(api: Any) -> None:
    domain_id = _domain(api)
    api.put(f"{V3}/domains/{domain_id}/config", json={"config": CUSTOM})
    assert api.delete(f"{V3}/domains/{domain_id}/config/ldap/url").status_code == 204
    _error(api.get(f"{V3}/domains/{domain_id}/config/ldap/url"), 404)
    assert api.delete(f"{V3}/domains/{domain_id}/config/identity").status_code == 204
    _error(api.get(f"{V3}/domains/{domain_id}/config/identity"), 404)
    _error(api.delete(f"{V3}/domains/{domain_id}/config/identity"), 404)
    assert api.delete(f"{V3}/domains/{domain_id}/config").status_code == 204
    err = _error(api.get(f"{V3}/domains/{domain_id}/config"), 404)
    assert "any options" in err["message"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"config": {}}, 403),
        ({}, 403),
        ({"config": {"nova": {"x": 1}}}, 403),
        ({"config": {"ldap": {"bogus": 1}}}, 403),
        ({"config": {"ldap": {}}}, 403),
        ({"config": {"ldap": "url"}}, 403),
        ({"config": "x"}, 400),
        ([1, 2], 400),
    ],
)
def test_invalid_config_is_rejected_and_nothing_written(api: Any, domain_id: str, body: Any, status: int) -> None:
    _error(api.put(f"{V3}/domains/{domain_id}/config", json=body), status)
    _error(api.get(f"{V3}/domains/{domain_id}/config"), 404)


def test_malformed_json_is_400(api: Any, domain_id: str) -> None:
    r = api.put(f"{V3}/domains/{domain_id}/config", content=b"{nope",
                headers={"Content-Type": "application/json"})
    _error(r, 400)


def test_unknown_domain_is_404(api: Any) -> None:
    _error(api.put(f"{V3}/domains/{uuid.uuid4().hex}/config", json={"config": CUSTOM}), 404)
    _error(api.get(f"{V3}/domains/{uuid.uuid4().hex}/config"), 404)


def test_invalid_group_on_read_is_403(api: Any, domain_id: str) -> None:
    _error(api.get(f"{V3}/domains/{domain_id}/config/nova"), 403)
    _error(api.get(f"{V3}/domains/{domain_id}/config/ldap/bogus"), 403)


def test_security_compliance_readable_for_default_domain_only(api: Any, domain_id: str) -> None:
    r = api.get(f"{V3}/domains/default/config/security_compliance", who="demo")
    assert r.status_code == 200, r.text
    assert set(r.json()["config"]["security_compliance"]) == {"password_regex", "password_regex_description"}
    r = api.get(f"{V3}/domains/default/config/security_compliance/password_regex", who="demo")
    assert r.status_code == 200 and "password_regex" in r.json()["config"]
    _error(api.get(f"{V3}/domains/default/config/security_compliance/lockout_duration"), 403)
    _error(api.get(f"{V3}/domains/{domain_id}/config/security_compliance"), 403)


def test_demo_user_cannot_read_or_write(api: Any, domain_id: str) -> None:
    _error(api.put(f"{V3}/domains/{domain_id}/config", json={"config": CUSTOM}, who="demo"), 403)
    _error(api.get(f"{V3}/domains/{domain_id}/config", who="demo"), 403)
    _error(api.patch(f"{V3}/domains/{domain_id}/config", json={"config": CUSTOM}, who="demo"), 403)
    _error(api.delete(f"{V3}/domains/{domain_id}/config", who="demo"), 403)
    _error(api.get(f"{V3}/domains/config/default", who="demo"), 403)


def test_no_token_is_401(api: Any, domain_id: str) -> None:
    _error(api.get(f"{V3}/domains/{domain_id}/config", who=None), 401)
