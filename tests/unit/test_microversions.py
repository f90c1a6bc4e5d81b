"""Microversion parsing, comparison, negotiation and response headers."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from onestack.common.errors import BadRequest, NotAcceptable
from onestack.common.microversions import (
    APIVersion,
    InvalidVersion,
    Microversions,
    VersionNotFoundForMethod,
    add_vary,
    require,
)

NOVA = Microversions.create("compute", "2.1", "2.96", "X-OpenStack-Nova-API-Version")
CINDER = Microversions.create("volume", "3.0", "3.70", aliases=("block-storage",))


def hdrs(*pairs: tuple[str, str]) -> Headers:
    return Headers(raw=[(k.lower().encode(), v.encode()) for k, v in pairs])


# ------------------------------------------------------------------ APIVersion


def test_parse_and_str() -> None:
    assert APIVersion.parse("2.60") == APIVersion(2, 60)
    assert str(APIVersion.parse(" 2.0 ")) == "2.0"
    assert APIVersion.parse(APIVersion(3, 1)) == APIVersion(3, 1)


@pytest.mark.parametrize(
    "bad", ["2", "2.", ".1", "2.01", "02.1", "2.1.1", "a.b", "", "2,1", "-2.1"]
)
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(InvalidVersion) as err:
        APIVersion.parse(bad)
    assert isinstance(err.value, BadRequest) and err.value.status == 400
    assert err.value.message == (
        f"API Version String {bad} is of invalid format. Must be of format MajorNum.MinorNum."
    )


def test_compare_numerically() -> None:
    assert APIVersion(2, 9) < APIVersion(2, 10)
    assert APIVersion(2, 10) > APIVersion(2, 9)
    assert APIVersion(3, 0) > APIVersion(2, 99)
    assert APIVersion(2, 60) >= "2.60"
    assert APIVersion(2, 60) < "2.61"
    assert APIVersion(2, 60) == "2.60"
    assert APIVersion(2, 60) != "2.6"
    assert APIVersion(2, 60) != "garbage"
    assert sorted([APIVersion(2, 10), APIVersion(2, 2), APIVersion(1, 50)]) == [
        APIVersion(1, 50),
        APIVersion(2, 2),
        APIVersion(2, 10),
    ]
    assert len({APIVersion(2, 1), APIVersion.parse("2.1")}) == 1


def test_matches() -> None:
    v = APIVersion(2, 50)
    assert v.matches("2.1", "2.50")
    assert v.matches("2.50")
    assert not v.matches("2.51")
    assert not v.matches("2.1", "2.49")


# ------------------------------------------------------------------ negotiation


def test_no_header_is_minimum() -> None:
    assert NOVA.negotiate(hdrs()) == APIVersion(2, 1)
    assert CINDER.negotiate({}) == APIVersion(3, 0)


def test_new_header() -> None:
    assert NOVA.negotiate(hdrs(("OpenStack-API-Version", "compute 2.60"))) == APIVersion(2, 60)


def test_new_header_names_several_services() -> None:
    h = hdrs(("OpenStack-API-Version", "volume 3.40, compute 2.53"))
    assert NOVA.negotiate(h) == APIVersion(2, 53)
    assert CINDER.negotiate(h) == APIVersion(3, 40)
    # repeated header lines count too
    h = hdrs(("OpenStack-API-Version", "volume 3.40"), ("OpenStack-API-Version", "compute 2.9"))
    assert NOVA.negotiate(h) == APIVersion(2, 9)


def test_header_for_another_service_is_ignored() -> None:
    assert NOVA.negotiate(hdrs(("OpenStack-API-Version", "volume 3.40"))) == APIVersion(2, 1)


def test_service_type_case_and_alias() -> None:
    assert NOVA.negotiate(hdrs(("OpenStack-API-Version", "COMPUTE 2.5"))) == APIVersion(2, 5)
    h = hdrs(("OpenStack-API-Version", "block-storage 3.12"))
    assert CINDER.negotiate(h) == APIVersion(3, 12)


def test_legacy_header() -> None:
    h = hdrs(("X-OpenStack-Nova-API-Version", "2.37"))
    assert NOVA.negotiate(h) == APIVersion(2, 37)
    # a plain dict of headers works as well, any case
    assert NOVA.negotiate({"x-openstack-nova-api-version": "2.38"}) == APIVersion(2, 38)


def test_new_header_wins_over_legacy() -> None:
    h = hdrs(
        ("X-OpenStack-Nova-API-Version", "2.37"),
        ("OpenStack-API-Version", "compute 2.42"),
    )
    assert NOVA.negotiate(h) == APIVersion(2, 42)


@pytest.mark.parametrize("value", ["compute latest", "compute LATEST", "compute Latest"])
def test_latest_is_maximum(value: str) -> None:
    assert NOVA.negotiate(hdrs(("OpenStack-API-Version", value))) == APIVersion(2, 96)
    assert NOVA.negotiate(hdrs(("X-OpenStack-Nova-API-Version", "latest"))) == APIVersion(2, 96)


@pytest.mark.parametrize("value", ["2.0", "2.97", "3.0", "1.1"])
def test_out_of_range_is_406(value: str) -> None:
    with pytest.raises(NotAcceptable) as err:
        NOVA.negotiate(hdrs(("OpenStack-API-Version", f"compute {value}")))
    assert err.value.status == 406
    assert err.value.message == (
        f"Version {value} is not supported by the API. Minimum is 2.1 and maximum is 2.96."
    )


@pytest.mark.parametrize("value", ["compute 2", "compute", "compute 2.x", "compute 2.1 2.2"])
def test_malformed_is_400(value: str) -> None:
    with pytest.raises(BadRequest):
        NOVA.negotiate(hdrs(("OpenStack-API-Version", value)))


def test_bounds_are_inclusive() -> None:
    assert NOVA.negotiate({"OpenStack-API-Version": "compute 2.1"}) == APIVersion(2, 1)
    assert NOVA.negotiate({"OpenStack-API-Version": "compute 2.96"}) == APIVersion(2, 96)


# ------------------------------------------------------------------ response headers


def test_response_headers_with_legacy() -> None:
    assert NOVA.response_headers(APIVersion(2, 60)) == {
        "OpenStack-API-Version": "compute 2.60",
        "X-OpenStack-Nova-API-Version": "2.60",
        "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
    }


def test_response_headers_without_legacy() -> None:
    assert CINDER.response_headers() == {
        "OpenStack-API-Version": "volume 3.0",
        "Vary": "OpenStack-API-Version",
    }


def test_version_info() -> None:
    assert NOVA.version_info() == {"version": "2.96", "min_version": "2.1"}


def test_add_vary() -> None:
    assert add_vary(None, "OpenStack-API-Version") == "OpenStack-API-Version"
    assert (
        add_vary("Accept-Encoding, openstack-api-version", "OpenStack-API-Version", "X-A")
        == "Accept-Encoding, openstack-api-version, X-A"
    )


def test_require_for_a_method() -> None:
    require(APIVersion(2, 60), "2.60")
    require(APIVersion(2, 60), "2.1", "2.60")
    with pytest.raises(VersionNotFoundForMethod) as err:
        require(APIVersion(2, 59), "2.60")
    assert err.value.status == 404
    assert err.value.message == "API version 2.59 is not supported on this method."
    with pytest.raises(VersionNotFoundForMethod):
        require(APIVersion(2, 61), "2.1", "2.60")
