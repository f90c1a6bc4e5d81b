"""The Identity service as the cloud mounts it: the service object plus its
HTTP application, its bootstrap and its life cycle.

``onestack.identity.create(cloud)`` returns an :class:`IdentityApp`. It is
the :class:`~onestack.identity.core.Identity` every identity service function
takes, with what only the top of the identity layers may do: build the ASGI
app from the API routes, run the bootstrap, start and stop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onestack.identity.bootstrap import bootstrap, start_early
from onestack.identity.core import Identity
from onestack.identity.service import default_policies
from onestack.identity.service.scope_types import scope_types

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from onestack.common.cloud import Cloud


class IdentityApp(Identity):
    def __init__(self, cloud: Cloud) -> None:
        super().__init__(cloud, default_policies, scope_types)
        # First start: hash the bootstrap passwords while the migrations run.
        self.bootstrap_hashes = start_early(self)

    def asgi(self) -> ASGIApp:
        from onestack.common.web import keystone_error, service_app
        from onestack.identity.api import all_routes
        from onestack.identity.api.auth import FastTokenValidation

        app = service_app(
            all_routes(),
            keystone_error,
            state={"identity": self, "validator": self, "service_type": "identity",
                   "auth_uri": self.public_url},
        )
        return FastTokenValidation(self, app)

    def prepare(self) -> None:
        """Runs before serving (schema already upgraded): keys and bootstrap."""
        bootstrap(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
