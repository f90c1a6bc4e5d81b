"""The store interface: put image data somewhere, read it back, delete it.

A store hands out a writer for new data. Nothing the writer wrote is visible
until ``commit()`` returns the data's location (a URL naming the store, e.g.
``file:///...``); ``abort()`` removes everything written so far. The image
service keeps only locations in its database, so a second backend (the object
store) is one more class implementing this protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol


class StoreWriter(Protocol):
    def write(self, data: bytes | memoryview) -> None: ...

    def commit(self) -> str:
        """Make the data durable and visible; return its location."""
        ...

    def abort(self) -> None:
        """Forget the data written so far (idempotent)."""
        ...


class Store(Protocol):
    name: str  # the store id shown by /v2/info/stores ("file")
    description: str

    def writer(self, image_id: str) -> StoreWriter: ...

    def adopt(self, image_id: str, path: Path) -> str:
        """Take over a complete local file (staged data) as the image's data."""
        ...

    def open(self, location: str) -> BinaryIO:
        """A binary file object positioned at the start of the data."""
        ...

    def exists(self, location: str) -> bool: ...

    def delete(self, location: str) -> None:
        """Remove the data; a missing location is not an error."""
        ...
