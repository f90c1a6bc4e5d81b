"""nftables through libnftables (the library ``nft`` is built on), in the calling thread.

``nft -j -f -`` costs a fork and exec of this process (10 ms on an idle
machine, far more on a busy one); the library call costs a fraction of a
millisecond. A context is made for each call in the calling thread, so the
netlink socket it opens belongs to the namespace that thread is in (call it
inside :func:`onestack.host.netns.call`). JSON in and out, as ``nft -j``.
Where the library is missing the ``nft`` command does the same.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import threading
from typing import Any

from onestack.host.errors import CommandError, HostError

NFT_CTX_OUTPUT_JSON = 1 << 4
_lib: ctypes.CDLL | None = None
_lib_missing = False
_lock = threading.Lock()


def _load() -> ctypes.CDLL | None:
    global _lib, _lib_missing
    with _lock:
        if _lib is None and not _lib_missing:
            try:
                lib = ctypes.CDLL("libnftables.so.1")
            except OSError:
                _lib_missing = True
                return None
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            _lib = lib
        return _lib


def run(command: str) -> str:
    """Runs one nft command or JSON document here; its (JSON) output.
    Raises :class:`CommandError` when nft refuses it."""
    lib = _load()
    if lib is None:
        return _run_binary(command)
    ctx = lib.nft_ctx_new(0)
    if not ctx:
        raise HostError("libnftables: no context")
    try:
        lib.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        rc = lib.nft_run_cmd_from_buffer(ctx, command.encode())
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
    finally:
        lib.nft_ctx_free(ctx)
    if rc != 0:
        raise CommandError(["libnftables", command[:200]], rc, err)
    return out


def _run_binary(command: str) -> str:
    binary = shutil.which("nft")
    if binary is None:
        raise HostError("nft is not installed (Debian package nftables)")
    argv = [binary, "-j", "-f", "-"]
    proc = subprocess.run(argv, input=command, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr)
    return proc.stdout


def apply_document(document: str) -> None:
    """Applies a JSON document (``{"nftables": [...]}``) in one transaction here."""
    run(document)


def list_json(what: str) -> list[dict[str, Any]] | None:
    """``nft -j list <what>`` here ("chain ip t c", "table ip t"...): its objects,
    or None when it does not exist."""
    try:
        out = run(f"list {what}")
    except CommandError as exc:
        if "No such file or directory" in exc.stderr:
            return None
        raise
    doc = json.loads(out) if out.strip() else {"nftables": []}
    return [x for x in doc["nftables"] if "metainfo" not in x]
