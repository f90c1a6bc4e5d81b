"""Identity: Keystone v3, served under ``/identity``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.app import Cloud
    from onestack.identity.core import Identity


def create(cloud: Cloud) -> Identity:
    from onestack.identity.core import Identity

    return Identity(cloud)
