"""Assembles the Swift pipeline: small middlewares in front of the proxy app.

Top to bottom (as Swift orders its proxy filters): info / healthcheck,
gatekeeper, CORS, bulk, TempURL, FormPost, keystoneauth, staticweb, copy,
container and account quotas, SLO, DLO, versioned writes, symlinks, and the
proxy application. ``/info`` advertises what each of them registers.
"""

from __future__ import annotations

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
    }


def build(proxy: Proxy, validator: Any) -> Handler:
    from onestack.objectstore.middleware.gatekeeper import Gatekeeper
    from onestack.objectstore.middleware.info import Info
    from onestack.objectstore.middleware.keystoneauth import KeystoneAuth
    from onestack.objectstore.proxy.app import ProxyApp

    caps = capabilities(proxy)
    app: Handler = ProxyApp(proxy)
    app = KeystoneAuth(app, proxy, validator)
    app = Gatekeeper(app)
    app = Info(app, caps)
    return app
