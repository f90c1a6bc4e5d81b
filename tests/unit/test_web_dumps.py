"""The API's one JSON encoder (``onestack.common.web.dumps``)."""

from __future__ import annotations

import orjson
import pytest

from onestack.common.web import dumps


def test_bodies_with_string_keys_take_the_fast_path() -> None:
    body = {"ports": [{"id": "p1", "fixed_ips": ({"ip_address": "10.0.0.5"},), "tags": frozenset({"a"})}]}
    assert dumps(body) == b'{"ports":[{"id":"p1","fixed_ips":[{"ip_address":"10.0.0.5"}],"tags":["a"]}]}'


def test_a_body_with_non_string_keys_is_still_encoded() -> None:
    assert dumps({"quota": {1: "a", 2: [None, True]}}) == b'{"quota":{"1":"a","2":[null,true]}}'


def test_what_json_cannot_hold_is_refused() -> None:
    with pytest.raises(orjson.JSONEncodeError):
        dumps({"x": object()})
