"""Policy enforcement with oslo.policy's rule language (``policy_rules``).

Every service declares its default rules (rule name -> rule string) and builds
an :class:`Enforcer`; the operator may override any rule with a YAML or JSON
file (``rule: "string"``), which is re-read whenever its modification time
changes. Service logic calls ``enforcer.authorize(rule, ctx, target)``.

A rule that cannot be parsed denies (and is logged). A reference to an unknown
rule resolves to the ``default`` rule if there is one, else denies.

Each service has its own enforcer and override file (``override_path``): a
``default`` or ``owner`` rule written for one service never changes another's.
A rule may have *scope types* (oslo.policy's ``scope_types``): a token of
another scope (system, domain, or project - unscoped counts as project) is
denied that rule whatever its check string says, as oslo.policy does with
scope enforcement on (``enforce_scope``, on by default).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from onestack.common.auth import AuthContext
from onestack.common.errors import Forbidden
from onestack.common.policy_rules import (  # noqa: F401 - the rule language, re-exported
    AndCheck,
    Check,
    Credentials,
    FalseCheck,
    GenericCheck,
    NotCheck,
    OrCheck,
    PolicySyntaxError,
    RoleCheck,
    RuleCheck,
    Target,
    TrueCheck,
    _as_text,
    _compile,
    parse_rule,
    register_check,
)

if TYPE_CHECKING:
    from onestack.config import Settings

LOG = logging.getLogger(__name__)

DEFAULT_RULE = "default"
_MAX_DEPTH = 32  # bounds rule:a -> rule:b -> ... chains (and cycles)


# --------------------------------------------------------------------------- enforcer


def _read_overrides(path: Path) -> dict[str, str | list[Any]]:
    text = path.read_text()
    data: Any
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        data = yaml.safe_load(text)  # YAML is a superset of JSON
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("a policy file is a mapping of rule name to rule")
    rules: dict[str, str | list[Any]] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, str | list):
            raise ValueError(f"bad entry {key!r}: {value!r} (rules are strings)")
        parse_rule(value)  # a syntax error rejects the whole file
        rules[key] = value
    return rules


def override_path(settings: Settings, service: str) -> Path:
    """The override file of ``service`` (``identity``, ``image`` ...):
    ``<policy_dir>/<service>.yaml`` (``policy_dir`` defaults to
    ``<state_dir>/policy``). Until that directory exists, the single shared
    file of earlier versions (``policy_file``, default ``<state_dir>/policy.yaml``)
    stays in force for every service, as it was: an upgrade never drops an
    operator's restriction. Once the directory exists, the shared file is
    ignored (and a warning says so)."""
    directory = settings.policy_dir_path
    legacy = settings.policy_path
    if not directory.is_dir() and legacy.exists():
        LOG.warning("policy file %s applies to every service; move its rules to %s/<service>.yaml "
                    "(identity.yaml, image.yaml ...)", legacy, directory)
        return legacy
    if directory.is_dir() and legacy.exists():
        LOG.warning("policy file %s is ignored: %s holds one policy file per service", legacy, directory)
    return directory / f"{service}.yaml"


def token_scope(creds: Mapping[str, Any]) -> str:
    """The scope oslo.policy sees: system, domain, else project (unscoped too)."""
    if creds.get("system_scope") or creds.get("system"):
        return "system"
    if creds.get("domain_id"):
        return "domain"
    return "project"


class Enforcer:
    """Evaluates named rules: the defaults, overridden by the operator's file.

    ``scope_types``: rule name -> the token scopes it may be used with (rules
    not named have none: any scope); applied when ``enforce_scope``.
    """

    def __init__(
        self,
        defaults: Mapping[str, str],
        override_path: Path | None = None,
        *,
        scope_types: Mapping[str, tuple[str, ...]] | None = None,
        enforce_scope: bool = True,
    ) -> None:
        self.scope_types = dict(scope_types or {}) if enforce_scope else {}
        self._defaults: dict[str, str | list[Any]] = dict(defaults)
        self.override_path = Path(override_path) if override_path is not None else None
        self._overrides: dict[str, str | list[Any]] = {}
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._compiled: dict[str, Check] = {}
        self._effective: dict[str, str | list[Any]] = {}
        self._load_overrides()
        self._rebuild()

    # -- rules

    def register_defaults(self, defaults: Mapping[str, str]) -> None:
        """Add (or replace) default rules."""
        with self._lock:
            self._defaults.update(defaults)
            self._rebuild()

    @property
    def defaults(self) -> dict[str, str]:
        return {name: _as_text(rule) for name, rule in self._defaults.items()}

    @property
    def rules(self) -> dict[str, str]:
        """The effective rules (defaults merged with the operator's overrides)."""
        self._maybe_reload()
        return {name: _as_text(rule) for name, rule in self._effective.items()}

    def _rebuild(self) -> None:
        effective = dict(self._defaults)
        effective.update(self._overrides)
        self._effective = effective
        self._compiled = {name: _compile(name, rule) for name, rule in effective.items()}

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.override_path is None:
            return None
        try:
            st = os.stat(self.override_path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _load_overrides(self) -> None:
        """Read the override file if it changed; keep the old rules if it is bad."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        if stamp is None:
            if self._overrides:
                LOG.info("policy file %s is gone; using the default rules", self.override_path)
            self._overrides = {}
            self._stamp = None
            return
        assert self.override_path is not None
        try:
            overrides = _read_overrides(self.override_path)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            LOG.error(
                "policy file %s is invalid (%s); keeping the previous rules",
                self.override_path,
                exc,
            )
            self._stamp = stamp  # do not re-read until it changes again
            return
        self._overrides = overrides
        self._stamp = stamp
        LOG.info("policy file %s loaded (%d rules)", self.override_path, len(overrides))

    def _maybe_reload(self) -> None:
        if self.override_path is None:
            return
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        with self._lock:
            before = self._overrides
            self._load_overrides()
            if self._overrides is not before:
                self._rebuild()

    # -- evaluation

    def _evaluate(self, name: str, target: Target, creds: Credentials, depth: int) -> bool:
        if depth > _MAX_DEPTH:
            LOG.error("policy rule %s: reference chain too deep (a cycle?); denying", name)
            return False
        compiled = self._compiled
        check = compiled.get(name)
        if check is None:
            if name == DEFAULT_RULE:
                return False
            check = compiled.get(DEFAULT_RULE)
            if check is None:
                return False
        return check(target, creds, self, depth)

    @staticmethod
    def credentials(ctx: AuthContext | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(ctx, AuthContext):
            creds = ctx.policy_credentials()
            creds.setdefault("is_admin", ctx.is_admin)
            return creds
        return dict(ctx)

    def check(
        self,
        rule: str,
        ctx: AuthContext | Mapping[str, Any],
        target: Mapping[str, Any] | None = None,
    ) -> bool:
        """Whether ``rule`` allows ``ctx`` to act on ``target`` (a token of a
        scope the rule does not take is never allowed)."""
        self._maybe_reload()
        creds = self.credentials(ctx)
        scopes = self.scope_types.get(rule)
        if scopes is not None and token_scope(creds) not in scopes:
            return False
        return self._evaluate(rule, target or {}, creds, 0)

    def authorize(
        self,
        rule: str,
        ctx: AuthContext | Mapping[str, Any],
        target: Mapping[str, Any] | None = None,
    ) -> None:
        """Raise ``Forbidden`` unless ``rule`` allows ``ctx`` to act on ``target``."""
        if not self.check(rule, ctx, target):
            raise Forbidden(f"You are not authorized to perform the requested action: {rule}.")

    def check_string(
        self,
        rule: str,
        ctx: AuthContext | Mapping[str, Any],
        target: Mapping[str, Any] | None = None,
    ) -> bool:
        """Evaluate an ad-hoc rule string (not a rule name) against the current rules."""
        self._maybe_reload()
        return _compile("<inline>", rule)(target or {}, self.credentials(ctx), self, 0)
