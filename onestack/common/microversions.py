"""API microversions: parse, compare and negotiate them as Nova and Cinder do.

A client asks for a version with ``OpenStack-API-Version: compute 2.60`` (the
header may name several services: ``compute 2.60, volume 3.40``) or with a
service's legacy header (``X-OpenStack-Nova-API-Version: 2.60``); the new
header wins when both are present. ``latest`` means the maximum; no header
means the minimum. A malformed version is a 400, one outside the service's
range a 406 - with Nova's messages. Responses carry the version back in the
same headers plus ``Vary``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import total_ordering
from typing import Any

from onestack.common.errors import BadRequest, NotAcceptable, NotFound

HEADER = "OpenStack-API-Version"
LATEST = "latest"

_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


class InvalidVersion(BadRequest):
    """A version string that is not ``Major.Minor`` (400)."""


class VersionNotFoundForMethod(NotFound):
    """The method does not exist at the requested version (404, as Nova answers)."""

    def __init__(self, version: APIVersion | str) -> None:
        super().__init__(f"API version {version} is not supported on this method.")


@total_ordering
@dataclass(frozen=True)
class APIVersion:
    """A microversion ``major.minor``; compares with other versions and strings."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str | APIVersion) -> APIVersion:
        """``"2.60"`` -> ``APIVersion(2, 60)``; ``InvalidVersion`` (400) otherwise."""
        if isinstance(text, APIVersion):
            return text
        match = _VERSION_RE.match(str(text).strip())
        if match is None:
            raise InvalidVersion(
                f"API Version String {text} is of invalid format. "
                "Must be of format MajorNum.MinorNum."
            )
        return cls(int(match.group(1)), int(match.group(2)))

    @staticmethod
    def _coerce(other: Any) -> APIVersion | None:
        if isinstance(other, APIVersion):
            return other
        if isinstance(other, str):
            return APIVersion.parse(other)
        return None

    def __eq__(self, other: object) -> bool:
        try:
            version = self._coerce(other)
        except InvalidVersion:
            return False
        if version is None:
            return NotImplemented
        return (self.major, self.minor) == (version.major, version.minor)

    def __lt__(self, other: object) -> bool:
        version = self._coerce(other)
        if version is None:
            return NotImplemented
        return (self.major, self.minor) < (version.major, version.minor)

    def __hash__(self) -> int:
        return hash((self.major, self.minor))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def matches(self, minimum: str | APIVersion, maximum: str | APIVersion | None = None) -> bool:
        """``minimum <= self <= maximum`` (no upper bound when ``maximum`` is None)."""
        if self < APIVersion.parse(minimum):
            return False
        return maximum is None or self <= APIVersion.parse(maximum)


def _header_values(headers: Any, name: str) -> list[str]:
    getlist = getattr(headers, "getlist", None)
    if getlist is not None:
        values = [str(v) for v in getlist(name)]
        if not values and name.lower() != name:
            values = [str(v) for v in getlist(name.lower())]
        return values
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if str(key).lower() == name.lower():
                return [str(value)]
    return []


@dataclass(frozen=True)
class Microversions:
    """A service's microversion range and headers.

    ``service_type`` is the name in ``OpenStack-API-Version`` (``compute``,
    ``volume``); ``aliases`` are other names the client may use for it;
    ``legacy_header`` is e.g. ``X-OpenStack-Nova-API-Version``.
    """

    service_type: str
    min_version: APIVersion
    max_version: APIVersion
    legacy_header: str | None = None
    aliases: tuple[str, ...] = ()

    @classmethod
    def create(
        cls,
        service_type: str,
        min_version: str,
        max_version: str,
        legacy_header: str | None = None,
        aliases: tuple[str, ...] = (),
    ) -> Microversions:
        return cls(
            service_type,
            APIVersion.parse(min_version),
            APIVersion.parse(max_version),
            legacy_header,
            aliases,
        )

    # -- negotiation

    def requested(self, headers: Any) -> str | None:
        """The version string the client asked for (None if it did not ask)."""
        names = {self.service_type.lower(), *(a.lower() for a in self.aliases)}
        for value in _header_values(headers, HEADER):
            for item in value.split(","):
                parts = item.strip().split(None, 1)
                if parts and parts[0].lower() in names:
                    return parts[1].strip() if len(parts) > 1 else ""
        if self.legacy_header:
            legacy = _header_values(headers, self.legacy_header)
            if legacy:
                return legacy[-1].strip()
        return None

    def negotiate(self, headers: Any) -> APIVersion:
        """The version this request runs at; 400 if malformed, 406 if out of range."""
        text = self.requested(headers)
        if text is None:
            return self.min_version
        if text.lower() == LATEST:
            return self.max_version
        version = APIVersion.parse(text)
        self.check(version)
        return version

    def check(self, version: APIVersion) -> None:
        if not version.matches(self.min_version, self.max_version):
            raise NotAcceptable(
                f"Version {version} is not supported by the API. "
                f"Minimum is {self.min_version} and maximum is {self.max_version}."
            )

    # -- responses

    def response_headers(self, version: APIVersion | None = None) -> dict[str, str]:
        """``OpenStack-API-Version``, the legacy header and ``Vary`` for a response."""
        version = version or self.min_version
        headers = {HEADER: f"{self.service_type} {version}"}
        vary = [HEADER]
        if self.legacy_header:
            headers[self.legacy_header] = str(version)
            vary.append(self.legacy_header)
        headers["Vary"] = ", ".join(vary)
        return headers

    def version_info(self) -> dict[str, str]:
        """``{"version": max, "min_version": min}`` for version documents."""
        return {"version": str(self.max_version), "min_version": str(self.min_version)}


def require(
    version: APIVersion,
    minimum: str | APIVersion,
    maximum: str | APIVersion | None = None,
) -> None:
    """404 ``VersionNotFoundForMethod`` unless ``minimum <= version <= maximum``."""
    if not version.matches(minimum, maximum):
        raise VersionNotFoundForMethod(version)


def add_vary(existing: str | None, *names: str) -> str:
    """Merge header names into a ``Vary`` value without duplicates."""
    values = [v.strip() for v in (existing or "").split(",") if v.strip()]
    lowered = {v.lower() for v in values}
    for name in names:
        if name.lower() not in lowered:
            values.append(name)
            lowered.add(name.lower())
    return ", ".join(values)
