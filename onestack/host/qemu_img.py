"""Disk images with ``qemu-img``: create, overlay, convert, info, resize.

The format of every image is always stated (``-f``, ``-F`` for a backing file,
``-O`` for an output): qemu-img never guesses it from the contents, which is
what lets a guest that writes a qcow2 header into its raw disk read the host's
files. ``info`` of an image that came from a user runs under ``prlimit`` (1 GiB
of address space, 30 s of CPU), as Nova does, so a crafted image cannot eat
the host.

The coroutines run qemu-img as a subprocess and never block the event loop;
:func:`run` is the blocking form, for command-line tools such as the test
image builder. The ``*_argv`` builders are pure.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.host.errors import CommandError, HostError

FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx", "qed")
INFO_ADDRESS_SPACE = 1 << 30
INFO_CPU_SECONDS = 30


def _fmt(fmt: str) -> str:
    if fmt not in FORMATS:
        raise HostError(f"unsupported image format {fmt!r} (one of {', '.join(FORMATS)})")
    return fmt


def _binary() -> str:
    found = shutil.which("qemu-img")
    if found is None:
        raise HostError("qemu-img is not installed (Debian package qemu-utils)")
    return found


@dataclass(frozen=True)
class ImageInfo:
    format: str
    virtual_size: int
    actual_size: int | None
    backing_file: str | None
    backing_format: str | None
    cluster_size: int | None
    dirty: bool
    encrypted: bool
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ImageInfo:
        return cls(
            format=doc["format"],
            virtual_size=int(doc["virtual-size"]),
            actual_size=doc.get("actual-size"),
            backing_file=doc.get("full-backing-filename") or doc.get("backing-filename"),
            backing_format=doc.get("backing-filename-format"),
            cluster_size=doc.get("cluster-size"),
            dirty=bool(doc.get("dirty-flag", False)),
            encrypted=bool(doc.get("encrypted", False)),
            raw=doc,
        )


# --- argv builders (pure) ------------------------------------------------------


def create_argv(path: Path, fmt: str, size: int | None = None, *,
                backing: Path | None = None, backing_fmt: str | None = None,
                options: Sequence[str] = ()) -> list[str]:
    if backing is None and size is None:
        raise HostError("a new image needs a size or a backing file")
    if size is not None and size <= 0:
        raise HostError(f"invalid image size {size}")
    argv = ["qemu-img", "create", "-q", "-f", _fmt(fmt)]
    if backing is not None:
        if backing_fmt is None:
            raise HostError("the backing file's format must be given (never probed)")
        argv += ["-b", str(backing), "-F", _fmt(backing_fmt)]
    for option in options:
        argv += ["-o", option]
    argv.append(str(path))
    if size is not None:
        argv.append(str(size))
    return argv


def convert_argv(src: Path, src_fmt: str, dst: Path, dst_fmt: str, *,
                 compress: bool = False, options: Sequence[str] = (),
                 cache: str | None = None, force_share: bool = False) -> list[str]:
    argv = ["qemu-img", "convert", "-f", _fmt(src_fmt), "-O", _fmt(dst_fmt)]
    if force_share:
        argv.append("-U")  # read an image a (paused) guest holds open
    if cache is not None:
        argv += ["-t", cache]  # the output's cache mode (qemu-img's default otherwise)
    if compress:
        argv.append("-c")
    for option in options:
        argv += ["-o", option]
    return [*argv, str(src), str(dst)]


def info_argv(path: Path, fmt: str, *, force_share: bool = False,
              limited: bool = True) -> list[str]:
    argv = ["qemu-img", "info", "-f", _fmt(fmt), "--output=json"]
    if force_share:
        argv.append("--force-share")  # readable while a running guest holds it
    argv.append(str(path))
    if limited and shutil.which("prlimit"):
        argv = ["prlimit", f"--as={INFO_ADDRESS_SPACE}", f"--cpu={INFO_CPU_SECONDS}", "--",
                *argv]
    return argv


def resize_argv(path: Path, fmt: str, size: int, *, shrink: bool = False) -> list[str]:
    if size <= 0:
        raise HostError(f"invalid image size {size}")
    argv = ["qemu-img", "resize", "-q", "-f", _fmt(fmt)]
    if shrink:
        argv.append("--shrink")
    return [*argv, str(path), str(size)]


def _resolve(argv: list[str]) -> list[str]:
    if argv[0] == "qemu-img":
        return [_binary(), *argv[1:]]
    i = argv.index("qemu-img")  # behind prlimit
    return [*argv[:i], _binary(), *argv[i + 1:]]


# --- running ---------------------------------------------------------------------


def run(argv: list[str], timeout: float | None = None) -> str:
    """Runs a qemu-img command line to its end (blocking); its stdout."""
    argv = _resolve(argv)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr)
    return proc.stdout


async def arun(argv: list[str], timeout: float | None = None) -> str:
    """Runs a qemu-img command line as a subprocess without blocking the loop."""
    argv = _resolve(argv)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode or 0, err.decode(errors="replace"))
    return out.decode()


async def create(path: Path, fmt: str, size: int, options: Sequence[str] = ()) -> None:
    await arun(create_argv(path, fmt, size, options=options))


async def create_overlay(path: Path, backing: Path, backing_fmt: str, *,
                         size: int | None = None, fmt: str = "qcow2") -> None:
    """A copy-on-write image over ``backing`` (of format ``backing_fmt``), of the
    backing file's size unless ``size`` (larger) is given."""
    await arun(create_argv(path, fmt, size, backing=backing, backing_fmt=backing_fmt))


async def convert(src: Path, src_fmt: str, dst: Path, dst_fmt: str, *,
                  compress: bool = False, force_share: bool = False) -> None:
    await arun(convert_argv(src, src_fmt, dst, dst_fmt, compress=compress,
                            force_share=force_share))


def parse_info(text: str) -> ImageInfo:
    try:
        doc = json.loads(text)
    except ValueError:
        raise HostError("qemu-img info gave no JSON") from None
    if isinstance(doc, list):  # --backing-chain: the top image first
        doc = doc[0]
    return ImageInfo.from_json(doc)


async def info(path: Path, fmt: str, *, force_share: bool = False) -> ImageInfo:
    return parse_info(await arun(info_argv(path, fmt, force_share=force_share), timeout=60))


async def resize(path: Path, fmt: str, size: int, *, shrink: bool = False) -> None:
    await arun(resize_argv(path, fmt, size, shrink=shrink))


async def copy(src: Path, dst: Path) -> None:
    """Copies the image file ``src`` to ``dst`` as it is (``cp --sparse=always``:
    holes stay holes), through a temporary name next to ``dst``."""
    tmp = dst.with_name(f".{dst.name}.copy")
    proc = await asyncio.create_subprocess_exec(
        "cp", "--sparse=always", "--", str(src), str(tmp), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _out, err = await proc.communicate()
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise CommandError(["cp", str(src), str(dst)], proc.returncode or 0,
                           err.decode(errors="replace"))
    tmp.replace(dst)
