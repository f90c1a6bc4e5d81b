"""Identity: Keystone v3, served under ``/identity``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.identity.app import IdentityApp


def create(cloud: Cloud) -> IdentityApp:
    from onestack.identity.app import IdentityApp

    return IdentityApp(cloud)
