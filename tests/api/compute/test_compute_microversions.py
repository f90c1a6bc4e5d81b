"""Microversion changes of servers that clients notice: 2.73 lock reason,
2.79 ``delete_on_termination`` of volume attachments, 2.90 hostname, 2.96
``pinned_availability_zone`` (2.26 tags and 2.47 the embedded flavor are in
``test_compute_servers`` and ``test_compute_resources``; every microversion's
list entry against its show in ``test_compute_list``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete

from onestack.common.ids import utcnow
from onestack.compute.models import VolumeAttachment
from tests.api.compute.support import (
    Env,
    S,
    V,
    action,
    boot,
    nova_error,
    show,
    version,
    wait,
    wait_gone,
)


@pytest.fixture
def demo_server(env: Env) -> Iterator[str]:
    sid = str(boot(env, who="demo", name="mv-demo")["id"])
    wait(env, sid, "ACTIVE", who="demo")
    yield sid
    action(env, sid, {"unlock": None})
    env.api.delete(f"{S}/{sid}", headers=V)
    wait_gone(env, sid)


def listed(env: Env, sid: str, who: str, v: str) -> dict[str, Any]:
    r = env.api.get(f"{S}/detail", who=who, headers=version(v))
    assert r.status_code == 200, r.text
    (entry,) = [s for s in r.json()["servers"] if s["id"] == sid]
    return dict(entry)


def test_2_73_lock_reason(env: Env, demo_server: str) -> None:
    sid = demo_server
    # before 2.73 a reason in the body is ignored, as Nova ignores it
    r = action(env, sid, {"lock": {"locked_reason": "ignored"}}, headers=version("2.72"))
    assert r.status_code == 202, r.text
    shown = show(env, sid, who="demo", headers=version("2.73"))
    assert shown["locked"] is True and shown["locked_reason"] is None
    assert action(env, sid, {"unlock": None}).status_code == 202
    r = action(env, sid, {"lock": {"locked_reason": "x" * 256}}, headers=version("2.73"))
    assert nova_error(r, 400).startswith("Invalid input for field/attribute locked_reason.")
    r = action(env, sid, {"lock": {"locked_reason": "maintenance"}}, headers=version("2.73"))
    assert r.status_code == 202, r.text
    old = show(env, sid, who="demo", headers=version("2.72"))
    assert old["locked"] is True and "locked_reason" not in old
    for view in (show(env, sid, who="demo", headers=version("2.73")),
                 listed(env, sid, "demo", "2.73")):
        assert view["locked"] is True and view["locked_reason"] == "maintenance"
    assert "locked_reason" not in listed(env, sid, "demo", "2.72")
    def ids_at(v: str, query: str) -> set[str]:
        r = env.api.get(f"{S}{query}", who="demo", headers=version(v))
        assert r.status_code == 200, r.text
        return {s["id"] for s in r.json()["servers"]}

    assert sid in ids_at("2.73", "?locked=true") and sid not in ids_at("2.73", "?locked=false")
    # before 2.73 the filter is not one of a member's: dropped, as Nova drops it
    assert sid in ids_at("2.72", "?locked=false")


def test_2_79_delete_on_termination(env: Env, demo_server: str) -> None:
    """Block Storage is not served yet: the attachment row is written as the
    attach would write it, and every view of it is checked."""
    sid = demo_server
    volume = str(uuid.uuid4())
    with env.api.cloud.db.write() as s:
        s.add(VolumeAttachment(id=str(uuid.uuid4()), server_id=sid, volume_id=volume,
                               device="/dev/vdb", delete_on_termination=True,
                               created_at=utcnow()))
    try:
        base = f"{S}/{sid}/os-volume_attachments"
        old = env.api.get(base, who="demo", headers=version("2.78")).json()
        assert old == {"volumeAttachments": [{"id": volume, "device": "/dev/vdb",
                                              "serverId": sid, "volumeId": volume,
                                              "tag": None}]}
        new = env.api.get(f"{base}/{volume}", who="demo", headers=version("2.79")).json()
        assert new["volumeAttachment"]["delete_on_termination"] is True
        r = env.api.post(base, who="demo", headers=version("2.78"), json={
            "volumeAttachment": {"volumeId": volume, "delete_on_termination": True}})
        assert nova_error(r, 400).endswith(
            "Additional properties are not allowed ('delete_on_termination' was unexpected)")
        # the server's own views: the flag from 2.3, in show and in the list alike
        for v, expected in (("2.1", [{"id": volume}]),
                            ("2.3", [{"id": volume, "delete_on_termination": True}])):
            assert show(env, sid, who="demo", headers=version(v))[
                "os-extended-volumes:volumes_attached"] == expected, v
            assert listed(env, sid, "demo", v)["os-extended-volumes:volumes_attached"] == \
                expected, v
    finally:
        with env.api.cloud.db.write() as s:
            s.execute(delete(VolumeAttachment).where(VolumeAttachment.server_id == sid))


def test_2_90_hostname(env: Env) -> None:
    body = {"name": "mv host", "imageRef": env.image_id, "flavorRef": "42",
            "networks": "none", "hostname": "custom-host"}
    r = env.api.post(S, who="demo", json={"server": body}, headers=version("2.89"))
    assert nova_error(r, 400).endswith(
        "Additional properties are not allowed ('hostname' was unexpected)")
    r = env.api.post(S, who="demo", json={"server": body}, headers=version("2.90"))
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    try:
        wait(env, sid, "ACTIVE", who="demo")
        # a member sees the hostname from 2.90 (before, only admins: extended attributes)
        assert "OS-EXT-SRV-ATTR:hostname" not in show(env, sid, who="demo",
                                                      headers=version("2.89"))
        assert show(env, sid, who="demo", headers=version("2.90"))[
            "OS-EXT-SRV-ATTR:hostname"] == "custom-host"
        assert listed(env, sid, "demo", "2.90")["OS-EXT-SRV-ATTR:hostname"] == "custom-host"
        r = env.api.put(f"{S}/{sid}", who="demo", json={"server": {"hostname": "renamed"}},
                        headers=version("2.89"))
        assert nova_error(r, 400).endswith(
            "Additional properties are not allowed ('hostname' was unexpected)")
        r = env.api.put(f"{S}/{sid}", who="demo", json={"server": {"hostname": "renamed"}},
                        headers=version("2.90"))
        assert r.status_code == 200, r.text
        assert r.json()["server"]["OS-EXT-SRV-ATTR:hostname"] == "renamed"
        r = env.api.put(f"{S}/{sid}", who="demo", json={"server": {"hostname": "bad_name!"}},
                        headers=version("2.90"))
        assert nova_error(r, 400) == (
            "Invalid input for field/attribute hostname. Value: bad_name!. 'bad_name!' does "
            "not match '^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$'")
        assert show(env, sid, who="demo")["OS-EXT-SRV-ATTR:hostname"] == "renamed"
    finally:
        env.api.delete(f"{S}/{sid}", headers=V)
        wait_gone(env, sid)


def test_2_96_pinned_availability_zone(env: Env) -> None:
    pinned = boot(env, who="demo", name="mv-pinned", availability_zone="nova")["id"]
    free = boot(env, who="demo", name="mv-free")["id"]
    try:
        for sid in (pinned, free):
            wait(env, sid, "ACTIVE", who="demo")
        assert "pinned_availability_zone" not in show(env, pinned, who="demo",
                                                      headers=version("2.95"))
        assert "pinned_availability_zone" not in listed(env, pinned, "demo", "2.95")
        for view in (show(env, pinned, who="demo", headers=version("2.96")),
                     listed(env, pinned, "demo", "2.96")):
            assert view["pinned_availability_zone"] == "nova"
            assert view["OS-EXT-AZ:availability_zone"] == "nova"
        for view in (show(env, free, who="demo"), listed(env, free, "demo", "2.96")):
            assert view["pinned_availability_zone"] is None
            assert view["OS-EXT-AZ:availability_zone"] == "nova"
    finally:
        for sid in (pinned, free):
            env.api.delete(f"{S}/{sid}", headers=V)
        for sid in (pinned, free):
            wait_gone(env, sid)
