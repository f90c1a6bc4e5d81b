"""``onestack.network.interface``: what Compute and the data plane call
in-process, checked against what the REST API shows."""

from __future__ import annotations

import pytest

from onestack.common.cloud import Cloud
from onestack.common.errors import BadRequest, Forbidden, NotFound
from onestack.identity import interface as identity
from onestack.network import interface as network
from tests.api._network import N, ok, project_of
from tests.api.conftest import Api


def test_a_port_for_a_server_from_create_to_delete(api: Api) -> None:
    demo = identity.validate_token(api.cloud, api.token("demo"))
    private = network.list_networks(api.cloud, demo, name="private")
    assert [n["name"] for n in private] == ["private"]
    assert network.show_network(api.cloud, demo, private[0]["id"])["id"] == private[0]["id"]

    port = network.create_port(api.cloud, demo, private[0]["id"], name="vm-port")
    assert port["project_id"] == project_of(api, "demo") and port["status"] == "DOWN"
    assert port["fixed_ips"][0]["ip_address"].startswith("10.0.0.")
    assert "binding:host_id" not in port  # the owner does not see the binding

    bound = network.bind_port(api.cloud, port["id"], "compute-1", device_id="server-1")
    assert bound["binding:host_id"] == "compute-1" and bound["device_owner"] == network.COMPUTE_OWNER
    assert bound["binding:vif_type"] == "bridge"
    assert bound["binding:vif_details"]["port_filter"] is True
    assert bound["binding:vif_details"]["bridge_name"].startswith("brq")
    assert [p["id"] for p in network.list_ports(api.cloud, None, device_id="server-1")] == [port["id"]]
    shown = ok(api.get(f"{N}/ports/{port['id']}"))["port"]
    assert shown["binding:host_id"] == "compute-1" and shown["device_id"] == "server-1"

    assert network.set_port_status(api.cloud, port["id"], "ACTIVE") is True
    assert network.set_port_status(api.cloud, port["id"], "ACTIVE") is False
    assert network.show_port(api.cloud, demo, port["id"])["status"] == "ACTIVE"
    with pytest.raises(BadRequest):
        network.set_port_status(api.cloud, port["id"], "RUNNING")

    unbound = network.unbind_port(api.cloud, port["id"])
    assert unbound["binding:host_id"] == "" and unbound["device_id"] == ""
    assert unbound["binding:vif_type"] == "unbound"
    network.delete_port(api.cloud, None, port["id"])
    with pytest.raises(NotFound):
        network.show_port(api.cloud, None, port["id"])
    assert network.set_port_status(api.cloud, port["id"], "DOWN") is False


def test_the_users_policy_applies(api: Api) -> None:
    demo = identity.validate_token(api.cloud, api.token("demo"))
    admin = identity.validate_token(api.cloud, api.token("admin"))
    hidden = ok(api.post(f"{N}/networks", json={"network": {"name": "admin-only"}}), 201)["network"]
    with pytest.raises(NotFound) as err:
        network.create_port(api.cloud, demo, hidden["id"])
    assert err.value.status == 404
    with pytest.raises(NotFound):
        network.show_network(api.cloud, demo, hidden["id"])
    port = network.create_port(api.cloud, admin, hidden["id"])
    with pytest.raises(NotFound):
        network.show_port(api.cloud, demo, port["id"])
    with pytest.raises((NotFound, Forbidden)):
        network.delete_port(api.cloud, demo, port["id"])
    network.delete_port(api.cloud, admin, port["id"])


def test_without_the_network_service(api: Api) -> None:
    lonely = Cloud(settings=api.cloud.settings, db=api.cloud.db)
    with pytest.raises(NotFound):
        network.list_ports(lonely, None)
