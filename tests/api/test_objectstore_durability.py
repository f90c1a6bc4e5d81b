"""Durability of the replicated store: a lost device, rotten bytes, nodes down,
container updates that could not be made. Each job runs one pass, directly."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.objectstore_helpers import Swift, make_swift


@pytest.fixture
def sw(tmp_path: Path) -> Iterator[Swift]:
    yield from make_swift(tmp_path / "state")


def replica_files(sw: Swift, container: str, obj: str) -> list[Path]:
    """The .data files of an object on every device."""
    ring = sw.service.cluster.object_ring
    account = sw.accounts["admin"]
    part = ring.get_part(account, container, obj)
    name_hash = ring.hash(account, container, obj)
    out = []
    for dev in ring.devs.values():
        d = sw.service.cluster.devices_root / dev.device / "objects" / str(part) / \
            name_hash[-3:] / name_hash
        if d.is_dir():
            out.extend(p for p in d.iterdir() if p.suffix == ".data")
    return out


def fill(sw: Swift, container: str, count: int) -> dict[str, bytes]:
    sw.req("PUT", f"/{container}")
    objects = {f"obj-{i}": os.urandom(100 + i * 37) for i in range(count)}
    for name, data in objects.items():
        assert sw.req("PUT", f"/{container}/{name}", content=data).status_code == 201
    return objects


def test_device_removed_objects_still_read_and_replicator_restores(sw: Swift) -> None:
    objects = fill(sw, "dur", 30)
    for name in objects:
        assert len(replica_files(sw, "dur", name)) == 3
    shutil.rmtree(sw.service.cluster.devices_root / "d2")  # a disk lost, replaced empty
    for name, data in objects.items():
        r = sw.req("GET", f"/dur/{name}")
        assert r.status_code == 200 and r.content == data
    assert sw.req("GET", "/dur?format=json").status_code == 200
    stats = sw.service.jobs.replicate()
    assert stats["objects_copied"] >= len(objects) and not stats["errors"]
    for name in objects:
        assert len(replica_files(sw, "dur", name)) == 3
    # the container and account databases came back on d2 too
    assert list((sw.service.cluster.devices_root / "d2" / "containers").rglob("*.db"))
    assert list((sw.service.cluster.devices_root / "d2" / "accounts").rglob("*.db"))
    again = sw.service.jobs.replicate()
    assert again["objects_copied"] == 0


def test_bit_rot_is_quarantined_and_repaired(sw: Swift) -> None:
    objects = fill(sw, "rot", 5)
    victim = replica_files(sw, "rot", "obj-3")[0]
    raw = bytearray(victim.read_bytes())
    raw[10] ^= 0x01
    victim.write_bytes(bytes(raw))
    stats = sw.service.jobs.audit(bytes_per_second=0)
    assert stats["quarantined"] == 1 and stats["checked"] == 15
    assert not victim.exists()
    quarantined = list(victim.parents[4].glob("quarantined/objects/*/*"))
    assert len(quarantined) == 1
    assert len(replica_files(sw, "rot", "obj-3")) == 2
    assert sw.req("GET", "/rot/obj-3").content == objects["obj-3"]
    sw.service.jobs.replicate()
    files = replica_files(sw, "rot", "obj-3")
    assert len(files) == 3
    md5 = hashlib.md5(objects["obj-3"]).hexdigest()
    for f in files:
        assert hashlib.md5(f.read_bytes()[:len(objects["obj-3"])]).hexdigest() == md5
    assert sw.service.jobs.audit(bytes_per_second=0)["quarantined"] == 0


def test_quorum_writes_and_reads_with_nodes_down(sw: Swift) -> None:
    sw.req("PUT", "/q")
    ring = sw.service.cluster.object_ring
    account = sw.accounts["admin"]
    client = sw.service.client
    part, nodes = ring.get_nodes(account, "q", "one-down")
    client.down = {nodes[0].id}
    try:
        r = sw.req("PUT", "/q/one-down", content=b"two of three")
        assert r.status_code == 201  # quorum: 2 of 3
        assert sw.req("GET", "/q/one-down").content == b"two of three"
        big = os.urandom(3 << 20)  # streamed path
        assert sw.req("PUT", "/q/big-one-down", content=big).status_code == 201
        part2, nodes2 = ring.get_nodes(account, "q", "two-down")
        client.down = {nodes2[0].id, nodes2[1].id}
        r = sw.req("PUT", "/q/two-down", content=b"x")
        assert r.status_code == 503
        assert r.content == (b"<html><h1>Service Unavailable</h1><p>The server is currently "
                             b"unavailable. Please try again at a later time.</p></html>")
    finally:
        client.down = set()
    assert len(replica_files(sw, "q", "one-down")) == 2
    sw.service.jobs.replicate()
    assert len(replica_files(sw, "q", "one-down")) == 3
    assert sw.req("GET", "/q/big-one-down").content == big
    # reads fall back: any one replica is enough
    _part, nodes = ring.get_nodes(account, "q", "one-down")
    client.down = {nodes[0].id, nodes[1].id}
    try:
        assert sw.req("GET", "/q/one-down").content == b"two of three"
    finally:
        client.down = set()


def test_handoffs_take_writes_and_hand_them_back(tmp_path: Path) -> None:
    env = {"ONESTACK_OBJECTSTORE_DEVICES": "4"}
    for sw in make_swift(tmp_path / "state", env):
        sw.req("PUT", "/h")
        ring = sw.service.cluster.object_ring
        assert len(ring.devs) == 4
        account = sw.accounts["admin"]
        part, nodes = ring.get_nodes(account, "h", "o")
        handoff = next(ring.get_more_nodes(part))
        sw.service.client.down = {nodes[0].id}
        try:
            assert sw.req("PUT", "/h/o", content=b"handed off").status_code == 201
        finally:
            sw.service.client.down = set()
        devices = {p.parents[4].name for p in replica_files(sw, "h", "o")}
        assert handoff.device in devices and nodes[0].device not in devices
        stats = sw.service.jobs.replicate()
        assert stats["handoffs_removed"] >= 1
        devices = {p.parents[4].name for p in replica_files(sw, "h", "o")}
        assert devices == {n.device for n in nodes}


def test_container_updates_that_failed_are_made_by_the_updater(sw: Swift) -> None:
    sw.req("PUT", "/upd")
    server = sw.service.server
    real = server.send_update
    server.send_update = lambda target, update: False  # every container replica "down"
    try:
        assert sw.req("PUT", "/upd/o", content=b"x").status_code == 201
    finally:
        server.send_update = real
    assert sw.req("GET", "/upd?format=json").json() == []
    pending = list(sw.service.cluster.devices_root.glob("*/async_pending/*/*"))
    assert len(pending) == 3
    stats = sw.service.jobs.update()
    assert stats["pending_sent"] == 3
    assert [o["name"] for o in sw.req("GET", "/upd?format=json").json()] == ["o"]
    assert not list(sw.service.cluster.devices_root.glob("*/async_pending/*/*"))
    sw.service.proxy.cache._d.clear()
    listing = {c["name"]: c for c in sw.req("GET", "?format=json").json()}
    assert listing["upd"]["count"] == 1 and listing["upd"]["bytes"] == 1


def test_concurrent_puts_keep_container_totals_right(sw: Swift) -> None:
    import concurrent.futures

    sw.req("PUT", "/conc")

    def put(i: int) -> int:
        return int(sw.req("PUT", f"/conc/o{i % 40}", content=b"x" * (i % 7 + 1)).status_code)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(put, range(200))) == {201}
    head = sw.req("HEAD", "/conc")
    listing = sw.req("GET", "/conc?format=json").json()
    assert head.headers["x-container-object-count"] == str(len(listing)) == "40"
    assert int(head.headers["x-container-bytes-used"]) == sum(o["bytes"] for o in listing)
