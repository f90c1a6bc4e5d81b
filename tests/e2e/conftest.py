"""Fixtures for the end-to-end tests (root, QEMU, network namespaces).

* ``guest_image``: the test guest qcow2, built once (cached between runs by
  ``onestack image build-test``'s own stamp; ONESTACK_GUEST_IMAGE may name a
  ready image instead).
* ``guest_net``: an isolated network namespace with a bridge, DHCP and the
  means to serve metadata (``tests/e2e/testnet.py``), removed afterwards.
* Every end-to-end test is checked for leftovers: no network namespace of the
  tests' prefix and no process started from the test's directory may outlive it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.host import kvm, netns, procs, qemu_img
from tests.e2e import testnet


def e2e_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "end-to-end tests need root (network namespaces, taps)"
    if kvm.qemu_binary() is None:
        return "qemu-system-x86_64 is not installed (scripts/setup installs it)"
    if shutil.which("qemu-img") is None:
        return "qemu-img is not installed (scripts/setup installs it)"
    missing = testnet.missing_tools()
    if missing:
        return f"missing {', '.join(missing)} (scripts/setup installs them)"
    return None


@pytest.fixture(autouse=True)
def no_leftovers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """Fails a test that leaves a namespace or a process of its own behind."""
    if request.node.get_closest_marker("e2e") is None:
        yield
        return
    before = set(netns.names(testnet.OWN_PREFIX))
    yield
    left_ns = sorted(set(netns.names(testnet.OWN_PREFIX)) - before)
    left_procs = procs.find(str(tmp_path))
    for name in left_ns:  # clean up anyway, then fail
        netns.delete(name)
    for pid in left_procs:
        procs.terminate(pid, str(tmp_path))
    assert not left_ns, f"network namespaces left behind: {left_ns}"
    assert not left_procs, f"processes left behind: {left_procs}"


@pytest.fixture(scope="session")
def guest_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    ready = os.environ.get("ONESTACK_GUEST_IMAGE")
    if ready:
        return Path(ready)
    import hashlib

    from onestack.guest.build import (
        KERNEL_ARGS,
        BuildError,
        default_cache,
        ensure_image,
        source_digest,
    )

    # One image per recipe: checkouts whose guest differs (branches at work at
    # once) would otherwise rebuild one shared file in turn, under each other's
    # running guests (their overlays name it as their backing file).
    recipe = hashlib.sha256((source_digest() + KERNEL_ARGS).encode()).hexdigest()[:12]
    out = default_cache().parent / "guest" / recipe / "onestack-test-guest.qcow2"
    try:
        path, _built = ensure_image(out)
    except BuildError as exc:
        pytest.fail(f"building the test guest failed: {exc}")
    return path


@pytest.fixture
def guest_disk(guest_image: Path, tmp_path: Path) -> Path:
    """A copy-on-write overlay of the guest image, so each test boots a fresh disk."""
    disk = tmp_path / "disk.qcow2"
    qemu_img.run(qemu_img.create_argv(disk, "qcow2", backing=guest_image, backing_fmt="qcow2"))
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
