"""Assembles the Swift pipeline: small middlewares in front of the proxy app.

Top to bottom (as Swift orders its proxy filters): info / healthcheck,
gatekeeper, CORS, bulk, TempURL, keystoneauth, FormPost, staticweb, copy,
container and account quotas, SLO, DLO, versioned writes (the legacy modes
above object versioning, as Swift's versioned_writes filter stacks them),
symlinks, and the proxy application. ``/info`` advertises what each of them registers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from onestack.objectstore.http import Handler, HTTPError, Request, Response
from onestack.objectstore.proxy.base import Proxy

SWIFT_VERSION = "2.38.3"


def answering(handler: Handler) -> Handler:
    """A layer that answers what it raises, as each of Swift's WSGI filters does:
    a middleware's sub-request gets a response back (a 404 from a missing
    container, say), never an exception that would skip the middleware."""

    async def call(req: Request) -> Response:
        try:
            return await handler(req)
        except HTTPError as exc:
            return exc.response

    return call


def capabilities(proxy: Proxy) -> dict[str, Any]:
    s = proxy.settings
    return {
        "swift": {
            "version": SWIFT_VERSION,
            "max_file_size": s.max_file_size,
            "max_meta_name_length": s.max_meta_name_length,
            "max_meta_value_length": s.max_meta_value_length,
            "max_meta_count": s.max_meta_count,
            "max_meta_overall_size": s.max_meta_overall_size,
            "max_header_size": s.max_header_size,
            "max_object_name_length": s.max_object_name_length,
            "container_listing_limit": s.container_listing_limit,
            "account_listing_limit": s.account_listing_limit,
            "max_account_name_length": s.max_account_name_length,
            "max_container_name_length": s.max_container_name_length,
            "extra_header_count": 0,
            "valid_api_versions": ["v1", "v1.0"],
            "policies": [{"name": "Policy-0", "default": True}],
            "strict_cors_mode": True,
            "allow_account_management": False,
            "account_autocreate": True,
        },
        "keystoneauth": {},
        "crossdomain": {},
    }


def build(proxy: Proxy, validator: Any,
          settle: Callable[[], Awaitable[Any]] | None = None,
          entries: dict[str, Any] | None = None) -> Handler:
    """The pipeline; ``entries`` (if given) receives ``"auth"``, the handler from
    keystoneauth down (where S3 enters, as Swift's s3api sits after the
    gatekeeper, so its requests may carry system metadata), and
    ``"capabilities"``, what ``/info`` shows."""
    from onestack.objectstore.middleware.bulk import Bulk
    from onestack.objectstore.middleware.copy import Copy
    from onestack.objectstore.middleware.cors import Cors
    from onestack.objectstore.middleware.dlo import DynamicLargeObject
    from onestack.objectstore.middleware.formpost import FormPost
    from onestack.objectstore.middleware.gatekeeper import Gatekeeper
    from onestack.objectstore.middleware.info import Info
    from onestack.objectstore.middleware.keystoneauth import KeystoneAuth
    from onestack.objectstore.middleware.object_versioning import ObjectVersioning
    from onestack.objectstore.middleware.quotas import AccountQuotas, ContainerQuotas
    from onestack.objectstore.middleware.slo import StaticLargeObject
    from onestack.objectstore.middleware.staticweb import StaticWeb
    from onestack.objectstore.middleware.symlink import Symlink
    from onestack.objectstore.middleware.tempurl import TempURL
    from onestack.objectstore.middleware.versioned_writes import VersionedWrites
    from onestack.objectstore.proxy.app import ProxyApp

    s = proxy.settings
    caps = capabilities(proxy)
    app: Handler = answering(ProxyApp(proxy))
    sym = Symlink(app)
    app = answering(sym)
    caps["symlink"] = sym.info()
    ov = ObjectVersioning(app, proxy)
    app = answering(ov)
    caps["object_versioning"] = ov.info()
    vw = VersionedWrites(app, proxy)
    app = answering(vw)
    caps["versioned_writes"] = vw.info()
    dlo = DynamicLargeObject(app)
    app = answering(dlo)
    caps["dlo"] = dlo.info()
    slo = StaticLargeObject(app, s)
    app = answering(slo)
    caps["slo"] = slo.info()
    aq = AccountQuotas(app, proxy, settle)
    app = answering(aq)
    caps["account_quotas"] = aq.info()
    cq = ContainerQuotas(app, proxy)
    app = answering(cq)
    caps["container_quotas"] = cq.info()
    app = answering(Copy(app))
    sw = StaticWeb(app, proxy)
    app = answering(sw)
    caps["staticweb"] = sw.info()
    app = answering(KeystoneAuth(app, proxy, validator))
    if entries is not None:
        entries["auth"] = app
        entries["capabilities"] = caps
    fp = FormPost(app, proxy, [d.strip() for d in s.tempurl_digests.split(",")])
    app = answering(fp)
    caps["formpost"] = fp.info()
    tu = TempURL(app, proxy, [d.strip() for d in s.tempurl_digests.split(",")])
    app = answering(tu)
    caps["tempurl"] = tu.info()
    bulk = Bulk(app, s.max_deletes_per_request, s.max_containers_per_extraction)
    app = answering(bulk)
    caps.update(bulk.info())
    app = answering(Cors(app, proxy))
    app = answering(Gatekeeper(app))
    app = answering(Info(app, caps))
    return app
