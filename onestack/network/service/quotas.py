"""Quotas (``/v2.0/quotas``): Neutron's resources on the shared ``common.quota``.

``check(net, session, ...)`` runs inside the same write transaction as the
insert that consumes the quota: ``common.quota`` takes the project's quota
lock, then counts, so two concurrent creates cannot both take the last slot.
A project's own limits are ``quota_limit`` rows of service ``network``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from onestack.common import quota as common_quota
from onestack.common.errors import NotFound
from onestack.network import models
from onestack.network.service.errors import HTTPBadRequest, OverQuota, _Templated
from onestack.network.service.policy import Caller
from onestack.network.service.validators import to_bool, to_int

if TYPE_CHECKING:
    from onestack.network.service.deps import Net

# resource -> (model counted by project_id)
COUNTED: dict[str, Any] = {
    "network": models.Network,
    "subnet": models.Subnet,
    "subnetpool": models.SubnetPool,
    "port": models.Port,
    "router": models.Router,
    "floatingip": models.FloatingIP,
    "security_group": models.SecurityGroup,
    "security_group_rule": models.SecurityGroupRule,
}
RESOURCES = tuple(COUNTED)


class TenantQuotaNotFound(_Templated, NotFound):
    template = "Quota for project %(tenant_id)s could not be found."


def _counter(model: Any) -> common_quota.Counter:
    stmt = select(func.count()).select_from(model).where(model.project_id == bindparam("project"))

    def count(session: Session, project_id: str | None) -> int:
        return int(session.scalar(stmt, {"project": project_id}) or 0)

    return count


_COUNTERS = {name: _counter(model) for name, model in COUNTED.items()}


@lru_cache(maxsize=8)
def _quotas(default_limits: tuple[tuple[str, int], ...]) -> common_quota.Quotas:
    return common_quota.Quotas(
        "network", [common_quota.Resource(name, _COUNTERS[name], limit) for name, limit in default_limits]
    )


def defaults(net: Net) -> dict[str, int]:
    cfg = net.config
    return {name: int(getattr(cfg, f"quota_{name}")) for name in RESOURCES}


def quotas_of(net: Net) -> common_quota.Quotas:
    """The service's quota resources, with the configured default limits."""
    return _quotas(tuple(defaults(net).items()))


def limits(net: Net, session: Session, project_id: str) -> dict[str, int]:
    return quotas_of(net).limits(session, project_id)


def usage(session: Session, project_id: str, resource: str) -> int:
    return _COUNTERS[resource](session, project_id)


def check(net: Net, session: Session, project_id: str, wanted: dict[str, int]) -> None:
    """409 OverQuota unless ``project_id`` may have ``wanted`` more of each resource."""
    if not project_id:
        return
    try:
        quotas_of(net).check(session, project_id, wanted)
    except common_quota.OverQuota as over:
        raise OverQuota(overs=sorted(over.resources)) from None


# --- the API -------------------------------------------------------------------------


def _target(project_id: str) -> dict[str, Any]:
    return {"project_id": project_id, "tenant_id": project_id}


def list_quotas(net: Net, caller: Caller) -> list[dict[str, Any]]:
    """The projects with non-default limits (admin)."""
    caller.enforce("get_quota", _target(caller.project_id or ""))
    with net.db.read() as s:
        projects = quotas_of(net).projects_with_limits(s)
        out = []
        for pid in projects:
            row = limits(net, s, pid)
            if caller.can("get_quota", _target(pid)):
                out.append({**row, "project_id": pid, "tenant_id": pid})
        return out


def show(net: Net, caller: Caller, project_id: str, *, details: bool = False) -> dict[str, Any]:
    caller.enforce("get_quota", _target(project_id))
    with net.db.read() as s:
        row = limits(net, s, project_id)
        if not details:
            return dict(row)
        return {
            name: {"limit": limit, "used": usage(s, project_id, name), "reserved": 0}
            for name, limit in row.items()
        }


def show_default(net: Net, caller: Caller, project_id: str) -> dict[str, Any]:
    caller.enforce("get_quota", _target(project_id))
    return defaults(net)


def update(net: Net, caller: Caller, project_id: str, body: Any) -> dict[str, Any]:
    """Set limits; a limit below what the project already uses is refused unless
    ``check_limit`` is false (quota-check-limit, on by default as in Neutron)."""
    caller.enforce("update_quota", _target(project_id))
    if len(project_id) > models.PROJECT:
        raise HTTPBadRequest(f"Invalid input for project_id. Reason: longer than {models.PROJECT} characters.")
    if not isinstance(body, dict):
        raise HTTPBadRequest("Unable to find 'quota' in request body")
    check_limit = True
    values: dict[str, int] = {}
    unknown = [k for k in body if k not in RESOURCES and k != "check_limit"]
    if unknown:
        raise HTTPBadRequest("Unrecognized attribute(s) '{}'".format(", ".join(unknown)))
    for key, value in body.items():
        if key == "check_limit":
            check_limit = to_bool(value)
            continue
        number = to_int(value)
        if number < -1:
            raise HTTPBadRequest(f"Invalid input for {key}. Reason: '{number}' is too small - must be at least '-1'.")
        values[key] = number
    with net.db.write() as s:
        if check_limit:
            for key, number in values.items():
                used = usage(s, project_id, key)
                if number >= 0 and used > number:
                    raise HTTPBadRequest(
                        f"Quota limit {number} for {key} must be greater than or equal to already used {used}"
                    )
        quotas_of(net).set_limits(s, project_id, values)
        return limits(net, s, project_id)


def reset(net: Net, caller: Caller, project_id: str) -> None:
    caller.enforce("delete_quota", _target(project_id))
    q = quotas_of(net)
    with net.db.write() as s:
        if project_id not in q.projects_with_limits(s):
            raise TenantQuotaNotFound(tenant_id=project_id)
        q.reset(s, project_id)
