"""TempURL: time-limited URLs signed with an account or container key.

``?temp_url_sig=<hmac>&temp_url_expires=<unix time or ISO 8601>`` where the
HMAC (SHA-1, SHA-256 or SHA-512, as ``/info`` lists; hex, or
``<digest>:<base64>``) signs ``METHOD\\nEXPIRES\\nPATH`` with one of the keys
in ``X-Account-Meta-Temp-URL-Key[-2]`` or ``X-Container-Meta-Temp-URL-Key[-2]``.
``temp_url_prefix`` signs ``prefix:/v1/a/c/<prefix>`` instead. A valid URL
is allowed without a token (for that account or container only); anything
else is a 401 ``Temp URL invalid``. GET answers carry ``Content-Disposition``
(``attachment``, ``inline``, ``filename=``) and ``Expires``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import time
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from onestack.objectstore.http import Handler, Request, Response, error
from onestack.objectstore.proxy.base import Proxy

DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
HEX_LENGTHS = {40: "sha1", 64: "sha256", 128: "sha512"}
METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")


def parse_expires(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        dt = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return 0
    return int(dt.timestamp())


def split_signature(sig: str) -> tuple[str, str] | None:
    """(digest, hex signature) of a hex or ``<digest>:<base64>`` signature."""
    if ":" in sig:
        name, _, b64 = sig.partition(":")
        if name not in DIGESTS:
            return None
        try:
            raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        except (ValueError, binascii.Error):
            return None
        return name, raw.hex()
    name_for = HEX_LENGTHS.get(len(sig))
    if name_for is None:
        return None
    return name_for, sig.lower()


def sign(method: str, path: str, expires: int, key: str, digest: str = "sha256",
         ip_range: str | None = None) -> str:
    parts = [method, str(expires), path]
    if ip_range:
        parts.insert(0, f"ip={ip_range}")
    return hmac.new(key.encode(), "\n".join(parts).encode(), DIGESTS[digest]).hexdigest()


class TempURL:
    def __init__(self, app: Handler, proxy: Proxy, digests: list[str]) -> None:
        self.app = app
        self.proxy = proxy
        self.digests = [d for d in digests if d in DIGESTS]

    def info(self) -> dict[str, Any]:
        return {"methods": list(METHODS),
                "incoming_remove_headers": ["x-timestamp", "x-open-expired"],
                "incoming_allow_headers": [],
                "outgoing_remove_headers": ["x-object-meta-*"],
                "outgoing_allow_headers": ["x-object-meta-public-*"],
                "allowed_digests": sorted(self.digests)}

    def invalid(self, req: Request) -> Response:
        if req.method == "HEAD":
            return error(401, b"")
        return error(401, "401 Unauthorized: Temp URL invalid\n")

    async def __call__(self, req: Request) -> Response:
        params = req.params
        sig = params.get("temp_url_sig")
        expires_raw = params.get("temp_url_expires")
        if req.method == "OPTIONS" or (sig is None and expires_raw is None):
            return await self.app(req)
        expires = parse_expires(expires_raw)
        if not sig or not expires or expires < time.time():
            return self.invalid(req)
        split = split_signature(sig)
        if split is None or split[0] not in self.digests:
            return self.invalid(req)
        digest, sig_hex = split
        if req.method not in METHODS:
            return self.invalid(req)
        _v, account, container, obj = req.split_path()
        prefix = params.get("temp_url_prefix")
        if account is None or container is None or (obj is None and not (
                prefix == "" and req.method in ("GET", "HEAD"))):
            return self.invalid(req)
        obj = obj or ""
        ip_range = params.get("temp_url_ip_range")
        if ip_range:
            try:
                if ipaddress.ip_address(req.remote_addr) not in ipaddress.ip_network(ip_range):
                    return self.invalid(req)
            except ValueError:
                return self.invalid(req)
        keys = await self._keys(req, account, container)
        if not keys:
            return self.invalid(req)
        if prefix is None:
            path = f"/v1/{account}/{container}/{obj}"
        else:
            if not obj.startswith(prefix):
                return self.invalid(req)
            path = f"/v1/{account}/{container}/{prefix}"
        # Swift signs the path from /v1; clients that know only the endpoint URL
        # (Tempest) sign it with the endpoint's own prefix (/object-store/v1/...).
        paths = [path, req.script_name + path] if req.script_name else [path]
        if prefix is not None:
            paths = ["prefix:" + p for p in paths]
        methods = ("HEAD", "GET", "POST", "PUT") if req.method == "HEAD" else (req.method,)
        scope = None
        for method in methods:
            for signed in paths:
                for key, key_scope in keys:
                    if hmac.compare_digest(sign(method, signed, expires, key, digest, ip_range),
                                           sig_hex):
                        scope = key_scope
                        break
                if scope:
                    break
            if scope:
                break
        if scope is None:
            return self.invalid(req)
        for header in ("x-timestamp", "x-open-expired"):
            del req.headers[header]

        async def authorize(sub: Request) -> Response | None:
            _v2, a, c, _o = sub.split_path()
            if a != account or (scope == "container" and c != container):
                return error(401)
            return None

        req.environ["swift.authorize"] = authorize
        req.environ["swift.authorize_override"] = True
        resp = await self.app(req)
        for key in [k for k in resp.headers if k.startswith("x-object-meta-")
                    and not k.startswith("x-object-meta-public-")]:
            del resp.headers[key]
        if req.method in ("GET", "HEAD") and resp.is_success:
            filename = params.get("filename")
            inline = "inline" in params
            existing = resp.headers.pop("content-disposition")
            if inline:
                value = f"inline; filename=\"{filename}\"" if filename else "inline"
            elif filename:
                value = f"attachment; filename=\"{quote(filename)}\"; filename*=UTF-8''{quote(filename)}"
            elif existing:
                value = existing
            else:
                name = obj.rstrip("/").rsplit("/", 1)[-1]
                value = f"attachment; filename=\"{quote(name)}\"; filename*=UTF-8''{quote(name)}"
            resp.headers["Content-Disposition"] = value
            resp.headers["Expires"] = formatdate(expires, usegmt=True)
        return resp

    async def _keys(self, req: Request, account: str, container: str) -> list[tuple[str, str]]:
        keys: list[tuple[str, str]] = []
        ainfo = await self.proxy.account_info(req, account)
        for name in ("x-account-meta-temp-url-key", "x-account-meta-temp-url-key-2"):
            value = ainfo.get(name)
            if value:
                keys.append((value, "account"))
        cinfo = await self.proxy.container_info(req, account, container)
        for name in ("x-container-meta-temp-url-key", "x-container-meta-temp-url-key-2"):
            value = cinfo.get(name)
            if value:
                keys.append((value, "container"))
        return keys
