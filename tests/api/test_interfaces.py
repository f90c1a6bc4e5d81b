"""The service interfaces other services call in-process: ``identity.interface``
(token validation, project and user look-ups) and ``image.interface`` (what
Compute's boot and snapshot use), checked against what the REST API shows."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from onestack.common.auth import AuthContext
from onestack.common.errors import Conflict, NotFound, Unauthorized, UnsupportedMediaType
from onestack.identity import interface as identity
from onestack.image import interface as image
from tests.api.conftest import Api
from tests.api.test_image import V2, create, project_of
from tests.unit.test_image_formats import make_qcow2

ID = "/identity/v3"


def context(api: Api, who: str = "admin") -> AuthContext:
    return identity.validate_token(api.cloud, api.token(who))


async def chunked(data: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def store_files(api: Api) -> list[str]:
    return sorted(p.name for p in (api.cloud.state_dir / "images").iterdir() if p.is_file())


# --------------------------------------------------------------------------- identity


def test_validate_token(api: Api) -> None:
    ctx = context(api, "demo")
    assert ctx.user_name == "demo" and ctx.project_id == project_of(api, "demo")
    assert "member" in ctx.roles
    with pytest.raises(Unauthorized) as err:
        identity.validate_token(api.cloud, "not-a-token")
    assert err.value.status == 401


def test_projects_by_id_and_name(api: Api) -> None:
    admin_id = project_of(api, "admin")
    ref = identity.get_project(api.cloud, admin_id)
    assert ref == identity.ProjectRef(admin_id, "admin", "default", True)
    assert identity.admin_project_id(api.cloud) == admin_id
    demo = identity.find_project(api.cloud, "demo")
    assert demo is not None and demo.id == project_of(api, "demo")
    assert identity.find_project(api.cloud, "demo", domain_id="elsewhere") is None
    assert identity.project_id(api.cloud, "demo") == demo.id
    assert identity.project_id(api.cloud, "no-such-name") is None
    assert identity.get_project(api.cloud, "no-such-project") is None
    assert identity.get_project(api.cloud, "default") is None  # a domain is not a project


def test_a_disabled_project_is_seen_disabled(api: Api) -> None:
    r = api.post(f"{ID}/projects", json={"project": {"name": "iface-disabled", "enabled": False}})
    assert r.status_code == 201, r.text
    pid = r.json()["project"]["id"]
    assert identity.get_project(api.cloud, pid) == identity.ProjectRef(pid, "iface-disabled", "default", False)
    assert api.patch(f"{ID}/projects/{pid}", json={"project": {"enabled": True}}).status_code == 200
    ref = identity.get_project(api.cloud, pid)
    assert ref is not None and ref.enabled


def test_users_by_id(api: Api) -> None:
    ctx = context(api)
    assert identity.get_user(api.cloud, ctx.user_id) == identity.UserRef(ctx.user_id, "admin", "default", True)
    assert identity.get_user(api.cloud, "no-such-user") is None


# --------------------------------------------------------------------------- image


def upload(api: Api, ctx: AuthContext, image_id: str, chunks: AsyncIterator[bytes], **kw: Any) -> Any:
    async def main() -> Any:
        return await image.upload_image_data(api.cloud, ctx, image_id, chunks, **kw)

    return anyio.run(main)


def test_snapshot_sequence_create_then_upload(api: Api) -> None:
    """What Compute's createImage does: a queued image, then its data streamed in."""
    ctx = context(api, "demo")
    data = make_qcow2(1 << 30) + os.urandom(3 << 20)
    made = image.create_image(api.cloud, ctx, {"name": "snap", "disk_format": "qcow2",
                                                "container_format": "bare"})
    assert made["status"] == "queued" and made["owner"] == ctx.project_id
    got = upload(api, ctx, made["id"], chunked(data), size=len(data))
    assert got["status"] == "active" and got["size"] == len(data) and got["virtual_size"] == 1 << 30
    assert got["checksum"] == hashlib.md5(data).hexdigest()
    assert got["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert image.get_image(api.cloud, ctx, made["id"]) == api.get(f"{V2}/images/{made['id']}", "demo").json()
    r = api.get(f"{V2}/images/{made['id']}/file", "demo")
    assert r.status_code == 200 and r.content == data
    image.delete_image(api.cloud, ctx, made["id"])
    assert api.get(f"{V2}/images/{made['id']}", "demo").status_code == 404


def test_upload_errors_are_the_apis(api: Api) -> None:
    ctx = context(api, "demo")
    done = create(api, "demo")
    upload(api, ctx, done["id"], chunked(b"once"))
    with pytest.raises(Conflict) as conflict:
        upload(api, ctx, done["id"], chunked(b"twice"))
    assert conflict.value.message == "Image status transition from active to saving is not allowed"
    private = create(api, "admin", visibility="private")
    with pytest.raises(NotFound) as missing:
        upload(api, ctx, private["id"], chunked(b"x"))
    assert missing.value.message == f"No image found with ID {private['id']}"
    with pytest.raises(NotFound):
        image.get_image(api.cloud, ctx, private["id"])


def test_bad_data_keeps_nothing(api: Api) -> None:
    ctx = context(api)
    img = create(api, disk_format="qcow2")
    before = store_files(api)
    with pytest.raises(UnsupportedMediaType) as err:  # Glance's 415
        upload(api, ctx, img["id"], chunked(os.urandom(300_000)))
    assert err.value.message == "Image disk_format qcow2 does not match stream data raw"
    got = api.get(f"{V2}/images/{img['id']}").json()
    assert got["status"] == "queued" and got["size"] is None and got["checksum"] is None
    assert store_files(api) == before


def test_a_failing_source_keeps_nothing(api: Api) -> None:
    """The bytes' source fails half-way (the guest's disk could not be read)."""
    ctx = context(api)
    img = create(api)
    before = store_files(api)

    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(6 << 20)
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"):
        upload(api, ctx, img["id"], broken())
    assert api.get(f"{V2}/images/{img['id']}").json()["status"] == "queued"
    assert store_files(api) == before
    assert not any(n.startswith(".tmp") for n in os.listdir(api.cloud.state_dir / "images"))
    # the image takes data afterwards
    assert upload(api, ctx, img["id"], chunked(b"fine"))["status"] == "active"
