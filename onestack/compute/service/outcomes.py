"""What each compute task's outcome does to its server: the kinds' rules and
hooks, run in the transaction that records the outcome (in an API process,
wherever the agent ran).

A host task that succeeded moves the server to its next stable state (a
spawn to ``ACTIVE``, a stop to ``SHUTOFF`` ...) and finishes the instance
action's event; one that failed for good records Nova's fault and either
reverts the task state (pause, suspend ...) or puts the server in ``ERROR``
(build, spawn, reboot, rebuild, resize), freeing what a failed boot took.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from onestack.common.ids import utcnow
from onestack.compute import kinds, states
from onestack.compute.models import (
    ConsoleToken,
    Server,
    ServerGroupMember,
    VolumeAttachment,
)
from onestack.compute.scheduler import claims
from onestack.compute.service._common import event_finish, fault, latest_action
from onestack.compute.virt.base import PowerState

if TYPE_CHECKING:
    from onestack.common.models import Task
    from onestack.common.tasks.kinds import KindRule
    from onestack.compute.core import ComputeService

LOG = logging.getLogger(__name__)

Hook = Callable[[Session, "Task", "Mapping[str, Any] | None"], None]


@dataclass(frozen=True)
class Outcome:
    """A host action: its event name, the states it ends in, what failure does."""

    event: str
    vm_state: str | None = None  # None: keep
    power: PowerState | None = None
    error_state: bool = False  # a failure puts the server in ERROR


OUTCOMES: dict[str, Outcome] = {
    kinds.REBOOT: Outcome("compute_reboot_instance", states.ACTIVE, PowerState.RUNNING, True),
    kinds.STOP: Outcome("compute_stop_instance", states.STOPPED, PowerState.SHUTDOWN),
    kinds.START: Outcome("compute_start_instance", states.ACTIVE, PowerState.RUNNING),
    kinds.PAUSE: Outcome("compute_pause_instance", states.PAUSED, PowerState.PAUSED),
    kinds.UNPAUSE: Outcome("compute_unpause_instance", states.ACTIVE, PowerState.RUNNING),
    kinds.SUSPEND: Outcome("compute_suspend_instance", states.SUSPENDED, PowerState.SUSPENDED),
    kinds.RESUME: Outcome("compute_resume_instance", states.ACTIVE, PowerState.RUNNING),
    kinds.REBUILD: Outcome("compute_rebuild_instance", states.ACTIVE, PowerState.RUNNING, True),
    kinds.RESIZE: Outcome("compute_finish_resize", states.RESIZED, PowerState.RUNNING, True),
    kinds.CONFIRM_RESIZE: Outcome("compute_confirm_resize", None, None),
    kinds.REVERT_RESIZE: Outcome("compute_finish_revert_resize", None, PowerState.RUNNING, True),
    kinds.RESCUE: Outcome("compute_rescue_instance", states.RESCUED, PowerState.RUNNING),
    kinds.UNRESCUE: Outcome("compute_unrescue_instance", states.ACTIVE, PowerState.RUNNING),
    kinds.SNAPSHOT: Outcome("compute_snapshot_instance"),
    kinds.SHELVE: Outcome("compute_shelve_offload_instance"),
    kinds.ATTACH_INTERFACE: Outcome("compute_attach_interface"),
    kinds.DETACH_INTERFACE: Outcome("compute_detach_interface"),
}


def _server(s: Session, task: Task) -> Server | None:
    server_id = (task.payload or {}).get("server")
    return s.get(Server, server_id) if server_id else None


def _finish_event(s: Session, server: Server, event: str, error: str | None = None) -> None:
    action = latest_action(s, server.id)
    if action is not None:
        event_finish(s, action.id, event, host=server.host, error=error)


class Hooks:
    """The hooks of every compute kind, bound to the service."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    # --- boot ----------------------------------------------------------------------

    def spawned(self, s: Session, task: Task, result: Mapping[str, Any] | None) -> None:
        server = _server(s, task)
        if server is None or server.deleted or server.task_state == states.DELETING:
            return
        now = utcnow()
        unshelved = bool((task.payload or {}).get("unshelve"))
        server.vm_state = states.ACTIVE
        server.task_state = None
        server.power_state = int(PowerState.RUNNING)
        server.launched_at = server.launched_at or now
        if unshelved:
            sysmeta = dict(server.system_metadata or {})
            image_id = sysmeta.get("shelved_image_id")
            for key in ("shelved_at", "shelved_image_id", "shelved_host"):
                sysmeta.pop(key, None)
            server.system_metadata = sysmeta
            server.launched_at = now
            if image_id:
                self.svc.cloud.tasks.enqueue(s, kinds.UPLOAD_IMAGE, {
                    "server": server.id, "image_id": image_id, "path": "", "delete": True,
                    "user_id": server.user_id, "project_id": server.project_id,
                }, resource_key=f"upload:{server.id}")
        server.fault = None
        server.updated_at = now
        event = "compute_unshelve_instance" if unshelved else "compute__do_build_and_run_instance"
        _finish_event(s, server, event)

    def build_failed(self, s: Session, task: Task) -> None:
        server = _server(s, task)
        if server is None or server.deleted:
            return
        reason = task.reason or task.error or "Build failed."
        if server.task_state == states.DELETING:
            return
        self._error(s, server, reason)
        event = ("conductor_schedule_and_build_instances" if task.kind == kinds.BUILD
                 else "compute__do_build_and_run_instance")
        _finish_event(s, server, event, error=reason)
        claims.release(s, server.id)
        self._release_network(s, server)

    def _error(self, s: Session, server: Server, reason: str) -> None:
        server.vm_state = states.ERROR
        server.task_state = None
        server.fault = fault(reason)
        server.updated_at = utcnow()
        s.flush()

    def _release_network(self, s: Session, server: Server) -> None:
        self.svc.cloud.tasks.enqueue(
            s, kinds.RELEASE_NETWORK, {"server": server.id,
                                       "network_info": list(server.network_info or [])},
            resource_key=kinds.resource_key(server.id),
        )

    # --- delete --------------------------------------------------------------------

    def deleted(self, s: Session, task: Task, result: Mapping[str, Any] | None) -> None:
        server = _server(s, task)
        if server is None or server.deleted:
            return
        # Nova deallocates the network before the instance is gone (its
        # _shutdown_instance, then _complete_deletion): the server stays,
        # deleting, until its ports are released (also those a build that the
        # delete interrupted made and did not record: found by device id), so
        # that a client that sees it gone can delete the network at once.
        server.power_state = int(PowerState.NOSTATE)
        server.updated_at = utcnow()
        self.svc.cloud.tasks.enqueue(
            s, kinds.RELEASE_NETWORK, {"server": server.id,
                                       "network_info": list(server.network_info or []),
                                       "finish_delete": True},
            resource_key=kinds.resource_key(server.id))

    def network_released(self, s: Session, task: Task,
                         result: Mapping[str, Any] | None) -> None:
        """The ports of a server being deleted are gone: the deletion completes."""
        if not (task.payload or {}).get("finish_delete"):
            return
        server = _server(s, task)
        if server is not None and not server.deleted:
            self._finish_delete(s, server)

    def release_failed(self, s: Session, task: Task) -> None:
        """Nova's _try_deallocate_network: the server goes to ERROR (a delete
        can be asked again)."""
        if not (task.payload or {}).get("finish_delete"):
            return
        server = _server(s, task)
        if server is None or server.deleted:
            return
        reason = f"Failed to deallocate network for instance. Error: {task.reason or task.error}"
        _finish_event(s, server, "compute_terminate_instance", error=reason)
        self._error(s, server, reason)

    def _finish_delete(self, s: Session, server: Server) -> None:
        now = utcnow()
        _finish_event(s, server, "compute_terminate_instance")
        server.deleted = True
        server.deleted_at = now
        server.terminated_at = now
        server.vm_state = states.DELETED
        server.task_state = None
        server.power_state = int(PowerState.NOSTATE)
        server.updated_at = now
        for consumer in (server.id, f"migration:{server.id}"):
            claims.release(s, consumer)
        s.execute(delete(ServerGroupMember).where(ServerGroupMember.server_id == server.id))
        s.execute(delete(VolumeAttachment).where(VolumeAttachment.server_id == server.id))
        s.execute(delete(ConsoleToken).where(ConsoleToken.server_id == server.id))

    def delete_failed(self, s: Session, task: Task) -> None:
        server = _server(s, task)
        if server is None or server.deleted:
            return
        reason = task.reason or "Delete failed."
        _finish_event(s, server, "compute_terminate_instance", error=reason)
        self._error(s, server, reason)

    # --- actions -------------------------------------------------------------------

    def action_done(self, s: Session, task: Task, result: Mapping[str, Any] | None) -> None:
        server = _server(s, task)
        if server is None or server.deleted or server.task_state == states.DELETING:
            return
        outcome = OUTCOMES[task.kind]
        payload = task.payload or {}
        now = utcnow()
        from onestack.compute.service import outcome_steps

        finished = outcome_steps.apply(self.svc, s, server, task.kind, payload, result or {})
        if finished:
            vm_state = payload.get("vm_state_after") or outcome.vm_state
            if vm_state is not None:
                server.vm_state = vm_state
            power = payload.get("power_after")
            if power is not None:
                server.power_state = int(power)
            elif outcome.power is not None:
                server.power_state = int(outcome.power)
            server.task_state = None
            _finish_event(s, server, outcome.event)
        server.updated_at = now

    def action_failed(self, s: Session, task: Task) -> None:
        server = _server(s, task)
        if server is None or server.deleted or server.task_state == states.DELETING:
            return
        outcome = OUTCOMES.get(task.kind)
        reason = task.reason or task.error or "Action failed."
        event = outcome.event if outcome is not None else task.kind
        _finish_event(s, server, event, error=reason)
        from onestack.compute.service import outcome_steps

        outcome_steps.failed(self.svc, s, server, task.kind, task.payload or {})
        if outcome is not None and outcome.error_state:
            self._error(s, server, reason)
        else:
            server.task_state = None
            server.fault = fault(reason)
            server.updated_at = utcnow()

    def action_cancelled(self, s: Session, task: Task) -> None:
        server = _server(s, task)
        if server is None or server.deleted or server.task_state == states.DELETING:
            return
        server.task_state = None
        server.updated_at = utcnow()

    def uploaded(self, s: Session, task: Task, result: Mapping[str, Any] | None) -> None:
        from onestack.compute.service import outcome_steps

        outcome_steps.uploaded(self.svc, s, task.payload or {})

    def upload_failed(self, s: Session, task: Task) -> None:
        from onestack.compute.service import outcome_steps

        outcome_steps.upload_failed(self.svc, s, task.payload or {}, task.reason or "")


def rules(svc: ComputeService) -> dict[str, KindRule]:
    """Every compute kind's rule, its hooks bound to ``svc``."""
    from onestack.common.tasks.kinds import KindRule

    hooks = Hooks(svc)
    binary = kinds.COMPUTE_BINARY
    out: dict[str, KindRule] = {
        kinds.BUILD: KindRule(max_attempts=3, backoff_base=1.0, agents=False,
                              on_give_up=hooks.build_failed),
        kinds.RELEASE_NETWORK: KindRule(max_attempts=5, backoff_base=2.0, agents=False,
                                        on_complete=hooks.network_released,
                                        on_give_up=hooks.release_failed),
        kinds.UPLOAD_IMAGE: KindRule(max_attempts=3, backoff_base=2.0, agents=False,
                                     on_complete=hooks.uploaded, on_give_up=hooks.upload_failed),
        kinds.SPAWN: KindRule(max_attempts=2, backoff_base=1.0, binary=binary,
                              on_complete=hooks.spawned, on_give_up=hooks.build_failed,
                              on_cancel=hooks.action_cancelled),
        kinds.DELETE: KindRule(max_attempts=5, backoff_base=1.0, binary=binary,
                               on_complete=hooks.deleted, on_give_up=hooks.delete_failed),
        # host only: the port is already gone from the server's record
        kinds.UNPLUG_VIF: KindRule(max_attempts=3, backoff_base=1.0, binary=binary),
    }
    for kind in OUTCOMES:
        out[kind] = KindRule(max_attempts=2, backoff_base=1.0, binary=binary,
                             on_complete=hooks.action_done, on_give_up=hooks.action_failed,
                             on_cancel=hooks.action_cancelled)
    return out
