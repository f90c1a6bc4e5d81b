"""What the proxy's controllers share: nodes, quorum, info, metadata rules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from onestack.config import ObjectStoreSettings
from onestack.objectstore import timestamp
from onestack.objectstore.cluster import Cluster
from onestack.objectstore.http import Headers, Request, fail, title_case
from onestack.objectstore.ring import Device, Ring
from onestack.objectstore.storage.client import NodeClient, NodeDown

T = TypeVar("T")

# metadata a container/account keeps besides its x-*-meta-* (lower-case names)
CONTAINER_HEADERS = ("x-container-read", "x-container-write", "x-container-sync-key",
                     "x-container-sync-to", "x-versions-location", "x-history-location")
ACCOUNT_HEADERS = ("x-account-quota-bytes", "x-account-quota-count")


def quorum_size(n: int) -> int:
    return n // 2 + 1


def best_status(statuses: list[int], n: int) -> int | None:
    """The status class a quorum agreed on (Swift's best_response), else None."""
    quorum = quorum_size(n)
    for klass in (2, 4, 3):
        hits = [s for s in statuses if s // 100 == klass]
        if len(hits) >= quorum:
            return max(set(hits), key=hits.count)
    return None


@dataclass
class Info:
    """A container's or account's state, as the proxy caches it."""

    status: int
    meta: dict[str, str]  # lower-case header -> value (user meta, ACLs, sysmeta)
    object_count: int = 0
    bytes_used: int = 0
    container_count: int = 0
    put_timestamp: str = ""
    created_at: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.meta.get(key, default)


def info_from_stat(status: int, stat: dict[str, Any] | None) -> Info:
    if stat is None:
        return Info(status, {})
    # a deleted container or account shows no metadata (as Swift's servers answer)
    meta = {k: v[0] for k, v in stat["metadata"].items() if v[0] != ""} \
        if 200 <= status < 300 else {}
    return Info(status, meta, object_count=stat["object_count"] if stat["container"] is None
                else stat["item_count"], bytes_used=stat["bytes_used"],
                container_count=stat["item_count"] if stat["container"] is None else 0,
                put_timestamp=stat["put_timestamp"], created_at=stat["created_at"])


class InfoCache:
    """Process-wide cache of container/account info (Swift keeps it in memcache)."""

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self._d: dict[str, tuple[float, Info]] = {}

    def get(self, key: str) -> Info | None:
        hit = self._d.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def put(self, key: str, info: Info) -> None:
        if len(self._d) > 20000:
            self._d.clear()
        self._d[key] = (time.monotonic() + self.ttl, info)

    def drop(self, key: str) -> None:
        self._d.pop(key, None)


class Proxy:
    """The proxy's state: rings, the node client, limits and the info cache."""

    def __init__(self, cluster: Cluster, client: NodeClient, settings: ObjectStoreSettings,
                 project_exists: Callable[[str], Awaitable[bool]] | None = None) -> None:
        self.cluster = cluster
        self.client = client
        self.settings = settings
        self.cache = InfoCache()
        self.project_exists = project_exists

    # ---------------------------------------------------------------- nodes

    def nodes(self, ring: Ring, part: int) -> Iterator[Device]:
        """Primaries, then handoffs."""
        yield from ring.get_part_nodes(part)
        yield from ring.get_more_nodes(part)

    async def first_success(self, ring: Ring, part: int,
                            call: Callable[[Device], Awaitable[tuple[int, T]]],
                            ) -> tuple[int, T | None]:
        """Read from replicas in turn until one answers 2xx (Swift's GETorHEAD)."""
        statuses: list[int] = []
        last: T | None = None
        for i, node in enumerate(self.nodes(ring, part)):
            if i >= ring.replicas * 2:
                break
            try:
                status, value = await call(node)
            except NodeDown:
                continue
            if 200 <= status < 300:
                return status, value
            statuses.append(status)
            if status == 404 or last is None:
                last = value
            if len(statuses) >= ring.replicas and i >= ring.replicas - 1:
                break
        if not statuses:
            return 503, None
        n404 = statuses.count(404)
        if n404 == len(statuses) or n404 >= quorum_size(ring.replicas):
            return 404, last
        return 503, last

    async def write_all(self, ring: Ring, part: int,
                        call: Callable[[Device, int], Awaitable[int]]) -> list[int]:
        """Send a write to every primary (a down primary's to a handoff)."""
        handoffs = ring.get_more_nodes(part)

        async def one(index: int, node: Device) -> int:
            while True:
                try:
                    status = await call(node, index)
                except NodeDown:
                    status = 503
                if status < 500:
                    return status
                nxt = next(handoffs, None)
                if nxt is None:
                    return status
                node = nxt

        primaries = ring.get_part_nodes(part)
        return list(await asyncio.gather(*(one(i, n) for i, n in enumerate(primaries))))

    # ---------------------------------------------------------------- info

    async def account_info(self, req: Request, account: str, fresh: bool = False) -> Info:
        key = f"account/{account}"
        local = req.environ.setdefault("swift.info_cache", {})
        info = None if fresh else local.get(key) or self.cache.get(key)
        if info is None:
            ring = self.cluster.account_ring
            part = ring.get_part(account)
            name_hash = ring.hash(account)
            status, stat = await self.first_success(
                ring, part, lambda node: self.client.db_info("account", node, part, name_hash))
            info = info_from_stat(status, stat)
            if status in (200, 404):
                self.cache.put(key, info)
        local[key] = info
        return info

    async def container_info(self, req: Request, account: str, container: str,
                             fresh: bool = False) -> Info:
        key = f"container/{account}/{container}"
        local = req.environ.setdefault("swift.info_cache", {})
        info = None if fresh else local.get(key) or self.cache.get(key)
        if info is None:
            ring = self.cluster.container_ring
            part = ring.get_part(account, container)
            name_hash = ring.hash(account, container)
            status, stat = await self.first_success(
                ring, part,
                lambda node: self.client.db_info("container", node, part, name_hash))
            info = info_from_stat(status, stat)
            if status in (200, 404):
                self.cache.put(key, info)
        local[key] = info
        return info

    def forget(self, req: Request, account: str, container: str | None = None) -> None:
        key = f"container/{account}/{container}" if container else f"account/{account}"
        self.cache.drop(key)
        req.environ.setdefault("swift.info_cache", {}).pop(key, None)


# ---------------------------------------------------------------- metadata


def check_metadata(req: Request, target: str, s: ObjectStoreSettings) -> None:
    """Swift's constraints on ``X-<target>-Meta-*`` headers (400 in plain text)."""
    prefix = f"x-{target}-meta-"
    count = 0
    size = 0
    for key, value in req.headers.items():
        if len(value) > s.max_header_size:
            raise fail(400, f"Header value too long: "
                            f"{title_case(key)[:s.max_meta_name_length]}")
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if not name:
            raise fail(400, "Metadata name cannot be empty")
        if target in ("account", "container") and not _utf8(name + value):
            raise fail(400, "Metadata must be valid UTF-8")
        count += 1
        size += len(name) + len(value)
        if len(name) > s.max_meta_name_length:  # (the name as Swift shows it: Title-Case)
            raise fail(400, f"Metadata name too long: {prefix}{title_case(name)}")
        if len(value) > s.max_meta_value_length:
            raise fail(400, f"Metadata value longer than {s.max_meta_value_length}: "
                            f"{prefix}{title_case(name)}")
        if count > s.max_meta_count:
            raise fail(400, f"Too many metadata items; max {s.max_meta_count}")
        if size > s.max_meta_overall_size:
            raise fail(400, f"Total metadata too large; max {s.max_meta_overall_size}")


def _utf8(text: str) -> bool:
    try:
        text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return False
    return True


def wsgi_to_str(value: str) -> str:
    """Header values arrive as latin-1 text; their bytes are UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def db_metadata_updates(headers: Headers, target: str, ts: str,
                        extra: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """Container/account metadata a PUT/POST sets (empty value = removed)."""
    out: dict[str, tuple[str, str]] = {}
    prefix = f"x-{target}-meta-"
    sysmeta = f"x-{target}-sysmeta-"
    remove = f"x-remove-{target}-meta-"
    for key, value in headers.items():
        if key.startswith(prefix) or key.startswith(sysmeta) or key in extra:
            out[key] = (value, ts)
        elif key.startswith(remove):
            out[prefix + key[len(remove):]] = ("", ts)
        elif key.startswith("x-remove-") and "x-" + key[len("x-remove-"):] in extra:
            out["x-" + key[len("x-remove-"):]] = ("", ts)
    return out


def new_timestamp() -> str:
    return timestamp.now()
