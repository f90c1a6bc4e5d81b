"""Static websites from a public container (Swift's staticweb).

For anonymous GET/HEAD requests (or any with ``X-Web-Mode: true``) on a
container with ``X-Container-Meta-Web-*`` settings: ``Web-Index`` serves an
index object for the container and its pseudo-directories, ``Web-Listings``
an HTML listing (styled by ``Web-Listings-CSS``), and ``Web-Error`` the page
``<status><Web-Error>`` with a 401/404.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

import orjson

from onestack.objectstore.http import Handler, Request, Response, error
from onestack.objectstore.proxy.base import Info, Proxy

DEFAULT_CSS = ("<style type=\"text/css\">\n h1 {font-size: 1em; font-weight: bold;}\n"
               " th {text-align: left; padding: 0px 1em 0px 1em;}\n"
               " td {padding: 0px 1em 0px 1em;}\n a {text-decoration: none;}\n</style>")


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes", "on", "t", "y")


def human_size(size: int) -> str:
    value = float(size)
    for suffix in ("", "Ki", "Mi", "Gi", "Ti"):
        if value < 1024 or suffix == "Ti":
            return f"{int(value)}" if not suffix else f"{value:.1f}{suffix}"
        value /= 1024
    return str(size)


class StaticWeb:
    def __init__(self, app: Handler, proxy: Proxy) -> None:
        self.app = app
        self.proxy = proxy

    def info(self) -> dict[str, Any]:
        return {}

    async def __call__(self, req: Request) -> Response:
        _v, account, container, obj = req.split_path()
        if req.method not in ("GET", "HEAD") or account is None or container is None:
            return await self.app(req)
        if req.environ.get("keystone.identity") is not None and not _true(
                req.headers.get("x-web-mode")):
            return await self.app(req)
        if req.params.get("format") or "swift.source" in req.environ and req.environ[
                "swift.source"]:
            return await self.app(req)
        info = await self.proxy.container_info(req, account, container)
        if not info.ok:
            return await self.app(req)
        index = info.get("x-container-meta-web-index")
        listings = _true(info.get("x-container-meta-web-listings"))
        web_error = info.get("x-container-meta-web-error")
        if not (index or listings or web_error):
            return await self.app(req)
        if obj is None:
            if not req.path.endswith("/"):
                return error(301, headers={"Location": f"{req.script_name}{quote(req.path)}/"})
            return await self.directory(req, account, container, "", info)
        resp = await self.app(req)
        if resp.status == 404:
            if obj.endswith("/"):
                resp.close()
                return await self.directory(req, account, container, obj, info)
            if index or listings:
                probe = await self._get(req, account, container, "", f"prefix={quote(obj)}/"
                                        "&limit=1&format=json")
                if probe:
                    resp.close()
                    return error(301, headers={
                        "Location": f"{req.script_name}{quote(req.path)}/"})
        if resp.status in (401, 404) and web_error:
            return await self.error_page(req, account, container, resp, web_error)
        return resp

    async def _get(self, req: Request, account: str, container: str, obj: str,
                   query: str = "") -> list[dict[str, Any]] | None:
        path = f"/v1/{account}/{container}" + (f"/{obj}" if obj else "")
        resp = await self.app(req.sub("GET", path, query_string=query, source="SW"))
        if resp.status != 200:
            resp.close()
            return None
        data = orjson.loads(await resp.read())
        return data if isinstance(data, list) else None

    async def directory(self, req: Request, account: str, container: str, prefix: str,
                        info: Info) -> Response:
        index = info.get("x-container-meta-web-index")
        if index:
            sub = req.sub(req.method, f"/v1/{account}/{container}/{prefix}{index}",
                          source="SW")
            resp = await self.app(sub)
            if resp.is_success:
                return resp
            resp.close()
        if _true(info.get("x-container-meta-web-listings")):
            return await self.listing(req, account, container, prefix, info)
        web_error = info.get("x-container-meta-web-error")
        if web_error:
            return await self.error_page(req, account, container, error(404), web_error)
        return error(404)

    async def listing(self, req: Request, account: str, container: str, prefix: str,
                      info: Info) -> Response:
        entries = await self._get(req, account, container, "",
                                  f"format=json&delimiter=/&prefix={quote(prefix)}") or []
        if prefix and not entries:
            return error(404)
        title = escape(f"Listing of /v1/{account}/{container}/{prefix}")
        css = info.get("x-container-meta-web-listings-css")
        style = (f'<link rel="stylesheet" type="text/css" href="{escape(css)}" />' if css
                 else DEFAULT_CSS)
        rows = []
        if prefix:
            rows.append('   <tr id="parent" class="item">\n    <td class="colname">'
                        '<a href="../">../</a></td>\n    <td class="colsize">&nbsp;</td>\n'
                        '    <td class="coldate">&nbsp;</td>\n   </tr>')
        for e in entries:
            if "subdir" in e:
                name = e["subdir"][len(prefix):]
                rows.append(f'   <tr class="item subdir">\n    <td class="colname"><a href='
                            f'"{quote(name)}">{escape(name)}</a></td>\n    <td class="colsize">'
                            f'&nbsp;</td>\n    <td class="coldate">&nbsp;</td>\n   </tr>')
            else:
                name = e["name"][len(prefix):]
                rows.append(f'   <tr class="item">\n    <td class="colname"><a href='
                            f'"{quote(name)}">{escape(name)}</a></td>\n    <td class="colsize">'
                            f'{human_size(int(e["bytes"]))}</td>\n    <td class="coldate">'
                            f'{escape(e["last_modified"][:19].replace("T", " "))}</td>\n   </tr>')
        body = ("<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\" "
                "\"http://www.w3.org/TR/html4/loose.dtd\">\n<html>\n <head>\n"
                f"  <title>{title}</title>\n  {style}\n </head>\n <body>\n"
                f"  <h1 id=\"title\">{title}</h1>\n  <table id=\"listing\">\n"
                "   <tr id=\"heading\">\n    <th class=\"colname\">Name</th>\n"
                "    <th class=\"colsize\">Size</th>\n    <th class=\"coldate\">Date</th>\n"
                "   </tr>\n" + "\n".join(rows) + "\n  </table>\n </body>\n</html>\n")
        return Response(200, body.encode(), content_type="text/html; charset=UTF-8")

    async def error_page(self, req: Request, account: str, container: str, resp: Response,
                         web_error: str) -> Response:
        page = await self.app(req.sub("GET", f"/v1/{account}/{container}/{resp.status}"
                                             f"{web_error}", source="SW"))
        if not page.is_success:
            page.close()
            return resp
        resp.close()
        body = await page.read()
        return Response(resp.status, body, content_type=page.headers.get(
            "content-type", "text/html"))
