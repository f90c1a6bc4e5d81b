"""A service call whose write unit lost a race is run again behind the API
(``common/web.run``): the client sees the answer of the run that won, and if
the attempts run out, the service's own 409 - never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from onestack.common.db import RetryUnit
from onestack.identity.service import projects
from onestack.image.service import images
from tests.api.conftest import Api


def test_a_project_update_that_lost_twice_is_answered_by_the_third_run(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = api.post("/identity/v3/projects", json={"project": {"name": "race-1"}}).json()["project"]["id"]
    real = projects.update_project
    runs: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        if len(runs) < 3:
            raise RetryUnit("lost a race (test)")
        return real(*args, **kwargs)

    monkeypatch.setattr(projects, "update_project", flaky)
    r = api.patch(f"/identity/v3/projects/{pid}", json={"project": {"description": "third time"}})
    assert r.status_code == 200, r.text
    assert r.json()["project"]["description"] == "third time"
    assert len(runs) == 3


def test_a_call_that_keeps_losing_gets_keystones_409(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def always(*_args: Any, **_kwargs: Any) -> Any:
        raise RetryUnit("lost a race (test)")

    monkeypatch.setattr(projects, "create_project", always)
    r = api.post("/identity/v3/projects", json={"project": {"name": "race-2"}})
    assert r.status_code == 409
    assert r.json() == {"error": {
        "code": 409, "title": "Conflict",
        "message": "The request conflicted with concurrent changes to the same resources; please retry it.",
    }}


def test_a_call_that_keeps_losing_gets_glances_409(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def always(*_args: Any, **_kwargs: Any) -> Any:
        raise RetryUnit("lost a race (test)")

    monkeypatch.setattr(images, "create_image", always)
    r = api.post("/image/v2/images", json={"name": "race-3"})
    assert r.status_code == 409
    assert r.json() == {
        "message": "The request conflicted with concurrent changes to the same resources; please retry it.",
        "code": "409 Conflict", "title": "Conflict",
    }
