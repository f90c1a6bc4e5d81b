"""Keystone tokens and Swift's keystoneauth rules.

The account ``AUTH_<project_id>`` belongs to that project: a user with an
operator role on it (``admin``, ``member``, ``swiftoperator`` by default)
owns it. A user with the reseller admin role owns every account. Anyone else
- another project's user, or an anonymous request - gets in only through the
container's ACLs (``project:user`` grants, ``.r:*`` referrer grants for
reads, ``.rlistings`` for listings); otherwise 403 (or 401 without a valid
token). An invalid token is treated as no token (keystonemiddleware's
``delay_auth_decision``), so public containers stay readable.
"""

from __future__ import annotations

import logging
from typing import Any

from onestack.common.auth import AuthContext, CachingValidator
from onestack.common.errors import ApiError
from onestack.objectstore.http import Handler, Request, Response, error
from onestack.objectstore.middleware import acl
from onestack.objectstore.proxy.base import Proxy

log = logging.getLogger(__name__)
PREFIX = "AUTH_"


class KeystoneAuth:
    def __init__(self, app: Handler, proxy: Proxy, validator: Any) -> None:
        self.app = app
        self.proxy = proxy
        self.validator = validator
        s = proxy.settings
        self.operator_roles = {r.strip().lower() for r in s.operator_roles.split(",") if r.strip()}
        self.reseller_role = s.reseller_admin_role.lower()

    async def identify(self, token: str) -> AuthContext | None:
        validator = self.validator
        if validator is None:
            return None
        if isinstance(validator, CachingValidator):
            ctx = validator.cached(token)
            if ctx is not None:
                return ctx
        from onestack.common.web import run

        try:
            result: AuthContext = await run(validator.validate, token)
        except ApiError:
            return None
        return result

    async def __call__(self, req: Request) -> Response:
        if "swift.authorize_override" in req.environ:
            return await self.app(req)
        token = req.headers.get("x-auth-token") or req.headers.get("x-storage-token")
        ctx = await self.identify(token) if token else None
        if ctx is not None:
            req.environ["keystone.identity"] = ctx
            if self.reseller_role in {r.lower() for r in ctx.roles}:
                req.environ["reseller_request"] = True
        req.environ["swift.authorize"] = self.authorize
        req.environ["swift.clean_acl"] = acl.clean_acl
        return await self.app(req)

    def denied(self, req: Request) -> Response:
        if req.environ.get("keystone.identity") is not None:
            return error(403)
        return error(401, headers={"Www-Authenticate": 'Swift realm="unknown"'})

    async def authorize(self, req: Request) -> Response | None:
        req.environ.pop("swift.owner", None)
        if req.method == "OPTIONS":
            return None
        _version, account, container, obj = req.split_path()
        if account is None or not account.startswith(PREFIX):
            return self.denied(req)
        ctx: AuthContext | None = req.environ.get("keystone.identity")
        if ctx is not None:
            roles = {r.lower() for r in ctx.roles}
            if self.reseller_role in roles:
                req.environ["swift.owner"] = True
                req.environ["reseller_request"] = True
                return None
            if container is None and obj is None and req.method == "DELETE":
                return self.denied(req)
            if account[len(PREFIX):] == ctx.project_id and roles & self.operator_roles:
                req.environ["swift.owner"] = True
                return None
        if container is None:
            return self.denied(req)
        # not the owner: the container's ACLs decide
        info = await self.proxy.container_info(req, account, container)
        if obj is None and req.method not in ("GET", "HEAD"):
            return self.denied(req)
        write = req.method not in ("GET", "HEAD")
        header = "x-container-write" if write else "x-container-read"
        referrers, groups = acl.parse_acl(info.get(header) if info.ok else None)
        if ctx is not None and groups:
            project_match = [ctx.project_id or "", "*", ctx.project_name or ""]
            user_match = [ctx.user_id, "*", ctx.user_name]
            for p in project_match:
                for u in user_match:
                    if f"{p}:{u}" in groups:
                        return None
            roles = {r.lower() for r in ctx.roles}
            same_project = account[len(PREFIX):] == ctx.project_id
            if same_project and any(g.lower() in roles for g in groups):
                return None
        if not write and acl.referrer_allowed(req.headers.get("referer"), referrers):
            if obj is not None or ".rlistings" in groups:
                return None
        return self.denied(req)
