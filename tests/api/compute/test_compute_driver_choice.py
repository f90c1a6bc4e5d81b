"""Which driver this host's agent runs: QEMU by default, and what a cloud
that cannot run it says and does (no agent, no host reported, a boot fails
with Nova's fault; the banner says why)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.api.compute.support import S, V, make_image
from tests.api.conftest import make_api


def test_qemu_is_the_default_and_fake_only_when_chosen(tmp_path: Path) -> None:
    from onestack.config import load_settings

    assert load_settings(tmp_path / "a", env={}).compute.driver == "qemu"
    chosen = load_settings(tmp_path / "b", env={"ONESTACK_COMPUTE_DRIVER": "fake"})
    assert chosen.compute.driver == "fake"


@pytest.mark.parametrize(("root", "qemu", "reason"), [
    (False, "/usr/bin/qemu-system-x86_64", "the QEMU driver needs root (taps on the data plane's bridges)"),
    (True, None, "the QEMU driver needs qemu-system-x86_64 (scripts/setup installs it)"),
])
def test_without_root_or_qemu_no_agent_runs_and_a_boot_says_no_valid_host(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: bool, qemu: str | None, reason: str) -> None:
    from onestack.host import kvm

    monkeypatch.setattr("os.geteuid", lambda: 0 if root else 1000)
    monkeypatch.setattr(kvm, "qemu_binary", lambda: qemu)
    for api in make_api(tmp_path / "state", extra_env={"ONESTACK_COMPUTE_DRIVER": "qemu"}):
        compute = api.cloud.service("compute")
        assert compute.driver_unavailable() == reason
        assert compute.banner_lines() == [
            f"  compute:  no guests on this host: {reason} (the fake driver: [compute] driver = \"fake\")"]
        image = make_image(api, tmp_path)
        r = api.post(S, json={"server": {"name": "vm", "imageRef": image, "flavorRef": "42",
                                         "networks": "none"}}, headers=V)
        assert r.status_code == 202, r.text
        sid = r.json()["server"]["id"]
        deadline = time.monotonic() + 20
        while (server := api.get(f"{S}/{sid}", headers=V).json()["server"])["status"] == "BUILD":
            assert time.monotonic() < deadline, server
            time.sleep(0.05)
        assert server["status"] == "ERROR"
        assert server["fault"]["message"] == "No valid host was found. There are not enough hosts available."
        assert api.get("/compute/v2.1/os-hypervisors", headers=V).json()["hypervisors"] == []
        assert compute.agent_error == reason


def test_the_fake_driver_says_so(tmp_path: Path) -> None:
    for api in make_api(tmp_path / "state"):
        assert api.cloud.service("compute").banner_lines() == [
            "  compute:  fake driver: servers go ACTIVE in memory, no guest runs"]
