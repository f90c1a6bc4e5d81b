"""Keystone wire helpers shared by every identity API module."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request


def base_url(request: Request) -> str:
    """``http://host:port/identity`` as the client reached us (or public_url)."""
    return str(request.app.state.identity.public_url)


def self_link(request: Request, path: str) -> dict[str, str]:
    """``{"self": "<base>/v3/<path>"}`` for an entity."""
    return {"self": f"{base_url(request)}/v3/{path.lstrip('/')}"}


def collection(request: Request, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A Keystone list body: ``{key: [...], "links": {"self", "previous", "next"}}``."""
    url = str(request.url).replace(str(request.base_url).rstrip("/"), "")
    return {
        key: items,
        "links": {"self": base_url(request) + url.split("/identity", 1)[-1], "previous": None, "next": None},
    }
