"""Keystone's [security_compliance] options and the self-service password change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from onestack.common.ids import utcnow
from onestack.identity.models import Password
from tests.api._auth_helpers import grant, login, make_project, make_user, valid
from tests.api.conftest import Api, make_api


def _cloud(tmp_path: Path, **identity: Any) -> Iterator[Api]:
    state = tmp_path / "state"
    state.mkdir(parents=True)
    lines = ["[identity]"]
    for key, value in identity.items():
        lines.append(f"{key} = {value!r}".replace("'", '"') if isinstance(value, str) else
                     f"{key} = {str(value).lower() if isinstance(value, bool) else value}")
    (state / "onestack.toml").write_text("\n".join(lines) + "\n")
    yield from make_api(state)


def _change(api: Api, user_id: str, original: str, new: str) -> Any:
    return api.client.post(f"/identity/v3/users/{user_id}/password",
                           json={"user": {"original_password": original, "password": new}})


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Api]:
    yield from _cloud(tmp_path)


def test_self_service_change(plain: Api) -> None:
    api = plain
    user = make_user(api, password="first-pw")
    token = login(api, user).headers["X-Subject-Token"]
    r = _change(api, user["id"], "wrong", "second-pw")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == 401
    assert _change(api, user["id"], "first-pw", "second-pw").status_code == 204
    assert valid(api, token) == 404  # tokens revoked
    assert login(api, user, password="first-pw").status_code == 401
    assert login(api, user, password="second-pw").status_code == 201
    # bad bodies
    for body in ({}, {"user": {}}, {"user": {"password": "x"}}, {"user": {"password": 1, "original_password": "x"}}):
        r = api.client.post(f"/identity/v3/users/{user['id']}/password", json=body)
        assert r.status_code == 400, body
    assert _change(api, user["id"], "second-pw", "x" * 4097).status_code == 400
    assert _change(api, "nobody", "a", "b").status_code == 401
    locked = make_user(api, password="pw-locked", options={"lock_password": True})
    assert _change(api, locked["id"], "pw-locked", "pw-new").status_code == 403
    assert login(api, locked, password="pw-locked").status_code == 201


def test_lockout(tmp_path: Path) -> None:
    for api in _cloud(tmp_path, lockout_failure_attempts=2, lockout_duration=1800):
        user = make_user(api, password="right-pw")
        assert login(api, user, password="bad").status_code == 401
        assert login(api, user, password="bad").status_code == 401
        r = login(api, user)
        assert r.status_code == 401
        assert r.json()["error"]["message"] == f"The account is locked for user: {user['id']}."
        # the option exempts a user
        other = make_user(api, password="right-pw", options={"ignore_lockout_failure_attempts": True})
        for _ in range(3):
            assert login(api, other, password="bad").status_code == 401
        assert login(api, other).status_code == 201
        # a success before the limit resets the count
        third = make_user(api, password="right-pw")
        assert login(api, third, password="bad").status_code == 401
        assert login(api, third).status_code == 201
        assert login(api, third, password="bad").status_code == 401
        assert login(api, third).status_code == 201


def test_password_expiry(tmp_path: Path) -> None:
    for api in _cloud(tmp_path, password_expires_days=10):
        user = make_user(api, password="pw-one")
        r = login(api, user)
        assert r.status_code == 201
        assert r.json()["token"]["user"]["password_expires_at"] is not None
        exempt = make_user(api, password="pw-one", options={"ignore_password_expiry": True})
        assert login(api, exempt).json()["token"]["user"]["password_expires_at"] is None
        with api.cloud.db.write() as s:
            for row in s.scalars(select(Password).where(Password.user_id == user["id"])):
                row.expires_at = utcnow() - timedelta(seconds=1)
        api.cloud.service("identity").touch()
        r = login(api, user)
        assert r.status_code == 401
        assert r.json()["error"]["message"] == (
            f"The password is expired and needs to be changed for user: {user['id']}."
        )
        # an expired password can still be changed by its owner
        assert _change(api, user["id"], "pw-one", "pw-two").status_code == 204
        assert login(api, user, password="pw-two").status_code == 201


def test_change_password_upon_first_use(tmp_path: Path) -> None:
    for api in _cloud(tmp_path, change_password_upon_first_use=True):
        user = make_user(api, password="given-pw")
        r = login(api, user)
        assert r.status_code == 401
        assert "password is expired" in r.json()["error"]["message"]
        assert _change(api, user["id"], "given-pw", "own-pw").status_code == 204
        assert login(api, user, password="own-pw").status_code == 201
        # the bootstrap users are exempt
        assert api.token("admin")


def test_regex_history_and_minimum_age(tmp_path: Path) -> None:
    settings = {"password_regex": "^(?=.*\\d)(?=.*[a-zA-Z]).{7,}$",
                "password_regex_description": "at least 7 characters with a letter and a digit",
                "unique_last_password_count": 2, "minimum_password_age": 0}
    for api in _cloud(tmp_path, **settings):
        r = api.post("/identity/v3/users", json={"user": {"name": "weak", "password": "short"}})
        assert r.status_code == 400
        assert "at least 7 characters with a letter and a digit" in r.json()["error"]["message"]
        user = make_user(api, password="abcdef1")
        assert _change(api, user["id"], "abcdef1", "weak").status_code == 400
        assert _change(api, user["id"], "abcdef1", "abcdef1").status_code == 400  # history
        assert _change(api, user["id"], "abcdef1", "abcdef2").status_code == 204
        assert _change(api, user["id"], "abcdef2", "abcdef1").status_code == 400  # still in history
        assert _change(api, user["id"], "abcdef2", "abcdef3").status_code == 204
        # an administrator's reset is not bound by the history
        r = api.patch(f"/identity/v3/users/{user['id']}", json={"user": {"password": "abcdef3"}})
        assert r.status_code == 200, r.text
        assert login(api, user, password="abcdef3").status_code == 201


def test_minimum_password_age(tmp_path: Path) -> None:
    for api in _cloud(tmp_path, minimum_password_age=1):
        user = make_user(api, password="pw-one-1")
        assert _change(api, user["id"], "pw-one-1", "pw-two-2").status_code == 204
        r = _change(api, user["id"], "pw-two-2", "pw-three-3")
        assert r.status_code == 400
        assert "minimum password age" in r.json()["error"]["message"]
        # an administrator may still reset it
        r = api.patch(f"/identity/v3/users/{user['id']}", json={"user": {"password": "pw-admin-4"}})
        assert r.status_code == 200, r.text
        assert login(api, user, password="pw-admin-4").status_code == 201


def test_disabled_user_project_domain(plain: Api) -> None:
    api = plain
    project = make_project(api)
    user = make_user(api, password="pw-x")
    grant(api, user["id"], project["id"])
    token = login(api, user, project["id"]).headers["X-Subject-Token"]
    assert api.patch(f"/identity/v3/projects/{project['id']}", json={"project": {"enabled": False}}).status_code == 200
    assert valid(api, token) == 404
    assert login(api, user, project["id"]).status_code == 401
    assert api.patch(f"/identity/v3/users/{user['id']}", json={"user": {"enabled": False}}).status_code == 200
    r = login(api, user)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == f"The account is disabled for user: {user['id']}."
    # without the right password nothing about the account is revealed
    r = login(api, user, password="wrong")
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "The request you have made requires authentication."


def test_lockout_ends_after_its_duration(tmp_path: Path) -> None:
    import time

    for api in _cloud(tmp_path, lockout_failure_attempts=2, lockout_duration=1):
        user = make_user(api, password="right-pw")
        assert login(api, user).status_code == 201
        for _ in range(2):
            assert login(api, user, password="bad").status_code == 401
        assert login(api, user).status_code == 401  # locked
        time.sleep(1.2)
        assert login(api, user).status_code == 201  # unlocked, and the count starts again
        assert login(api, user, password="bad").status_code == 401
        assert login(api, user).status_code == 201
