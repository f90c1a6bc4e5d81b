"""Nova's older resources that clients and Tempest still call at old
microversions: ``os-hosts`` (to 2.42), ``os-networks`` and
``os-tenant-networks`` (to 2.35, read from Networking),
``os-instance_usage_audit_log``, ``/extensions`` and ``os-quota-class-sets``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, NotFound, NotImplementedYet
from onestack.common.ids import utcnow
from onestack.compute import kinds
from onestack.compute.models import ComputeNode, Server
from onestack.compute.scheduler.hosts import usage
from onestack.compute.service import hosts as host_service
from onestack.compute.service.aggregates import zone_of

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

_HOSTS = "os_compute_api:os-hosts:"


# --- os-hosts --------------------------------------------------------------------------


def list_hosts(svc: ComputeService, ctx: AuthContext, zone: str | None) -> list[dict[str, Any]]:
    svc.authorize(_HOSTS + "list", ctx, {})
    out = []
    for view in host_service._services(svc):
        if view.binary == kinds.COMPUTE_BINARY:
            entry = {"host_name": view.host, "service": "compute",
                     "zone": zone_of(svc, view.host)}
        else:
            entry = {"host_name": view.host, "service": "conductor", "zone": "internal"}
        if zone is None or entry["zone"] == zone:
            out.append(entry)
    return out


def _node(svc: ComputeService, host: str) -> ComputeNode:
    with svc.db.read() as s:
        node = s.execute(select(ComputeNode).where(ComputeNode.host == host)).scalars().first()
        if node is None:
            raise NotFound(f"Compute host {host} could not be found.")
        s.expunge(node)
        return node


def show_host(svc: ComputeService, ctx: AuthContext, host: str) -> list[dict[str, Any]]:
    svc.authorize(_HOSTS + "show", ctx, {})
    node = _node(svc, host)

    def resource(project: str, cpu: int, memory: int, disk: int) -> dict[str, Any]:
        return {"resource": {"host": host, "project": project, "cpu": cpu,
                             "memory_mb": memory, "disk_gb": disk}}

    with svc.db.read() as s:
        vcpus, memory, disk = usage(s, host)
        rows = s.execute(select(Server.project_id, func.sum(Server.vcpus),
                                func.sum(Server.memory_mb), func.sum(Server.root_gb))
                         .where(Server.host == host, Server.deleted.is_(False))
                         .group_by(Server.project_id)).all()
    out = [resource("(total)", node.vcpus, node.memory_mb, node.local_gb),
           resource("(used_now)", vcpus, memory + node.reserved_memory_mb, disk)]
    totals = [sum(int(r[i] or 0) for r in rows) for i in (1, 2, 3)]
    out.append(resource("(used_max)", *totals))
    out.extend(resource(str(r[0]), int(r[1] or 0), int(r[2] or 0), int(r[3] or 0))
               for r in rows)
    return out


def update_host(svc: ComputeService, ctx: AuthContext, host: str,
                changes: dict[str, str]) -> dict[str, Any]:
    svc.authorize(_HOSTS + "update", ctx, {})
    if not changes:
        raise BadRequest("Invalid input for field/attribute . Value: {}. {} does not have "
                         "enough properties")
    views = host_service._services(svc, host=host, binary=kinds.COMPUTE_BINARY)
    if not views:
        raise NotFound(f"Compute host {host} could not be found.")
    result: dict[str, Any] = {"host": host}
    if "maintenance_mode" in changes:
        raise NotImplementedYet("Virt driver does not implement host maintenance mode.")
    if "status" in changes:
        enable = changes["status"] == "enable"
        svc.cloud.hosts.update(views[0].id, disabled=not enable)
        result["status"] = "enabled" if enable else "disabled"
    return result


def host_power_action(svc: ComputeService, ctx: AuthContext, host: str, action: str) -> None:
    svc.authorize(_HOSTS + ("start" if action == "startup" else action), ctx, {})
    _node(svc, host)
    raise NotImplementedYet(f"Virt driver does not implement host {action}.")


# --- os-networks (read from Networking) ----------------------------------------------


_NETWORK_FIELDS = ("cidr", "netmask", "gateway", "broadcast", "dns1", "dns2", "cidr_v6",
                   "gateway_v6", "netmask_v6")
_ADMIN_FIELDS = ("created_at", "updated_at", "deleted_at", "deleted", "injected", "bridge",
                 "vlan", "vpn_public_address", "vpn_public_port", "vpn_private_address",
                 "dhcp_start", "project_id", "host", "bridge_interface", "multi_host",
                 "priority", "rxtx_base", "mtu", "dhcp_server", "enable_dhcp",
                 "share_address")


def network_view(network: dict[str, Any], admin: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": network["id"], "label": network.get("name")}
    out.update({f: None for f in _NETWORK_FIELDS})
    if admin:
        out.update({f: None for f in _ADMIN_FIELDS})
        out["project_id"] = network.get("project_id")
        out["mtu"] = network.get("mtu")
    return out


def list_networks(svc: ComputeService, ctx: AuthContext, rule: str) -> list[dict[str, Any]]:
    svc.authorize(rule, ctx, {"project_id": ctx.project_id})
    return svc.network.visible_networks(ctx)


def get_network(svc: ComputeService, ctx: AuthContext, network_id: str,
                rule: str) -> dict[str, Any]:
    svc.authorize(rule, ctx, {"project_id": ctx.project_id})
    from onestack.compute.networking.base import NetworkNotFound

    try:
        return svc.network.get_network(ctx, network_id)
    except NetworkNotFound:
        raise NotFound(f"Network {network_id} could not be found.") from None


# --- os-instance_usage_audit_log --------------------------------------------------------


def last_completed_period(before: datetime | None = None) -> tuple[datetime, datetime]:
    """Nova's monthly audit period completed most recently before ``before``."""
    now = before or utcnow()
    end = datetime(now.year, now.month, 1)
    begin = datetime(end.year - 1, 12, 1) if end.month == 1 else datetime(end.year,
                                                                          end.month - 1, 1)
    return begin, end


def audit_log(svc: ComputeService, ctx: AuthContext, rule: str,
              before: datetime | None = None) -> dict[str, Any]:
    """No usage audit runs here (Nova's instance_usage_audit is off by
    default): every compute host is listed as not run for the period."""
    svc.authorize(f"os_compute_api:os-instance-usage-audit-log:{rule}", ctx, {})
    begin, end = last_completed_period(before)
    computes = sorted({v.host for v in host_service._services(svc, binary=kinds.COMPUTE_BINARY)})
    done = 0
    return {
        "period_beginning": str(begin), "period_ending": str(end),
        "num_hosts": len(computes), "num_hosts_done": done, "num_hosts_running": 0,
        "num_hosts_not_run": len(computes), "hosts_not_run": computes,
        "total_instances": 0, "total_errors": 0,
        "overall_status": ("ALL hosts done. 0 errors." if done == len(computes)
                           else f"{done} of {len(computes)} hosts done. 0 errors."),
        "log": {},
    }


def parse_audit_date(text: str) -> datetime:
    try:
        fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
        return datetime.strptime(text, fmt)
    except ValueError:
        raise BadRequest(f"Invalid timestamp for date {text}") from None


# --- /extensions -----------------------------------------------------------------------

EXTENSIONS = [
    ("Flavors", "flavors"), ("FlavorAccess", "os-flavor-access"),
    ("FlavorExtraSpecs", "os-flavor-extra-specs"), ("FlavorManage", "os-flavor-manage"),
    ("Keypairs", "os-keypairs"), ("Limits", "limits"), ("Quotas", "os-quota-sets"),
    ("QuotaClasses", "os-quota-class-sets"), ("AvailabilityZone", "os-availability-zone"),
    ("Aggregates", "os-aggregates"), ("Hosts", "os-hosts"), ("Hypervisors", "os-hypervisors"),
    ("Services", "os-services"), ("SimpleTenantUsage", "os-simple-tenant-usage"),
    ("InstanceActions", "os-instance-actions"), ("ServerGroups", "os-server-groups"),
    ("Servers", "servers"), ("ServerMetadata", "server-metadata"), ("ServerTags", "os-server-tags"),
    ("ServerPassword", "os-server-password"), ("AttachInterfaces", "os-attach-interfaces"),
    ("ExtendedVolumes", "os-extended-volumes"), ("VolumeAttachments", "os-volumes-attachments"),
    ("ServerExternalEvents", "os-server-external-events"), ("Rescue", "os-rescue"),
    ("PauseServer", "os-pause-server"), ("SuspendServer", "os-suspend-server"),
    ("LockServer", "os-lock-server"), ("Shelve", "os-shelve"),
    ("ConsoleOutput", "os-console-output"), ("Consoles", "os-consoles"),
    ("RemoteConsoles", "os-remote-consoles"),
    ("AdminActions", "os-admin-actions"), ("DeferredDelete", "os-deferred-delete"),
    ("SecurityGroups", "os-security-groups"), ("ExtendedServerAttributes",
                                               "OS-EXT-SRV-ATTR"),
    ("ExtendedStatus", "OS-EXT-STS"), ("ExtendedAvailabilityZone", "OS-EXT-AZ"),
    ("ServerUsage", "OS-SRV-USG"), ("DiskConfig", "OS-DCF"), ("ExtendedIps", "OS-EXT-IPS"),
    ("ExtendedIpsMac", "OS-EXT-IPS-MAC"), ("Ips", "ips"), ("MultipleCreate", "os-multiple-create"),
    ("SchedulerHints", "OS-SCH-HNT"), ("ConfigDrive", "os-config-drive"),
    ("CreateBackup", "os-create-backup"), ("ServerDiagnostics", "os-server-diagnostics"),
    ("InstanceUsageAuditLog", "os-instance-usage-audit-log"), ("Networks", "os-networks"),
    ("FloatingIps", "os-floating-ips"), ("FloatingIpPools", "os-floating-ip-pools"),
    ("SecurityGroupRules", "os-security-group-rules"), ("Images", "images"),
    ("ImageMetadata", "image-metadata"), ("MigrateServer", "os-migrate-server"),
    ("Migrations", "os-migrations"),
    ("TenantNetworks", "os-tenant-networks"), ("Versions", "versions"),
]


def extension(name: str, alias: str) -> dict[str, Any]:
    return {"name": name, "alias": alias, "namespace": "http://docs.openstack.org/compute/ext/"
            f"{alias}/api/v1.1", "description": f"{name} support.", "links": [],
            "updated": "2014-12-03T00:00:00Z"}


def extensions(svc: ComputeService, ctx: AuthContext) -> list[dict[str, Any]]:
    svc.authorize("os_compute_api:extensions", ctx, {})
    return [extension(n, a) for n, a in EXTENSIONS]


def get_extension(svc: ComputeService, ctx: AuthContext, alias: str) -> dict[str, Any]:
    svc.authorize("os_compute_api:extensions", ctx, {})
    for name, known in EXTENSIONS:
        if known == alias:
            return extension(name, alias)
    raise NotFound("The resource could not be found.")


# --- os-quota-class-sets ----------------------------------------------------------------


def class_resources(v250: bool, v257: bool) -> list[str]:
    from onestack.compute import schemas

    if v257:
        return list(schemas.QUOTA_RESOURCES_V257)
    if v250:
        return list(schemas.QUOTA_RESOURCES_V236)
    return [r for r in schemas.QUOTA_RESOURCES_ALL
            if r not in ("server_groups", "server_group_members")]


def quota_class(svc: ComputeService, ctx: AuthContext, name: str,
                names: list[str]) -> dict[str, int]:
    svc.authorize("os_compute_api:os-quota-class-sets:show", ctx, {"quota_class": name})
    with svc.db.read() as s:
        values = svc.quotas.class_limits(s, name)
    return {n: values[n] for n in names}


def update_quota_class(svc: ComputeService, ctx: AuthContext, name: str,
                       values: dict[str, Any], names: list[str]) -> dict[str, int]:
    svc.authorize("os_compute_api:os-quota-class-sets:update", ctx, {"quota_class": name})
    from onestack.compute.usage import class_key

    with svc.db.write() as s:
        svc.quotas.set_limits(s, class_key(name), {k: int(v) for k, v in values.items()})
        current = svc.quotas.class_limits(s, name)
    return {n: current[n] for n in names}
