"""The all-in-one defaults, created once at first start (as DevStack creates them).

* ``public``: the admin project's external network (flat, physical network
  ``public``) with ``public-subnet`` 172.24.4.0/24, gateway 172.24.4.1,
  DHCP off - floating IPs and router gateways come from it;
* ``private``: the demo project's network with ``private-subnet``
  10.0.0.0/26, DHCP on;
* ``router1``: the demo project's router, its gateway on ``public`` and an
  interface on ``private-subnet``.

All in one transaction, recorded in ``network_state`` so that a restart (or
an operator who deleted them) does not get them again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from onestack.common.auth import AuthContext
from onestack.network.service.policy import caller_for

if TYPE_CHECKING:
    from onestack.network.core import NetworkService


log = logging.getLogger(__name__)

MARKER = "defaults_created"


def create_defaults(net: NetworkService) -> bool:
    """Create the defaults unless this database has had them; True if created now."""
    from onestack.network.models import NetworkState

    with net.db.read() as s:
        if s.get(NetworkState, MARKER) is not None:
            return False
    from onestack.identity import interface as identity_interface

    admin_project = identity_interface.admin_project_id(net.cloud)
    demo_project = identity_interface.project_id(net.cloud, "demo")
    if not admin_project or not demo_project:
        log.warning("network defaults not created: no admin or demo project")
        return False
    cfg = net.config
    from onestack.network.service import networks, routers, subnets

    admin = caller_for(net, AuthContext(token="", user_id="onestack", project_id=admin_project,
                                        roles=("admin", "member", "reader")))
    with net.writing() as s:
        if s.get(NetworkState, MARKER) is not None:
            return False
        public = networks.create(net, admin, [{
            "name": "public", "router:external": True, "provider:network_type": "flat",
            "provider:physical_network": "public",
        }])[0]
        subnets.create(net, admin, [{
            "name": "public-subnet", "network_id": public["id"], "ip_version": 4,
            "cidr": cfg.public_cidr, "gateway_ip": cfg.public_gateway, "enable_dhcp": False,
        }])
        private = networks.create(net, admin, [{"name": "private", "project_id": demo_project}])[0]
        private_subnet = subnets.create(net, admin, [{
            "name": "private-subnet", "network_id": private["id"], "ip_version": 4,
            "cidr": cfg.private_cidr, "project_id": demo_project,
        }])[0]
        router = routers.create(net, admin, [{
            "name": "router1", "project_id": demo_project,
            "external_gateway_info": {"network_id": public["id"]},
        }])[0]
        routers.add_interface(net, admin, router["id"], {"subnet_id": private_subnet["id"]})
        s.add(NetworkState(name=MARKER, value="1"))
        s.flush()
    log.info("network defaults created: public %s, private %s, router1", cfg.public_cidr, cfg.private_cidr)
    return True
