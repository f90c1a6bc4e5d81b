"""Claims: resources taken on a host in one write transaction, re-checked
against the host's capacity under the transaction's lock, so two concurrent
boots never overcommit a host."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from onestack.common.ids import utcnow
from onestack.compute.models import Allocation, ComputeNode
from onestack.compute.scheduler.hosts import HostState, usage


def lock_host(s: Session, host: str) -> ComputeNode | None:
    """The host's row, locked until the transaction ends (PostgreSQL; on
    SQLite the write transaction is the lock)."""
    stmt = select(ComputeNode).where(ComputeNode.host == host)
    if s.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return s.execute(stmt).scalars().first()


def claim(s: Session, state: HostState, consumer_id: str, server_id: str, vcpus: int,
          memory_mb: int, disk_gb: int) -> bool:
    """Take the resources on ``state.host`` for ``consumer_id``; False if they
    no longer fit (another claim came first). Replaces the consumer's
    earlier claim (a retried build claims again without counting twice)."""
    node = lock_host(s, state.host)
    if node is None:
        return False
    s.execute(delete(Allocation).where(Allocation.consumer_id == consumer_id))
    used_vcpus, used_memory, used_disk = usage(s, state.host)
    state.used_vcpus, state.used_memory_mb, state.used_disk_gb = used_vcpus, used_memory, used_disk
    if not state.fits(vcpus, memory_mb, disk_gb):
        return False
    s.add(Allocation(consumer_id=consumer_id, server_id=server_id, host=state.host, vcpus=vcpus,
                     memory_mb=memory_mb, disk_gb=disk_gb, created_at=utcnow()))
    s.flush()
    return True


def release(s: Session, consumer_id: str) -> None:
    s.execute(delete(Allocation).where(Allocation.consumer_id == consumer_id))


def move(s: Session, consumer_id: str, to_consumer: str) -> None:
    """Give a claim to another consumer (a resize keeps the old flavor's claim
    under the migration, as Nova moves allocations to the migration record)."""
    row = s.get(Allocation, consumer_id)
    if row is not None:
        row.consumer_id = to_consumer
        s.flush()
