"""ISO 9660 images of a few files (a config drive): ``genisoimage``.

Rock Ridge and Joliet names (``-r -J``), so long, lower-case, many-dotted file
names (``openstack/latest/meta_data.json``) read back as written, as Nova
makes its config drives. The files are laid out in a private temporary
directory next to the output, and the image appears under its name only when
complete (a rename). ``xorriso -as mkisofs`` is used where genisoimage is
missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from onestack.host.errors import CommandError, HostError

LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MAX_FILES = 1000


def tool() -> list[str] | None:
    if shutil.which("genisoimage"):
        return ["genisoimage"]
    if shutil.which("xorriso"):
        return ["xorriso", "-as", "mkisofs"]
    return None


def check_files(files: Mapping[str, bytes]) -> list[PurePosixPath]:
    """The relative paths of ``files``; refuses anything that could leave the drive."""
    if len(files) > MAX_FILES:
        raise HostError(f"too many files for an ISO image ({len(files)})")
    paths = []
    for name in files:
        rel = PurePosixPath(name)
        if (not name or rel.is_absolute() or any(p in ("", ".", "..") for p in name.split("/"))
                or "\0" in name or "\n" in name):
            raise HostError(f"invalid file name for an ISO image: {name!r}")
        paths.append(rel)
    return paths


def argv(binary: list[str], output: Path, label: str, root: Path,
         publisher: str = "onestack") -> list[str]:
    if not LABEL_RE.fullmatch(label):
        raise HostError(f"invalid volume label {label!r}")
    return [*binary, "-o", str(output), "-ldots", "-allow-lowercase", "-allow-multidot", "-l",
            "-publisher", publisher, "-quiet", "-J", "-r", "-V", label, str(root)]


def make(output: Path, label: str, files: Mapping[str, bytes],
         publisher: str = "onestack") -> None:
    """Writes an ISO 9660 image labelled ``label`` holding ``files`` (blocking)."""
    paths = check_files(files)
    binary = tool()
    if binary is None:
        raise HostError("genisoimage is not installed (Debian package genisoimage)")
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix=".iso-", dir=output.parent) as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        for rel, data in zip(paths, files.values(), strict=True):
            target = root.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        part = Path(tmp) / "out.iso"
        cmd = argv(binary, part, label, root, publisher)
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=120)
        if proc.returncode != 0:
            raise CommandError(cmd, proc.returncode, proc.stderr)
        os.replace(part, output)
