"""``/v2.0/extensions``: exactly the API extensions this service implements.

Each entry is Neutron's own descriptor (alias, name, updated, description),
so clients and Tempest that look for an alias find the behaviour behind it.
Not listed (not implemented): agents and their schedulers (the agents come
with the data plane), RBAC policies, auto-allocated topology, DVR / HA /
flavors, QoS, trunks, segments, metering, logging, default security group
rule templates.
"""

from __future__ import annotations

from typing import Any

from onestack.network.service.errors import HTTPNotFound

_EXTENSIONS: tuple[tuple[str, str, str, str], ...] = (
    ("address-scope", "Address scope", "2015-07-26T10:00:00-00:00", "Address scopes extension."),
    ("allowed-address-pairs", "Allowed Address Pairs", "2013-07-23T10:00:00-00:00",
     "Provides allowed address pairs"),
    ("availability_zone", "Availability Zone", "2015-01-01T10:00:00-00:00", "The availability zone extension."),
    ("availability_zone_filter", "Availability Zone Filter Extension", "2018-06-22T10:00:00-00:00",
     "Add filter parameters to AvailabilityZone resource"),
    ("binding", "Port Binding", "2014-02-03T10:00:00-00:00",
     "Expose port bindings of a virtual port to external application"),
    ("default-subnetpools", "Default Subnetpools", "2016-02-18T18:00:00-00:00",
     "Provides ability to mark and use a subnetpool as the default."),
    ("dns-integration", "DNS Integration", "2015-08-15T18:00:00-00:00", "Provides integration with DNS."),
    ("empty-string-filtering", "Empty String Filtering Extension", "2018-05-01T10:00:00-00:00",
     "Allow filtering by attributes with empty string value"),
    ("external-net", "Neutron external network", "2013-01-14T10:00:00-00:00",
     "Adds external network attribute to network resource."),
    ("extra_dhcp_opt", "Neutron Extra DHCP options", "2013-03-17T12:00:00-00:00",
     "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be "
     "specified (e.g. tftp-server, server-ip-address, bootfile-name)"),
    ("extraroute", "Neutron Extra Route", "2013-02-01T10:00:00-00:00", "Extra routes configuration for L3 router"),
    ("extraroute-atomic", "Atomically add/remove extra routes", "2019-07-10T00:00:00+00:00",
     "Edit extra routes of a router on server side by atomically adding/removing extra routes"),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "2013-03-28T10:00:00-00:00",
     "Extension of the router abstraction for specifying whether SNAT should occur on the external "
     "gateway"),
    ("filter-validation", "Filter parameters validation", "2018-07-04T10:00:00-00:00",
     "Provides validation on filter parameters."),
    ("fip-port-details", "Floating IP Port Details Extension", "2018-04-09T10:00:00-00:00",
     "Add port_details attribute to Floating IP resource"),
    ("floating-ip-port-forwarding", "Floating IP Port Forwarding", "2018-01-19T10:00:00-00:00",
     "Allow port forwarding from floating IP port to an internal port"),
    ("floating-ip-port-forwarding-description", "Floating IP Port Forwarding new attribute description",
     "2019-11-01T10:00:00-00:00", "Add a description field to Port Forwarding rules"),
    ("floating-ip-port-forwarding-detail", "Floating IP port forwarding detail", "2022-05-06T10:00:00-00:00",
     "Allow list floating ip return more port forwarding data, include'id' and 'internal_port_id'"),
    ("floating-ip-port-forwarding-port-ranges", "Floating IP Port Forwarding support port ranges",
     "2020-07-01T10:00:00-00:00", "Add support to port ranges"),
    ("expose-port-forwarding-in-fip", "Expose Floating IP port forwardings", "2018-06-28T16:00:00-00:00",
     "Expose port forwarding fields in floating IP response"),
    ("ip-substring-filtering", "IP address substring filtering", "2017-11-28T09:00:00-00:00",
     "Provides IP address substring filtering when listing ports"),
    ("net-mtu", "Network MTU", "2015-03-25T10:00:00-00:00", "Provides MTU attribute for a network resource."),
    ("net-mtu-writable", "Network MTU (writable)", "2017-07-12T00:00:00-00:00",
     "Provides a writable MTU attribute for a network resource."),
    ("network-ip-availability", "Network IP Availability", "2015-09-24T00:00:00-00:00",
     "Provides IP availability data for each network and subnet."),
    ("network-ip-availability-details", "Network IP Availability Details Extension",
     "2025-10-31T00:00:00-00:00",
     "Add ip_availability_details attribute to network-ip-availabilities resource."),
    ("network_availability_zone", "Network Availability Zone", "2015-01-01T10:00:00-00:00",
     "Availability zone support for network."),
    ("pagination", "Pagination support", "2016-06-12T00:00:00-00:00",
     "Extension that indicates that pagination is enabled."),
    ("port-security", "Port Security", "2012-07-23T10:00:00-00:00", "Provides port security"),
    ("port-security-groups-filtering", "Port filtering on security groups", "2018-01-09T09:00:00-00:00",
     "Provides security groups filtering when listing ports"),
    ("project-id", "project_id field enabled", "2016-09-09T09:09:09-09:09",
     "Extension that indicates that project_id field is enabled."),
    ("provider", "Provider Network", "2012-09-07T10:00:00-00:00",
     "Expose mapping of virtual networks to physical networks"),
    ("quota-check-limit", "Quota engine limit check", "2021-09-08T16:00:00-00:00",
     "Support for checking the resource usage before applying a new quota limit"),
    ("quota-check-limit-default", "Quota engine limit check by default", "2024-08-21T16:00:00-00:00",
     "By default, the Neutron quota engine checks the resource usage before applying a new quota limit"),
    ("quota_details", "Quota details management support", "2017-02-10T10:00:00-00:00",
     "Expose functions for quotas usage statistics per project"),
    ("quotas", "Quota management support", "2012-07-29T10:00:00-00:00",
     "Expose functions for quotas management per project"),
    ("revision-if-match", "If-Match constraints based on revision_number", "2016-12-11T00:00:00-00:00",
     "Extension indicating that If-Match based on revision_number is supported."),
    ("router", "Neutron L3 Router", "2012-07-20T10:00:00-00:00",
     "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external "
     "networks via a NAT gateway."),
    ("router_availability_zone", "Router Availability Zone", "2015-01-01T10:00:00-00:00",
     "Availability zone support for router."),
    ("security-group", "security-group", "2012-10-05T10:00:00-00:00", "The security groups extension."),
    ("security-groups-normalized-cidr", "Normalized CIDR field for security group rules",
     "2020-07-28T10:00:00-00:00", "Add new field with normalized remote_ip_prefix cidr in SG rule"),
    ("security-groups-rules-belongs-to-default-sg",
     "Security group rule belongs to the project's default security group", "2023-05-23T10:00:00-00:00",
     "Flag to determine if the security group rule belongs to the project's default security group"),
    ("security-groups-shared-filtering", "Security group filtering on the shared field",
     "2021-10-05T09:00:00-00:00", "Support filtering security groups on the shared field"),
    ("service-type", "Neutron Service Type Management", "2013-01-20T00:00:00-00:00",
     "API for retrieving service providers for Neutron advanced services"),
    ("sorting", "Sorting support", "2016-06-12T00:00:00-00:00", "Extension that indicates that sorting is enabled."),
    ("standard-attr-description", "standard-attr-description", "2016-02-10T10:00:00-00:00",
     "Extension to add descriptions to standard attributes"),
    ("standard-attr-revisions", "Resource revision numbers", "2016-04-11T10:00:00-00:00",
     "This extension will display the revision number of neutron resources."),
    ("standard-attr-tag",
     "Tag support for resources with standard attribute: port, subnet, subnetpool, network, "
     "security_group, router, floatingip", "2017-01-01T00:00:00-00:00",
     "Enables to set tag on resources with standard attribute."),
    ("standard-attr-timestamp", "Resource timestamps", "2016-09-12T10:00:00-00:00",
     "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard "
     "attributes."),
    ("stateful-security-group", "Stateful security group", "2019-11-26T09:00:00-00:00",
     "Indicates if the security group is stateful or not"),
    ("subnet-external-network", "Subnet belongs to an external network", "2024-02-05T18:00:00-00:00",
     "Informs if the subnet belongs to an external network"),
    ("subnet_allocation", "Subnet Allocation", "2015-03-30T10:00:00-00:00",
     "Enables allocation of subnets from a subnet pool"),
    ("subnetpool-prefix-ops", "Subnet Pool Prefix Operations", "2019-02-08T10:00:00-00:00",
     "Provides support for adjusting the prefix list of subnet pools"),
    ("tag-creation", "Tag creation extension", "2024-23-07T10:00:00-00:00",
     "Allow to create multiple tags for a resource"),
)

ALIASES = frozenset(alias for alias, *_ in _EXTENSIONS)


def _entry(alias: str, name: str, updated: str, description: str) -> dict[str, Any]:
    return {"name": name, "alias": alias, "description": description, "updated": updated, "links": []}


def list_extensions() -> list[dict[str, Any]]:
    return [_entry(*e) for e in _EXTENSIONS]


def show_extension(alias: str) -> dict[str, Any]:
    for e in _EXTENSIONS:
        if e[0] == alias:
            return _entry(*e)
    raise HTTPNotFound(f"Extension with alias {alias} does not exist")
