"""Fixtures for the end-to-end tests (root, QEMU, network namespaces).

* ``guest_image``: the test guest qcow2, built once (cached between runs by
  ``onestack image build-test``'s own stamp; ONESTACK_GUEST_IMAGE may name a
  ready image instead).
* ``guest_net``: an isolated network namespace with a bridge, DHCP and the
  means to serve metadata (``onestack.guest.testnet``), removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.guest import testnet, vm


def e2e_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "end-to-end tests need root (network namespaces, taps)"
    if vm.qemu_binary() is None:
        return "qemu-system-x86_64 is not installed (scripts/setup installs it)"
    if shutil.which("qemu-img") is None:
        return "qemu-img is not installed (scripts/setup installs it)"
    missing = testnet.missing_tools()
    if missing:
        return f"missing {', '.join(missing)} (scripts/setup installs them)"
    return None


@pytest.fixture(scope="session")
def guest_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    ready = os.environ.get("ONESTACK_GUEST_IMAGE")
    if ready:
        return Path(ready)
    from onestack.guest.build import BuildError, default_cache, ensure_image

    out = default_cache().parent / "guest" / "onestack-test-guest.qcow2"
    try:
        path, _built = ensure_image(out)
    except BuildError as exc:
        pytest.fail(f"building the test guest failed: {exc}")
    return path


@pytest.fixture
def guest_disk(guest_image: Path, tmp_path: Path) -> Path:
    """A copy-on-write overlay of the guest image, so each test boots a fresh disk."""
    disk = tmp_path / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(guest_image), "-F", "qcow2",
         str(disk)],
        check=True,
    )
    return disk


@pytest.fixture
def guest_net(tmp_path: Path) -> Iterator[testnet.TestNetwork]:
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    net = testnet.TestNetwork(tmp_path)
    try:
        yield net
    finally:
        net.close()
