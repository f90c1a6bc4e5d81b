"""Identity: Keystone v3, served under ``/identity``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.identity.app import IdentityService


def create(cloud: Cloud) -> IdentityService:
    from onestack.identity.app import IdentityService

    return IdentityService(cloud)
