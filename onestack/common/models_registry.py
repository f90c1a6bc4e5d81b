"""Imports every service's models so the shared metadata knows all tables."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "onestack.common.models",
    "onestack.identity.models",
    "onestack.image.models",
    "onestack.compute.models",
    "onestack.network.models",
)


def import_all_models() -> None:
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
