"""Access-rule matching, with keystonemiddleware's semantics."""

from __future__ import annotations

import pytest

from onestack.common.auth import access_allowed, path_matches, service_path


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/v2/images", "/v2/images", True),
        ("/v2/images", "/v2/images/", False),
        ("/v2/images", "/v2/images/x", False),
        ("/v2/images/*", "/v2/images/abc", True),
        ("/v2/images/*", "/v2/images", False),
        ("/v2/images/*", "/v2/images/", False),  # a segment is at least one character
        ("/v2/images/*", "/v2/images/a/file", False),
        ("/v2/images/{image_id}/file", "/v2/images/a/file", True),
        ("/v2/images/{image_id}/file", "/v2/images/a/b/file", False),
        ("/v2/**", "/v2/images/a/file", True),
        ("/v2/**", "/v2/", True),
        ("/v2/**", "/v2", False),
        ("/v2.1/servers", "/v2.1/servers", True),
        ("/v2.1/servers", "/v2x1/servers", False),  # a dot is a dot, not any character
        ("/v3/users/*/projects", "/v3/users/u1/projects", True),
        ("/v3/users/(.*)", "/v3/users/anything", False),  # no regular expressions
        ("/v3/users/[a]", "/v3/users/a", False),
        ("", "/", False),
    ],
)
def test_path_patterns(pattern: str, path: str, expected: bool) -> None:
    assert path_matches(path, pattern) is expected


RULES = [
    {"service": "image", "method": "GET", "path": "/v2/images"},
    {"service": "identity", "method": "GET", "path": "/v3/users/*"},
]
CATALOG = frozenset({"identity", "image"})


def test_service_method_and_path_must_all_match() -> None:
    assert access_allowed(RULES, CATALOG, "image", "GET", "/v2/images")
    assert not access_allowed(RULES, CATALOG, "image", "DELETE", "/v2/images")
    assert not access_allowed(RULES, CATALOG, "image", "get", "/v2/images")
    assert not access_allowed(RULES, CATALOG, "compute", "GET", "/v2/images")
    assert not access_allowed(RULES, CATALOG, "identity", "GET", "/v2/images")
    assert access_allowed(RULES, CATALOG, "identity", "GET", "/v3/users/u1")


def test_a_service_outside_the_tokens_catalog_or_unnamed_allows_nothing() -> None:
    assert not access_allowed(RULES, frozenset({"identity"}), "image", "GET", "/v2/images")
    assert not access_allowed(RULES, CATALOG, None, "GET", "/v2/images")
    assert not access_allowed(RULES, CATALOG, "", "GET", "/v2/images")


def test_token_validation_is_always_allowed_on_identity() -> None:
    assert access_allowed([], frozenset(), "identity", "GET", "/v3/auth/tokens")
    assert not access_allowed([], CATALOG, "identity", "HEAD", "/v3/auth/tokens")
    assert not access_allowed([], CATALOG, "image", "GET", "/v3/auth/tokens")


def test_malformed_stored_rules_allow_nothing() -> None:
    bad = [{"service": "image", "method": "GET"}, {"service": "image", "method": "GET", "path": 5}]
    assert not access_allowed(bad, CATALOG, "image", "GET", "/v2/images")  # type: ignore[arg-type]


def test_service_path_is_below_the_mount_point() -> None:
    assert service_path({"path": "/image/v2/images", "root_path": "/image"}) == "/v2/images"
    assert service_path({"path": "/v2/images", "root_path": ""}) == "/v2/images"
    assert service_path({"path": "/image", "root_path": "/image"}) == "/"
