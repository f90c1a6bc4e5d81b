"""kill -9 during 200 concurrent PUTs: after a restart every acknowledged object
reads back intact, and no object is half-written."""

from __future__ import annotations

import random
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.clients.test_up import password_token
from tests.conftest import start_cloud, stop_cloud

pytestmark = pytest.mark.clients

COUNT = 200


def body(i: int) -> bytes:
    size = 2_500_000 if i % 5 == 0 else 4096 + i * 13  # some stream, most are small
    return random.Random(i).randbytes(size)


def storage_url(info: object, url: str) -> tuple[str, dict[str, str]]:
    auth = info.cloud("onestack-admin")["auth"]  # type: ignore[attr-defined]
    r = password_token(url, auth)
    token = r.headers["X-Subject-Token"]
    project = r.json()["token"]["project"]["id"]
    return f"{url}/object-store/v1/AUTH_{project}", {"X-Auth-Token": token}


def test_kill_9_during_concurrent_puts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    info = start_cloud(state)
    base, headers = storage_url(info, info.url)
    assert httpx.put(f"{base}/crash", headers=headers).status_code == 201
    acked: set[int] = set()
    lock = threading.Lock()
    killed = threading.Event()

    def put(i: int) -> None:
        if killed.is_set():
            return
        try:
            r = httpx.put(f"{base}/crash/o{i:03d}", content=body(i), headers=headers,
                          timeout=60)
        except httpx.HTTPError:
            return
        if r.status_code == 201:
            with lock:
                acked.add(i)
                if len(acked) >= COUNT // 2 and not killed.is_set():
                    killed.set()
                    assert info.process is not None
                    info.process.send_signal(signal.SIGKILL)

    try:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, range(COUNT)))
        assert killed.is_set(), "the cloud was not killed"
        assert info.process is not None
        info.process.wait(timeout=30)
    finally:
        stop_cloud(info)
    assert len(acked) >= COUNT // 2

    again = start_cloud(state)
    try:
        base, headers = storage_url(again, again.url)
        for i in range(COUNT):
            r = httpx.get(f"{base}/crash/o{i:03d}", headers=headers, timeout=60)
            if i in acked:
                assert r.status_code == 200, f"acknowledged o{i:03d} is gone"
            if r.status_code == 200:
                assert r.content == body(i), f"o{i:03d} is not what was written"
            else:
                assert r.status_code == 404
        listing = httpx.get(f"{base}/crash", headers=headers).text.split()
        assert {f"o{i:03d}" for i in acked} <= set(listing)
        leftovers = list((state / "objectstore" / "devices").glob("*/tmp/*"))
        assert leftovers == []
    finally:
        stop_cloud(again)
