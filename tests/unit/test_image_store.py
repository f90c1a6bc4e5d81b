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


def test_commit_is_durable_before_it_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data is fsynced before the rename, the directory after it."""
    import os

    from onestack.image.stores import file as file_store

    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        calls.append(("replace", str(dst)))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(file_store.os, "fsync", fsync)
    monkeypatch.setattr(file_store.os, "replace", replace)
    store = FileStore(tmp_path / "images")
    w = store.writer("abc")
    w.write(b"data")
    tmp_name = str(w.tmp)
    w.commit()
    final, directory = str(tmp_path / "images" / "abc"), str(tmp_path / "images")
    assert calls == [("fsync", tmp_name), ("replace", final), ("fsync", directory)]


@pytest.mark.parametrize("end", ["commit", "abort"])
def test_long_writes_are_flushed_as_they_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            end: str) -> None:
    """Every SYNC_EVERY bytes a background fdatasync runs, so the commit's
    fsync has little left to write; the thread ends with the writer."""
    import os
    import threading

    from onestack.image.stores import file as file_store

    synced = threading.Event()
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        real(fd)
        synced.set()

    monkeypatch.setattr(file_store, "SYNC_EVERY", 1000)
    monkeypatch.setattr(file_store.os, "fdatasync", fdatasync)
    store = FileStore(tmp_path / "images")
    w = store.writer("abc")
    w.write(b"x" * 999)
    assert not synced.wait(0.2)  # not yet SYNC_EVERY bytes
    w.write(b"x" * 2)
    assert synced.wait(5)
    getattr(w, end)()
    assert not [t for t in threading.enumerate() if t.name == "image-sync"]
    names = [p.name for p in (tmp_path / "images").iterdir()]
    assert names == (["abc"] if end == "commit" else [])
