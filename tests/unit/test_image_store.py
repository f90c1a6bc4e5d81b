"""The file store: temporary names, rename on commit, nothing left on abort."""

from __future__ import annotations

from pathlib import Path

import pytest

from onestack.image.data import DataSink, TooLarge
from onestack.image.formats import Inspector
from onestack.image.stores import FileStore


def test_commit_renames_into_place(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "images")
    w = store.writer("abc")
    w.write(b"hello ")
    assert not (tmp_path / "images" / "abc").exists()
    w.write(b"world")
    location = w.commit()
    assert location == (tmp_path / "images" / "abc").as_uri()
    with store.open(location) as fh:
        assert fh.read() == b"hello world"
    assert [p.name for p in (tmp_path / "images").iterdir()] == ["abc"]


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "images")
    w = store.writer("abc")
    w.write(b"x" * 1000)
    w.abort()
    w.abort()
    assert list((tmp_path / "images").iterdir()) == []


def test_sweep_removes_temporaries_of_a_crash(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "images")
    store.writer("a").write(b"partial")  # never committed nor aborted: a crash
    assert store.sweep() == 1
    assert list((tmp_path / "images").iterdir()) == []


def test_locations_outside_the_store_are_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "images")
    with pytest.raises(ValueError):
        store.open((tmp_path / "elsewhere").as_uri())
    with pytest.raises(ValueError):
        store.writer("../escape")


def test_delete_is_idempotent(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "images")
    w = store.writer("a")
    w.write(b"1")
    loc = w.commit()
    store.delete(loc)
    store.delete(loc)
    assert not store.exists(loc)


def test_adopt_moves_a_staged_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "images")
    staged = tmp_path / "images" / "staging-file"
    staged.write_bytes(b"data")
    loc = store.adopt("img", staged)
    assert not staged.exists()
    with store.open(loc) as fh:
        assert fh.read() == b"data"


def test_sink_hashes_and_enforces_the_limit(tmp_path: Path) -> None:
    import hashlib

    store = FileStore(tmp_path / "images")
    sink = DataSink(store.writer("a"), Inspector("raw"), limit=10)
    sink.write(b"12345")
    sink.write(b"67890")
    got = sink.finish()
    assert got.size == 10 and got.virtual_size == 10
    assert got.checksum == hashlib.md5(b"1234567890").hexdigest()
    assert got.os_hash_value == hashlib.sha512(b"1234567890").hexdigest()
    with pytest.raises(TooLarge):
        sink.write(b"1")
    sink.abort()
    assert list((tmp_path / "images").iterdir()) == []
