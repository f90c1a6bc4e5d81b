"""The caller object every Networking service call gets.

``Caller`` wraps the request's token: it computes the policy credentials
once, then ``enforce`` builds Neutron's compound check for a create or update
(the action and one rule per attribute the request sets,
``create_network:shared``), and ``can`` answers a single rule for a target
(list filtering, field hiding). The rules are in ``network/policies.py``,
the enforcer in ``network/enforcer.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext
from onestack.common.errors import ApiError
from onestack.common.policy import Enforcer, token_scope
from onestack.network.enforcer import NetworkEnforcer
from onestack.network.service.errors import PolicyNotAuthorized

if TYPE_CHECKING:
    from onestack.network.service.deps import Net


def caller_for(net: Net, ctx: AuthContext) -> Caller:
    """The caller of a request (or of an in-process call) to the service ``net``."""
    return Caller.of(net.enforcer, ctx)


@dataclass
class Caller:
    """Who is calling, with their policy credentials computed once."""

    ctx: AuthContext
    enforcer: NetworkEnforcer
    creds: dict[str, Any]
    project_id: str | None
    project_scoped: bool
    is_admin: bool
    is_service: bool
    # The token's scope as oslo.policy sees it (system, domain, else project).
    scope: str = "project"

    @classmethod
    def of(cls, enforcer: NetworkEnforcer, ctx: AuthContext) -> Caller:
        enforcer.refresh()
        creds = Enforcer.credentials(ctx)
        creds["tenant_id"] = ctx.project_id
        creds["service_roles"] = ["service"] if "service" in ctx.roles else []
        scoped = bool(ctx.project_id) and not ctx.system_scope and not ctx.domain_id
        return cls(
            ctx=ctx,
            enforcer=enforcer,
            creds=creds,
            project_id=ctx.project_id,
            project_scoped=scoped,
            is_admin=enforcer.evaluate("context_is_admin", {}, creds),
            is_service=enforcer.evaluate("service_api", {}, creds),
            scope=token_scope(creds),
        )

    def elevated(self) -> Caller:
        """The service acting for itself (Neutron's ``context.elevated()``): ports of
        routers and floating IPs belong to no project and skip the caller's limits."""
        roles = list(self.creds.get("roles") or [])
        if "admin" not in roles:
            roles.append("admin")
        return replace(self, creds={**self.creds, "roles": roles}, is_admin=True, project_scoped=True,
                       scope="project")

    @property
    def can_set_project(self) -> bool:
        return self.is_admin or self.is_service

    @property
    def sees_all(self) -> bool:
        """Lists need no project filter in SQL (admin or service, project-scoped)."""
        return (self.is_admin or self.is_service) and self.project_scoped

    def can(self, rule: str, target: Mapping[str, Any]) -> bool:
        """``rule`` for this caller and target; a token of a scope the rule does not
        take (upstream's ``scope_types``, with ``enforce_scope``) never passes."""
        scopes = self.enforcer.scope_types.get(rule)
        if scopes is not None and self.scope not in scopes:
            return False
        return self.enforcer.evaluate(rule, target, self.creds)

    def can_each(self, rule: str, targets: Sequence[Mapping[str, Any]]) -> list[bool]:
        """``can(rule, t)`` for every target, evaluated once per distinct set of the
        values the rule looks at."""
        keys = self.enforcer.target_keys(rule)
        if keys is None or len(targets) < 8:
            return [self.can(rule, t) for t in targets]
        ordered = sorted(keys)
        memo: dict[tuple[Any, ...], bool] = {}
        out = []
        for t in targets:
            sig = tuple(_hashable(t.get(k)) for k in ordered)
            answer = memo.get(sig)
            if answer is None:
                answer = memo[sig] = self.can(rule, t)
            out.append(answer)
        return out

    def can_all(self, rules: Iterable[str], target: Mapping[str, Any]) -> bool:
        return all(self.can(rule, target) for rule in rules)

    def enforce(self, action: str, target: Mapping[str, Any], attr_rules: Iterable[str] = ()) -> None:
        """Raise 403 unless the action and every attribute rule allow it."""
        rules = [action, *attr_rules]
        if not self.can_all(rules, target):
            raise PolicyNotAuthorized(describe(rules))

    def enforce_or_hide(
        self,
        action: str,
        target: Mapping[str, Any],
        show: str,
        not_found: ApiError,
        attr_rules: Iterable[str] = (),
    ) -> None:
        """As ``enforce``; when the caller may not even see the resource, 404 instead."""
        rules = [action, *attr_rules]
        if self.can_all(rules, target):
            return
        if not self.can(show, target):
            raise not_found
        raise PolicyNotAuthorized(describe(rules))

    def hidden_fields(self, resource: str, names: Iterable[str], sample: Mapping[str, Any]) -> set[str]:
        """Attributes with a ``get_<resource>:<attr>`` rule this caller fails (on one item,
        as Neutron decides for a whole list from its first item)."""
        hidden: set[str] = set()
        for name in names:
            rule = f"get_{resource}:{name}"
            if self.enforcer.defines(rule) and not self.can(rule, sample):
                hidden.add(name)
        return hidden


def _hashable(value: Any) -> Any:
    if isinstance(value, list | dict | set):
        return repr(value)
    return value


def describe(rules: list[str]) -> str:
    """oslo.policy's rendering of Neutron's compound check: nested ``and``s."""
    text = f"rule:{rules[0]}"
    for rule in rules[1:]:
        text = f"({text} and rule:{rule})"
    return text
