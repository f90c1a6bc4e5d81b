"""``POST /v3/users/{user_id}/password``: a user changes their own password.

As in Keystone this needs no token (the password may have expired): the
original password is the credential. 204 on success; the user's tokens are
revoked.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, run
from onestack.identity.api._resources import read_json
from onestack.identity.service.user_password import change_password


async def change(request: Request) -> Response:
    body = await read_json(request)
    await run(change_password, request.app.state.identity, request.path_params["user_id"], body)
    return empty(204)


routes = [Route("/v3/users/{user_id}/password", change, methods=["POST"])]
