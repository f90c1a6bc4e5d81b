"""The fixtures every compute API test module shares: ``env``, a cloud with an
image and networks to boot on (one per module, as each module's servers and
quotas are its own), and ``server``, one ACTIVE server deleted after the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.compute.support import Env, S, V, boot, setup, wait


@pytest.fixture(scope="module")
def env(api: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield setup(api, tmp_path_factory.mktemp("images"))


@pytest.fixture
def server(env: Env) -> Iterator[dict[str, Any]]:
    created = boot(env)
    yield wait(env, created["id"], "ACTIVE")
    env.api.delete(f"{S}/{created['id']}", headers=V)
