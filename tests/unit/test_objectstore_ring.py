"""The consistent-hash ring: balance, failure domains, minimal movement, files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from onestack.objectstore.ring import NONE_DEV, Ring, RingBuilder, RingError, hash_path


def builder(devices: int = 3, part_power: int = 8, replicas: int = 3,
            zones: bool = True) -> RingBuilder:
    b = RingBuilder(part_power, replicas, min_part_hours=0)
    for i in range(devices):
        b.add_device(f"d{i + 1}", zone=i + 1 if zones else 1)
    b.rebalance(seed=1)
    return b


def test_every_partition_has_distinct_devices_in_distinct_zones() -> None:
    b = builder(devices=5)
    for p in range(b.parts):
        devs = [b.assignment[r][p] for r in range(b.replicas)]
        assert NONE_DEV not in devs
        assert len(set(devs)) == 3
        zones = {b.device(d).zone for d in devs}
        assert len(zones) == 3


def test_weights_are_respected() -> None:
    b = RingBuilder(10, 3, min_part_hours=0)
    for i, w in enumerate((100, 100, 100, 100, 150)):
        b.add_device(f"d{i}", weight=w, zone=i + 1)
    b.rebalance(seed=2)
    counts = Counter(d for row in b.assignment for d in row)
    want = 3 * 1024 * 150 / 550
    assert abs(counts[4] - want) / want < 0.02
    assert b.balance() < 2.0


def test_adding_a_device_moves_only_its_share() -> None:
    b = builder(devices=4, part_power=10)
    before = [list(row) for row in b.assignment]
    b.add_device("d5", zone=5)
    moved = b.rebalance(seed=3)
    share = 3 * 1024 / 5
    assert share * 0.9 <= moved <= share * 1.2
    changed = sum(1 for r in range(3) for p in range(1024) if before[r][p] != b.assignment[r][p])
    assert changed == moved


def test_removed_device_is_replaced_everywhere() -> None:
    b = builder(devices=4)
    b.remove_device(1)
    b.rebalance(seed=4)
    assert all(d != 1 for row in b.assignment for d in row)


def test_not_enough_devices_is_an_error() -> None:
    b = RingBuilder(4, 3)
    b.add_device("d1")
    b.add_device("d2")
    with pytest.raises(RingError, match="not enough devices"):
        b.rebalance()
    with pytest.raises(RingError, match="already in the ring"):
        b.add_device("d1")


def test_ring_file_round_trip_and_lookups(tmp_path: Path) -> None:
    b = builder(devices=4)
    path = tmp_path / "object.ring.json"
    b.save(path)
    loaded = RingBuilder.load(path)
    assert [list(r) for r in loaded.assignment] == [list(r) for r in b.assignment]
    ring = Ring(loaded, b"pre", b"suf")
    part, nodes = ring.get_nodes("AUTH_a", "c", "o")
    assert part == int(hash_path(b"pre", b"suf", "AUTH_a", "c", "o")[:8], 16) >> (32 - 8)
    assert len({n.id for n in nodes}) == 3
    handoffs = list(ring.get_more_nodes(part))
    assert len(handoffs) == 1 and handoffs[0].id not in {n.id for n in nodes}
    assert ring.get_part("AUTH_a", "c", "o") == part  # stable


def test_unbalanced_ring_is_refused() -> None:
    b = RingBuilder(4, 3)
    with pytest.raises(RingError, match="not balanced"):
        Ring(b, b"", b"")
