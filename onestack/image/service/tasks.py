"""The image tasks API (``/v2/tasks``, ``/v2/images/{id}/tasks``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from onestack.common.auth import AuthContext
from onestack.common.errors import (
    BadRequest,
    NotFound,
)
from onestack.image.models import ImageTask
from onestack.image.service._access import is_admin, visible_image
from onestack.image.views import task_view

if TYPE_CHECKING:
    from onestack.image.core import ImageService



def image_tasks(svc: ImageService, ctx: AuthContext, image_id: str) -> dict[str, Any]:
    with svc.db.read() as s:
        img, _ = visible_image(svc, s, ctx, image_id)
        rows = s.scalars(select(ImageTask).where(ImageTask.image_id == img.id).order_by(ImageTask.created_at))
        return {"tasks": [task_view(t) for t in rows]}


def get_task(svc: ImageService, ctx: AuthContext, task_id: str) -> dict[str, Any]:
    with svc.db.read() as s:
        task = s.get(ImageTask, task_id)
        if task is None or (task.owner != ctx.project_id and not is_admin(svc, ctx)):
            raise NotFound(f"Task with the given id {task_id} not found")
        return task_view(task)


def list_tasks(svc: ImageService, ctx: AuthContext) -> dict[str, Any]:
    with svc.db.read() as s:
        stmt = select(ImageTask).order_by(ImageTask.created_at.desc())
        if not is_admin(svc, ctx):
            stmt = stmt.where(ImageTask.owner == ctx.project_id)
        return {"tasks": [task_view(t) for t in s.scalars(stmt)], "first": "/v2/tasks",
                "schema": "/v2/schemas/tasks"}


def create_task(svc: ImageService, ctx: AuthContext, body: Any) -> dict[str, Any]:
    """The legacy tasks API: only ``import`` from a URL exists, and this cloud
    fetches nothing from the network, so every such task is refused."""
    if not isinstance(body, dict) or body.get("type") != "import" or not isinstance(body.get("input"), dict):
        raise BadRequest("Invalid task: 'type' must be 'import' with an 'input' object.")
    source = body["input"].get("import_from")
    raise BadRequest(
        f"Import from {source!r} is not supported: this cloud does not download images; "
        "use the glance-direct import method."
    )
