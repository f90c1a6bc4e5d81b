"""In-process cloud for API tests: real database and tokens, no server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from onestack.app import Cloud, build_app, build_cloud, prepare
from onestack.config import load_settings
from tests.conftest import TEST_ENV


class Api:
    """A TestClient plus the admin/demo credentials of the bootstrap."""

    def __init__(self, client: TestClient, cloud: Cloud) -> None:
        self.client = client
        self.cloud = cloud
        clouds = yaml.safe_load((cloud.state_dir / "clouds.yaml").read_text())["clouds"]
        self.admin_auth = clouds["onestack-admin"]["auth"]
        self.demo_auth = clouds["onestack"]["auth"]
        self._tokens: dict[str, str] = {}

    def password_token(
        self, username: str, password: str, *, project: str | None = None,
        domain: str = "Default", system: bool = False,
    ) -> str:
        identity = {
            "methods": ["password"],
            "password": {"user": {"name": username, "domain": {"name": domain}, "password": password}},
        }
        auth: dict[str, Any] = {"identity": identity}
        if project:
            auth["scope"] = {"project": {"name": project, "domain": {"name": domain}}}
        elif system:
            auth["scope"] = {"system": {"all": True}}
        r = self.client.post("/identity/v3/auth/tokens", json={"auth": auth})
        assert r.status_code == 201, r.text
        return str(r.headers["X-Subject-Token"])

    def token(self, who: str = "admin") -> str:
        if who not in self._tokens:
            a = self.admin_auth if who == "admin" else self.demo_auth
            self._tokens[who] = self.password_token(a["username"], a["password"], project=a["project_name"])
        return self._tokens[who]

    def headers(self, who: str = "admin") -> dict[str, str]:
        return {"X-Auth-Token": self.token(who)}

    def request(self, method: str, path: str, who: str = "admin", **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}) or {})
        if who:
            headers.setdefault("X-Auth-Token", self.token(who))
        return self.client.request(method, path, headers=headers, **kw)

    def get(self, path: str, who: str = "admin", **kw: Any) -> Any:
        return self.request("GET", path, who, **kw)

    def post(self, path: str, who: str = "admin", **kw: Any) -> Any:
        return self.request("POST", path, who, **kw)

    def patch(self, path: str, who: str = "admin", **kw: Any) -> Any:
        return self.request("PATCH", path, who, **kw)

    def put(self, path: str, who: str = "admin", **kw: Any) -> Any:
        return self.request("PUT", path, who, **kw)

    def delete(self, path: str, who: str = "admin", **kw: Any) -> Any:
        return self.request("DELETE", path, who, **kw)


def make_api(state_dir: Path, database_url: str = "", extra_env: dict[str, str] | None = None) -> Iterator[Api]:
    env = {**TEST_ENV, **(extra_env or {})}
    if database_url:
        env["ONESTACK_DATABASE_URL"] = database_url
    settings = load_settings(state_dir, env=env)
    cloud = build_cloud(settings)
    prepare(cloud)
    with TestClient(build_app(cloud), base_url="http://127.0.0.1:8800") as client:
        yield Api(client, cloud)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One cloud per test module (bootstrap costs a few hundred ms), on SQLite
    and again on PostgreSQL."""
    url = ""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server").new_database()
    yield from make_api(tmp_path_factory.mktemp("api") / "state", url)


@pytest.fixture
def fresh_api(tmp_path: Path) -> Iterator[Api]:
    """A cloud of the test's own, for tests that change global state."""
    yield from make_api(tmp_path / "state")
