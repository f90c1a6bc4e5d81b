"""Compute's quota resources and how a project's usage of each is counted.

Nova counts usage from the database at the time of the check (since Pike:
no reservations): instances, cores and RAM from the project's servers that
are not deleted, server groups from the project's groups. Key pairs are
counted per user and server group members per group; their limits come from
the project's quota (``count_user_keypairs``, ``count_group_members``).
``metadata_items`` is a per-server limit, not a count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.common.models import QuotaLimit
from onestack.common.quota import Quotas, Resource
from onestack.compute.models import KeyPair, Server, ServerGroup, ServerGroupMember

if TYPE_CHECKING:
    from onestack.config import ComputeSettings

SERVICE = "compute"


def count_servers(s: Session, project_id: str | None) -> tuple[int, int, int]:
    """(instances, cores, ram) of the project's live servers, in one query."""
    row = s.execute(
        select(func.count(Server.id), func.coalesce(func.sum(Server.vcpus), 0),
               func.coalesce(func.sum(Server.memory_mb), 0))
        .where(Server.project_id == project_id, Server.deleted.is_(False))
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _instances(s: Session, project_id: str | None) -> int:
    return count_servers(s, project_id)[0]


def _cores(s: Session, project_id: str | None) -> int:
    return count_servers(s, project_id)[1]


def _ram(s: Session, project_id: str | None) -> int:
    return count_servers(s, project_id)[2]


def _server_groups(s: Session, project_id: str | None) -> int:
    return int(s.scalar(select(func.count()).select_from(ServerGroup)
                        .where(ServerGroup.project_id == project_id)) or 0)


def _not_counted(s: Session, project_id: str | None) -> int:
    return 0


def count_user_keypairs(s: Session, user_id: str) -> int:
    return int(s.scalar(select(func.count()).select_from(KeyPair)
                        .where(KeyPair.user_id == user_id)) or 0)


def count_group_members(s: Session, group_id: str) -> int:
    return int(s.scalar(select(func.count()).select_from(ServerGroupMember)
                        .where(ServerGroupMember.group_id == group_id)) or 0)


def class_key(name: str) -> str:
    """Where a quota class's limits are kept (the project column of quota_limit)."""
    return f"__class__:{name}"


class ComputeQuotas(Quotas):
    """Nova's quotas with quota classes: the ``default`` class (``os-quota-
    class-sets``) overrides the configured defaults, a project's own limits
    override both."""

    def class_limits(self, s: Session, name: str = "default") -> dict[str, int]:
        found = {n: r.default for n, r in self.resources.items()}
        for resource, value in s.execute(
            select(QuotaLimit.resource, QuotaLimit.hard_limit).where(
                QuotaLimit.service == self.service, QuotaLimit.project_id == class_key(name))
        ):
            if resource in found:
                found[resource] = int(value)
        return found

    def limits(self, s: Session, project_id: str | None) -> dict[str, int]:
        found = self.class_limits(s)
        for resource, value in s.execute(
            select(QuotaLimit.resource, QuotaLimit.hard_limit).where(
                QuotaLimit.service == self.service, QuotaLimit.project_id == project_id)
        ):
            if resource in found:
                found[resource] = int(value)
        return found


def build_quotas(conf: ComputeSettings) -> ComputeQuotas:
    return ComputeQuotas(SERVICE, [
        Resource("instances", _instances, conf.quota_instances),
        Resource("cores", _cores, conf.quota_cores),
        Resource("ram", _ram, conf.quota_ram),
        Resource("metadata_items", _not_counted, conf.quota_metadata_items),
        Resource("key_pairs", _not_counted, conf.quota_key_pairs),
        Resource("server_groups", _server_groups, conf.quota_server_groups),
        Resource("server_group_members", _not_counted, conf.quota_server_group_members),
        # Shown before 2.57 (file injection) and before 2.36 (proxies to
        # Networking); never enforced here, as in Nova with Neutron.
        Resource("injected_files", _not_counted, 5),
        Resource("injected_file_content_bytes", _not_counted, 10240),
        Resource("injected_file_path_bytes", _not_counted, 255),
        Resource("fixed_ips", _not_counted, -1),
        Resource("floating_ips", _not_counted, 10),
        Resource("security_groups", _not_counted, 10),
        Resource("security_group_rules", _not_counted, 20),
    ])
