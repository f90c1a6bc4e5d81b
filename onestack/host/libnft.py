"""nftables through ``libnftables`` (the library the ``nft`` command is built on),
in the calling thread: no process to start for every transaction.

A context is made for each call, inside the calling thread, so its netlink
socket belongs to the namespace that thread is in (see :mod:`onestack.host.netns`).
ctypes releases the GIL during the call. Where the library cannot be loaded,
:func:`available` says so and callers run ``nft -j -f -`` instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

from onestack.host.errors import CommandError

NFT_CTX_OUTPUT_JSON = 1 << 4  # enum nft_ctx_output_flags: input is parsed as JSON too
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_missing = False


def _load() -> ctypes.CDLL | None:
    global _lib, _missing
    with _lock:
        if _lib is None and not _missing:
            name = ctypes.util.find_library("nftables") or "libnftables.so.1"
            try:
                lib = ctypes.CDLL(name, use_errno=True)
            except OSError:
                _missing = True
                return None
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_free.restype = None
            lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            _lib = lib
        return _lib


def available() -> bool:
    return _load() is not None


def run_json(document: str) -> None:
    """Runs one JSON nftables document (one transaction) in the calling thread's
    namespace; a refusal raises :class:`CommandError` with nft's message."""
    lib = _load()
    if lib is None:
        raise CommandError(["libnftables"], 1, "libnftables is not installed")
    ctx = lib.nft_ctx_new(0)
    if not ctx:
        raise CommandError(["libnftables"], 1, "nft_ctx_new failed")
    try:
        lib.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        if lib.nft_run_cmd_from_buffer(ctx, document.encode()) != 0:
            message = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
            raise CommandError(["libnftables", "-j"], 1, message)
    finally:
        lib.nft_ctx_free(ctx)
