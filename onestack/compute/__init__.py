"""Compute service (Nova v2.1) under ``/compute``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.compute.app import ComputeApp


def create(cloud: Cloud) -> ComputeApp:
    from onestack.compute.app import ComputeApp

    return ComputeApp(cloud)
