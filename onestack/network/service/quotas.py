"""Quotas (``/v2.0/quotas``): per-project limits, counted in the write transaction.

``check(session, ...)`` runs inside the same ``db.write()`` transaction as the
insert that consumes the quota: writers are serialized (SQLite's single
writer, PostgreSQL's write lock), so two concurrent creates cannot both take
the last slot. The counting and limit lookup are narrow functions so that
moving onto a shared ``common/quota.py`` is a small change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

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


def defaults(net: Net) -> dict[str, int]:
    cfg = net.config
    return {name: int(getattr(cfg, f"quota_{name}")) for name in RESOURCES}


_LIMITS = select(models.NetworkQuota.resource, models.NetworkQuota.limit).where(
    models.NetworkQuota.project_id == bindparam("project")
)


def limits(net: Net, session: Session, project_id: str) -> dict[str, int]:
    out = defaults(net)
    for resource, limit in session.execute(_LIMITS, {"project": project_id}):
        if resource in out:
            out[resource] = limit
    return out


def usage(session: Session, project_id: str, resource: str) -> int:
    model = COUNTED[resource]
    return int(
        session.scalar(select(func.count()).select_from(model).where(model.project_id == project_id)) or 0
    )


def check(net: Net, session: Session, project_id: str, wanted: dict[str, int]) -> None:
    """409 OverQuota unless ``project_id`` may have ``wanted`` more of each resource."""
    if not project_id:
        return
    limit = limits(net, session, project_id)
    overs = [  # counted only where limited (-1: unlimited)
        resource
        for resource, count in wanted.items()
        if count > 0 and limit[resource] >= 0 and usage(session, project_id, resource) + count > limit[resource]
    ]
    if overs:
        raise OverQuota(overs=sorted(overs))


# --- the API -------------------------------------------------------------------------


def _target(project_id: str) -> dict[str, Any]:
    return {"project_id": project_id, "tenant_id": project_id}


def list_quotas(net: Net, caller: Caller) -> list[dict[str, Any]]:
    """The projects with non-default limits (admin)."""
    caller.enforce("get_quota", _target(caller.project_id or ""))
    with net.db.read() as s:
        projects = sorted(set(s.scalars(select(models.NetworkQuota.project_id))))
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
        for key, number in values.items():
            row = s.get(models.NetworkQuota, (project_id, key))
            if row is None:
                s.add(models.NetworkQuota(project_id=project_id, resource=key, limit=number))
            else:
                row.limit = number
        s.flush()
        return limits(net, s, project_id)


def reset(net: Net, caller: Caller, project_id: str) -> None:
    caller.enforce("delete_quota", _target(project_id))
    with net.db.write() as s:
        result = s.execute(delete(models.NetworkQuota).where(models.NetworkQuota.project_id == project_id))
        if not getattr(result, "rowcount", 0):
            raise TenantQuotaNotFound(tenant_id=project_id)
