"""Container ACLs (``X-Container-Read`` / ``X-Container-Write``), Swift's v1 syntax.

Items are comma-separated: ``project:user`` grants (``*`` wildcards allowed),
``.r:<host>`` referrer grants for reads (``.r:*`` = anyone, ``.r:-host``
denies), and ``.rlistings`` lets those readers list the container.
"""

from __future__ import annotations

from urllib.parse import urlparse


def clean_acl(name: str, value: str) -> str:
    """Normalised ACL; ValueError (its message is the 400 body) if malformed."""
    name = name.lower()
    values = []
    for raw in value.split(","):
        raw = raw.strip()
        if not raw:
            continue
        if ":" not in raw:
            values.append(raw)
            continue
        first, second = (v.strip() for v in raw.split(":", 1))
        if not first or not first.startswith("."):
            values.append(raw)
        elif first in (".r", ".ref", ".referer", ".referrer"):
            if "write" in name:
                raise ValueError(f"Referrers not allowed in write ACL: {raw!r}")
            negate = False
            if second and second.startswith("-"):
                negate = True
                second = second[1:].strip()
            if second and second != "*" and second.startswith("*"):
                second = second[1:].strip()
            if not second or second == ".":
                raise ValueError(
                    f"No host/domain value after referrer designation in ACL: {raw!r}")
            values.append(".r:{}{}".format("-" if negate else "", second))
        else:
            raise ValueError(f"Unknown designator {first!r} in ACL: {raw!r}")
    return ",".join(values)


def parse_acl(acl: str | None) -> tuple[list[str], list[str]]:
    """(referrers, groups) of an ACL string."""
    referrers: list[str] = []
    groups: list[str] = []
    if acl:
        for value in acl.split(","):
            if value.startswith(".r:"):
                referrers.append(value[3:])
            elif value:
                groups.append(value)
    return referrers, groups


def referrer_allowed(referrer: str | None, referrers: list[str]) -> bool:
    allow = False
    if referrers:
        host = urlparse(referrer or "").hostname or "unknown"
        for mhost in referrers:
            if mhost.startswith("-"):
                mhost = mhost[1:]
                if mhost == host or (mhost.startswith(".") and host.endswith(mhost)):
                    allow = False
            elif mhost == "*" or mhost == host or (mhost.startswith(".")
                                                    and host.endswith(mhost)):
                allow = True
    return allow
