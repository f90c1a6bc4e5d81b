"""Server-side copy: ``COPY`` with ``Destination``, and ``PUT`` with ``X-Copy-From``.

The source is read with the caller's own rights (a GET down the pipeline, so
large objects are copied whole) and streamed into a PUT of the destination.
Metadata comes from the source unless ``X-Fresh-Metadata: true``; the
request's own headers win. The answer names the source (``X-Copied-From``,
``X-Copied-From-Last-Modified``).
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlencode

from onestack.objectstore.http import Handler, Headers, Request, Response, error, fail

SKIP = frozenset({"content-length", "etag", "last-modified", "x-timestamp", "accept-ranges",
                  "content-range", "x-trans-id", "x-openstack-request-id", "date",
                  "x-static-large-object", "x-object-manifest", "x-symlink-target",
                  "x-symlink-target-account"})


def split_path_header(value: str, what: str) -> tuple[str, str]:
    path = unquote(value)
    path = path[1:] if path.startswith("/") else path
    container, _, obj = path.partition("/")
    if not container or not obj:
        raise fail(412, f"{what} header must be of the form <container name>/<object name>",
                   content_type="text/html; charset=UTF-8")
    return container, obj


def check_account_name(value: str) -> str:
    """A Destination-Account / X-Copy-From-Account value (unquoted), as Swift checks it."""
    name = unquote(value)
    if not name:
        raise fail(412, "Account name cannot be empty", content_type="text/html; charset=UTF-8")
    if "/" in name:
        raise fail(412, "Account name cannot contain slashes",
                   content_type="text/html; charset=UTF-8")
    return name


class Copy:
    def __init__(self, app: Handler) -> None:
        self.app = app

    async def __call__(self, req: Request) -> Response:
        _v, account, container, obj = req.split_path()
        if obj is None or account is None or container is None:
            return await self.app(req)
        if req.method == "COPY":
            dest = req.headers.get("destination")
            if not dest:
                return error(412, "Destination header required",
                             content_type="text/html; charset=UTF-8")
            dest_account = account
            if "destination-account" in req.headers:
                dest_account = check_account_name(req.headers.pop("destination-account") or "")
                req.headers["X-Copy-From-Account"] = quote(account)
            dest_container, dest_obj = split_path_header(dest, "Destination")
            req.headers["X-Copy-From"] = quote(f"{container}/{obj}")
            req.headers["Content-Length"] = "0"
            del req.headers["destination"]
            put = req.sub("PUT", f"/v1/{dest_account}/{dest_container}/{dest_obj}",
                          headers=req.headers, body=b"", query_string=req.query_string,
                          authorized=False, keep_headers=True, source="COPY")
            put.environ.update({k: v for k, v in req.environ.items()
                                if k.startswith(("swift.authorize", "keystone.", "swift.clean"))})
            return await self.copy(put, dest_account)
        if req.method == "PUT" and "x-copy-from" in req.headers:
            return await self.copy(req, account)
        return await self.app(req)

    async def copy(self, req: Request, account: str) -> Response:
        if (req.content_length or 0) != 0:
            raise fail(400, "Copy requests require a zero byte body")
        src_account = account
        if req.headers.get("x-copy-from-account"):  # (empty: the request's account)
            src_account = check_account_name(req.headers["x-copy-from-account"] or "")
        src_container, src_obj = split_path_header(req.headers["x-copy-from"], "X-Copy-From")
        get_headers = Headers()
        for key in ("x-auth-token", "if-match", "if-none-match", "if-modified-since",
                    "if-unmodified-since"):
            value = req.headers.get(key)
            if value is not None:
                get_headers[key] = value
        manifest = req.params.get("multipart-manifest") == "get"
        # an SLO manifest is copied in the form a manifest PUT takes (format=raw)
        source_query = {"multipart-manifest": "get", "format": "raw"} if manifest else {}
        version_id = req.params.get("version-id")
        if version_id is not None:  # a version of the source; the copy is a new object
            source_query["version-id"] = version_id
            req.set_param("version-id", None)
        query = "multipart-manifest=get" if manifest else ""
        get = Request("GET", f"/v1/{src_account}/{src_container}/{src_obj}", headers=get_headers,
                      query_string=urlencode(source_query), environ=dict(req.environ),
                      script_name=req.script_name)
        get.environ.pop("swift.owner", None)
        source = await self.app(get)
        if not source.is_success:
            source.close()
            return error(source.status) if source.status != 304 else error(412)
        fresh = req.headers.get("x-fresh-metadata", "").lower() in ("true", "1", "yes", "on")
        sink = Headers()
        for key, value in source.headers.items():
            if key in SKIP or (not manifest and key.startswith("x-object-sysmeta-slo-")):
                continue
            if fresh and (key.startswith("x-object-meta-") or key in (
                    "content-disposition", "content-encoding", "content-language",
                    "cache-control", "expires")):
                continue
            sink[key] = value
        for key, value in req.headers.items():
            if key in ("x-copy-from", "x-copy-from-account", "x-fresh-metadata",
                       "content-length"):
                continue
            sink[key] = value
        if not req.headers.get("content-type"):
            sink["Content-Type"] = source.headers.get("content-type") or ""
        sink["Content-Length"] = source.headers.get("content-length", "0")
        if "x-object-manifest" in source.headers and query:
            sink["X-Object-Manifest"] = source.headers["x-object-manifest"]
        if query and "x-static-large-object" in source.headers:
            req.set_param("multipart-manifest", "put")  # the manifest is checked again
            for key in [k for k in sink if k.startswith("x-object-sysmeta-slo-")]:
                del sink[key]
        elif query:
            req.set_param("multipart-manifest", None)
        put = Request("PUT", req.path, headers=sink, body=source.body, environ=req.environ,
                      script_name=req.script_name, query_string=req.query_string)
        try:
            resp = await self.app(put)
        finally:
            source.close()
        if resp.is_success:
            for key, value in sink.items():
                if key.startswith("x-object-meta-"):
                    resp.headers[key] = value
            resp.headers["X-Copied-From"] = quote(f"{src_container}/{src_obj}")
            resp.headers["X-Copied-From-Account"] = quote(src_account)
            lm = source.headers.get("last-modified")
            if lm:
                resp.headers["X-Copied-From-Last-Modified"] = lm
            if "x-object-version-id" in source.headers:
                resp.headers["X-Copied-From-Version-Id"] = source.headers["x-object-version-id"]
        return resp
