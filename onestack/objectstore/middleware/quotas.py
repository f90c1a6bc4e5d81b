"""Container and account quotas (Swift's container_quotas / account_quotas).

``X-Container-Meta-Quota-Bytes`` / ``-Quota-Count`` cap a container (its
owner sets them); ``X-Account-Meta-Quota-Bytes`` caps an account (only a
reseller admin may set it). An upload that would go over gets a 413
``Upload exceeds quota.``; bad quota values a 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from onestack.objectstore.http import Handler, Request, Response, error, fail
from onestack.objectstore.proxy.base import Proxy

OVER = "Upload exceeds quota."
HTML = "text/html; charset=UTF-8"
QUOTA_HEADERS = ("x-account-meta-quota-bytes", "x-account-quota-bytes", "x-account-quota-count")


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return None


class ContainerQuotas:
    def __init__(self, app: Handler, proxy: Proxy) -> None:
        self.app = app
        self.proxy = proxy

    def info(self) -> dict[str, Any]:
        return {}

    async def __call__(self, req: Request) -> Response:
        _v, account, container, obj = req.split_path()
        if account is None or container is None:
            return await self.app(req)
        if obj is None and req.method in ("PUT", "POST"):
            for key, what in (("x-container-meta-quota-bytes", "bytes"),
                              ("x-container-meta-quota-count", "count")):
                value = req.headers.get(key)
                if value and (_int(value) is None or int(value) < 0):
                    raise fail(400, f"Invalid {what} quota.", content_type=HTML)
            return await self.app(req)
        if obj is not None and req.method == "PUT":
            info = await self.proxy.container_info(req, account, container)
            if info.ok and (info.get("x-container-meta-quota-bytes")
                            or info.get("x-container-meta-quota-count")):
                # a quota is checked against the container's current totals
                info = await self.proxy.container_info(req, account, container, fresh=True)
                quota = _int(info.get("x-container-meta-quota-bytes"))
                size = req.content_length or 0
                if quota is not None and info.bytes_used + size > quota:
                    return error(413, OVER, content_type=HTML)
                count = _int(info.get("x-container-meta-quota-count"))
                if count is not None and info.object_count + 1 > count:
                    return error(413, OVER, content_type=HTML)
        return await self.app(req)


class AccountQuotas:
    """``X-Account-Meta-Quota-Bytes`` (or ``X-Account-Quota-Bytes``) and
    ``X-Account-Quota-Count``. Account totals lag behind the containers (the
    updater reports them); ``settle`` brings them up to date before a check."""

    def __init__(self, app: Handler, proxy: Proxy,
                 settle: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.app = app
        self.proxy = proxy
        self.settle = settle

    def info(self) -> dict[str, Any]:
        return {}

    async def __call__(self, req: Request) -> Response:
        _v, account, container, obj = req.split_path()
        if account is None:
            return await self.app(req)
        if container is None and req.method in ("PUT", "POST"):
            keys = [k for k in req.headers if k in QUOTA_HEADERS or (
                k.startswith("x-remove-") and "x-" + k[9:] in QUOTA_HEADERS)]
            if keys:
                if not req.environ.get("reseller_request"):
                    return error(403)
                for key in ("x-account-meta-quota-bytes", "x-account-quota-bytes",
                            "x-account-quota-count"):
                    value = req.headers.get(key)
                    if value and (_int(value) is None or int(value) < 0):
                        raise fail(400)  # Swift's account_quotas: a bare 400
            return await self.app(req)
        if obj is not None and req.method == "PUT" and container is not None:
            info = await self.proxy.account_info(req, account)
            quota_bytes = _int(info.get("x-account-quota-bytes")
                               or info.get("x-account-meta-quota-bytes"))
            quota_count = _int(info.get("x-account-quota-count"))
            if quota_bytes is None and quota_count is None:
                return await self.app(req)
            if self.settle is not None:
                await self.settle()
            info = await self.proxy.account_info(req, account, fresh=True)
            if quota_bytes is not None and info.bytes_used + (req.content_length or 0) > \
                    quota_bytes:
                return error(413, OVER, content_type=HTML)
            if quota_count is not None and info.object_count + 1 > quota_count:
                return error(413, OVER, content_type=HTML)
        return await self.app(req)
