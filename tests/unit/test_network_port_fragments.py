"""The store of rendered ports behind the port list: bounded, newest kept."""

from __future__ import annotations

from onestack.network.service.port_list import Fragments


def test_a_fragment_is_found_by_view_and_id_with_its_revision() -> None:
    store = Fragments(limit=10_000)
    store.put(("id", "name"), [("p1", 3, b'{"id":"p1","name":"a"}')])
    assert store.of(("id", "name"))["p1"] == (3, b'{"id":"p1","name":"a"}')
    assert "p1" not in store.of(("id",))
    store.put(("id", "name"), [("p1", 4, b'{"id":"p1","name":"bb"}')])
    assert store.of(("id", "name"))["p1"] == (4, b'{"id":"p1","name":"bb"}')
    assert store.size == len(b'{"id":"p1","name":"bb"}')


def test_past_its_limit_the_oldest_fragments_go_first() -> None:
    store = Fragments(limit=100 * 1000)
    for i in range(300):
        store.put(("id",), [(f"p{i}", 0, b"x" * 1000)])
    kept = store.of(("id",))
    assert store.size <= 100 * 1000
    assert store.size == sum(len(data) for _rev, data in kept.values())
    assert "p299" in kept and "p0" not in kept
    # a port put again is as new as the newest
    store.put(("id",), [(next(iter(kept)), 1, b"y" * 1000)])
    for i in range(300, 330):
        store.put(("id",), [(f"p{i}", 0, b"x" * 1000)])
    assert any(rev == 1 for rev, _data in store.of(("id",)).values())
    store.clear()
    assert store.size == 0 and store.of(("id",)) == {}
