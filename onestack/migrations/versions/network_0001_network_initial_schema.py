"""network initial schema: networks, subnets, subnet pools, address scopes, ports,
IP allocations, security groups and rules, routers, floating IPs, port forwarding,
tags, quotas

Revision ID: network_0001
Revises:
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "network_0001"
down_revision = None
branch_labels = ("network",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "address_scope",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("ip_version", sa.Integer(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_address_scope")),
    )
    op.create_index(
        op.f("ix_address_scope_project_id"), "address_scope", ["project_id"], unique=False
    )
    op.create_table(
        "network",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("admin_state_up", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("external", sa.Boolean(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("mtu", sa.Integer(), nullable=False),
        sa.Column("port_security_enabled", sa.Boolean(), nullable=False),
        sa.Column("network_type", sa.String(length=32), nullable=False),
        sa.Column("physical_network", sa.String(length=64), nullable=True),
        sa.Column("segmentation_id", sa.Integer(), nullable=True),
        sa.Column("availability_zone_hints", sa.JSON(), nullable=True),
        sa.Column("dns_domain", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network")),
        sa.UniqueConstraint(
            "network_type",
            "physical_network",
            name=op.f("uq_network_network_type_physical_network"),
        ),
        sa.UniqueConstraint(
            "network_type", "segmentation_id", name=op.f("uq_network_network_type_segmentation_id")
        ),
    )
    op.create_index(op.f("ix_network_project_id"), "network", ["project_id"], unique=False)
    op.create_table(
        "network_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_network_state")),
    )
    op.create_table(
        "network_tag",
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("resource_id", "tag", name=op.f("pk_network_tag")),
    )
    op.create_index(op.f("ix_network_tag_tag"), "network_tag", ["tag"], unique=False)
    op.create_table(
        "security_group",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("stateful", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_group")),
    )
    op.create_index(
        op.f("ix_security_group_project_id"), "security_group", ["project_id"], unique=False
    )
    op.create_table(
        "default_security_group",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("security_group_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["security_group_id"],
            ["security_group.id"],
            name=op.f("fk_default_security_group_security_group_id_security_group"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_default_security_group")),
    )
    op.create_index(
        op.f("ix_default_security_group_security_group_id"),
        "default_security_group",
        ["security_group_id"],
        unique=False,
    )
    op.create_table(
        "port",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("network_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("mac_address", sa.String(length=32), nullable=False),
        sa.Column("admin_state_up", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.String(length=255), nullable=False),
        sa.Column("device_owner", sa.String(length=255), nullable=False),
        sa.Column("port_security_enabled", sa.Boolean(), nullable=False),
        sa.Column("dns_name", sa.String(length=255), nullable=False),
        sa.Column("host_id", sa.String(length=255), nullable=False),
        sa.Column("vif_type", sa.String(length=64), nullable=False),
        sa.Column("vif_details", sa.JSON(), nullable=True),
        sa.Column("vnic_type", sa.String(length=64), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=True),
        sa.Column("allowed_address_pairs", sa.JSON(), nullable=True),
        sa.Column("extra_dhcp_opts", sa.JSON(), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_id"],
            ["network.id"],
            name=op.f("fk_port_network_id_network"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_port")),
        sa.UniqueConstraint(
            "network_id", "mac_address", name=op.f("uq_port_network_id_mac_address")
        ),
    )
    op.create_index(op.f("ix_port_device_id"), "port", ["device_id"], unique=False)
    op.create_index(op.f("ix_port_device_owner"), "port", ["device_owner"], unique=False)
    op.create_index(op.f("ix_port_network_id"), "port", ["network_id"], unique=False)
    op.create_index(op.f("ix_port_project_id"), "port", ["project_id"], unique=False)
    op.create_table(
        "security_group_rule",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("security_group_id", sa.String(length=36), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("ethertype", sa.String(length=8), nullable=False),
        sa.Column("protocol", sa.String(length=40), nullable=True),
        sa.Column("port_range_min", sa.Integer(), nullable=True),
        sa.Column("port_range_max", sa.Integer(), nullable=True),
        sa.Column("remote_ip_prefix", sa.String(length=64), nullable=True),
        sa.Column("remote_group_id", sa.String(length=36), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["remote_group_id"],
            ["security_group.id"],
            name=op.f("fk_security_group_rule_remote_group_id_security_group"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["security_group_id"],
            ["security_group.id"],
            name=op.f("fk_security_group_rule_security_group_id_security_group"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_group_rule")),
    )
    op.create_index(
        op.f("ix_security_group_rule_project_id"),
        "security_group_rule",
        ["project_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_security_group_rule_remote_group_id"),
        "security_group_rule",
        ["remote_group_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_security_group_rule_security_group_id"),
        "security_group_rule",
        ["security_group_id"],
        unique=False,
    )
    op.create_table(
        "subnetpool",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("ip_version", sa.Integer(), nullable=False),
        sa.Column("default_prefixlen", sa.Integer(), nullable=False),
        sa.Column("min_prefixlen", sa.Integer(), nullable=False),
        sa.Column("max_prefixlen", sa.Integer(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("default_quota", sa.Integer(), nullable=True),
        sa.Column("address_scope_id", sa.String(length=36), nullable=True),
        sa.Column("prefixes", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["address_scope_id"],
            ["address_scope.id"],
            name=op.f("fk_subnetpool_address_scope_id_address_scope"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subnetpool")),
    )
    op.create_index(
        op.f("ix_subnetpool_address_scope_id"), "subnetpool", ["address_scope_id"], unique=False
    )
    op.create_index(op.f("ix_subnetpool_project_id"), "subnetpool", ["project_id"], unique=False)
    op.create_table(
        "port_security_group",
        sa.Column("port_id", sa.String(length=36), nullable=False),
        sa.Column("security_group_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["port_id"],
            ["port.id"],
            name=op.f("fk_port_security_group_port_id_port"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["security_group_id"],
            ["security_group.id"],
            name=op.f("fk_port_security_group_security_group_id_security_group"),
        ),
        sa.PrimaryKeyConstraint(
            "port_id", "security_group_id", name=op.f("pk_port_security_group")
        ),
    )
    op.create_index(
        op.f("ix_port_security_group_security_group_id"),
        "port_security_group",
        ["security_group_id"],
        unique=False,
    )
    op.create_table(
        "router",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("admin_state_up", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("gw_port_id", sa.String(length=36), nullable=True),
        sa.Column("enable_snat", sa.Boolean(), nullable=False),
        sa.Column("routes", sa.JSON(), nullable=True),
        sa.Column("availability_zone_hints", sa.JSON(), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["gw_port_id"], ["port.id"], name=op.f("fk_router_gw_port_id_port"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_router")),
    )
    op.create_index(op.f("ix_router_gw_port_id"), "router", ["gw_port_id"], unique=False)
    op.create_index(op.f("ix_router_project_id"), "router", ["project_id"], unique=False)
    op.create_table(
        "subnet",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("network_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("ip_version", sa.Integer(), nullable=False),
        sa.Column("cidr", sa.String(length=64), nullable=False),
        sa.Column("gateway_ip", sa.String(length=64), nullable=True),
        sa.Column("allocation_pools", sa.JSON(), nullable=False),
        sa.Column("dns_nameservers", sa.JSON(), nullable=True),
        sa.Column("host_routes", sa.JSON(), nullable=True),
        sa.Column("enable_dhcp", sa.Boolean(), nullable=False),
        sa.Column("ipv6_ra_mode", sa.String(length=16), nullable=True),
        sa.Column("ipv6_address_mode", sa.String(length=16), nullable=True),
        sa.Column("subnetpool_id", sa.String(length=36), nullable=True),
        sa.Column("next_ip", sa.String(length=64), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_id"],
            ["network.id"],
            name=op.f("fk_subnet_network_id_network"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subnetpool_id"], ["subnetpool.id"], name=op.f("fk_subnet_subnetpool_id_subnetpool")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subnet")),
    )
    op.create_index(op.f("ix_subnet_network_id"), "subnet", ["network_id"], unique=False)
    op.create_index(op.f("ix_subnet_project_id"), "subnet", ["project_id"], unique=False)
    op.create_index(op.f("ix_subnet_subnetpool_id"), "subnet", ["subnetpool_id"], unique=False)
    op.create_table(
        "floating_ip",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("floating_network_id", sa.String(length=36), nullable=False),
        sa.Column("floating_ip_address", sa.String(length=64), nullable=False),
        sa.Column("floating_port_id", sa.String(length=36), nullable=False),
        sa.Column("fixed_port_id", sa.String(length=36), nullable=True),
        sa.Column("fixed_ip_address", sa.String(length=64), nullable=True),
        sa.Column("router_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fixed_port_id"],
            ["port.id"],
            name=op.f("fk_floating_ip_fixed_port_id_port"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["floating_network_id"],
            ["network.id"],
            name=op.f("fk_floating_ip_floating_network_id_network"),
        ),
        sa.ForeignKeyConstraint(
            ["floating_port_id"], ["port.id"], name=op.f("fk_floating_ip_floating_port_id_port")
        ),
        sa.ForeignKeyConstraint(
            ["router_id"], ["router.id"], name=op.f("fk_floating_ip_router_id_router")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_floating_ip")),
        sa.UniqueConstraint("floating_port_id", name=op.f("uq_floating_ip_floating_port_id")),
    )
    op.create_index(
        op.f("ix_floating_ip_fixed_port_id"), "floating_ip", ["fixed_port_id"], unique=False
    )
    op.create_index(
        op.f("ix_floating_ip_floating_network_id"),
        "floating_ip",
        ["floating_network_id"],
        unique=False,
    )
    op.create_index(op.f("ix_floating_ip_project_id"), "floating_ip", ["project_id"], unique=False)
    op.create_index(op.f("ix_floating_ip_router_id"), "floating_ip", ["router_id"], unique=False)
    op.create_table(
        "ip_allocation",
        sa.Column("subnet_id", sa.String(length=36), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=False),
        sa.Column("port_id", sa.String(length=36), nullable=False),
        sa.Column("network_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["port_id"], ["port.id"], name=op.f("fk_ip_allocation_port_id_port"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["subnet_id"],
            ["subnet.id"],
            name=op.f("fk_ip_allocation_subnet_id_subnet"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subnet_id", "ip_address", name=op.f("pk_ip_allocation")),
    )
    op.create_index(
        op.f("ix_ip_allocation_network_id"), "ip_allocation", ["network_id"], unique=False
    )
    op.create_index(op.f("ix_ip_allocation_port_id"), "ip_allocation", ["port_id"], unique=False)
    op.create_table(
        "port_forwarding",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("floatingip_id", sa.String(length=36), nullable=False),
        sa.Column("internal_port_id", sa.String(length=36), nullable=False),
        sa.Column("internal_ip_address", sa.String(length=64), nullable=False),
        sa.Column("protocol", sa.String(length=40), nullable=False),
        sa.Column("internal_port_start", sa.Integer(), nullable=False),
        sa.Column("internal_port_end", sa.Integer(), nullable=False),
        sa.Column("external_port_start", sa.Integer(), nullable=False),
        sa.Column("external_port_end", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["floatingip_id"],
            ["floating_ip.id"],
            name=op.f("fk_port_forwarding_floatingip_id_floating_ip"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["internal_port_id"],
            ["port.id"],
            name=op.f("fk_port_forwarding_internal_port_id_port"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_port_forwarding")),
        sa.UniqueConstraint(
            "floatingip_id",
            "protocol",
            "external_port_start",
            name=op.f("uq_port_forwarding_floatingip_id_protocol_external_port_start"),
        ),
    )
    op.create_index(
        op.f("ix_port_forwarding_floatingip_id"), "port_forwarding", ["floatingip_id"], unique=False
    )
    op.create_index(
        "ix_port_forwarding_internal",
        "port_forwarding",
        ["internal_port_id", "protocol", "internal_port_start"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_port_forwarding_internal", table_name="port_forwarding")
    op.drop_index(op.f("ix_port_forwarding_floatingip_id"), table_name="port_forwarding")
    op.drop_table("port_forwarding")
    op.drop_index(op.f("ix_ip_allocation_port_id"), table_name="ip_allocation")
    op.drop_index(op.f("ix_ip_allocation_network_id"), table_name="ip_allocation")
    op.drop_table("ip_allocation")
    op.drop_index(op.f("ix_floating_ip_router_id"), table_name="floating_ip")
    op.drop_index(op.f("ix_floating_ip_project_id"), table_name="floating_ip")
    op.drop_index(op.f("ix_floating_ip_floating_network_id"), table_name="floating_ip")
    op.drop_index(op.f("ix_floating_ip_fixed_port_id"), table_name="floating_ip")
    op.drop_table("floating_ip")
    op.drop_index(op.f("ix_subnet_subnetpool_id"), table_name="subnet")
    op.drop_index(op.f("ix_subnet_project_id"), table_name="subnet")
    op.drop_index(op.f("ix_subnet_network_id"), table_name="subnet")
    op.drop_table("subnet")
    op.drop_index(op.f("ix_router_project_id"), table_name="router")
    op.drop_index(op.f("ix_router_gw_port_id"), table_name="router")
    op.drop_table("router")
    op.drop_index(
        op.f("ix_port_security_group_security_group_id"), table_name="port_security_group"
    )
    op.drop_table("port_security_group")
    op.drop_index(op.f("ix_subnetpool_project_id"), table_name="subnetpool")
    op.drop_index(op.f("ix_subnetpool_address_scope_id"), table_name="subnetpool")
    op.drop_table("subnetpool")
    op.drop_index(
        op.f("ix_security_group_rule_security_group_id"), table_name="security_group_rule"
    )
    op.drop_index(op.f("ix_security_group_rule_remote_group_id"), table_name="security_group_rule")
    op.drop_index(op.f("ix_security_group_rule_project_id"), table_name="security_group_rule")
    op.drop_table("security_group_rule")
    op.drop_index(op.f("ix_port_project_id"), table_name="port")
    op.drop_index(op.f("ix_port_network_id"), table_name="port")
    op.drop_index(op.f("ix_port_device_owner"), table_name="port")
    op.drop_index(op.f("ix_port_device_id"), table_name="port")
    op.drop_table("port")
    op.drop_index(
        op.f("ix_default_security_group_security_group_id"), table_name="default_security_group"
    )
    op.drop_table("default_security_group")
    op.drop_index(op.f("ix_security_group_project_id"), table_name="security_group")
    op.drop_table("security_group")
    op.drop_index(op.f("ix_network_tag_tag"), table_name="network_tag")
    op.drop_table("network_tag")
    op.drop_table("network_state")
    op.drop_index(op.f("ix_network_project_id"), table_name="network")
    op.drop_table("network")
    op.drop_index(op.f("ix_address_scope_project_id"), table_name="address_scope")
    op.drop_table("address_scope")
