"""Identity service logic: one module per area. Modules may define
``POLICIES: dict[str, str]`` (rule name -> oslo.policy rule); the identity
enforcer's defaults are the union of them."""

from __future__ import annotations

import importlib
import pkgutil


def default_policies() -> dict[str, str]:
    rules: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        rules.update(getattr(module, "POLICIES", {}))
    return rules
