"""Neutron's error types: the class name is the ``type`` of the NeutronError body.

``{"NeutronError": {"type": "NetworkNotFound", "message": "...", "detail": ""}}``
- the renderer (``common.web.neutron_error``) writes ``type(exc).__name__``,
so every class here is named exactly as Neutron (neutron-lib) names it, and
its message template is Neutron's.
"""

from __future__ import annotations

from typing import Any

from onestack.common.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
)


class _Templated:
    """An error whose message is ``template % fields``."""

    template = ""
    defaults: dict[str, Any] = {}

    def __init__(self, **fields: Any) -> None:
        fields = {**self.defaults, **fields}
        ApiError.__init__(self, self.template % fields)  # type: ignore[arg-type]
        self.fields = fields


# --- generic (webob) -----------------------------------------------------------


class HTTPBadRequest(BadRequest):
    pass


class HTTPNotFound(NotFound):
    def __init__(self, message: str = "The resource could not be found.") -> None:
        super().__init__(message)


class HTTPMethodNotAllowed(MethodNotAllowed):
    def __init__(self) -> None:
        super().__init__(
            "The server could not comply with the request since it is either "
            "malformed or otherwise incorrect."
        )


class HTTPConflict(Conflict):
    pass


class PolicyNotAuthorized(Forbidden):
    def __init__(self, rule: str) -> None:
        super().__init__(f"{rule} is disallowed by policy")


class InvalidInput(BadRequest):
    def __init__(self, error_message: str) -> None:
        super().__init__(f"Invalid input for operation: {error_message}.")
        self.error_message = error_message


def bad_request(resource: str, msg: str) -> BadRequest:
    """neutron-lib's ``BadRequest(resource=, msg=)``: "Bad <resource> request: <msg>."."""
    return BadRequest(f"Bad {resource} request: {msg}.")


class RevisionNumberConstraintFailed(_Templated, PreconditionFailed):
    template = "Constrained to %(expected)s, but current revision is %(current)s"


class OverQuota(_Templated, Conflict):
    template = "Quota exceeded for resources: %(overs)s."


# --- not found -----------------------------------------------------------------


class NetworkNotFound(_Templated, NotFound):
    template = "Network %(net_id)s could not be found."


class SubnetNotFound(_Templated, NotFound):
    template = "Subnet %(subnet_id)s could not be found."


class PortNotFound(_Templated, NotFound):
    template = "Port %(port_id)s could not be found."


class SubnetPoolNotFound(_Templated, NotFound):
    template = "Subnet pool %(subnetpool_id)s could not be found."


class AddressScopeNotFound(_Templated, NotFound):
    template = "Address scope %(address_scope_id)s could not be found."


class RouterNotFound(_Templated, NotFound):
    template = "Router %(router_id)s could not be found"


class FloatingIPNotFound(_Templated, NotFound):
    template = "Floating IP %(floatingip_id)s could not be found"


class SecurityGroupNotFound(_Templated, NotFound):
    template = "Security group %(id)s does not exist"


class SecurityGroupRuleNotFound(_Templated, NotFound):
    template = "Security group rule %(id)s does not exist"


class PortForwardingNotFound(_Templated, NotFound):
    template = "Port Forwarding %(id)s could not be found."


class TagNotFound(_Templated, NotFound):
    template = "Tag %(tag)s could not be found."


class TagResourceNotFound(_Templated, NotFound):
    template = "Resource %(resource)s %(resource_id)s could not be found."


class ExtensionNotFound(_Templated, NotFound):
    template = "Extension with alias %(alias)s does not exist"


class AvailabilityZoneNotFound(_Templated, NotFound):
    template = "AvailabilityZone %(availability_zone)s could not be found."


class RouterInterfaceNotFound(_Templated, NotFound):
    template = "Router %(router_id)s does not have an interface with id %(port_id)s"


class RouterInterfaceNotFoundForSubnet(_Templated, NotFound):
    template = "Router %(router_id)s has no interface on subnet %(subnet_id)s"


class ExternalGatewayForFloatingIPNotFound(_Templated, NotFound):
    template = (
        "External network %(external_network_id)s is not reachable from subnet "
        "%(subnet_id)s.  Therefore, cannot associate Port %(port_id)s with a Floating IP."
    )


class FloatingIpSetupException(_Templated, NotFound):
    template = "%(reason)s"


# --- conflicts ------------------------------------------------------------------


class NetworkInUse(_Templated, Conflict):
    template = "Unable to complete operation on network %(net_id)s. %(reason)s."
    defaults = {"reason": "There are one or more ports still in use on the network"}


class SubnetInUse(_Templated, Conflict):
    template = "Unable to complete operation on subnet %(subnet_id)s: %(reason)s."
    defaults = {"reason": "One or more ports have an IP allocation from this subnet"}


class PortInUse(_Templated, Conflict):
    template = (
        "Unable to complete operation on port %(port_id)s for network %(net_id)s. "
        "Port already has an attached device %(device_id)s."
    )


class MacAddressInUse(_Templated, Conflict):
    template = (
        "Unable to complete operation for network %(net_id)s. "
        "The mac address %(mac)s is in use."
    )


class IpAddressAlreadyAllocated(_Templated, Conflict):
    template = "IP address %(ip)s already allocated in subnet %(subnet_id)s"


class IpAddressInUse(_Templated, Conflict):
    template = (
        "Unable to complete operation for network %(net_id)s. "
        "The IP address %(ip_address)s is in use."
    )


class IpAddressGenerationFailure(_Templated, Conflict):
    template = "No more IP addresses available on network %(net_id)s."


class FlatNetworkInUse(_Templated, Conflict):
    template = "Unable to create the flat network. Physical network %(physical_network)s is in use."


class TunnelIdInUse(_Templated, Conflict):
    template = "Unable to create the network. The tunnel ID %(tunnel_id)s is in use."


class NoNetworkAvailable(_Templated, ApiError):
    status = 503
    template = "Unable to create the network. No project network is available for allocation."


class GatewayConflictWithAllocationPools(_Templated, Conflict):
    template = "Gateway ip %(ip_address)s conflicts with allocation pool %(pool)s."


class SubnetPoolInUse(_Templated, Conflict):
    template = "Unable to complete operation on subnet pool %(subnet_pool_id)s. %(reason)s."
    defaults = {"reason": "Two or more concurrent subnets allocated"}


class AddressScopeInUse(_Templated, Conflict):
    template = (
        "Unable to complete operation on address scope %(address_scope_id)s. There are one "
        "or more subnet pools in use on the address scope."
    )


class SecurityGroupInUse(_Templated, Conflict):
    template = "Security Group %(id)s %(reason)s."
    defaults = {"reason": "in use"}


class SecurityGroupRuleExists(_Templated, Conflict):
    template = "Security group rule already exists. Rule id is %(rule_id)s."


class SecurityGroupDefaultAlreadyExists(_Templated, Conflict):
    template = "Default security group already exists."


class SecurityGroupRuleInUse(_Templated, Conflict):
    template = "Security Group Rule %(id)s %(reason)s."
    defaults = {"reason": "in use"}


class RouterInUse(_Templated, Conflict):
    template = "Router %(router_id)s %(reason)s"
    defaults = {"reason": "still has ports"}


class RouterInterfaceInUseByFloatingIP(_Templated, Conflict):
    template = (
        "Router interface for subnet %(subnet_id)s on router %(router_id)s cannot be "
        "deleted, as it is required by one or more floating IPs."
    )


class RouterExternalGatewayInUseByFloatingIp(_Templated, Conflict):
    template = (
        "Gateway cannot be updated for router %(router_id)s, since a gateway to external "
        "network %(net_id)s is required by one or more floating IPs."
    )


class FloatingIPPortAlreadyAssociated(_Templated, Conflict):
    template = (
        "Cannot associate floating IP %(floating_ip_address)s (%(fip_id)s) with port "
        "%(port_id)s using fixed IP %(fixed_ip)s, as that fixed IP already has a floating "
        "IP on external network %(net_id)s."
    )


class PortHasBindingFloatingIP(_Templated, Conflict):
    template = (
        "Cannot create port forwarding to floating IP %(floating_ip_address)s (%(fip_id)s) "
        "with port %(port_id)s using fixed IP %(fixed_ip)s, as that port already has a "
        "binding floating IP."
    )


class FipInUseByPortForwarding(_Templated, Conflict):
    template = "Floating IP %(id)s in use by Port Forwarding resources."


class PortForwardingConflict(_Templated, BadRequest):
    template = "%(msg)s"


class PortSecurityAndIPRequiredForSecurityGroups(_Templated, BadRequest):
    template = "Port security must be enabled and port must have an IP address in order to use security groups."


class PortSecurityPortHasSecurityGroup(_Templated, Conflict):
    template = (
        "Port has security group associated. Cannot disable port security or IP "
        "address until security group is removed."
    )


class AddressPairAndPortSecurityRequired(_Templated, Conflict):
    template = "Port Security must be enabled in order to have allowed address pairs on a port."


class DuplicateAddressPairInRequest(_Templated, BadRequest):
    template = (
        "Request contains duplicate address pair: mac_address %(mac_address)s "
        "ip_address %(ip_address)s."
    )


class AllowedAddressPairExhausted(_Templated, BadRequest):
    template = "The number of allowed address pair exceeds the maximum %(quota)s."


class ExternalNetworkInUse(_Templated, Conflict):
    template = (
        "External network %(net_id)s cannot be updated to be made non-external, "
        "since it has existing gateway ports."
    )


class InvalidSharedSetting(_Templated, Conflict):
    template = (
        "Unable to reconfigure sharing settings for network %(network)s. "
        "Multiple projects are using it."
    )


class NetworkMTUSubnetConflict(_Templated, Conflict):
    template = "MTU of %(net_id)s is not valid, subnet requires a minimum of %(mtu)s"
