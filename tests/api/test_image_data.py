"""Image data: upload and download streaming, ranges, format safety, quotas."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.guest.build import image_path
from tests.api.conftest import Api
from tests.api.test_image import OCTET, V2, assert_glance_error, create, project_of
from tests.unit.image_samples import (
    GiB,
    make_iso,
    make_mbr,
    make_qcow2,
    make_qed,
    make_vhd,
    make_vhdx,
    make_vmdk,
    make_vmdk_text,
    partition,
    protective_gpt,
    vmdk_descriptor,
    vmdk_footer,
)


def store_files(api: Api) -> list[str]:
    d = api.cloud.state_dir / "images"
    return sorted(p.name for p in d.iterdir() if p.is_file())


def upload(api: Api, image_id: str, data: Any, who: str = "admin", **kw: Any) -> Any:
    return api.put(f"{V2}/images/{image_id}/file", who, content=data, headers=OCTET, **kw)


def status(api: Api, image_id: str) -> str:
    return str(api.get(f"{V2}/images/{image_id}").json()["status"])


def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_upload_and_download_round_trip(api: Api) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    img = create(api, name="roundtrip")
    assert upload(api, img["id"], data).status_code == 204
    got = api.get(f"{V2}/images/{img['id']}").json()
    assert got["status"] == "active" and got["size"] == len(data) and got["virtual_size"] == len(data)
    assert got["checksum"] == hashlib.md5(data).hexdigest()
    assert got["os_hash_algo"] == "sha512" and got["os_hash_value"] == hashlib.sha512(data).hexdigest()
    r = api.get(f"{V2}/images/{img['id']}/file")
    assert r.status_code == 200 and r.content == data
    assert r.headers["Content-MD5"] == got["checksum"]
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert int(r.headers["Content-Length"]) == len(data)
    assert img["id"] in store_files(api)


def test_chunked_upload(api: Api) -> None:
    data = os.urandom(5 * 1024 * 1024)
    img = create(api)
    r = upload(api, img["id"], chunks(data))
    assert r.status_code == 204, r.text
    assert api.get(f"{V2}/images/{img['id']}").json()["os_hash_value"] == hashlib.sha512(data).hexdigest()


def test_range_download(api: Api) -> None:
    data = bytes(range(256)) * 40
    img = create(api)
    upload(api, img["id"], data)
    url = f"{V2}/images/{img['id']}/file"
    r = api.get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = api.get(url, headers={"Range": "bytes=10000-"})
    assert r.status_code == 206 and r.content == data[10000:]
    r = api.get(url, headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == data[-5:]
    for bad in ("bytes=20000-", "bytes=9-2", "lines=1-2", "bytes=-0"):
        r = api.get(url, headers={"Range": bad})
        assert_glance_error(r, 416)
        assert r.headers["Content-Range"] == f"bytes */{len(data)}"


def test_download_of_an_image_without_data_is_204(api: Api) -> None:
    img = create(api)
    r = api.get(f"{V2}/images/{img['id']}/file")
    assert r.status_code == 204 and r.content == b""


def test_upload_needs_octet_stream(api: Api) -> None:
    img = create(api)
    r = api.put(f"{V2}/images/{img['id']}/file", content=b"x", headers={"Content-Type": "application/json"})
    assert_glance_error(r, 415)
    assert status(api, img["id"]) == "queued"


def test_upload_to_an_active_image_is_409(api: Api) -> None:
    img = create(api)
    assert upload(api, img["id"], b"first").status_code == 204
    assert_glance_error(upload(api, img["id"], b"second"), 409)
    assert api.get(f"{V2}/images/{img['id']}/file").content == b"first"


def test_upload_needs_formats(api: Api) -> None:
    r = api.post(f"{V2}/images", json={"name": "no-formats"})
    assert_glance_error(upload(api, r.json()["id"], b"data"), 400)
    assert status(api, r.json()["id"]) == "queued"


def test_upload_to_missing_or_foreign_image(api: Api) -> None:
    assert_glance_error(upload(api, str(uuid.uuid4()), b"x"), 404)
    public = create(api, visibility="public")
    assert_glance_error(upload(api, public["id"], b"x", who="demo"), 403)
    assert status(api, public["id"]) == "queued"


def test_qcow2_upload_reads_the_virtual_size(api: Api) -> None:
    img = create(api, disk_format="qcow2")
    data = make_qcow2(20 * GiB)
    assert upload(api, img["id"], data).status_code == 204
    got = api.get(f"{V2}/images/{img['id']}").json()
    assert got["virtual_size"] == 20 * GiB and got["size"] == len(data)


SAFETY = "Image failed safety checks"


def _mismatch(declared: str, found: str) -> str:
    return f"Image disk_format {declared} does not match stream data {found}"


# Each malicious (or mislabelled) sample, the disk_format it is uploaded as, and
# Glance's message. Every one is a 415 and leaves nothing behind.
MALICIOUS = [
    ("qcow2-backing-file", "qcow2", make_qcow2(backing_file=b"/etc/shadow"), SAFETY),
    ("qcow2-data-file", "qcow2", make_qcow2(incompatible=1 << 2), SAFETY),
    ("qcow2-unknown-feature", "qcow2", make_qcow2(incompatible=1 << 9), SAFETY),
    ("qcow2-as-raw", "raw", make_qcow2(), _mismatch("raw", "qcow2")),
    ("qcow2-as-iso", "iso", make_qcow2(), _mismatch("iso", "qcow2")),
    ("random-as-qcow2", "qcow2", os.urandom(200_000), _mismatch("qcow2", "raw")),
    ("short-as-qcow2", "qcow2", b"QFI", _mismatch("qcow2", "raw")),
    ("vmdk-monolithic-flat-etc-shadow", "vmdk", make_vmdk_text(), SAFETY),
    ("vmdk-monolithic-flat-as-raw", "raw", make_vmdk_text(), SAFETY),
    ("vmdk-sparse-external-extent", "vmdk",
     make_vmdk(vmdk_descriptor(extents=('RW 20480 SPARSE "disk.vmdk"', 'RW 2048 FLAT "victim" 0'))), SAFETY),
    ("vmdk-sparse-parent", "vmdk", make_vmdk(vmdk_descriptor(extra=('parentFileNameHint="/etc/shadow"',))),
     SAFETY),
    ("vmdk-bad-footer", "vmdk", make_vmdk(vmdk_descriptor("streamOptimized"), footer=vmdk_footer(eos_type=9)),
     SAFETY),
    ("vhd-as-raw", "raw", make_vhd(), _mismatch("raw", "vhd")),
    ("raw-as-vhd", "vhd", bytes(70_000), _mismatch("vhd", "raw")),
    ("vhdx-as-raw", "raw", make_vhdx(), _mismatch("raw", "vhdx")),
    ("broken-vhdx", "vhdx", make_vhdx(region_signature=b"xxxx"), _mismatch("vhdx", "raw")),
    ("iso-as-raw", "raw", make_iso(), _mismatch("raw", "iso")),
    ("iso-and-qcow2", "iso", make_qcow2(total=512) + make_iso()[512:], "Multiple formats detected: iso,qcow2"),
    ("mbr-bad-boot-flag", "raw", make_mbr(partition(boot=0x12)), SAFETY),
    ("mbr-no-partitions", "raw", make_mbr(), SAFETY),
    ("gpt-extra-partition", "raw", protective_gpt(partition()), SAFETY),
    ("qed", "raw", make_qed(), SAFETY),
    ("qcow2-in-an-ami", "ami", make_qcow2(), _mismatch("ami", "qcow2")),
]


@pytest.mark.parametrize(("disk_format", "data", "message"), [m[1:] for m in MALICIOUS],
                         ids=[m[0] for m in MALICIOUS])
def test_unsafe_or_mismatched_data_is_refused(api: Api, disk_format: str, data: bytes, message: str) -> None:
    img = create(api, disk_format=disk_format)
    before = store_files(api)
    r = upload(api, img["id"], data)
    assert r.status_code == 415, r.text
    assert r.json() == {"message": message, "code": "415 Unsupported Media Type", "title": "Unsupported Media Type"}
    got = api.get(f"{V2}/images/{img['id']}").json()
    assert got["status"] == "queued" and got["size"] is None and got["checksum"] is None
    assert got["virtual_size"] is None
    assert store_files(api) == before
    assert not any(n.startswith(".tmp") for n in os.listdir(api.cloud.state_dir / "images"))
    # a correct upload afterwards still works
    good = {"qcow2": make_qcow2(), "iso": make_iso(), "vmdk": make_vmdk(), "vhd": make_vhd(),
            "vhdx": make_vhdx()}.get(disk_format, b"\x00" * 0x9000)
    assert upload(api, img["id"], good).status_code == 204
    assert status(api, img["id"]) == "active"


@pytest.mark.parametrize(
    ("disk_format", "data", "virtual_size"),
    [
        ("vmdk", make_vmdk(sectors=4096), 4096 * 512),
        ("vmdk", make_vmdk(vmdk_descriptor("streamOptimized"), footer=vmdk_footer()), 20480 * 512),
        ("vhd", make_vhd(3 * GiB), 3 * GiB),
        ("vhdx", make_vhdx(5 * GiB), 5 * GiB),
        ("iso", make_iso(blocks=1000), 1000 * 2048),
        ("raw", make_mbr(partition()), 64 * 1024),  # a partitioned whole disk is raw
        ("ami", b"\x01" * 1000, None),  # not inspectable: no virtual size
    ],
    ids=["vmdk-sparse", "vmdk-stream-optimized", "vhd", "vhdx", "iso", "raw-partitioned", "ami"],
)
def test_good_images_of_each_format_are_accepted(api: Api, disk_format: str, data: bytes,
                                                 virtual_size: int | None) -> None:
    img = create(api, disk_format=disk_format)
    assert upload(api, img["id"], data).status_code == 204
    got = api.get(f"{V2}/images/{img['id']}").json()
    assert got["status"] == "active" and got["size"] == len(data) and got["virtual_size"] == virtual_size


def test_delete_removes_the_data(api: Api) -> None:
    img = create(api)
    upload(api, img["id"], b"bytes")
    assert img["id"] in store_files(api)
    assert api.delete(f"{V2}/images/{img['id']}").status_code == 204
    assert img["id"] not in store_files(api)


# --------------------------------------------------------------------------- quotas


@pytest.fixture
def quota(api: Api) -> Iterator[Any]:
    q = api.cloud.settings.image
    saved = (q.image_count_total, q.image_size_total, q.image_size_cap)
    yield q
    q.image_count_total, q.image_size_total, q.image_size_cap = saved


def test_size_cap(api: Api, quota: Any) -> None:
    quota.image_size_cap = 1000
    img = create(api)
    before = store_files(api)
    assert_glance_error(upload(api, img["id"], b"x" * 1001), 413)
    assert status(api, img["id"]) == "queued"
    # without Content-Length the limit applies while streaming
    r = upload(api, img["id"], chunks(b"y" * (9 << 20), 1 << 20))
    assert_glance_error(r, 413)
    assert status(api, img["id"]) == "queued"
    assert store_files(api) == before
    assert upload(api, img["id"], b"x" * 1000).status_code == 204


def test_project_size_quota(api: Api, quota: Any) -> None:
    demo = project_of(api, "demo")
    usage = api.get(f"{V2}/info/usage", "demo").json()["usage"]["image_size_total"]["usage"]
    quota.image_size_total = usage + 10_000
    first = create(api, "demo")
    assert upload(api, first["id"], b"a" * 6000, who="demo").status_code == 204
    second = create(api, "demo")
    r = upload(api, second["id"], b"b" * 6000, who="demo")
    assert_glance_error(r, 413)
    assert "image_size_total" in r.json()["message"]
    assert status(api, second["id"]) == "queued"
    assert upload(api, second["id"], b"b" * 4000, who="demo").status_code == 204
    assert api.get(f"{V2}/info/usage", "demo").json()["usage"]["image_size_total"]["limit"] == usage + 10_000
    assert all(i["owner"] == demo for i in (first, second))


def test_project_count_quota(api: Api, quota: Any) -> None:
    count = api.get(f"{V2}/info/usage", "demo").json()["usage"]["image_count_total"]["usage"]
    quota.image_count_total = count + 1
    create(api, "demo")
    r = api.post(f"{V2}/images", "demo", json={"name": "one too many"})
    assert_glance_error(r, 413)
    assert "image_count_total" in r.json()["message"]
    quota.image_count_total = count + 2
    assert create(api, "demo")["status"] == "queued"


# --------------------------------------------------------------------------- aborted uploads


def test_client_disconnect_leaves_no_partial_file(api: Api) -> None:
    """Drive the ASGI app directly: half a body, then the client goes away."""
    import anyio

    img = create(api)
    token = api.token("admin")
    app = api.client.app
    sent: list[dict[str, Any]] = []
    messages = [
        {"type": "http.request", "body": b"p" * (6 << 20), "more_body": True},
        {"type": "http.request", "body": b"q" * (1 << 20), "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await anyio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path = f"{V2}/images/{img['id']}/file"
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "server": ("127.0.0.1", 8800), "client": ("127.0.0.1", 5555),
        "headers": [(b"x-auth-token", token.encode()), (b"content-type", b"application/octet-stream"),
                    (b"transfer-encoding", b"chunked"), (b"host", b"127.0.0.1:8800")],
        "state": {},
    }

    async def main() -> None:
        with anyio.fail_after(30):
            await app(scope, receive, send)

    anyio.run(main)
    assert sent[0]["status"] == 400
    assert status(api, img["id"]) == "queued"
    names = os.listdir(api.cloud.state_dir / "images")
    assert img["id"] not in names and not any(n.startswith(".tmp") for n in names)


def test_restart_recovers_interrupted_uploads(fresh_api: Api) -> None:
    from onestack.image.models import Image
    from onestack.image.service import guest as service

    api = fresh_api
    img = create(api)
    with api.cloud.db.write() as s:
        row = s.get(Image, img["id"])
        assert row is not None
        row.status = "saving"
    svc = api.cloud.service("image")
    stale = Path(svc.file_store.directory) / f".tmp-{img['id']}-dead"
    stale.write_bytes(b"partial")
    svc.prepare()
    assert not stale.exists()
    assert status(api, img["id"]) == "queued"
    assert service.TEST_GUEST_NAME not in [i["name"] for i in api.get(f"{V2}/images").json()["images"]]


def test_test_guest_is_registered_once(fresh_api: Api) -> None:
    api = fresh_api
    guest = image_path(api.cloud.state_dir)
    guest.parent.mkdir(parents=True)
    data = make_qcow2(2 * GiB)
    guest.write_bytes(data)
    svc = api.cloud.service("image")
    svc.prepare()
    svc.prepare()
    found = api.get(f"{V2}/images?name=onestack-test-guest", "demo").json()["images"]
    assert len(found) == 1
    img = found[0]
    assert img["visibility"] == "public" and img["status"] == "active"
    assert img["disk_format"] == "qcow2" and img["container_format"] == "bare"
    assert img["virtual_size"] == 2 * GiB and img["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert img["owner"] == project_of(api, "admin")
    assert api.get(f"{V2}/images/{img['id']}/file", "demo").content == data


def test_image_deleted_during_upload_keeps_no_data(api: Api) -> None:
    """The image goes away while its bytes stream in: 410, and nothing stays in the store."""
    import anyio

    from onestack.image.service import images as service

    img = create(api)
    token = api.token("admin")
    ctx = api.cloud.validator.validate(token)  # type: ignore[union-attr]
    svc = api.cloud.service("image")
    sent: list[dict[str, Any]] = []
    step = {"n": 0}

    async def receive() -> dict[str, Any]:
        step["n"] += 1
        if step["n"] == 1:
            return {"type": "http.request", "body": b"a" * (5 << 20), "more_body": True}
        if step["n"] == 2:
            await anyio.to_thread.run_sync(service.delete_image, svc, ctx, img["id"])
            return {"type": "http.request", "body": b"b" * (1 << 20), "more_body": False}
        await anyio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path = f"{V2}/images/{img['id']}/file"
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "server": ("127.0.0.1", 8800), "client": ("127.0.0.1", 5555),
        "headers": [(b"x-auth-token", token.encode()), (b"content-type", b"application/octet-stream"),
                    (b"host", b"127.0.0.1:8800")],
        "state": {},
    }

    async def main() -> None:
        with anyio.fail_after(30):
            await api.client.app(scope, receive, send)

    anyio.run(main)
    assert sent[0]["status"] == 410
    assert_glance_error(api.get(f"{V2}/images/{img['id']}"), 404)
    names = os.listdir(api.cloud.state_dir / "images")
    assert img["id"] not in names and not any(n.startswith(".tmp") for n in names)


def test_test_guest_is_registered_with_its_kernel(fresh_api: Api) -> None:
    """The build's kernel and initramfs become aki/ari images the disk names,
    with its kernel command line: Compute boots it straight into its kernel."""
    from onestack.guest import boot_files

    api = fresh_api
    guest = image_path(api.cloud.state_dir)
    guest.parent.mkdir(parents=True)
    data = make_qcow2(GiB)
    guest.write_bytes(data)
    kernel, initrd, cmdline = boot_files(guest)
    kernel.write_bytes(b"\x7fELF" + b"k" * 5000)
    initrd.write_bytes(b"070701" + b"r" * 3000)
    cmdline.write_text("console=ttyS0 root=LABEL=onestack-root\n")
    svc = api.cloud.service("image")
    svc.prepare()
    svc.prepare()
    found = api.get(f"{V2}/images?name=onestack-test-guest", "demo").json()["images"]
    assert len(found) == 1
    img = found[0]
    assert img["os_command_line"] == "console=ttyS0 root=LABEL=onestack-root"
    k = api.get(f"{V2}/images/{img['kernel_id']}", "demo").json()
    r = api.get(f"{V2}/images/{img['ramdisk_id']}", "demo").json()
    assert (k["name"], k["disk_format"], k["container_format"], k["visibility"], k["status"]) \
        == ("onestack-test-guest-kernel", "aki", "aki", "public", "active")
    assert (r["name"], r["disk_format"], r["container_format"]) == (
        "onestack-test-guest-ramdisk", "ari", "ari")
    assert api.get(f"{V2}/images/{k['id']}/file", "demo").content == kernel.read_bytes()
    assert api.get(f"{V2}/images/{r['id']}/file", "demo").content == initrd.read_bytes()
    names = [i["name"] for i in api.get(f"{V2}/images", "admin").json()["images"]]
    assert sorted(n for n in names if n.startswith("onestack-test-guest")) == [
        "onestack-test-guest", "onestack-test-guest-kernel", "onestack-test-guest-ramdisk"]
