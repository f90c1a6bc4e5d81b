"""ISO 9660 images of a few files (a config drive), written and read back."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from onestack.host import iso
from onestack.host.errors import HostError

FILES = {
    "openstack/latest/meta_data.json": b'{"uuid": "u1"}',
    "openstack/latest/user_data": b"#!/bin/sh\necho hi\n",
    "ec2/2009-04-04/meta-data.json": b"{}",
}


@pytest.mark.skipif(iso.tool() is None or shutil.which("isoinfo") is None,
                    reason="genisoimage (and its isoinfo) is not installed")
def test_long_names_read_back_and_the_label_is_set(tmp_path: Path) -> None:
    out = tmp_path / "disk.config"
    iso.make(out, "config-2", FILES)
    info = subprocess.run(["isoinfo", "-d", "-i", str(out)], capture_output=True, text=True,
                          check=True).stdout
    assert "Volume id: config-2" in info
    for name, data in FILES.items():
        got = subprocess.run(["isoinfo", "-R", "-i", str(out), "-x", "/" + name],
                             capture_output=True, check=True).stdout
        assert got == data, name
    assert [p.name for p in tmp_path.iterdir()] == ["disk.config"]  # no temporaries left


@pytest.mark.parametrize("name", ["", "/etc/passwd", "a/../b", "a//b", "./a", "a\nb"])
def test_names_that_leave_the_drive_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(HostError, match="invalid file name"):
        iso.make(tmp_path / "x.iso", "config-2", {name: b""})
    assert list(tmp_path.iterdir()) == []


def test_a_label_with_odd_characters_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="invalid volume label"):
        iso.make(tmp_path / "x.iso", "config-2 -o /etc/x", {"a": b""})
