"""Disk-format inspection of image data as it streams in (Glance's rules).

Every inspector of ``inspectors`` sees the data side by side; the format of
the data is the one inspector that recognizes it (an ISO that also carries a
partition table is an ISO), ``raw`` when none does, and more than one is an
error. Then, as Glance does for a ``bare`` image:

* the detected format must be the declared ``disk_format``; data of no
  recognized format may be declared as a format that cannot be inspected
  (``ami``, ``ari``, ``aki``, ``ploop``);
* data declared ``raw`` may be a partitioned disk (MBR/GPT), but no other
  recognized format. (Glance lets e.g. qcow2 data declared raw through and
  leaves the refusal to Nova at boot; this cloud refuses it at upload, so an
  image is never accepted that Compute would reject);
* the detected format must pass its safety checks (``inspectors``): no qcow2
  backing or data file, only single-file sparse VMDKs, a plain partition
  table ...

Images in other containers (``ova``, ``docker`` ...) hold an archive, not a
disk, so their content need not match ``disk_format``; but a disk format
recognized in them must still pass its safety checks.

A failure is ``FormatError`` with Glance's message; the upload answers 415.
The inspector decides as soon as every format's verdict is in (usually
within the first 64 KiB, so a bad upload stops early) and once more at the
end. It holds only the regions the formats need, never the whole image.
"""

from __future__ import annotations

import logging

from onestack.image.inspectors import ALL, INSPECTABLE, FormatInspector, Qcow2, Raw

log = logging.getLogger(__name__)

# Enough for every format's first verdict (the largest: VHDX's region table at 192-256 KiB).
HEADER_BYTES = 64 * 1024
SAFETY_FAILED = "Image failed safety checks"


class FormatError(ValueError):
    """The data does not match its declared format, or is unsafe.

    ``failures`` names the safety checks that failed (oslo.utils' names:
    ``backing_file``, ``data_file``, ``descriptor``, ``mbr`` ...).
    """

    def __init__(self, message: str, failures: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.failures = failures


class Inspector:
    """Fed the data as it streams; ``finish()`` decides and gives the virtual size."""

    def __init__(self, disk_format: str | None, container_format: str | None = "bare") -> None:
        self.disk_format = disk_format
        self.container_format = container_format
        self._raw = Raw()
        self._formats: list[FormatInspector] = [cls() for cls in ALL]
        self._pending = list(self._formats)  # not settled yet
        self._position = 0
        self._decided = False
        self.detected: str | None = None
        self.virtual_size: int | None = None

    def feed(self, chunk: bytes | memoryview) -> None:
        """Look at the next chunk; ``FormatError`` as soon as the data is known to be bad."""
        start = self._position
        self._position += len(chunk)
        if not self._pending:
            return
        for fmt in self._pending:
            fmt.feed(chunk, start)
        self._pending = [f for f in self._pending if not f.settled]
        if not self._pending and not self._decided:
            # Every verdict is in: decide now, so a bad upload stops here.
            self._decided = True
            self._decide(final=False)

    def verify(self) -> None:
        """Decide on what has been seen so far, as if the data ended here."""
        self._finish_formats()
        self._decide(final=True)

    def finish(self, size: int) -> int | None:
        """The data has ended: decide; the virtual size (None if unknown)."""
        self.verify()
        return self.virtual_size

    def _finish_formats(self) -> None:
        self._raw.position = self._position
        for fmt in self._formats:
            fmt.position = self._position
            if not fmt.ended:
                fmt.finish()
        self._pending = []

    def _detect(self) -> FormatInspector:
        matches = [f for f in self._formats if f.matches]
        names = {f.name for f in matches}
        if names == {"iso", "gpt"}:  # a bootable ISO carries a partition table in front
            return next(f for f in matches if f.name == "iso")
        if len(matches) > 1:
            raise FormatError("Multiple formats detected: " + ",".join(sorted(names)))
        return matches[0] if matches else self._raw

    def _decide(self, *, final: bool) -> None:
        found = self._detect()
        fmt, declared = found.name, self.disk_format
        self.detected = fmt
        if self.container_format != "bare":
            self._safety(found)
            self.virtual_size = None
            return
        if fmt == declared:
            self._safety(found)
            size = found.virtual_size if final or fmt != "raw" else 0
        elif fmt == "raw" and declared not in INSPECTABLE:
            size = 0  # ami, ari, aki, ploop: nothing to inspect
        elif declared == "raw":
            self._safety(found)  # Glance checks what it found first ...
            if fmt != "gpt":  # ... Nova then refuses anything but a whole disk
                raise FormatError(f"Image disk_format raw does not match stream data {fmt}")
            size = self._position
        else:
            raise FormatError(f"Image disk_format {declared} does not match stream data {fmt}")
        self.virtual_size = size or None

    def _safety(self, found: FormatInspector) -> None:
        if not found.complete:
            raise FormatError("Incomplete file cannot be safety checked")
        failures = tuple(found.checks())
        if failures:
            log.warning("image data in %s format failed safety checks: %s", found.name, ",".join(failures))
            raise FormatError(SAFETY_FAILED, failures)


def detect(data: bytes) -> str | None:
    """The format ``data`` (a whole image, or its beginning) is in; None for raw."""
    ins = Inspector(None, container_format=None)
    ins.feed(data)
    ins._finish_formats()
    try:
        found = ins._detect().name
    except FormatError:
        return None
    return None if found == "raw" else found


def parse_qcow2(header: bytes) -> Qcow2 | None:
    """The qcow2 inspector of ``header`` if it is qcow2, else None."""
    q = Qcow2()
    q.feed(header, 0)
    q.finish()
    return q if q.matches else None
