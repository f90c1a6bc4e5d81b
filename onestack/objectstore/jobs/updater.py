"""The updater: container listings and account totals put right after failures.

* Container updates an object server could not deliver (saved under
  ``<device>/async_pending/``) are sent again to every replica of the
  container; the file goes once all have it.
* Containers whose totals changed (their databases are marked dirty when an
  update is merged) report ``(put, delete, objects, bytes)`` to the account
  replicas; each database remembers what it last reported.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from onestack.objectstore.ring import Ring
from onestack.objectstore.storage import dbs
from onestack.objectstore.storage.server import StorageServer, Target, load_async_pending

log = logging.getLogger(__name__)


@dataclass
class UpdateStats:
    pending_sent: int = 0
    pending_left: int = 0
    accounts_updated: int = 0


class Updater:
    def __init__(self, server: StorageServer, rings: dict[str, Ring], client: Any) -> None:
        self.server = server
        self.rings = rings
        self.client = client  # LocalClient: send_container_update / is_local
        self._swept = False

    def run(self) -> UpdateStats:
        stats = UpdateStats()
        self.async_pendings(stats)
        if not self._swept:
            self._mark_all_dirty()
            self._swept = True
        self.report_containers(stats)
        return stats

    def async_pendings(self, stats: UpdateStats) -> None:
        cring = self.rings["container"]
        for dev in cring.devs.values():
            if not self.client.is_local(dev):
                continue
            root = f"{self.server.device(dev.device).path}/async_pending"
            for suffix in _listdir(root):
                for name in sorted(_listdir(f"{root}/{suffix}")):
                    path = f"{root}/{suffix}/{name}"
                    update = load_async_pending(path)
                    if update is None:
                        os.unlink(path)
                        continue
                    part, nodes = cring.get_nodes(update.account, update.container)
                    name_hash = cring.hash(update.account, update.container)
                    ok = all(self.client.send_container_update(Target(n, part), update, name_hash)
                             for n in nodes)
                    if ok:
                        os.unlink(path)
                        stats.pending_sent += 1
                    else:
                        stats.pending_left += 1

    def _mark_all_dirty(self) -> None:
        cring = self.rings["container"]
        for dev in cring.devs.values():
            if not self.client.is_local(dev):
                continue
            root = f"{self.server.device(dev.device).path}/containers"
            for part in _listdir(root):
                for suffix in _listdir(f"{root}/{part}"):
                    for name_hash in _listdir(f"{root}/{part}/{suffix}"):
                        if part.isdigit():
                            self.server.dirty.add((dev.device, int(part), name_hash))

    def report_containers(self, stats: UpdateStats) -> None:
        aring = self.rings["account"]
        while self.server.dirty:
            device, part, name_hash = self.server.dirty.pop()
            broker = self.server.container_broker(device, part, name_hash)
            try:
                info = broker.stat()
            except dbs.DatabaseGone:
                continue
            report = (f"{info['put_timestamp']}/{info['delete_timestamp']}/"
                      f"{info['item_count']}/{info['bytes_used']}")
            if info["reported"] == report:
                continue
            account = info["account"]
            record = (info["container"], info["put_timestamp"], info["delete_timestamp"],
                      info["item_count"], info["bytes_used"])
            apart, nodes = aring.get_nodes(account)
            ahash = aring.hash(account)
            done = 0
            for node in nodes:
                if not self.client.is_local(node):
                    continue
                if self.server.account_update(node.device, apart, ahash, account, record) == 201:
                    done += 1
            if done == len(nodes):
                broker.set_reported(report)
                stats.accounts_updated += 1


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
