"""How a node (one ``onestack up``) stands to the database it serves.

Several API processes may share one PostgreSQL database (``database_url``),
each with its own state directory. They must share ``database_url``,
``public_url`` (the address clients use, e.g. a load balancer) and the master
key that wraps the token keys (``common/masterkey``).

* The **owner** is the node that bootstrapped the database: the first start
  (the one that found it empty) writes ``clouds.yaml`` with the bootstrap
  users' passwords. A node on SQLite always owns its database (the file is
  in its state directory).
* A **member** joined a database another node bootstrapped. It never resets
  the bootstrap users' passwords (a member has no ``clouds.yaml`` of its
  own: that is not "clouds.yaml was lost"), writes no ``clouds.yaml`` unless
  one with the passwords is put in its state directory, and only adds
  catalog entries that are missing: existing endpoints move only to an
  explicit ``public_url``, never to a member's own host and port.

The state directory's ``bootstrap.json`` says which database it belongs to
(the admin user's id, made at the first start) and whether it was
bootstrapped from here. A state directory from before this file existed
counts as the owner's when its ``clouds.yaml`` is onestack's own for this
node's URL.

Only the standard library here: ``onestack up`` reads the marker before the
heavy imports.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.config import Settings

MARKER = "bootstrap.json"


@dataclass(frozen=True)
class Marker:
    cloud: str  # the admin user's id: names the database's bootstrap
    here: bool  # bootstrapped from this state directory


def read_marker(state_dir: Path) -> Marker | None:
    try:
        data = json.loads((state_dir / MARKER).read_text())
        return Marker(cloud=str(data["cloud"]), here=bool(data["bootstrapped_here"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_marker(state_dir: Path, marker: Marker) -> None:
    body = json.dumps({
        "cloud": marker.cloud,
        "bootstrapped_here": marker.here,
        "note": "written by onestack up: which database this state directory belongs to",
    }, indent=1)
    path = state_dir / MARKER
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(body + "\n")
    os.replace(tmp, path)


def is_owner(*, sqlite: bool, marker: Marker | None, cloud: str | None, own_clouds_yaml: bool) -> bool:
    """Whether this node bootstrapped the database whose admin user is ``cloud``."""
    if sqlite:
        return True
    if marker is not None:
        return marker.here and marker.cloud == cloud
    return own_clouds_yaml  # a state directory from before the marker


def follows_catalog(settings: Settings, owner: bool) -> bool:
    """Whether existing endpoints move to this node's URL: the owner's start
    moves them (a changed host or port), a member's only to an explicit
    ``public_url``."""
    return owner or bool(settings.public_url)
