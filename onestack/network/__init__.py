"""Networking (Neutron v2.0): networks, subnets, ports, routers, floating IPs,
security groups, subnet pools, quotas, served under ``/networking``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.network.app import NetworkApp


def create(cloud: Cloud) -> NetworkApp:
    from onestack.network.app import NetworkApp

    return NetworkApp(cloud)
