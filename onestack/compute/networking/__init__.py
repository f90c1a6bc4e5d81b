"""Compute's view of Networking: a protocol (:mod:`.base`) and its two
implementations, chosen by :func:`connect`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.compute.networking.base import Networking


def connect(cloud: Cloud) -> Networking:
    """The Networking service of this cloud when it runs here, else the
    in-memory stand-in."""
    if "network" in cloud.services:
        from onestack.compute.networking.neutron import NeutronNetworking

        return NeutronNetworking(cloud)
    from onestack.compute.networking.fake import FakeNetworking

    return FakeNetworking()
