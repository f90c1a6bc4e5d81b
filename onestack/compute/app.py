"""The Compute service as the cloud mounts it: the service object plus its
HTTP application, its first-start set-up and its life cycle (the compute
agent of this host)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from onestack.compute.core import ComputeService

if TYPE_CHECKING:
    from starlette.types import ASGIApp


class ComputeApp(ComputeService):
    def asgi(self) -> ASGIApp:
        from onestack.common.web import nova_error, service_app
        from onestack.compute.api import routes
        from onestack.compute.api._common import VersionMiddleware

        app = service_app(
            routes,
            nova_error,
            state={"compute": self, "validator": self.cloud.cached_validator,
                   "service_type": "compute"},
        )
        return VersionMiddleware(app, self)

    def prepare(self) -> None:
        """Runs before serving (schema already upgraded): DevStack's flavors."""
        from onestack.compute import bootstrap

        bootstrap.create_default_flavors(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
