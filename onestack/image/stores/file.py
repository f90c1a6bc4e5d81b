"""The file store: one file per image under ``<state_dir>/images``.

New data goes to a hidden temporary name in the same directory and is renamed
to the image id when complete, so a killed upload never leaves a partial file
under an image's name; temporaries left by a crash are swept on start. The data
is on the disk (fsync) before the rename, and the rename before the upload is
answered (fsync of the directory): an image that went active survives a power
cut, not just a killed process. So that the final fsync does not have a whole
image to write out, a background thread flushes every ``SYNC_EVERY`` bytes while
the upload goes on (the upload is bound by hashing, the disk keeps up).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
SYNC_EVERY = 64 << 20


class _Syncer:
    """fdatasync of one file, in a thread, each time it is asked to."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.wanted = threading.Event()
        self.closing = False
        self.error: OSError | None = None
        self.thread = threading.Thread(target=self._run, name="image-sync", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            if self.closing:
                return
            try:
                os.fdatasync(self.fd)
            except OSError as exc:  # reported by the final fsync, or here
                self.error = exc
                return

    def stop(self) -> None:
        self.closing = True
        self.wanted.set()
        self.thread.join()


class FileWriter:
    def __init__(self, final: Path) -> None:
        self.final = final
        self.tmp = final.with_name(f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}")
        self._fh: BinaryIO | None = open(self.tmp, "xb")  # noqa: SIM115
        self.done = False
        self._unsynced = 0
        self._syncer: _Syncer | None = None

    def write(self, data: bytes | memoryview) -> None:
        if self._fh is None:
            raise OSError("write to a closed image writer")
        self._fh.write(data)
        self._unsynced += len(data)
        if self._unsynced >= SYNC_EVERY:
            self._unsynced = 0
            if self._syncer is None:
                self._syncer = _Syncer(self._fh.fileno())
            self._syncer.wanted.set()

    def _stop_syncer(self) -> OSError | None:
        syncer, self._syncer = self._syncer, None
        if syncer is None:
            return None
        syncer.stop()
        return syncer.error

    def commit(self) -> str:
        if self._fh is None:
            raise OSError("commit of a closed image writer")
        error = self._stop_syncer()
        if error is not None:
            raise error
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        os.replace(self.tmp, self.final)
        _fsync_dir(self.final.parent)
        self.done = True
        return self.final.as_uri()

    def abort(self) -> None:
        self._stop_syncer()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if not self.done:
            self.tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    name = "file"
    description = "Local file store"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    def sweep(self) -> int:
        """Remove temporaries of uploads that never finished; returns how many."""
        count = 0
        for path in self.directory.glob(TMP_PREFIX + "*"):
            path.unlink(missing_ok=True)
            count += 1
        return count

    def path_for(self, image_id: str) -> Path:
        if not image_id or "/" in image_id or image_id.startswith("."):
            raise ValueError(f"bad image id {image_id!r}")
        return self.directory / image_id

    def writer(self, image_id: str) -> FileWriter:
        return FileWriter(self.path_for(image_id))

    def adopt(self, image_id: str, path: Path) -> str:
        final = self.path_for(image_id)
        try:
            os.replace(path, final)
            _fsync_dir(final.parent)
        except OSError:  # another file system: copy, then rename into place
            writer = self.writer(image_id)
            try:
                with open(path, "rb") as src:
                    while chunk := src.read(4 << 20):
                        writer.write(chunk)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
            path.unlink(missing_ok=True)
        return final.as_uri()

    def _path(self, location: str) -> Path:
        if not location.startswith("file://"):
            raise ValueError(f"not a file store location: {location}")
        path = Path(location[len("file://") :])
        if path.parent != self.directory:
            raise ValueError(f"location outside the store: {location}")
        return path

    def open(self, location: str) -> BinaryIO:
        return open(self._path(location), "rb")  # noqa: SIM115

    def exists(self, location: str) -> bool:
        return self._path(location).exists()

    def delete(self, location: str) -> None:
        try:
            self._path(location).unlink(missing_ok=True)
        except ValueError:
            log.warning("not deleting %s: not in this store", location)
