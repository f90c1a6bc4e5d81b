"""Networking tables (Neutron v2.0).

Neutron keeps standard attributes (description, revision, timestamps) in one
shared table and most list-valued attributes in side tables. Here:

* every resource row carries its own standard attributes (``description``,
  ``revision_number``, ``created_at``, ``updated_at``): one row read per
  resource, no join;
* list values that are never filtered on (allocation pools, DNS servers, host
  routes, allowed address pairs, extra DHCP options, router routes, binding
  details, availability zone hints) are JSON columns, NULL when empty so a
  list of thousands of ports decodes no JSON for them;
* what is filtered on, counted, or must stay unique under concurrency lives in
  side tables: IP allocations (primary key subnet + address: two ports never
  get one address), port <-> security group bindings, the one ``default``
  security group of a project (primary key project), tags. Quota limits
  are the shared ``quota_limit`` table (``common.quota``).

Ids are dashed UUIDs; projects are Keystone ids (32 hex characters, or any
string an admin gives).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import Base

# JSON that stores Python None as SQL NULL (not the text "null"): an empty
# optional list costs nothing to read back.
OPTIONAL_JSON = JSON(none_as_null=True)
PROJECT = 64  # Neutron's PROJECT_ID_FIELD_SIZE is 255; Keystone ids are 32/64
NAME = 255
DESCRIPTION = 255
IP = 64  # an IPv6 address or CIDR in text


class _StandardAttributes:
    """Neutron's standard attributes, as columns of each resource."""

    description: Mapped[str] = mapped_column(String(DESCRIPTION), default="")
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Network(_StandardAttributes, Base):
    __tablename__ = "network"
    __table_args__ = (
        # One segment per network: a VXLAN id is used once, a flat physical
        # network once (NULLs, as in flat/vxlan rows, never collide).
        UniqueConstraint("network_type", "segmentation_id"),
        UniqueConstraint("network_type", "physical_network"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(PROJECT), index=True)
    name: Mapped[str] = mapped_column(String(NAME), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)  # router:external
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    mtu: Mapped[int] = mapped_column(Integer)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    network_type: Mapped[str] = mapped_column(String(32))
    physical_network: Mapped[str | None] = mapped_column(String(64), default=None)
    segmentation_id: Mapped[int | None] = mapped_column(Integer, default=None)
    availability_zone_hints: Mapped[list[Any] | None] = mapped_column(OPTIONAL_JSON, default=None)
    dns_domain: Mapped[str] = mapped_column(String(255), default="")


class AddressScope(Base):
    """Address scopes have no standard attributes in Neutron."""

    __tablename__ = "address_scope"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(PROJECT), index=True)
    name: Mapped[str] = mapped_column(String(NAME), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)


class SubnetPool(_StandardAttributes, Base):
    __tablename__ = "subnetpool"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(PROJECT), index=True)
    name: Mapped[str] = mapped_column(String(NAME), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    default_prefixlen: Mapped[int] = mapped_column(Integer)
    min_prefixlen: Mapped[int] = mapped_column(Integer)
    max_prefixlen: Mapped[int] = mapped_column(Integer)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    default_quota: Mapped[int | None] = mapped_column(Integer, default=None)
    address_scope_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("address_scope.id"), default=None, index=True
    )
    prefixes: Mapped[list[Any]] = mapped_column(JSON, default=list)


class Subnet(_StandardAttributes, Base):
    __tablename__ = "subnet"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(PROJECT), index=True)
    network_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("network.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(NAME), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(IP))
    gateway_ip: Mapped[str | None] = mapped_column(String(IP), default=None)
    allocation_pools: Mapped[list[Any]] = mapped_column(JSON, default=list)
    dns_nameservers: Mapped[list[Any] | None] = mapped_column(OPTIONAL_JSON, default=None)
    host_routes: Mapped[list[Any] | None] = mapped_column(OPTIONAL_JSON, default=None)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(String(16), default=None)
    ipv6_address_mode: Mapped[str | None] = mapped_column(String(16), default=None)
    subnetpool_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("subnetpool.id"), default=None, index=True
    )
    # IPAM: where the next search for a free address starts (not shown).
    next_ip: Mapped[str | None] = mapped_column(String(IP), default=None)


class Port(_StandardAttributes, Base):
    __tablename__ = "port"
    __table_args__ = (UniqueConstraint("network_id", "mac_address"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(PROJECT), index=True)
    network_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("network.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(NAME), default="")
    mac_address: Mapped[str] = mapped_column(String(32))
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(255), default="", index=True)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    dns_name: Mapped[str] = mapped_column(String(255), default="")
    # binding:* (portbindings)
    host_id: Mapped[str] = mapped_column(String(255), default="")
    vif_type: Mapped[str] = mapped_column(String(64), default="unbound")
    vif_details: Mapped[dict[str, Any] | None] = mapped_column(OPTIONAL_JSON, default=None)
    vnic_type: Mapped[str] = mapped_column(String(64), default="normal")
    profile: Mapped[dict[str, Any] | None] = mapped_column(OPTIONAL_JSON, default=None)
    allowed_address_pairs: Mapped[list[Any] | None] = mapped_column(OPTIONAL_JSON, default=None)
    extra_dhcp_opts: Mapped[list[Any] | None] = mapped_column(OPTIONAL_JSON, default=None)


class IPAllocation(Base):
    """One fixed IP of a port: the primary key makes an address single-use."""

    __tablename__ = "ip_allocation"

    subnet_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("subnet.id", ondelete="CASCADE"), primary_key=True
    )
    ip_address: Mapped[str] = mapped_column(String(IP), primary_key=True)
    port_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("port.id", ondelete="CASCADE"), index=True
    )
    network_id: Mapped[str] = mapped_column(String(36), index=True)


class SecurityGroup(_StandardAttributes, Base):
    __tablename__ = "security_group"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(PROJECT), index=True)
    name: Mapped[str] = mapped_column(String(NAME), default="")
    stateful: Mapped[bool] = mapped_column(Boolean, default=True)


class DefaultSecurityGroup(Base):
    """The ``default`` group of each project (one, even under concurrency)."""

    __tablename__ = "default_security_group"

    project_id: Mapped[str] = mapped_column(String(PROJECT), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("security_group.id", ondelete="CASCADE"), index=True
    )


class SecurityGroupRule(_StandardAttributes, Base):
    __tablename__ = "security_group_rule"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(PROJECT), index=True)
    security_group_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("security_group.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(16))
    ethertype: Mapped[str] = mapped_column(String(8))
    protocol: Mapped[str | None] = mapped_column(String(40), default=None)
    port_range_min: Mapped[int | None] = mapped_column(Integer, default=None)
    port_range_max: Mapped[int | None] = mapped_column(Integer, default=None)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(IP), default=None)
    remote_group_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("security_group.id", ondelete="CASCADE"), default=None, index=True
    )


class PortSecurityGroup(Base):
    __tablename__ = "port_security_group"

    port_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("port.id", ondelete="CASCADE"), primary_key=True
    )
    security_group_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("security_group.id"), primary_key=True, index=True
    )


class Router(_StandardAttributes, Base):
    __tablename__ = "router"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(PROJECT), index=True)
    name: Mapped[str] = mapped_column(String(NAME), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    gw_port_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("port.id", ondelete="SET NULL"), default=None, index=True
    )
    enable_snat: Mapped[bool] = mapped_column(Boolean, default=True)
    routes: Mapped[list[Any] | None] = mapped_column(OPTIONAL_JSON, default=None)
    availability_zone_hints: Mapped[list[Any] | None] = mapped_column(OPTIONAL_JSON, default=None)


class FloatingIP(_StandardAttributes, Base):
    __tablename__ = "floating_ip"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(PROJECT), index=True)
    floating_network_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("network.id"), index=True
    )
    floating_ip_address: Mapped[str] = mapped_column(String(IP))
    # the port (device_owner network:floatingip) that holds the address
    floating_port_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("port.id"), unique=True
    )
    fixed_port_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("port.id", ondelete="SET NULL"), default=None, index=True
    )
    fixed_ip_address: Mapped[str | None] = mapped_column(String(IP), default=None)
    router_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("router.id"), default=None, index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="DOWN")


class PortForwarding(Base):
    """A floating IP's port (range) forwarded to a fixed IP's port (range)."""

    __tablename__ = "port_forwarding"
    __table_args__ = (
        UniqueConstraint("floatingip_id", "protocol", "external_port_start"),
        Index("ix_port_forwarding_internal", "internal_port_id", "protocol", "internal_port_start"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    floatingip_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("floating_ip.id", ondelete="CASCADE"), index=True
    )
    internal_port_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("port.id", ondelete="CASCADE")
    )
    internal_ip_address: Mapped[str] = mapped_column(String(IP))
    protocol: Mapped[str] = mapped_column(String(40))
    internal_port_start: Mapped[int] = mapped_column(Integer)
    internal_port_end: Mapped[int] = mapped_column(Integer)
    external_port_start: Mapped[int] = mapped_column(Integer)
    external_port_end: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(DESCRIPTION), default="")


class NetworkTag(Base):
    """A tag on any resource (resource ids are UUIDs, unique across kinds)."""

    __tablename__ = "network_tag"

    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class NetworkState(Base):
    """Facts the service keeps about itself (``defaults_created`` at first start)."""

    __tablename__ = "network_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), default="")
