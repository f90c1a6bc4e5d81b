"""The real `openstack` CLI driving the Image service of a running onestack."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.clients.test_identity_cli import osc, osc_json, unique
from tests.conftest import CloudInfo
from tests.unit.test_image_formats import GiB, make_qcow2

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def qcow2_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "disk.qcow2"
    path.write_bytes(make_qcow2(2 * GiB) + os.urandom(3 << 20))
    return path


def sha512(path: Path) -> str:
    return hashlib.sha512(path.read_bytes()).hexdigest()


def demo_project(info: CloudInfo) -> str:
    return str(osc_json(info, "token", "issue", cloud="onestack")["project_id"])


def image_names(info: CloudInfo, cloud: str) -> list[str]:
    return [i["Name"] for i in osc_json(info, "image", "list", cloud=cloud)]


def props(image: dict[str, Any]) -> dict[str, Any]:
    return dict(image.get("properties") or {})


def test_public_image_life_cycle(running_cloud: CloudInfo, qcow2_file: Path, tmp_path: Path) -> None:
    info = running_cloud
    name = unique("cli-public")
    img = osc_json(info, "image", "create", "--file", str(qcow2_file), "--disk-format", "qcow2",
                   "--container-format", "bare", "--public", name)
    assert img["status"] == "active" and img["visibility"] == "public"
    shown = osc_json(info, "image", "show", name)
    assert shown["size"] == qcow2_file.stat().st_size and shown["virtual_size"] == 2 * GiB
    assert shown["checksum"] == hashlib.md5(qcow2_file.read_bytes()).hexdigest()
    assert name in image_names(info, "onestack-admin")
    assert name in image_names(info, "onestack")

    osc(info, "image", "set", "--property", "os_distro=onestack", "--property", "hw_rng_model=virtio", name)
    assert props(osc_json(info, "image", "show", name))["os_distro"] == "onestack"
    osc(info, "image", "unset", "--property", "os_distro", name)
    p = props(osc_json(info, "image", "show", name))
    assert "os_distro" not in p and p["hw_rng_model"] == "virtio"

    out = tmp_path / "saved.qcow2"
    osc(info, "image", "save", "--file", str(out), name)
    assert sha512(out) == sha512(qcow2_file)
    saved_by_demo = tmp_path / "demo.qcow2"
    osc(info, "image", "save", "--file", str(saved_by_demo), img["id"], cloud="onestack")
    assert sha512(saved_by_demo) == sha512(qcow2_file)

    # the demo user cannot change or delete someone else's public image
    r = osc(info, "image", "set", "--name", "stolen", img["id"], cloud="onestack", check=False)
    assert r.returncode != 0
    r = osc(info, "image", "delete", img["id"], cloud="onestack", check=False)
    assert r.returncode != 0
    assert osc_json(info, "image", "show", img["id"])["name"] == name

    # deactivate / reactivate (admin)
    osc(info, "image", "set", "--deactivate", name)
    assert osc_json(info, "image", "show", name)["status"] == "deactivated"
    r = osc(info, "image", "save", "--file", str(tmp_path / "no.img"), img["id"], cloud="onestack", check=False)
    assert r.returncode != 0
    # (the SDK ignores the 403 of the action; the image must stay deactivated)
    osc(info, "image", "set", "--activate", img["id"], cloud="onestack", check=False)
    assert osc_json(info, "image", "show", name)["status"] == "deactivated"
    osc(info, "image", "set", "--activate", name)
    assert osc_json(info, "image", "show", name)["status"] == "active"

    osc(info, "image", "delete", name)
    assert name not in image_names(info, "onestack-admin")


def test_private_image_is_invisible_to_demo(running_cloud: CloudInfo, qcow2_file: Path) -> None:
    info = running_cloud
    name = unique("cli-private")
    img = osc_json(info, "image", "create", "--file", str(qcow2_file), "--disk-format", "qcow2",
                   "--private", name)
    assert img["visibility"] == "private"
    assert name not in image_names(info, "onestack")
    r = osc(info, "image", "show", img["id"], cloud="onestack", check=False)
    assert r.returncode != 0
    osc(info, "image", "delete", img["id"])


def test_share_with_demo_and_accept(running_cloud: CloudInfo, qcow2_file: Path, tmp_path: Path) -> None:
    info = running_cloud
    demo = demo_project(info)
    name = unique("cli-shared")
    img = osc_json(info, "image", "create", "--file", str(qcow2_file), "--disk-format", "qcow2",
                   "--shared", name)
    assert name not in image_names(info, "onestack")
    member = osc_json(info, "image", "add", "project", img["id"], demo)
    assert member["status"] == "pending"
    assert name not in image_names(info, "onestack")  # pending members do not list it

    osc(info, "image", "set", "--accept", img["id"], cloud="onestack")
    assert name in image_names(info, "onestack")
    members = osc_json(info, "image", "member", "list", img["id"])
    assert [(m["Member ID"], m["Status"]) for m in members] == [(demo, "accepted")]
    out = tmp_path / "shared.qcow2"
    osc(info, "image", "save", "--file", str(out), img["id"], cloud="onestack")
    assert sha512(out) == sha512(qcow2_file)

    osc(info, "image", "set", "--reject", img["id"], cloud="onestack")
    assert name not in image_names(info, "onestack")

    osc(info, "image", "remove", "project", img["id"], demo)
    r = osc(info, "image", "show", img["id"], cloud="onestack", check=False)
    assert r.returncode != 0
    osc(info, "image", "delete", img["id"])


def test_demo_manages_its_own_images(running_cloud: CloudInfo, qcow2_file: Path) -> None:
    info = running_cloud
    name = unique("cli-demo")
    r = osc(info, "image", "create", "--file", str(qcow2_file), "--disk-format", "qcow2", "--public",
            name, cloud="onestack", check=False)
    assert r.returncode != 0  # only admins publicize
    img = osc_json(info, "image", "create", "--file", str(qcow2_file), "--disk-format", "qcow2",
                   "--tag", "mine", name, cloud="onestack")
    assert img["status"] == "active" and img["tags"] == ["mine"]
    assert name in image_names(info, "onestack")
    osc(info, "image", "set", "--protected", name, cloud="onestack")
    assert osc(info, "image", "delete", name, cloud="onestack", check=False).returncode != 0
    osc(info, "image", "set", "--unprotected", name, cloud="onestack")
    osc(info, "image", "delete", name, cloud="onestack")
    assert name not in image_names(info, "onestack")


def test_raw_declared_qcow2_is_refused(running_cloud: CloudInfo, tmp_path: Path) -> None:
    info = running_cloud
    raw = tmp_path / "not-a-qcow2.img"
    raw.write_bytes(os.urandom(1 << 20))
    name = unique("cli-liar")
    r = osc(info, "image", "create", "--file", str(raw), "--disk-format", "qcow2", name, check=False)
    assert r.returncode != 0
    assert "Image disk_format qcow2 does not match stream data raw" in r.stderr, r.stderr
    # the SDK deletes the image it created when the upload fails; nothing became active
    left = osc_json(info, "image", "list", "--name", name, "--long")
    assert all(i["Status"] == "queued" for i in left)
    for i in left:
        osc(info, "image", "delete", i["ID"])


def test_create_through_interoperable_import(running_cloud: CloudInfo, qcow2_file: Path) -> None:
    """`image create --import` stages the data and imports it with glance-direct."""
    import time

    info = running_cloud
    name = unique("cli-import")
    osc(info, "image", "create", "--import", "--file", str(qcow2_file), "--disk-format", "qcow2", name)
    deadline = time.monotonic() + 60
    while (shown := osc_json(info, "image", "show", name))["status"] != "active":
        assert shown["status"] in ("uploading", "importing"), shown["status"]
        assert time.monotonic() < deadline
        time.sleep(1)
    assert shown["checksum"] == hashlib.md5(qcow2_file.read_bytes()).hexdigest()
    assert shown["virtual_size"] == 2 * GiB
    osc(info, "image", "delete", name)
