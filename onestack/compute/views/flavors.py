"""Flavors as Nova shows them: brief (``GET /flavors``) and full, by microversion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onestack.common.microversions import APIVersion
from onestack.compute.models import Flavor

Links = Callable[[str, str], list[dict[str, str]]]


def brief(flavor: Flavor, version: APIVersion, links: Links) -> dict[str, Any]:
    out: dict[str, Any] = {"id": flavor.flavorid, "name": flavor.name,
                           "links": links("flavors", flavor.flavorid)}
    if version.matches("2.55"):
        out["description"] = flavor.description
    return out


def full(flavor: Flavor, version: APIVersion, links: Links,
         extra_specs: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": flavor.flavorid,
        "name": flavor.name,
        "ram": flavor.memory_mb,
        "disk": flavor.root_gb,
        "swap": (flavor.swap or 0) if version.matches("2.75") else (flavor.swap or ""),
        "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral_gb,
        "OS-FLV-DISABLED:disabled": flavor.disabled,
        "vcpus": flavor.vcpus,
        "os-flavor-access:is_public": flavor.is_public,
        "rxtx_factor": flavor.rxtx_factor or "",
        "links": links("flavors", flavor.flavorid),
    }
    if version.matches("2.55"):
        out["description"] = flavor.description
    if extra_specs is not None:
        out["extra_specs"] = extra_specs
    return out


def snapshot(flavor: Flavor) -> dict[str, Any]:
    """What a server keeps of its flavor (Nova's instance.flavor)."""
    return {
        "id": flavor.id,
        "flavorid": flavor.flavorid,
        "name": flavor.name,
        "memory_mb": flavor.memory_mb,
        "vcpus": flavor.vcpus,
        "root_gb": flavor.root_gb,
        "ephemeral_gb": flavor.ephemeral_gb,
        "swap": flavor.swap,
        "rxtx_factor": flavor.rxtx_factor,
        "vcpu_weight": flavor.vcpu_weight,
        "is_public": flavor.is_public,
        "disabled": flavor.disabled,
        "description": flavor.description,
        "extra_specs": dict(flavor.extra_specs or {}),
    }
