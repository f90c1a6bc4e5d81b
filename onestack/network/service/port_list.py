"""The list of ports as JSON bytes, each port rendered once and reused.

``GET /v2.0/ports`` of 10,000 ports spent most of its time building 100,000
dicts and lists and serialising them again, for ports that had not changed
since the last list. Here a page is first read as narrow rows (id, the
port's ``revision_number``, its network, and the columns
the ``get_port`` rule looks at); the policy is decided once per distinct
combination of those values; and each port's JSON comes from ``Fragments``,
the bytes of its wire shape in this view (the attributes the caller sees,
the ``fields`` asked), valid for exactly that revision. Only ports missing
or older there are read whole and rendered, by the same code as a show
(``port_views.views``).

Why a revision is enough: every write that changes what a port shows bumps
its ``revision_number`` (as Neutron does, whose address, binding, tag and
security group tables all ``revises_on_change`` their port), in whatever
process it runs, and a port id is never reused, so a cached fragment is
never served for a port that changed. A port create adds its fragment
(``remember``), so the first list after many creates renders nothing. A
page's answer is the same bytes as rendering every port
(``tests/api/test_network_port_list.py`` compares the two).

When the ``get_port`` rule looks at something the narrow row does not hold
(a custom policy file), the list renders every port as before.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select

from onestack.common import gcpause
from onestack.common.web import dumps
from onestack.network.models import Port
from onestack.network.service import port_views
from onestack.network.service.errors import PortNotFound
from onestack.network.service.policy import Caller
from onestack.network.service.query import CHUNK, ListQuery, Page, chunks, fetch, where
from onestack.network.service.resources import PORTS

if TYPE_CHECKING:
    from onestack.network.service.deps import Net

# The most bytes of rendered ports kept per cloud (about 900 bytes a port and view).
LIMIT_BYTES = 128 * 2**20

View = tuple[str, ...]
Key = int  # the port's revision_number


class Fragments:
    """Rendered ports by view and id: ``(key, json bytes)``, the oldest dropped
    past ``limit`` bytes. Reads take no lock (a dict read is atomic)."""

    def __init__(self, limit: int = LIMIT_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self._views: dict[View, dict[str, tuple[Key, bytes]]] = {}
        self._lock = threading.Lock()

    def of(self, view: View) -> dict[str, tuple[Key, bytes]]:
        """The fragments of one view (read them; add through ``put``)."""
        found = self._views.get(view)
        if found is None:
            with self._lock:
                found = self._views.setdefault(view, {})
        return found

    def put(self, view: View, entries: list[tuple[str, Key, bytes]]) -> None:
        with self._lock:
            store = self._views.setdefault(view, {})
            for port_id, key, data in entries:
                old = store.pop(port_id, None)
                if old is not None:
                    self.size -= len(old[1])
                store[port_id] = (key, data)
                self.size += len(data)
            if self.size > self.limit:
                self._shrink(self.limit * 3 // 4)

    def _shrink(self, target: int) -> None:
        """Drop the oldest fragments of every view, evenly, down to ``target`` bytes."""
        while self.size > target and self._views:
            for view in list(self._views):
                store = self._views[view]
                if not store:
                    del self._views[view]
                    continue
                for _ in range(min(len(store), 256)):
                    _key, data = store.pop(next(iter(store)))
                    self.size -= len(data)
                    if self.size <= target:
                        return

    def clear(self) -> None:
        with self._lock:
            self._views.clear()
            self.size = 0


_caches: weakref.WeakKeyDictionary[Any, Fragments] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def fragments_of(net: Net) -> Fragments:
    """The fragments of one cloud's network service."""
    found = _caches.get(net)
    if found is None:
        with _caches_lock:
            found = _caches.setdefault(net, Fragments())
    return found


@dataclass
class JsonPage:
    """A page of ports as JSON fragments, in order; the ids of its first and
    last port when the view shows ``id`` (the pagination links need them)."""

    parts: list[bytes]
    page: Page
    first_id: str | None
    last_id: str | None


# What the narrow row gives a policy target (``tenant_id`` is ``project_id``), and how.
_PLAIN = {
    name: column for name, column in port_views.COLUMNS.items() if name not in ("created_at", "updated_at")
}
_FROM_NETWORK = ("network:project_id", "shared")
_HEAD = (Port.id, Port.revision_number, Port.network_id)
_FULL_OF = select(*port_views.COLS).where(Port.id.in_(bindparam("ids", expanding=True)))
_REVISION = len(port_views.COLS) - 1


def list_json(net: Net, caller: Caller, q: ListQuery) -> JsonPage:
    keys = caller.enforcer.target_keys("get_port")
    if keys is None or any(k not in _PLAIN and k not in _FROM_NETWORK for k in keys):
        return _rendered(net, caller, q)
    plain = sorted(k for k in keys if k in _PLAIN)
    with net.db.read() as s:
        vis = port_views.visible(caller)
        conds = [*vis, *where(q, port_views.COLUMNS, port_views.SPECIAL, id_column=Port.id)]
        columns: list[Any] = [*_HEAD, *(_PLAIN[k] for k in plain)]
        stmt = select(*columns).where(*conds)
        page = fetch(s, stmt, Port, q, sort_columns=port_views.SORT, visible=vis,
                     not_found=lambda m: PortNotFound(port_id=m), columns_only=True)
        rows = _allowed(s, caller, page.rows, sorted(keys), plain)
        if not rows:
            return JsonPage([], page, None, None)
        domain = net.config.dns_domain
        first = s.connection().execute(_FULL_OF, {"ids": [rows[0][0]]}).all()
        if not first:  # deleted since the page was read (PostgreSQL reads each statement afresh)
            return _rendered(net, caller, q)
        items, targets = port_views.views(s, first, domain)
        hidden = caller.hidden_fields(PORTS.policy_name, items[0].keys(), targets[0])
        view = _view(list(items[0]), q.fields, hidden)
        fragments = fragments_of(net)
        store = fragments.of(view)
        parts: list[bytes | None] = []
        missing: list[int] = []
        for r in rows:
            found = store.get(r[0])
            if found is not None and found[0] == r[1]:
                parts.append(found[1])
            else:
                missing.append(len(parts))
                parts.append(None)
        if missing:
            scope = select(Port.id).where(*conds) if len(missing) == len(rows) and page.limit is None else None
            made = _render(s, [rows[i][0] for i in missing], view, domain, scope, conds)
            fragments.put(view, [(pid, key, data) for pid, (key, data) in made.items()])
            for i in missing:
                got = made.get(rows[i][0])
                parts[i] = got[1] if got is not None else None
    ids = [r[0] for r, part in zip(rows, parts, strict=True) if part is not None]
    out = [part for part in parts if part is not None]
    shows_id = "id" in view
    return JsonPage(out, page, ids[0] if ids and shows_id else None, ids[-1] if ids and shows_id else None)


def _allowed(s: Any, caller: Caller, rows: list[Any], keys: list[str], plain: list[str]) -> list[Any]:
    """The rows ``get_port`` lets the caller see, the rule evaluated once per
    distinct combination of the values it looks at."""
    if not rows:
        return rows
    nets: dict[str, tuple[str, bool]] = {}
    if any(k in _FROM_NETWORK for k in keys):
        nets = port_views.network_owners(s, list({r[2] for r in rows}))
    at = {k: 3 + i for i, k in enumerate(plain)}
    no_net = ("", False)
    # the network and the plain columns decide every value the rule looks at
    memo: dict[tuple[Any, ...], bool] = {}
    out = []
    for r in rows:
        sig = tuple(r[2:])
        ok = memo.get(sig)
        if ok is None:
            owner, shared = nets.get(r[2], no_net)
            values = [owner if k == "network:project_id" else shared if k == "shared" else r[at[k]] for k in keys]
            ok = memo[sig] = caller.can("get_port", dict(zip(keys, values, strict=True)))
        if ok:
            out.append(r)
    return out


def _view(names: list[str], fields: list[str], hidden: set[str]) -> View:
    """The attributes an item of the answer has, in order (as ``query.project``)."""
    if fields:
        return tuple(f for f in dict.fromkeys(fields) if f not in hidden and f in names)
    return tuple(n for n in names if n not in hidden)


def _render(s: Any, ids: list[str], view: View, domain: str, scope: Any,
            conds: list[Any]) -> dict[str, tuple[Key, bytes]]:
    """Ports read whole and rendered in ``view``: ``{id: (revision, json)}``."""
    run = s.connection().execute
    large = len(ids) > CHUNK
    with gcpause.paused() if large else nullcontext():
        if scope is not None:
            full = list(run(select(*port_views.COLS).where(*conds)).all())
        else:
            full = [row for part in chunks(ids) for row in run(_FULL_OF, {"ids": list(part)}).all()]
        items, _targets = port_views.views(s, full, domain, scope, targets=False)
        whole = bool(items) and tuple(items[0]) == view
        return {
            item["id"]: (row[_REVISION], dumps(item if whole else {k: item[k] for k in view}))
            for row, item in zip(full, items, strict=True)
        }


def remember(net: Net, items: list[dict[str, Any]]) -> None:
    """Ports just created and committed (their whole wire shapes, as a list renders
    them): the next list reuses their JSON instead of reading and rendering them."""
    if items:
        fragments_of(net).put(tuple(items[0]), [(i["id"], i["revision_number"], dumps(i)) for i in items])


def _rendered(net: Net, caller: Caller, q: ListQuery) -> JsonPage:
    """Every port rendered (the ``get_port`` rule needs more than the narrow rows)."""
    items, page = port_views.list_ports(net, caller, q)
    first = items[0].get("id") if items else None
    last = items[-1].get("id") if items else None
    return JsonPage([dumps(item) for item in items], page, first, last)
