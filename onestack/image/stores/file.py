"""The file store: one file per image under ``<state_dir>/images``.

New data goes to a hidden temporary name in the same directory and is renamed
to the image id when complete, so a killed upload never leaves a partial file
under an image's name; temporaries left by a crash are swept on start.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"


class FileWriter:
    def __init__(self, final: Path) -> None:
        self.final = final
        self.tmp = final.with_name(f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}")
        self._fh: BinaryIO | None = open(self.tmp, "xb")  # noqa: SIM115
        self.done = False

    def write(self, data: bytes | memoryview) -> None:
        if self._fh is None:
            raise OSError("write to a closed image writer")
        self._fh.write(data)

    def commit(self) -> str:
        if self._fh is None:
            raise OSError("commit of a closed image writer")
        self._fh.close()
        self._fh = None
        os.replace(self.tmp, self.final)
        self.done = True
        return self.final.as_uri()

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if not self.done:
            self.tmp.unlink(missing_ok=True)


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
        except OSError:  # another file system: copy, then rename into place
            writer = self.writer(image_id)
            try:
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, writer._fh, 4 << 20)  # type: ignore[arg-type]
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
