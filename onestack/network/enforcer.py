"""The Networking policy enforcer: the common one, plus Neutron's ``field:``
check, and what lets a list evaluate a rule once per distinct target
(``target_keys``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from onestack.common.policy import (
    AndCheck,
    Check,
    Enforcer,
    FalseCheck,
    GenericCheck,
    NotCheck,
    OrCheck,
    RoleCheck,
    RuleCheck,
    TrueCheck,
    register_check,
)

# --- field:<collection>:<attr>=<value> ------------------------------------------------


class FieldCheck(Check):
    """Neutron's ``field:`` check: an attribute of the target equals a value
    (``True``/``False`` compare as booleans) or matches ``~regex``."""

    def __init__(self, kind: str, match: str) -> None:
        self.text = f"{kind}:{match}"
        resource, _, rest = match.partition(":")
        self.resource = resource
        self.field, _, value = rest.partition("=")
        self.regex = re.compile(value[1:]) if value.startswith("~") else None
        low = value.lower()
        self.value: Any = True if low == "true" else False if low == "false" else value

    def __call__(self, target: Any, creds: Any, enforcer: Any, depth: int) -> bool:
        actual = target.get(self.field) if isinstance(target, Mapping) else None
        if actual is None:
            return False
        if self.regex is not None:
            return isinstance(actual, str) and self.regex.match(actual) is not None
        if isinstance(self.value, bool):
            return actual is self.value or str(actual).lower() == str(self.value).lower()
        return str(actual) == self.value

    def __str__(self) -> str:
        return self.text


register_check("field", FieldCheck)


_SUBSTITUTION = re.compile(r"%\(([^)]+)\)s")


class NetworkEnforcer(Enforcer):
    """The common enforcer, read once per request, then evaluated many times."""

    def refresh(self) -> None:
        self._maybe_reload()

    def target_keys(self, rule: str) -> frozenset[str] | None:
        """The target keys ``rule`` can look at (None when it cannot tell): a rule's
        answer for one caller depends on nothing else, so lists evaluate it once per
        distinct combination of these values instead of once per item."""
        return self._keys(self._compiled.get(rule), 0)

    def _keys(self, check: Check | None, depth: int) -> frozenset[str] | None:
        if check is None or depth > 32:
            return None
        if isinstance(check, TrueCheck | FalseCheck):
            return frozenset()
        if isinstance(check, NotCheck):
            return self._keys(check.rule, depth + 1)
        if isinstance(check, AndCheck | OrCheck):
            found: set[str] = set()
            for inner in check.rules:
                keys = self._keys(inner, depth + 1)
                if keys is None:
                    return None
                found |= keys
            return frozenset(found)
        if isinstance(check, RuleCheck):
            return self._keys(self._compiled.get(check.name) or self._compiled.get("default"), depth + 1)
        if isinstance(check, RoleCheck | GenericCheck):
            return frozenset(_SUBSTITUTION.findall(check.match))
        if isinstance(check, FieldCheck):
            return frozenset({check.field})
        return None

    def evaluate(self, rule: str, target: Mapping[str, Any], creds: Mapping[str, Any]) -> bool:
        return self._evaluate(rule, target, creds, 0)

    def defines(self, rule: str) -> bool:
        return rule in self._compiled
