"""Parsing of the image list query (filters, sorting, pagination)."""

from __future__ import annotations

import pytest

from onestack.common.errors import BadRequest
from onestack.image.service.images import _decode_pointer, parse_changes
from onestack.image.service.listing import parse_list_query


def test_defaults() -> None:
    q = parse_list_query([])
    assert q.limit == 25 and q.marker is None and q.member_status == "accepted"
    assert q.sort == [("created_at", "desc"), ("id", "desc")]


def test_sort_syntax() -> None:
    q = parse_list_query([("sort", "name:asc,size")])
    assert q.sort[:2] == [("name", "asc"), ("size", "desc")]
    q = parse_list_query([("sort_key", "name"), ("sort_dir", "asc")])
    assert q.sort[0] == ("name", "asc")
    q = parse_list_query([("sort_key", "name"), ("sort_key", "size"), ("sort_dir", "asc"), ("sort_dir", "desc")])
    assert q.sort[:2] == [("name", "asc"), ("size", "desc")]


@pytest.mark.parametrize(
    "params",
    [
        [("limit", "x")],
        [("limit", "-1")],
        [("sort_key", "bogus")],
        [("sort_dir", "up")],
        [("sort", "name:asc"), ("sort_key", "name")],
        [("visibility", "secret")],
        [("member_status", "maybe")],
        [("size_min", "big")],
        [("created_at", "after:2020-01-01")],
        [("created_at", "gt:yesterday")],
        [("protected", "perhaps")],
        [("status", "sleeping")],
    ],
)
def test_bad_queries(params: list[tuple[str, str]]) -> None:
    with pytest.raises(BadRequest):
        parse_list_query(params)


def test_limit_is_capped() -> None:
    assert parse_list_query([("limit", "100000")]).limit == 1000


def test_json_pointers() -> None:
    assert _decode_pointer("/name") == "name"
    assert _decode_pointer("/a~1b~0c") == "a/b~c"
    for bad in ("name", "/", "/tags/-", "/a/b", "/x~2"):
        with pytest.raises(BadRequest):
            _decode_pointer(bad)


def test_patch_operations() -> None:
    assert parse_changes([{"op": "replace", "path": "/name", "value": "n"}]) == [("replace", "name", "n")]
    for bad in (
        {},
        [{"op": "move", "path": "/name"}],
        [{"op": "add", "path": "/name"}],
        [{"op": "remove"}],
        ["x"],
    ):
        with pytest.raises(BadRequest):
            parse_changes(bad)
