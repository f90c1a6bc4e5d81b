"""First start: DevStack's flavors (lib/nova and lib/tempest), once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from onestack.common.ids import utcnow
from onestack.compute.models import Flavor

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

# flavorid, name, RAM MiB, disk GiB, vCPUs, extra specs
DEVSTACK_FLAVORS: list[tuple[str, str, int, int, int, dict[str, str]]] = [
    ("1", "m1.tiny", 512, 1, 1, {}),
    ("2", "m1.small", 2048, 20, 1, {}),
    ("3", "m1.medium", 4096, 40, 2, {}),
    ("4", "m1.large", 8192, 80, 4, {}),
    ("5", "m1.xlarge", 16384, 160, 8, {}),
    ("42", "m1.nano", 128, 1, 1, {"hw_rng:allowed": "True"}),
    ("84", "m1.micro", 192, 1, 1, {"hw_rng:allowed": "True"}),
    ("c1", "cirros256", 256, 1, 1, {"hw_rng:allowed": "True"}),
    ("d1", "ds512M", 512, 5, 1, {"hw_rng:allowed": "True"}),
    ("d2", "ds1G", 1024, 10, 1, {"hw_rng:allowed": "True"}),
    ("d3", "ds2G", 2048, 10, 2, {"hw_rng:allowed": "True"}),
    ("d4", "ds4G", 4096, 20, 4, {"hw_rng:allowed": "True"}),
]


def create_default_flavors(svc: ComputeService) -> bool:
    """On a cloud that never had a flavor, create DevStack's; True if it did."""
    with svc.db.read() as s:
        if s.scalar(select(func.count()).select_from(Flavor)):
            return False
    now = utcnow()
    with svc.db.write() as s:
        if s.scalar(select(func.count()).select_from(Flavor)):
            return False
        for flavorid, name, ram, disk, vcpus, specs in DEVSTACK_FLAVORS:
            s.add(Flavor(flavorid=flavorid, name=name, memory_mb=ram, root_gb=disk, vcpus=vcpus,
                         ephemeral_gb=0, swap=0, rxtx_factor=1.0, is_public=True, disabled=False,
                         extra_specs=dict(specs), created_at=now))
    return True
