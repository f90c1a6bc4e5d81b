"""The expirer: objects whose ``X-Delete-At`` has passed are deleted.

Object servers queue every object with an ``X-Delete-At`` in the hidden
account ``.expiring_objects`` (one container per day, entries
``<delete_at>-<account>/<container>/<object>``). A pass lists the due
entries, deletes each object with ``X-If-Delete-At`` (so an object whose
expiry was changed meanwhile is left alone) and removes the entry. Expired
objects already read as 404 before the expirer reaches them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from onestack.common.web import run
from onestack.objectstore import timestamp
from onestack.objectstore.http import HTTPError, Request
from onestack.objectstore.proxy.base import Proxy
from onestack.objectstore.proxy.obj import ObjectController
from onestack.objectstore.storage.server import EXPIRING_ACCOUNT, ContainerUpdate, Target

log = logging.getLogger(__name__)


@dataclass
class ExpireStats:
    expired: int = 0
    skipped: int = 0
    errors: int = 0


class Expirer:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.objects = ObjectController(proxy)

    async def run(self, now: float | None = None) -> ExpireStats:
        stats = ExpireStats()
        now = time.time() if now is None else now
        client = self.proxy.client
        local: Any = client  # the node-to-node update of the local storage node
        cring = self.proxy.cluster.container_ring
        aring = self.proxy.cluster.account_ring
        apart, anodes = aring.get_nodes(EXPIRING_ACCOUNT)
        ahash = aring.hash(EXPIRING_ACCOUNT)
        containers: list[str] = []
        for node in anodes:
            try:
                status, _info, rows = await client.db_list("account", node, apart, ahash, 10000,
                                                           "", "", "", "", False)
            except Exception:
                continue
            if status == 200:
                containers = [str(r[0]) for r in rows]
                break
        for queue in containers:
            if not queue.isdigit() or int(queue) > now:
                continue
            part, nodes = cring.get_nodes(EXPIRING_ACCOUNT, queue)
            chash = cring.hash(EXPIRING_ACCOUNT, queue)
            entries: list[str] = []
            for node in nodes:
                try:
                    status, _info, rows = await client.db_list(
                        "container", node, part, chash, 10000, "", "", "", "", False)
                except Exception:
                    continue
                if status == 200:
                    entries = [str(r[0]) for r in rows]
                    break
            for entry in entries:
                at, _, path = entry.partition("-")
                if not at.isdigit() or int(at) > now:
                    continue
                account, _, rest = path.partition("/")
                container, _, obj = rest.partition("/")
                req = Request("DELETE", f"/v1/{account}/{container}/{obj}",
                              headers={"X-If-Delete-At": str(int(at))})
                req.environ["swift.source"] = "EXP"
                try:
                    resp = await self.objects.delete(req, account, container, obj) \
                        if obj else None
                    status = resp.status if resp is not None else 404
                except HTTPError as exc:
                    status = exc.response.status
                if status in (204, 404, 412):
                    ts = timestamp.now()
                    update = ContainerUpdate(EXPIRING_ACCOUNT, queue, entry, ts, deleted=1)
                    for node in nodes:
                        await run(local.send_container_update, Target(node, part), update,
                                  chash)
                    if status == 204:
                        stats.expired += 1
                    else:
                        stats.skipped += 1
                else:
                    stats.errors += 1
        return stats
