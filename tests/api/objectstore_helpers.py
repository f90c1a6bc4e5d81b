"""An in-process cloud for the Object Storage API tests (background jobs off:
tests run each pass themselves)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from onestack.app import build_app, build_cloud, prepare
from onestack.config import load_settings
from tests.api.conftest import Api
from tests.conftest import TEST_ENV

NO_JOBS = {
    "ONESTACK_OBJECTSTORE_REPLICATOR_INTERVAL": "0",
    "ONESTACK_OBJECTSTORE_UPDATER_INTERVAL": "0",
    "ONESTACK_OBJECTSTORE_EXPIRER_INTERVAL": "0",
    "ONESTACK_OBJECTSTORE_AUDITOR_INTERVAL": "0",
}


class Swift:
    """The Api plus the accounts of the admin and demo projects."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = api.client
        self.service = api.cloud.service("objectstore")
        self.accounts: dict[str, str] = {}
        for who in ("admin", "demo"):
            token = api.token(who)
            r = api.client.get("/identity/v3/auth/tokens",
                               headers={"X-Auth-Token": token, "X-Subject-Token": token})
            self.accounts[who] = f"AUTH_{r.json()['token']['project']['id']}"

    def url(self, path: str = "", who: str = "admin") -> str:
        return f"/object-store/v1/{self.accounts[who]}{path}"

    def req(self, method: str, path: str = "", who: str | None = "admin", *,
            account: str | None = None, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}) or {})
        if who is not None:
            headers.setdefault("X-Auth-Token", self.api.token(who))
        acct = account or self.accounts[who or "admin"]
        return self.client.request(method, f"/object-store/v1/{acct}{path}", headers=headers,
                                   **kw)


def make_swift(state_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[Swift]:
    env = {**TEST_ENV, **NO_JOBS, **(extra_env or {})}
    settings = load_settings(state_dir, env=env)
    cloud = build_cloud(settings)
    prepare(cloud)
    with TestClient(build_app(cloud), base_url="http://127.0.0.1:8800") as client:
        yield Swift(Api(client, cloud))
