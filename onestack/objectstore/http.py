"""A small request/response toolkit for the Swift pipeline (Swift's swob, in brief).

Each middleware is ``async (Request) -> Response``; a middleware may answer
itself, change the request, or make sub-requests down the pipeline
(``req.sub(...)``). Bodies stream: a request body is an async iterator of
chunks read from the client; a response body is bytes or an async iterator.
Errors are Swift's: ``error(404)`` is the HTML body Swift sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, overload
from urllib.parse import parse_qsl, quote

REASONS: dict[int, tuple[str, str]] = {
    100: ("Continue", ""),
    200: ("OK", ""),
    201: ("Created", ""),
    202: ("Accepted", "The request is accepted for processing."),
    204: ("No Content", ""),
    206: ("Partial Content", ""),
    301: ("Moved Permanently", "The resource has moved permanently."),
    302: ("Found", "The resource has moved temporarily."),
    303: ("See Other", "The response to the request can be found under a different URI."),
    304: ("Not Modified", ""),
    307: ("Temporary Redirect", "The resource has moved temporarily."),
    400: ("Bad Request", "The server could not comply with the request since it is either "
          "malformed or otherwise incorrect."),
    401: ("Unauthorized", "This server could not verify that you are authorized to access the "
          "document you requested."),
    402: ("Payment Required", "Access was denied for financial reasons."),
    403: ("Forbidden", "Access was denied to this resource."),
    404: ("Not Found", "The resource could not be found."),
    405: ("Method Not Allowed", "The method is not allowed for this resource."),
    406: ("Not Acceptable", "The resource is not available in a format acceptable to your "
          "browser."),
    408: ("Request Timeout", "The server has waited too long for the request to be sent by the "
          "client."),
    409: ("Conflict", "There was a conflict when trying to complete your request."),
    410: ("Gone", "This resource is no longer available."),
    411: ("Length Required", "Content-Length header required."),
    412: ("Precondition Failed", "A precondition for this request was not met."),
    413: ("Request Entity Too Large", "The body of your request was too large for this server."),
    414: ("Request URI Too Long", "The request URI was too long for this server."),
    415: ("Unsupported Media Type", "The request media type is not supported by this server."),
    416: ("Requested Range Not Satisfiable", "The Range requested is not available."),
    417: ("Expectation Failed", "Expectation failed."),
    422: ("Unprocessable Entity", "Unable to process the contained instructions"),
    499: ("Client Disconnect", "The client was disconnected during request."),
    500: ("Internal Error", "The server has either erred or is incapable of performing the "
          "requested operation."),
    501: ("Not Implemented", "The requested method is not implemented by this server."),
    502: ("Bad Gateway", "Bad gateway."),
    503: ("Service Unavailable", "The server is currently unavailable. Please try again at a "
          "later time."),
    504: ("Gateway Timeout", "A timeout has occurred speaking to a backend server."),
    507: ("Insufficient Storage", "There was not enough space to save the resource."),
}


def title_case(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


class Headers:
    """Case-insensitive headers; names are sent Title-Cased, as Swift does."""

    __slots__ = ("_d",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                 ) -> None:
        self._d: dict[str, str] = {}
        if items is not None:
            pairs = items.items() if isinstance(items, Mapping) else items
            for k, v in pairs:
                self._d[k.lower()] = v

    def __getitem__(self, key: str) -> str:
        return self._d[key.lower()]

    def __setitem__(self, key: str, value: str) -> None:
        self._d[key.lower()] = str(value)

    def __delitem__(self, key: str) -> None:
        self._d.pop(key.lower(), None)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._d

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str) -> str: ...

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._d.get(key.lower(), default)

    def pop(self, key: str, default: str | None = None) -> str | None:
        return self._d.pop(key.lower(), default)

    def setdefault(self, key: str, value: str) -> str:
        return self._d.setdefault(key.lower(), value)

    def items(self) -> Iterable[tuple[str, str]]:
        return self._d.items()

    def update(self, other: Mapping[str, str] | Headers) -> None:
        for k, v in other.items():
            self._d[k.lower()] = str(v)

    def copy(self) -> Headers:
        h = Headers()
        h._d = dict(self._d)
        return h

    def with_prefix(self, prefix: str) -> dict[str, str]:
        p = prefix.lower()
        return {k: v for k, v in self._d.items() if k.startswith(p)}

    def __repr__(self) -> str:
        return f"Headers({self._d!r})"


Body = bytes | AsyncIterator[bytes]


class Response:
    __slots__ = ("status", "headers", "body", "on_close")

    def __init__(self, status: int = 200, body: Body = b"",
                 headers: Mapping[str, str] | Headers | None = None,
                 content_type: str | None = None) -> None:
        self.status = status
        self.headers = headers.copy() if isinstance(headers, Headers) else Headers(headers)
        self.body: Body = body
        self.on_close: list[Callable[[], Any]] = []
        if content_type is not None:
            self.headers["Content-Type"] = content_type
        if isinstance(body, bytes) and "content-length" not in self.headers:
            self.headers["Content-Length"] = str(len(body))

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    async def read(self) -> bytes:
        """The whole body (sub-requests with small answers only)."""
        if isinstance(self.body, bytes):
            return self.body
        parts = [chunk async for chunk in self.body]
        self.close()
        return b"".join(parts)

    def close(self) -> None:
        """Release what the body holds (open files); safe to call twice."""
        callbacks, self.on_close = self.on_close, []
        for fn in callbacks:
            fn()

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


def default_page(status: int) -> bytes:
    """The HTML page swob makes for an error status that has no body of its own."""
    title, explanation = REASONS.get(status, ("Unknown", ""))
    return f"<html><h1>{title}</h1><p>{explanation}</p></html>".encode() if explanation else b""


def error(status: int, body: str | bytes | None = None, *, headers: Mapping[str, str] | None = None,
          content_type: str | None = None, method: str = "GET") -> Response:
    """Swift's error response: its HTML page, or ``body`` as plain text."""
    if body is None:
        payload = default_page(status)
        ctype = content_type or "text/html; charset=UTF-8"
    else:
        payload = body.encode() if isinstance(body, str) else body
        ctype = content_type or "text/plain"
    resp = Response(status, payload, headers, content_type=ctype)
    return resp


class HTTPError(Exception):
    """Raise to answer with ``response`` (Swift's ``raise HTTPBadRequest``)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def fail(status: int, body: str | bytes | None = None, **kw: Any) -> HTTPError:
    return HTTPError(error(status, body, **kw))


Handler = Callable[["Request"], Awaitable[Response]]


class Request:
    """One request through the pipeline (a client's, or a middleware's sub-request)."""

    __slots__ = ("method", "path", "query_string", "headers", "body", "environ", "_params",
                 "script_name", "remote_addr", "host")

    def __init__(self, method: str, path: str, *, query_string: str = "",
                 headers: Mapping[str, str] | Headers | Iterable[tuple[str, str]] | None = None,
                 body: AsyncIterator[bytes] | bytes | None = None,
                 environ: dict[str, Any] | None = None, script_name: str = "",
                 remote_addr: str = "", host: str = "") -> None:
        self.method = method
        self.path = path  # decoded, e.g. /v1/AUTH_x/c/o
        self.query_string = query_string
        self.headers = headers.copy() if isinstance(headers, Headers) else Headers(headers)
        if isinstance(body, bytes):
            self.body: AsyncIterator[bytes] = _once(body)
            self.headers.setdefault("Content-Length", str(len(body)))
        else:
            self.body = body if body is not None else _once(b"")
        self.environ: dict[str, Any] = environ if environ is not None else {}
        self._params: dict[str, str] | None = None
        self.script_name = script_name  # e.g. /object-store
        self.remote_addr = remote_addr
        self.host = host

    @property
    def params(self) -> dict[str, str]:
        if self._params is None:
            self._params = dict(parse_qsl(self.query_string, keep_blank_values=True))
        return self._params

    def set_param(self, key: str, value: str | None) -> None:
        params = dict(self.params)
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
        self._params = params
        self.query_string = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}"
                                     for k, v in params.items())

    def split_path(self) -> tuple[str, str | None, str | None, str | None]:
        """(version, account, container, object) of a ``/v1/...`` path."""
        parts = self.path.split("/", 4)
        # ['', 'v1', 'a', 'c', 'o...']
        version = parts[1] if len(parts) > 1 else ""
        account = parts[2] if len(parts) > 2 and parts[2] else None
        container = parts[3] if len(parts) > 3 and parts[3] else None
        obj = parts[4] if len(parts) > 4 and parts[4] else None
        return version, account, container, obj

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        try:
            n = int(value)
        except ValueError:
            raise fail(400, f"Invalid Content-Length header value: {value!r}") from None
        if n < 0:
            raise fail(400, f"Invalid Content-Length header value: {value!r}")
        return n

    @property
    def url(self) -> str:
        return f"{self.script_name}{quote(self.path)}"

    async def read_body(self, limit: int | None = None) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.body:
            size += len(chunk)
            if limit is not None and size > limit:
                raise fail(413, "Your request is too large.")
            parts.append(chunk)
        return b"".join(parts)

    def sub(self, method: str | None = None, path: str | None = None, *,
            headers: Mapping[str, str] | Headers | None = None,
            body: AsyncIterator[bytes] | bytes | None = None, query_string: str = "",
            source: str = "", authorized: bool = True, keep_headers: bool = False) -> Request:
        """A sub-request made by a middleware (pre-authorized unless told not to)."""
        environ: dict[str, Any] = {"swift.source": source,
                                   "swift.trans_id": self.environ.get("swift.trans_id", ""),
                                   "swift.info_cache": self.environ.setdefault(
                                       "swift.info_cache", {})}
        for key in ("keystone.identity", "swift.auth_ctx", "reseller_request", "swift.owner"):
            if key in self.environ:
                environ[key] = self.environ[key]
        if authorized:
            environ["swift.authorize"] = _allow
            environ["swift.authorize_override"] = True
        elif "swift.authorize" in self.environ:
            environ["swift.authorize"] = self.environ["swift.authorize"]
        if keep_headers:
            hdrs = self.headers.copy()
            if headers:
                hdrs.update(headers)
        else:
            hdrs = Headers(headers) if not isinstance(headers, Headers) else headers.copy()
            token = self.headers.get("x-auth-token")
            if token and "x-auth-token" not in hdrs:
                hdrs["X-Auth-Token"] = token
        if body is None and "content-length" not in hdrs and (method or self.method) in (
                "PUT", "POST"):
            hdrs["Content-Length"] = "0"
        return Request(method or self.method, path if path is not None else self.path,
                       query_string=query_string, headers=hdrs, body=body, environ=environ,
                       script_name=self.script_name, remote_addr=self.remote_addr,
                       host=self.host)


async def _allow(_req: Request) -> None:
    return None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


async def iter_bytes(data: bytes, chunk: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), chunk):
        yield data[i:i + chunk]
