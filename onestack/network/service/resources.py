"""The attribute maps of every resource (neutron-lib's API definitions, with
the extensions this cloud implements folded in)."""

from __future__ import annotations

from typing import Any

from onestack.network.service import sg_convert
from onestack.network.service import validators as v
from onestack.network.service.attributes import (
    ADMIN_STATE_UP,
    DESCRIPTION,
    ID,
    NAME,
    NOT_SPECIFIED,
    STATUS,
    Attr,
    Resource,
    standard,
)
from onestack.network.service.errors import (
    AllowedAddressPairExhausted,
    DuplicateAddressPairInRequest,
    HTTPBadRequest,
    InvalidInput,
)

READ = Attr()
READ_FILTER = Attr(filter=True)
READ_SORT = Attr(filter=True, sort=True)
VNIC_TYPES = (
    "normal", "direct", "macvtap", "baremetal", "direct-physical",
    "virtio-forwarder", "smart-nic", "remote-managed", "vdpa",
)
IPV6_MODES = ("dhcpv6-stateful", "dhcpv6-stateless", "slaac")
MAX_ADDRESS_PAIRS = 10  # replaced from the settings by the service at start


def _dns_label(max_len: int) -> Any:
    def check(data: Any) -> str | None:
        msg = v.string(max_len)(data)
        if msg:
            return msg
        text: str = data.rstrip(".")
        if not text:
            return None
        for label in text.split("."):
            if not label or len(label) > 63:
                return f"'{data}' not a valid PQDN or FQDN. Reason: label exceeds 63 characters or is empty"
            if label.startswith("-") or label.endswith("-") or not all(
                c.isalnum() or c == "-" for c in label
            ):
                return (
                    f"'{data}' not a valid PQDN or FQDN. Reason: Each label must only "
                    "contain letters, digits and hyphens, and must not start or end with a hyphen"
                )
        return None

    return check


def az_hints(data: Any) -> str | None:
    msg = v.list_of_strings(255)(data)
    if msg:
        return msg
    return None


def address_pairs(data: Any) -> str | None:
    """``type:allowed_address_pairs`` with its errors (some raised, as neutron-lib)."""
    if not isinstance(data, list):
        raise HTTPBadRequest("Allowed address pairs must be a list.")
    if len(data) > MAX_ADDRESS_PAIRS:
        raise AllowedAddressPairExhausted(quota=MAX_ADDRESS_PAIRS)
    seen: set[tuple[Any, Any]] = set()
    for pair in data:
        if not isinstance(pair, dict):
            return f"'{pair}' is not a dictionary"
        if "mac_address" in pair:
            msg = v.mac_address(pair["mac_address"])
            if msg:
                raise HTTPBadRequest(msg)
        if "ip_address" not in pair:
            raise InvalidInput("AllowedAddressPair must contain ip_address")
        mac, ip = pair.get("mac_address"), pair["ip_address"]
        try:
            key = (mac, ip)
            if key in seen:
                raise DuplicateAddressPairInRequest(mac_address=mac, ip_address=ip)
            seen.add(key)
        except TypeError:
            raise HTTPBadRequest(f"'{ip}' is not a valid IP address") from None
        extra = set(pair) - {"mac_address", "ip_address"}
        if extra:
            raise HTTPBadRequest("Unrecognized attribute(s) '{}'".format(", ".join(sorted(extra))))
        msg = v.subnet(ip) if isinstance(ip, str) and "/" in ip else v.ip_address(ip)
        if msg:
            raise HTTPBadRequest(msg)
    return None


def _extra_dhcp_opt(item: Any) -> str | None:
    blank_ok = isinstance(item, dict) and item.get("opt_name") in ("router", "classless-static-route")
    if not isinstance(item, dict):
        return f"No valid key specs matched for: {item}"
    if set(item) - {"opt_name", "opt_value", "ip_version"} or not {"opt_name", "opt_value"} <= set(item):
        return f"No valid key specs matched for: {item}"
    name, value = item["opt_name"], item["opt_value"]
    if blank_ok:
        bad = v.string_or_none(255)(value)
    else:
        bad = v.string(64)(name) or (
            None if value is None else v.string(255)(value)
        )
        if not bad and (not name.strip() or len(name.splitlines()) > 1):
            bad = "bad name"
        if not bad and value is not None and (not value.strip() or len(value.splitlines()) > 1):
            bad = "bad value"
    if not bad and "ip_version" in item:
        try:
            if int(item["ip_version"]) not in (4, 6):
                bad = "bad version"
        except (TypeError, ValueError):
            bad = "bad version"
    return f"No valid key specs matched for: {item}" if bad else None


def extra_dhcp_opts(data: Any) -> str | None:
    if data is None:
        return None
    if not isinstance(data, list):
        raise InvalidInput(f"'{data}' is not a list")
    seen: list[Any] = []
    for item in data:
        if item in seen:
            raise InvalidInput(f"Duplicate items in the list: '{item}'")
        seen.append(item)
        msg = _extra_dhcp_opt(item)
        if msg:
            raise InvalidInput(msg)
    return None


GATEWAY_INFO = v.dict_spec(
    {
        "network_id": (v.uuid, True),
        "external_fixed_ips": (v.fixed_ips, False),
        "enable_snat": (v.boolean, False),
    },
    nodata=True,
)


NETWORKS = Resource(
    "network",
    "networks",
    {
        "id": ID,
        "name": NAME,
        "subnets": READ,
        "admin_state_up": ADMIN_STATE_UP,
        "status": STATUS,
        "shared": Attr(post=True, put=True, default=False, convert=v.to_bool, filter=True, policy=True),
        "mtu": Attr(post=True, put=True, default=0, convert=v.to_int, validate=v.non_negative,
                    filter=True, sort=True, policy=True),
        "port_security_enabled": Attr(post=True, put=True, default=True, convert=v.to_bool, policy=True),
        "router:external": Attr(post=True, put=True, default=False, convert=v.to_bool, filter=True,
                                policy=True),
        "provider:network_type": Attr(post=True, put=True, default=NOT_SPECIFIED, validate=v.string(255),
                                      filter=True, policy=True),
        "provider:physical_network": Attr(post=True, put=True, default=NOT_SPECIFIED,
                                          validate=v.string(64), filter=True, policy=True),
        "provider:segmentation_id": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.to_int,
                                         filter=True, policy=True),
        "availability_zone_hints": Attr(post=True, default=[], validate=az_hints, sort=True),
        "availability_zones": READ,
        "ipv4_address_scope": READ,
        "ipv6_address_scope": READ,
        "dns_domain": Attr(post=True, put=True, default="", convert=v.lower_string,
                           validate=_dns_label(255)),
        **standard(),
    },
)

SUBNETS = Resource(
    "subnet",
    "subnets",
    {
        "id": ID,
        "name": NAME,
        "ip_version": Attr(post=True, convert=v.to_int, validate=v.values([4, 6]), filter=True, sort=True),
        "network_id": Attr(post=True, validate=v.uuid, filter=True, sort=True),
        "subnetpool_id": Attr(post=True, default=NOT_SPECIFIED, validate=v.uuid_or_none, filter=True,
                              sort=True),
        "prefixlen": Attr(post=True, default=NOT_SPECIFIED, convert=v.to_int, validate=v.non_negative,
                          visible=False),
        "cidr": Attr(post=True, default=NOT_SPECIFIED, convert=v.canonical_cidr, validate=v.subnet_or_none,
                     filter=True, sort=True),
        "gateway_ip": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.canonical_ip,
                           validate=v.ip_address_or_none, filter=True, sort=True),
        "allocation_pools": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.canonical_pools,
                                 validate=v.ip_pools),
        "dns_nameservers": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.none_to_empty_list,
                                validate=v.nameservers),
        "host_routes": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.none_to_empty_list,
                            validate=v.hostroutes),
        "enable_dhcp": Attr(post=True, put=True, default=True, convert=v.to_bool, filter=True, sort=True),
        "ipv6_ra_mode": Attr(post=True, default=NOT_SPECIFIED, validate=v.values(IPV6_MODES), filter=True,
                             sort=True),
        "ipv6_address_mode": Attr(post=True, default=NOT_SPECIFIED, validate=v.values(IPV6_MODES),
                                  filter=True, sort=True),
        "use_default_subnetpool": Attr(post=True, default=False, convert=v.to_bool, visible=False),
        "shared": Attr(visible=False, filter=True, convert=v.to_bool),
        "router:external": Attr(filter=True, convert=v.to_bool),
        **standard(),
    },
)

PORTS = Resource(
    "port",
    "ports",
    {
        "id": ID,
        "name": NAME,
        "network_id": Attr(post=True, validate=v.uuid, filter=True, sort=True),
        "admin_state_up": ADMIN_STATE_UP,
        "mac_address": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.sanitized_mac,
                            validate=v.mac_address, filter=True, sort=True, policy=True),
        "fixed_ips": Attr(post=True, put=True, default=NOT_SPECIFIED, validate=v.fixed_ips, filter=True,
                          policy=True, sub_keys=("ip_address", "subnet_id"),
                          convert_list=v.kvp_list_to_dict),
        "device_id": Attr(post=True, put=True, default="", validate=v.string(255), filter=True, sort=True,
                          policy=True),
        "device_owner": Attr(post=True, put=True, default="", validate=v.string(255), filter=True,
                             sort=True, policy=True),
        "status": STATUS,
        "port_security_enabled": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.to_bool,
                                      policy=True),
        "security_groups": Attr(post=True, put=True, default=NOT_SPECIFIED, validate=v.uuid_list,
                                filter=True),
        "binding:host_id": Attr(post=True, put=True, default=NOT_SPECIFIED, validate=v.string(255),
                                filter=True, policy=True),
        "binding:profile": Attr(post=True, put=True, default=NOT_SPECIFIED,
                                validate=lambda d: None if d is None else v.dict_spec({})(d), policy=True),
        "binding:vif_type": Attr(policy=True),
        "binding:vif_details": Attr(policy=True),
        "binding:vnic_type": Attr(post=True, put=True, default="normal", validate=v.values(VNIC_TYPES),
                                  filter=True, policy=True),
        "allowed_address_pairs": Attr(post=True, put=True, default=NOT_SPECIFIED,
                                      convert=v.none_to_empty_list, validate=address_pairs, policy=True,
                                      sub_keys=("mac_address", "ip_address")),
        "extra_dhcp_opts": Attr(post=True, put=True, default=None, validate=extra_dhcp_opts),
        "dns_name": Attr(post=True, put=True, default="", convert=v.lower_string, validate=_dns_label(255)),
        "dns_assignment": READ,
        "description": DESCRIPTION,
        "tags": Attr(post=True, default=[], validate=v.list_of_strings(255), filter=True),
        "created_at": Attr(filter=True, sort=True),
        "updated_at": Attr(filter=True, sort=True),
        "revision_number": Attr(filter=True, sort=True),
    },
)

SUBNETPOOLS = Resource(
    "subnetpool",
    "subnetpools",
    {
        "id": ID,
        "name": Attr(post=True, put=True, validate=v.not_empty_name_string, filter=True, sort=True),
        "prefixes": Attr(post=True, put=True, validate=v.subnet_list),
        "default_quota": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.to_int_or_none,
                              validate=lambda d: None if d is None else v.non_negative(d), filter=True,
                              sort=True),
        "ip_version": READ_SORT,
        "default_prefixlen": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.to_int,
                                  validate=v.non_negative, filter=True, sort=True),
        "min_prefixlen": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.to_int,
                              validate=v.non_negative, filter=True, sort=True),
        "max_prefixlen": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.to_int,
                              validate=v.non_negative, filter=True, sort=True),
        "is_default": Attr(post=True, put=True, default=False, convert=v.to_bool, filter=True, sort=True,
                           policy=True),
        "shared": Attr(post=True, default=False, convert=v.to_bool, filter=True, sort=True, policy=True),
        "address_scope_id": Attr(post=True, put=True, default=NOT_SPECIFIED, validate=v.uuid_or_none,
                                 filter=True, sort=True),
        **standard(),
    },
)

ADDRESS_SCOPES = Resource(
    "address_scope",
    "address_scopes",
    {
        "id": ID,
        "name": NAME,
        "shared": Attr(post=True, put=True, default=False, convert=v.to_bool, filter=True, sort=True,
                       policy=True),
        "ip_version": Attr(post=True, convert=v.to_int, validate=v.values([4, 6]), filter=True, sort=True),
    },
    path="address-scopes",
)

ROUTERS = Resource(
    "router",
    "routers",
    {
        "id": ID,
        "name": NAME,
        "admin_state_up": ADMIN_STATE_UP,
        "status": Attr(sort=True),
        "external_gateway_info": Attr(post=True, put=True, default=None, validate=GATEWAY_INFO, policy=True,
                                      sub_keys=("network_id", "enable_snat", "external_fixed_ips")),
        "routes": Attr(put=True, default=NOT_SPECIFIED, convert=v.none_to_empty_list, validate=v.hostroutes),
        "availability_zone_hints": Attr(post=True, default=[], validate=az_hints),
        "availability_zones": READ,
        **standard(),
    },
)

FLOATINGIPS = Resource(
    "floatingip",
    "floatingips",
    {
        "id": ID,
        "floating_ip_address": Attr(post=True, default=None, validate=v.ip_address_or_none, filter=True,
                                    sort=True, policy=True),
        "subnet_id": Attr(post=True, default=None, validate=v.uuid_or_none, visible=False),
        "floating_network_id": Attr(post=True, validate=v.uuid, filter=True, sort=True),
        "router_id": Attr(filter=True, sort=True),
        "port_id": Attr(post=True, put=True, default=None, validate=v.uuid_or_none, filter=True),
        "fixed_ip_address": Attr(post=True, put=True, default=None, validate=v.ip_address_or_none,
                                 filter=True, sort=True),
        "status": READ_SORT,
        "port_details": READ,
        "port_forwardings": READ,
        **standard(),
    },
)

SECURITY_GROUPS = Resource(
    "security_group",
    "security_groups",
    {
        "id": ID,
        # Neutron's own name_not_default: any string (leading and trailing spaces
        # kept, as Nova's os-security-groups proxy passes them), "default" refused
        "name": Attr(post=True, put=True, default="", validate=v.string(255), filter=True, sort=True),
        "stateful": Attr(post=True, put=True, default=True, convert=v.to_bool, filter=True, sort=True),
        "shared": Attr(filter=True, convert=v.to_bool),
        "security_group_rules": READ,
        **standard(),
    },
    path="security-groups",
)

SECURITY_GROUP_RULES = Resource(
    "security_group_rule",
    "security_group_rules",
    {
        "id": ID,
        "security_group_id": Attr(post=True, validate=v.string(36), filter=True, sort=True),
        "remote_group_id": Attr(post=True, default=None, filter=True, sort=True),
        "direction": Attr(post=True, validate=v.values(["ingress", "egress"]), filter=True, sort=True),
        "protocol": Attr(post=True, default=None, convert=sg_convert.convert_protocol, filter=True,
                         sort=True),
        "port_range_min": Attr(post=True, default=None, convert=sg_convert.convert_port, filter=True,
                               sort=True),
        "port_range_max": Attr(post=True, default=None, convert=sg_convert.convert_port, filter=True,
                               sort=True),
        "ethertype": Attr(post=True, default="IPv4", convert=sg_convert.convert_ethertype, filter=True,
                          sort=True),
        "remote_ip_prefix": Attr(post=True, default=None, convert=sg_convert.convert_prefix, filter=True,
                                 sort=True),
        "normalized_cidr": READ,
        "belongs_to_default_sg": READ_FILTER,
        "description": Attr(post=True, default="", validate=v.string(255), filter=True, sort=True),
        "created_at": Attr(filter=True, sort=True),
        "updated_at": Attr(filter=True, sort=True),
        "revision_number": Attr(filter=True, sort=True),
    },
    path="security-group-rules",
)

PORT_FORWARDINGS = Resource(
    "port_forwarding",
    "port_forwardings",
    {
        "id": ID,
        "external_port": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.to_int_or_none,
                              validate=v.int_range_or_none(1, 65535), filter=True, sort=True),
        "internal_port": Attr(post=True, put=True, default=NOT_SPECIFIED, convert=v.to_int_or_none,
                              validate=v.int_range_or_none(1, 65535)),
        "external_port_range": Attr(post=True, put=True, default=NOT_SPECIFIED, filter=True, sort=True),
        "internal_port_range": Attr(post=True, put=True, default=NOT_SPECIFIED),
        "internal_ip_address": Attr(post=True, put=True, validate=v.ip_address),
        "protocol": Attr(post=True, put=True, convert=v.lower_string, validate=v.values(["tcp", "udp"]),
                         filter=True, sort=True),
        "internal_port_id": Attr(post=True, put=True, validate=v.uuid, filter=True, sort=True),
        "description": Attr(post=True, put=True, default="", validate=v.string(255), filter=True),
    },
    has_project=False,
    policy_name="floatingip_port_forwarding",
)

RESOURCES = {
    r.collection: r
    for r in (
        NETWORKS, SUBNETS, PORTS, SUBNETPOOLS, ADDRESS_SCOPES, ROUTERS, FLOATINGIPS,
        SECURITY_GROUPS, SECURITY_GROUP_RULES,
    )
}
