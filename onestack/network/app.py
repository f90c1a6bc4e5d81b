"""The Networking service as the cloud mounts it: the service object plus its
HTTP application and its life cycle.

``onestack.network.create(cloud)`` returns a :class:`NetworkApp`: the
:class:`~onestack.network.core.NetworkService` every network service function
takes, with what only the top of the network layers may do: build the ASGI
app from the API routes and create the all-in-one defaults at first start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onestack.network.core import NetworkService

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send


class NetworkApp(NetworkService):
    def asgi(self) -> ASGIApp:
        from onestack.common.web import service_app
        from onestack.network.api import all_routes
        from onestack.network.api._http import render_error
        from onestack.network.service.errors import HTTPNotFound

        app = service_app(
            all_routes(),
            render_error,
            state={"network": self, "validator": self.cloud.cached_validator, "service_type": "network",
                   "auth_uri": self.settings.base_url + "/identity"},
        )

        async def no_nul_in_path(scope: Scope, receive: Receive, send: Send) -> None:
            # No id, tag or name holds a NUL character (PostgreSQL refuses one).
            if scope["type"] == "http" and "\x00" in scope["path"]:
                await render_error(HTTPNotFound())(scope, receive, send)
                return
            await app(scope, receive, send)

        return no_nul_in_path

    def prepare(self) -> None:
        """Runs before serving (schema upgraded, identity bootstrapped)."""
        if self.config.create_defaults:
            from onestack.network.bootstrap import create_defaults

            create_defaults(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
