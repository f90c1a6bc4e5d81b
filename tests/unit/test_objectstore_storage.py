"""A device's object files and the container databases, without HTTP."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from onestack.objectstore.storage.dbs import AccountBroker, ContainerBroker
from onestack.objectstore.storage.diskfile import Conflict, Device

H = "0123456789abcdef0123456789abcdef"


def meta(ts: str, body: bytes) -> dict[str, str]:
    import hashlib

    return {"name": "/a/c/o", "X-Timestamp": ts, "Content-Length": str(len(body)),
            "ETag": hashlib.md5(body).hexdigest(), "Content-Type": "text/plain"}


def test_write_read_and_last_write_wins(tmp_path: Path) -> None:
    dev = Device(str(tmp_path / "d1"))
    dev.put_whole(1, H, "0000000001.00000", b"first", meta("0000000001.00000", b"first"))
    dev.put_whole(1, H, "0000000003.00000", b"third", meta("0000000003.00000", b"third"))
    with pytest.raises(Conflict):
        dev.put_whole(1, H, "0000000002.00000", b"late", meta("0000000002.00000", b"late"))
    found = dev.lookup(1, H)
    assert found.status == 200 and found.obj is not None
    assert b"".join(found.obj.iter_range(0, found.obj.length)) == b"third"
    found.obj.close()
    files = os.listdir(tmp_path / "d1" / "objects" / "1" / H[-3:] / H)
    assert files == ["0000000003.00000.data"]
    assert os.listdir(tmp_path / "d1" / "tmp") == []


def test_tombstone_and_metadata_files(tmp_path: Path) -> None:
    dev = Device(str(tmp_path / "d1"))
    dev.put_whole(1, H, "0000000001.00000", b"x", meta("0000000001.00000", b"x"))
    dev.write_small(1, H, "0000000002.00000", ".meta", {"X-Object-Meta-A": "1"})
    found = dev.lookup(1, H)
    assert found.metadata["X-Object-Meta-A"] == "1" and found.metadata["ETag"]
    assert found.obj is not None
    found.obj.close()
    dev.write_small(1, H, "0000000003.00000", ".ts", {"X-Timestamp": "0000000003.00000"})
    found = dev.lookup(1, H)
    assert found.status == 404 and found.timestamp == "0000000003.00000"
    with pytest.raises(Conflict):
        dev.write_small(1, H, "0000000002.50000", ".ts", {})


def test_damaged_file_is_quarantined(tmp_path: Path) -> None:
    dev = Device(str(tmp_path / "d1"))
    dev.put_whole(1, H, "0000000001.00000", b"x", meta("0000000001.00000", b"x"))
    path = tmp_path / "d1" / "objects" / "1" / H[-3:] / H / "0000000001.00000.data"
    path.write_bytes(path.read_bytes()[:-3])  # a torn trailer
    assert dev.lookup(1, H).status == 404
    assert len(list((tmp_path / "d1" / "quarantined" / "objects").rglob("*.data.*"))) == 1


def test_aborted_write_leaves_nothing(tmp_path: Path) -> None:
    dev = Device(str(tmp_path / "d1"))
    w = dev.writer(1, H, "0000000001.00000")
    w.write(b"partial")
    w.abort()
    assert dev.lookup(1, H).status == 404
    assert os.listdir(tmp_path / "d1" / "tmp") == []


def container(tmp_path: Path) -> ContainerBroker:
    b = ContainerBroker(str(tmp_path / "c.db"))
    assert b.initialize("a", "c", "0000000001.00000")
    return b


def test_container_listing_walk(tmp_path: Path) -> None:
    b = container(tmp_path)
    for i, name in enumerate(["a", "b/1", "b/2", "c", "d/x/y"]):
        b.put_object(name, f"00000000{i + 10}.00000", i, "text/plain", "e")
    names = [r[0] for r in b.list_objects(100)]
    assert names == ["a", "b/1", "b/2", "c", "d/x/y"]
    assert [r[0] for r in b.list_objects(100, delimiter="/")] == ["a", "b/", "c", "d/"]
    assert [r[0] for r in b.list_objects(100, delimiter="/", reverse=True)] == \
        ["d/", "c", "b/", "a"]
    assert [r[0] for r in b.list_objects(2, marker="a")] == ["b/1", "b/2"]
    assert [r[0] for r in b.list_objects(100, prefix="b/")] == ["b/1", "b/2"]
    assert [r[0] for r in b.list_objects(100, end_marker="b/2")] == ["a", "b/1"]
    assert [r[0] for r in b.list_objects(1, delimiter="/", marker="b/")] == ["c"]


def test_container_merge_newest_wins_and_counts(tmp_path: Path) -> None:
    b = container(tmp_path)
    b.put_object("o", "0000000005.00000", 10, "t", "e1")
    b.put_object("o", "0000000004.00000", 99, "t", "old")  # older: ignored
    b.put_object("p", "0000000005.00000", 5, "t", "e2")
    b.put_object("p", "0000000006.00000", 0, "", "", 1)  # deleted
    info = b.stat()
    assert info["item_count"] == 1 and info["bytes_used"] == 10
    b.merge_items([("o", "0000000005.00000", 10, "t", "e1", 0)])  # replayed: no change
    assert b.stat()["item_count"] == 1


def test_concurrent_pending_updates_keep_counts_exact(tmp_path: Path) -> None:
    b = container(tmp_path)

    def writer(k: int) -> None:
        for i in range(200):
            b.put_object(f"o{k}-{i}", f"00000000{10 + k}.{i:05d}", 3, "t", "e")

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    info = b.stat()
    assert info["item_count"] == 800 and info["bytes_used"] == 2400
    assert len(b.list_objects(10000)) == 800


def test_account_reports(tmp_path: Path) -> None:
    b = AccountBroker(str(tmp_path / "a.db"))
    b.initialize("a", None, "0000000001.00000")
    b.put_container("c1", "0000000002.00000", "0000000000.00000", 3, 30)
    b.put_container("c2", "0000000002.00000", "0000000000.00000", 1, 1)
    b.put_container("c1", "0000000002.00000", "0000000000.00000", 5, 50)  # a newer report
    info = b.stat()
    assert info["item_count"] == 2 and info["object_count"] == 6 and info["bytes_used"] == 51
    b.put_container("c2", "0000000002.00000", "0000000003.00000", 0, 0)  # deleted
    info = b.stat()
    assert info["item_count"] == 1 and info["object_count"] == 5
    assert [r[0] for r in b.list_containers(10)] == ["c1"]


def test_metadata_merge_by_timestamp(tmp_path: Path) -> None:
    b = container(tmp_path)
    b.update_metadata({"x-container-meta-a": ("1", "0000000005.00000")})
    b.update_metadata({"x-container-meta-a": ("0", "0000000004.00000")})  # older
    assert b.stat()["metadata"]["x-container-meta-a"] == ["1", "0000000005.00000"]


def test_a_post_changes_type_and_time_but_not_data_in_either_order(tmp_path: Path) -> None:
    """Each part of a row wins by its own time (Swift's update_new_item_from_existing):
    the data (size, etag) by the PUT's, the content type by the POST's."""
    t1, t2, t3 = "0000000001.00000", "0000000002.00000", "0000000003.00000"
    for order in ("put first", "post first"):
        b = ContainerBroker(str(tmp_path / f"{order}.db"))
        b.initialize("a", "c", t1)
        put_row = ("o", t1, 5, "text/old", "e1", 0, "", "")
        post_row = ("o", t1, 5, "text/new", "e1", 0, t2, t2)  # a POST at t2 of the t1 data
        newer_put = ("o", t3, 7, "text/newest", "e3", 0, "", "")
        rows = [put_row, post_row] if order == "put first" else [post_row, put_row]
        for row in rows:
            b.put_object(*row)
        assert b.list_objects(10) == [("o", t2, 5, "text/new", "e1")], order
        b.put_object(*newer_put)
        b.put_object(*post_row)  # a late POST update of older data changes nothing
        assert b.list_objects(10) == [("o", t3, 7, "text/newest", "e3")], order
        assert b.stat()["bytes_used"] == 7


def test_late_post_keeps_data_of_a_newer_put(tmp_path: Path) -> None:
    b = container(tmp_path)
    b.put_object("o", "0000000003.00000", 7, "text/put", "e3")
    b.put_object("o", "0000000001.00000", 5, "text/post", "e1", 0, "0000000004.00000",
                 "0000000004.00000")  # a POST at 4 that saw the data of 1
    assert b.list_objects(10) == [("o", "0000000004.00000", 7, "text/post", "e3")]


def test_changed_rows_move_past_the_replicators_sync_point(tmp_path: Path) -> None:
    b = container(tmp_path)
    b.put_object("o", "0000000001.00000", 1, "t", "e")
    b.put_object("p", "0000000001.00000", 1, "t", "e")
    b.stat()  # merged
    point = b.max_row()
    b.put_object("o", "0000000002.00000", 0, "", "", 1)  # deleted after the sync point
    rows = b.rows_since(point)  # (ROWID, the ROWID column, name, ...): as the replicator reads
    assert [(r[2], r[7]) for r in rows] == [("o", 1)]
    other = container(tmp_path / "other")
    other.put_object("o", "0000000001.00000", 1, "t", "e")
    other.merge_items([tuple(r[1:]) for r in rows])
    assert other.stat()["item_count"] == 0


def test_databases_of_the_older_schema_are_upgraded(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    b = ContainerBroker(str(path))
    b.initialize("a", "c", "0000000001.00000")
    b.close()
    conn = sqlite3.connect(path)  # as the first release made them
    conn.execute("ALTER TABLE object DROP COLUMN ctype_timestamp")
    conn.execute("ALTER TABLE object DROP COLUMN meta_timestamp")
    conn.execute("INSERT INTO object (name, created_at, size, content_type, etag) VALUES "
                 "('old', '0000000002.00000', 3, 'text/plain;swift_bytes=9', 'e')")
    conn.commit()
    conn.close()
    with open(f"{path}.pending", "wb") as f:  # an update queued by the older release
        f.write(b'["queued","0000000003.00000",1,"t","e",0]\n')
    b = ContainerBroker(str(path))
    assert b.list_objects(10) == [("old", "0000000002.00000", 3, "text/plain;swift_bytes=9", "e"),
                                  ("queued", "0000000003.00000", 1, "t", "e")]
    b.put_object("old", "0000000002.00000", 3, "text/posted", "e", 0, "0000000004.00000",
                 "0000000004.00000")
    assert b.list_objects(1)[0][3] == "text/posted"


def test_reserved_names_are_listed_only_when_asked(tmp_path: Path) -> None:
    b = container(tmp_path)
    for name in ("\x00versions\x00x", "a", "b"):
        b.put_object(name, "0000000001.00000", 1, "t", "e")
    cols = "name"
    assert [r[0] for r in b.list_names(10, "", "", "", "", False, cols)] == ["a", "b"]
    assert [r[0] for r in b.list_names(10, "", "", "", "", True, cols)] == ["b", "a"]
    assert [r[0] for r in b.list_names(10, "", "", "", "", False, cols, reserved=True)] == [
        "\x00versions\x00x", "a", "b"]
    assert b.stat()["item_count"] == 3  # counted as Swift counts them


def test_a_post_keeps_the_data_files_slo_flag_and_sysmeta(tmp_path: Path) -> None:
    dev = Device(str(tmp_path / "d1"))
    data = dict(meta("0000000001.00000", b"[]"), **{
        "X-Static-Large-Object": "True", "X-Object-Sysmeta-Slo-Size": "10",
        "X-Object-Meta-Old": "1"})
    dev.put_whole(1, H, "0000000001.00000", b"[]", data)
    dev.write_small(1, H, "0000000002.00000", ".meta", {
        "X-Object-Meta-New": "2", "X-Timestamp": "0000000002.00000",
        "X-Static-Large-Object": "False", "X-Object-Sysmeta-Slo-Size": "0"})
    found = dev.lookup(1, H)
    assert found.obj is not None
    found.obj.close()
    md = found.metadata
    assert md["X-Static-Large-Object"] == "True" and md["X-Object-Sysmeta-Slo-Size"] == "10"
    assert md["X-Object-Meta-New"] == "2" and "X-Object-Meta-Old" not in md
