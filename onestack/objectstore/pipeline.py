"""Assembles the Swift pipeline: small middlewares in front of the proxy app.

Top to bottom (as Swift orders its proxy filters): info / healthcheck,
gatekeeper, CORS, bulk, TempURL, keystoneauth, FormPost, staticweb, copy,
container and account quotas, SLO, DLO, versioned writes, symlinks, and the
proxy application. ``/info`` advertises what each of them registers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from onestack.objectstore.http import Handler
from onestack.objectstore.proxy.base import Proxy

SWIFT_VERSION = "2.38.3"


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
    from onestack.objectstore.middleware.quotas import AccountQuotas, ContainerQuotas
    from onestack.objectstore.middleware.slo import StaticLargeObject
    from onestack.objectstore.middleware.staticweb import StaticWeb
    from onestack.objectstore.middleware.symlink import Symlink
    from onestack.objectstore.middleware.tempurl import TempURL
    from onestack.objectstore.middleware.versioned_writes import VersionedWrites
    from onestack.objectstore.proxy.app import ProxyApp

    s = proxy.settings
    caps = capabilities(proxy)
    app: Handler = ProxyApp(proxy)
    app = sym = Symlink(app)
    caps["symlink"] = sym.info()
    app = vw = VersionedWrites(app, proxy)
    caps["versioned_writes"] = vw.info()
    app = dlo = DynamicLargeObject(app)
    caps["dlo"] = dlo.info()
    app = slo = StaticLargeObject(app, s)
    caps["slo"] = slo.info()
    app = aq = AccountQuotas(app, proxy, settle)
    caps["account_quotas"] = aq.info()
    app = cq = ContainerQuotas(app, proxy)
    caps["container_quotas"] = cq.info()
    app = Copy(app)
    app = sw = StaticWeb(app, proxy)
    caps["staticweb"] = sw.info()
    app = KeystoneAuth(app, proxy, validator)
    if entries is not None:
        entries["auth"] = app
        entries["capabilities"] = caps
    app = fp = FormPost(app, proxy, [d.strip() for d in s.tempurl_digests.split(",")])
    caps["formpost"] = fp.info()
    app = tu = TempURL(app, proxy, [d.strip() for d in s.tempurl_digests.split(",")])
    caps["tempurl"] = tu.info()
    app = bulk = Bulk(app, s.max_deletes_per_request, s.max_containers_per_extraction)
    caps.update(bulk.info())
    app = Cors(app, proxy)
    app = Gatekeeper(app)
    app = Info(app, caps)
    return app
