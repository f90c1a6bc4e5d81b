"""Neutron 29's default policy rules (secure RBAC: ``admin``, project
``member`` and ``reader``, the ``service`` role), with ``field:`` checks
(``field:networks:shared=True``) and parent-owner substitutions
(``project_id:%(network:project_id)s``), which the service puts into the
target. Every action rule has ``scope_types = ['project']`` as upstream
(``PROJECT_SCOPED``): a system- or domain-scoped token is refused. An
operator overrides any rule in ``<state-dir>/policy/network.yaml``.
"""

from __future__ import annotations

ADMIN = "rule:admin_only"
SERVICE = "rule:service_api"
MEMBER = "role:member and project_id:%(project_id)s"
READER = "role:reader and project_id:%(project_id)s"
MANAGER = "role:manager and project_id:%(project_id)s"
ADMIN_OR_MEMBER = f"({ADMIN}) or ({MEMBER})"
ADMIN_OR_READER = f"({ADMIN}) or ({READER})"
ADMIN_OR_SERVICE = f"({ADMIN}) or ({SERVICE})"
NET_OWNER_MEMBER = "role:member and rule:network_owner"
NET_OWNER_READER = "role:reader and rule:network_owner"
PARENT_MEMBER = "role:member and rule:ext_parent_owner"
PARENT_READER = "role:reader and rule:ext_parent_owner"
SG_OWNER_MEMBER = "role:member and rule:sg_owner"
SG_OWNER_READER = "role:reader and rule:sg_owner"

BASE_RULES: dict[str, str] = {
    "context_is_admin": "role:admin",
    "context_with_global_access": "!",
    "service_api": "role:service",
    "owner": "project_id:%(project_id)s",
    "admin_or_owner": "rule:context_is_admin or rule:owner",
    "context_is_advsvc": "role:advsvc",
    "admin_or_network_owner": "rule:context_is_admin or project_id:%(network:project_id)s",
    "admin_owner_or_network_owner": "rule:owner or rule:admin_or_network_owner",
    "network_owner": "project_id:%(network:project_id)s",
    "admin_only": "rule:context_is_admin",
    "regular_user": "",
    "shared": "field:networks:shared=True",
    "default": "rule:admin_or_owner",
    "admin_or_ext_parent_owner": "rule:context_is_admin or project_id:%(ext_parent:project_id)s",
    "ext_parent_owner": "project_id:%(ext_parent:project_id)s",
    "sg_owner": "project_id:%(security_group:project_id)s",
    "admin_or_sg_owner": "rule:context_is_admin or project_id:%(security_group:project_id)s",
    "external": "field:networks:router:external=True",
    "external_network": "field:subnets:router:external=True",
    "shared_address_scopes": "field:address_scopes:shared=True",
    "shared_subnetpools": "field:subnetpools:shared=True",
    "shared_security_group": "field:security_groups:shared=True",
    "network_device": "field:port:device_owner=~^network:",
    "compute_device": "field:port:device_owner=~^compute:",
    "baremetal_device": "field:port:device_owner=~^baremetal:",
    "manila_device": "field:port:device_owner=~^manila:",
    "admin_or_data_plane_int": "rule:context_is_admin or role:data_plane_integrator",
}

_NET_RULES = {
    "create_network": ADMIN_OR_MEMBER,
    "create_network:shared": ADMIN,
    "create_network:router:external": ADMIN,
    "create_network:is_default": ADMIN,
    "create_network:port_security_enabled": ADMIN_OR_MEMBER,
    "create_network:segments": ADMIN,
    "create_network:provider:network_type": ADMIN,
    "create_network:provider:physical_network": ADMIN,
    "create_network:provider:segmentation_id": ADMIN,
    "create_network:tags": ADMIN_OR_MEMBER,
    "get_network": (
        f"({ADMIN}) or ({READER}) or rule:service_api or rule:shared or rule:external "
        "or rule:context_is_advsvc"
    ),
    "get_network:segments": ADMIN,
    "get_network:provider:network_type": ADMIN,
    "get_network:provider:physical_network": ADMIN,
    "get_network:provider:segmentation_id": ADMIN,
    "get_network:tags": (
        f"({ADMIN}) or ({READER}) or rule:shared or rule:external or rule:context_is_advsvc"
    ),
    "update_network": ADMIN_OR_MEMBER,
    "update_network:segments": ADMIN,
    "update_network:shared": ADMIN,
    "update_network:provider:network_type": ADMIN,
    "update_network:provider:physical_network": ADMIN,
    "update_network:provider:segmentation_id": ADMIN,
    "update_network:router:external": ADMIN,
    "update_network:is_default": ADMIN,
    "update_network:port_security_enabled": ADMIN_OR_MEMBER,
    "update_network:tags": ADMIN_OR_MEMBER,
    "delete_network": ADMIN_OR_MEMBER,
    "delete_network:tags": ADMIN_OR_MEMBER,
}

_SUBNET_OWNER = f"{MEMBER} or ({ADMIN}) or ({NET_OWNER_MEMBER})"
_SUBNET_RULES = {
    "create_subnet": f"({ADMIN}) or ({NET_OWNER_MEMBER})",
    "create_subnet:segment_id": ADMIN,
    "create_subnet:service_types": ADMIN,
    "create_subnet:tags": _SUBNET_OWNER,
    "get_subnet": (
        f"{READER} or rule:shared or rule:external_network or ({ADMIN}) "
        f"or ({NET_OWNER_READER}) or rule:service_api"
    ),
    "get_subnet:segment_id": ADMIN,
    "get_subnet:tags": (
        f"{READER} or rule:shared or rule:external_network or ({ADMIN}) or ({NET_OWNER_READER})"
    ),
    "update_subnet": _SUBNET_OWNER,
    "update_subnet:segment_id": ADMIN,
    "update_subnet:service_types": ADMIN,
    "update_subnet:tags": _SUBNET_OWNER,
    "delete_subnet": _SUBNET_OWNER,
    "delete_subnet:tags": _SUBNET_OWNER,
}

_PORT_NET_OWNER = f"({ADMIN}) or ({SERVICE}) or {NET_OWNER_MEMBER}"
_PORT_MEMBER = f"({ADMIN}) or ({MEMBER}) or rule:service_api"
_PORT_PAIRS = f"({ADMIN}) or ({NET_OWNER_MEMBER}) or rule:service_api"
_PORT_RULES = {
    "create_port": f"{_PORT_NET_OWNER} or rule:shared",
    "create_port:device_id": _PORT_MEMBER,
    "create_port:device_owner": f"not rule:network_device or {_PORT_NET_OWNER}",
    "create_port:mac_address": _PORT_NET_OWNER,
    "create_port:fixed_ips": f"{_PORT_NET_OWNER} or rule:shared",
    "create_port:fixed_ips:ip_address": _PORT_NET_OWNER,
    "create_port:fixed_ips:subnet_id": f"{_PORT_NET_OWNER} or rule:shared",
    "create_port:port_security_enabled": _PORT_NET_OWNER,
    "create_port:binding:host_id": ADMIN_OR_SERVICE,
    "create_port:binding:profile": SERVICE,
    "create_port:binding:vnic_type": _PORT_MEMBER,
    "create_port:allowed_address_pairs": _PORT_PAIRS,
    "create_port:allowed_address_pairs:mac_address": _PORT_PAIRS,
    "create_port:allowed_address_pairs:ip_address": _PORT_PAIRS,
    "create_port:tags": f"({ADMIN}) or ({MEMBER}) or rule:context_is_advsvc",
    "get_port": (
        f"({ADMIN}) or ({SERVICE}) or {NET_OWNER_READER} or {READER}"
    ),
    "get_port:binding:vif_type": ADMIN_OR_SERVICE,
    "get_port:binding:vif_details": ADMIN_OR_SERVICE,
    "get_port:binding:host_id": ADMIN_OR_SERVICE,
    "get_port:binding:profile": ADMIN_OR_SERVICE,
    "get_port:tags": (
        f"rule:context_is_advsvc or ({ADMIN}) or ({NET_OWNER_READER}) or {READER}"
    ),
    "update_port": f"({ADMIN}) or ({SERVICE}) or {MEMBER}",
    "update_port:device_id": _PORT_MEMBER,
    "update_port:device_owner": f"not rule:network_device or {_PORT_NET_OWNER}",
    "update_port:mac_address": f"({ADMIN}) or ({SERVICE}) or role:manager and rule:network_owner",
    "update_port:fixed_ips": _PORT_NET_OWNER,
    "update_port:fixed_ips:ip_address": _PORT_NET_OWNER,
    "update_port:fixed_ips:subnet_id": f"{_PORT_NET_OWNER} or rule:shared",
    "update_port:port_security_enabled": _PORT_NET_OWNER,
    "update_port:binding:host_id": ADMIN_OR_SERVICE,
    "update_port:binding:profile": SERVICE,
    "update_port:binding:vnic_type": f"({ADMIN}) or ({SERVICE}) or {MEMBER}",
    "update_port:allowed_address_pairs": _PORT_PAIRS,
    "update_port:allowed_address_pairs:mac_address": _PORT_PAIRS,
    "update_port:allowed_address_pairs:ip_address": _PORT_PAIRS,
    "update_port:data_plane_status": "rule:admin_only or role:data_plane_integrator",
    "update_port:tags": f"({ADMIN}) or ({MEMBER}) or rule:context_is_advsvc",
    "delete_port": (
        f"({ADMIN}) or ({SERVICE}) or (service_roles:service and ({NET_OWNER_MEMBER} or "
        f"{MEMBER})) or (not rule:compute_device and not rule:baremetal_device and not "
        f"rule:manila_device and ({NET_OWNER_MEMBER} or {MEMBER}))"
    ),
    "delete_port:tags": (
        f"rule:context_is_advsvc or {MEMBER} or ({ADMIN}) or ({NET_OWNER_MEMBER})"
    ),
}

_ROUTER_RULES = {
    "create_router": ADMIN_OR_MEMBER,
    "create_router:distributed": ADMIN,
    "create_router:ha": ADMIN,
    "create_router:external_gateway_info": ADMIN_OR_MEMBER,
    "create_router:external_gateway_info:network_id": ADMIN_OR_MEMBER,
    "create_router:external_gateway_info:enable_snat": ADMIN,
    "create_router:external_gateway_info:external_fixed_ips": ADMIN,
    "create_router:tags": ADMIN_OR_MEMBER,
    "get_router": ADMIN_OR_READER,
    "get_router:distributed": ADMIN,
    "get_router:ha": ADMIN,
    "get_router:tags": ADMIN_OR_READER,
    "update_router": ADMIN_OR_MEMBER,
    "update_router:distributed": ADMIN,
    "update_router:ha": ADMIN,
    "update_router:external_gateway_info": ADMIN_OR_MEMBER,
    "update_router:external_gateway_info:network_id": ADMIN_OR_MEMBER,
    "update_router:external_gateway_info:enable_snat": ADMIN,
    "update_router:external_gateway_info:external_fixed_ips": ADMIN,
    "update_router:tags": ADMIN_OR_MEMBER,
    "delete_router": ADMIN_OR_MEMBER,
    "delete_router:tags": ADMIN_OR_MEMBER,
    "add_router_interface": ADMIN_OR_MEMBER,
    "remove_router_interface": ADMIN_OR_MEMBER,
    "add_extraroutes": ADMIN_OR_MEMBER,
    "remove_extraroutes": ADMIN_OR_MEMBER,
}

_FIP_RULES = {
    "create_floatingip": ADMIN_OR_MEMBER,
    "create_floatingip:floating_ip_address": f"({ADMIN}) or ({MANAGER})",
    "create_floatingip:tags": ADMIN_OR_MEMBER,
    "get_floatingip": ADMIN_OR_READER,
    "get_floatingip:tags": ADMIN_OR_READER,
    "update_floatingip": ADMIN_OR_MEMBER,
    "update_floatingip:tags": ADMIN_OR_MEMBER,
    "delete_floatingip": ADMIN_OR_MEMBER,
    "delete_floatingip:tags": ADMIN_OR_MEMBER,
    "get_floatingip_pool": ADMIN_OR_READER,
    "create_floatingip_port_forwarding": f"({ADMIN}) or ({PARENT_MEMBER})",
    "get_floatingip_port_forwarding": f"({ADMIN}) or ({PARENT_READER})",
    "update_floatingip_port_forwarding": f"({ADMIN}) or ({PARENT_MEMBER})",
    "delete_floatingip_port_forwarding": f"({ADMIN}) or ({PARENT_MEMBER})",
}

_SG_RULES = {
    "create_security_group": ADMIN_OR_MEMBER,
    "create_security_group:tags": ADMIN_OR_MEMBER,
    "get_security_group": f"({ADMIN}) or ({READER}) or rule:shared_security_group",
    "get_security_group:tags": f"({ADMIN}) or ({READER}) or rule:shared_security_group",
    "update_security_group": ADMIN_OR_MEMBER,
    "update_security_group:tags": ADMIN_OR_MEMBER,
    "delete_security_group": ADMIN_OR_MEMBER,
    "delete_security_group:tags": ADMIN_OR_MEMBER,
    "create_security_group_rule": f"({ADMIN}) or ({SG_OWNER_MEMBER})",
    "get_security_group_rule": f"({ADMIN}) or ({SG_OWNER_READER})",
    "delete_security_group_rule": f"({ADMIN}) or ({SG_OWNER_MEMBER})",
}

_POOL_RULES = {
    "create_subnetpool": ADMIN_OR_MEMBER,
    "create_subnetpool:shared": ADMIN,
    "create_subnetpool:is_default": ADMIN,
    "create_subnetpool:tags": ADMIN_OR_MEMBER,
    "get_subnetpool": f"({ADMIN}) or ({READER}) or rule:shared_subnetpools",
    "get_subnetpool:tags": f"({ADMIN}) or ({READER}) or rule:shared_subnetpools",
    "update_subnetpool": ADMIN_OR_MEMBER,
    "update_subnetpool:is_default": ADMIN,
    "update_subnetpool:tags": ADMIN_OR_MEMBER,
    "delete_subnetpool": ADMIN_OR_MEMBER,
    "delete_subnetpool:tags": ADMIN_OR_MEMBER,
    "onboard_network_subnets": ADMIN_OR_MEMBER,
    "add_prefixes": ADMIN_OR_MEMBER,
    "remove_prefixes": ADMIN,
    "create_address_scope": ADMIN_OR_MEMBER,
    "create_address_scope:shared": ADMIN,
    "get_address_scope": f"{ADMIN} or {READER} or rule:shared_address_scopes",
    "update_address_scope": ADMIN_OR_MEMBER,
    "update_address_scope:shared": ADMIN,
    "delete_address_scope": ADMIN_OR_MEMBER,
}

_OTHER_RULES = {
    "get_quota": f"({ADMIN}) or ({MANAGER})",
    "update_quota": ADMIN,
    "delete_quota": ADMIN,
    "get_network_ip_availability": ADMIN_OR_SERVICE,
    "get_availability_zone": "role:reader",
    "get_agent": ADMIN,
    "update_agent": ADMIN,
    "delete_agent": ADMIN,
}

DEFAULTS: dict[str, str] = {
    **BASE_RULES,
    **_NET_RULES,
    **_SUBNET_RULES,
    **_PORT_RULES,
    **_ROUTER_RULES,
    **_FIP_RULES,
    **_SG_RULES,
    **_POOL_RULES,
    **_OTHER_RULES,
}

# Every rule but the base ones is for project-scoped tokens only (upstream's
# scope_types; enforce_scope is on by default in Neutron).
PROJECT_SCOPED = frozenset(DEFAULTS) - frozenset(BASE_RULES)
SCOPE_TYPES: dict[str, tuple[str, ...]] = {rule: ("project",) for rule in sorted(PROJECT_SCOPED)}
