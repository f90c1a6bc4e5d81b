"""Networking (Neutron v2.0): networks, subnets, ports, routers, floating IPs,
security groups, subnet pools, quotas, served under ``/networking``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.app import Cloud
    from onestack.network.core import NetworkService


def create(cloud: Cloud) -> NetworkService:
    from onestack.network.core import NetworkService

    return NetworkService(cloud)
