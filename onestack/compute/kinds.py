"""The durable task kinds of Compute and where they run.

``build``, ``release_network`` and ``upload_image`` are conductor work: they
need the database and the other services, so they run in an API process
(host-less, ``agents=False``). The others run on the server's compute host,
in its agent, and touch the host only through the virt driver; what they
change in the database is written by the kind's hooks when the outcome is
recorded.
"""

from __future__ import annotations

BUILD = "compute.build"
RELEASE_NETWORK = "compute.release_network"
UPLOAD_IMAGE = "compute.upload_image"

SPAWN = "compute.spawn"
DELETE = "compute.delete"
REBOOT = "compute.reboot"
STOP = "compute.stop"
START = "compute.start"
PAUSE = "compute.pause"
UNPAUSE = "compute.unpause"
SUSPEND = "compute.suspend"
RESUME = "compute.resume"
REBUILD = "compute.rebuild"
RESIZE = "compute.resize"
CONFIRM_RESIZE = "compute.confirm_resize"
REVERT_RESIZE = "compute.revert_resize"
SNAPSHOT = "compute.snapshot"
SHELVE = "compute.shelve"
UNSHELVE = "compute.unshelve"
RESCUE = "compute.rescue"
UNRESCUE = "compute.unrescue"
ATTACH_INTERFACE = "compute.attach_interface"
DETACH_INTERFACE = "compute.detach_interface"
# A port deleted through Networking (``network-vif-deleted``): its NIC leaves
# the guest, as Nova's ``_process_instance_vif_deleted_event`` detaches it.
UNPLUG_VIF = "compute.unplug_vif"

CONDUCTOR_KINDS = (BUILD, RELEASE_NETWORK, UPLOAD_IMAGE)
HOST_KINDS = (SPAWN, DELETE, REBOOT, STOP, START, PAUSE, UNPAUSE, SUSPEND, RESUME, REBUILD,
              RESIZE, CONFIRM_RESIZE, REVERT_RESIZE, SNAPSHOT, SHELVE, UNSHELVE, RESCUE,
              UNRESCUE, ATTACH_INTERFACE, DETACH_INTERFACE, UNPLUG_VIF)

# The binary a compute host's agent heartbeats as (Nova's name, which
# os-services shows and clients filter on).
COMPUTE_BINARY = "nova-compute"


def resource_key(server_id: str) -> str:
    """Tasks of one server run one at a time, in order."""
    return f"server:{server_id}"
