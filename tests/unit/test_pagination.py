"""limit/marker parsing, stable sorted paging over SQL, and link builders."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Integer, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from starlette.datastructures import QueryParams

from onestack.common.errors import BadRequest, NotFound
from onestack.common.pagination import (
    Page,
    PageParams,
    fetch_page,
    glance_next,
    keystone_collection,
    keystone_links,
    neutron_links,
    nova_links,
    paginate_list,
    paginate_query,
    sort_params,
    with_query,
)


class _Base(DeclarativeBase):
    """A private metadata: these test tables must not join the real schema."""


class Thing(_Base):
    __tablename__ = "thing"

    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(20), nullable=True)
    size: Mapped[int] = mapped_column(Integer)
    project: Mapped[str] = mapped_column(String(8))


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    rnd = random.Random(7)
    with Session(engine) as s:
        for i in range(40):
            s.add(
                Thing(
                    id=f"t{i:02d}",
                    name=rnd.choice([None, "a", "b", "c"]),
                    size=rnd.randint(1, 4),
                    project="p1" if i % 4 else "p2",
                )
            )
        s.commit()
        yield s
    engine.dispose()


# ------------------------------------------------------------------ PageParams


def test_defaults() -> None:
    page = PageParams.from_query({}, max_limit=1000)
    assert page == PageParams(limit=1000, marker=None, requested_limit=None)
    assert PageParams.from_query({}, max_limit=1000, default_limit=25).limit == 25
    assert PageParams.from_query({}, max_limit=None).limit is None


def test_limit_and_marker() -> None:
    page = PageParams.from_query({"limit": "5", "marker": "abc"}, max_limit=1000)
    assert (page.limit, page.marker, page.requested_limit) == (5, "abc", 5)


def test_limit_clamped_to_max() -> None:
    page = PageParams.from_query({"limit": "5000"}, max_limit=1000)
    assert page.limit == 1000 and page.requested_limit == 5000


def test_limit_zero() -> None:
    assert PageParams.from_query({"limit": "0"}, max_limit=100).limit == 100
    assert PageParams.from_query({"limit": "0"}, max_limit=100, zero_is_default=False).limit == 0


@pytest.mark.parametrize("bad", ["x", "1.5", "", " ", "0x10", "1e3"])
def test_non_integer_limit_is_400(bad: str) -> None:
    with pytest.raises(BadRequest, match="limit param must be an integer"):
        PageParams.from_query({"limit": bad})


def test_negative_limit_is_400() -> None:
    with pytest.raises(BadRequest, match="limit param must be positive") as err:
        PageParams.from_query({"limit": "-1"})
    assert err.value.status == 400


def test_custom_error_class() -> None:
    with pytest.raises(NotFound):
        PageParams.from_query({"limit": "x"}, error=NotFound)


def test_query_params_multidict_last_wins() -> None:
    page = PageParams.from_query(QueryParams("limit=3&limit=4&marker=m&page_reverse=True"))
    assert page.limit == 4 and page.marker == "m" and page.page_reverse


def test_empty_marker_is_none() -> None:
    assert PageParams.from_query({"marker": ""}).marker is None


# ------------------------------------------------------------------ sort params


ALLOWED = ("name", "size", "created_at", "id")


def test_sort_defaults() -> None:
    assert sort_params({}, ALLOWED) == (["created_at"], ["desc"])


def test_sort_key_dir_pairs() -> None:
    params = QueryParams("sort_key=name&sort_dir=asc&sort_key=size&sort_dir=desc")
    assert sort_params(params, ALLOWED) == (["name", "size"], ["asc", "desc"])
    # missing directions repeat the last one
    params = QueryParams("sort_key=name&sort_key=size&sort_dir=asc")
    assert sort_params(params, ALLOWED) == (["name", "size"], ["asc", "asc"])
    # only a direction: applies to the default keys
    assert sort_params({"sort_dir": "asc"}, ALLOWED) == (["created_at"], ["asc"])


def test_glance_sort_syntax() -> None:
    assert sort_params({"sort": "name:asc,size"}, ALLOWED) == (["name", "size"], ["asc", "desc"])


@pytest.mark.parametrize(
    "query",
    [
        "sort_key=bogus",
        "sort_key=name&sort_dir=sideways",
        "sort_key=name&sort_dir=asc&sort_dir=desc",
        "sort=name:up",
        "sort=name&sort_key=size",
    ],
)
def test_bad_sort_is_400(query: str) -> None:
    with pytest.raises(BadRequest):
        sort_params(QueryParams(query), ALLOWED)


# ------------------------------------------------------------------ SQL paging


def all_pages(session: Session, limit: int, keys: list[str], dirs: list[str]) -> list[str]:
    seen: list[str] = []
    marker: str | None = None
    for _ in range(100):
        page = fetch_page(
            session,
            select(Thing),
            Thing,
            PageParams(limit=limit, marker=marker),
            sort_keys=keys,
            sort_dirs=dirs,
        )
        assert len(page.items) <= limit
        seen.extend(t.id for t in page.items)
        if not page.has_more:
            return seen
        marker = page.items[-1].id
    raise AssertionError("paging did not end")


def python_order(session: Session, keys: list[str], dirs: list[str]) -> list[str]:
    rows = list(session.execute(select(Thing)).scalars())

    # NULLs first ascending, last descending; id ascending/last dir as tie-breaker
    def sort_key(key: str) -> Any:
        return lambda t: (getattr(t, key) is not None, getattr(t, key) or 0)

    all_keys = [*keys, "id"] if "id" not in keys else keys
    all_dirs = [*dirs, dirs[-1]] if "id" not in keys else dirs
    for key, direction in reversed(list(zip(all_keys, all_dirs, strict=True))):
        rows.sort(key=sort_key(key), reverse=direction == "desc")
    return [t.id for t in rows]


@pytest.mark.parametrize("limit", [1, 3, 7, 40, 100])
@pytest.mark.parametrize(
    ("keys", "dirs"),
    [
        (["size"], ["asc"]),
        (["size"], ["desc"]),
        (["name"], ["asc"]),
        (["name"], ["desc"]),
        (["name", "size"], ["asc", "desc"]),
        (["size", "name"], ["desc", "asc"]),
        (["id"], ["desc"]),
    ],
)
def test_paging_visits_every_row_once_in_order(
    session: Session, limit: int, keys: list[str], dirs: list[str]
) -> None:
    seen = all_pages(session, limit, keys, dirs)
    assert len(seen) == len(set(seen)) == 40
    assert seen == python_order(session, keys, dirs)


def test_has_more_exactly_at_the_end(session: Session) -> None:
    page = fetch_page(session, select(Thing), Thing, PageParams(limit=40), sort_keys=["id"])
    assert len(page.items) == 40 and not page.has_more
    page = fetch_page(session, select(Thing), Thing, PageParams(limit=39), sort_keys=["id"])
    assert page.has_more


def test_unknown_marker_is_400(session: Session) -> None:
    with pytest.raises(BadRequest, match=r"marker \[nope\] not found"):
        fetch_page(session, select(Thing), Thing, PageParams(limit=2, marker="nope"))


def test_marker_outside_the_visible_rows_is_not_found(session: Session) -> None:
    visible = select(Thing).where(Thing.project == "p1")
    with pytest.raises(NotFound):
        fetch_page(
            session,
            visible,
            Thing,
            PageParams(limit=2, marker="t00"),  # t00 belongs to p2
            sort_keys=["id"],
            marker_error=lambda m: NotFound(f"no {m}"),
        )
    page = fetch_page(
        session,
        visible,
        Thing,
        PageParams(limit=2, marker="t01"),
        sort_keys=["id"],
        sort_dirs=["asc"],
    )
    assert [t.id for t in page.items] == ["t02", "t03"]  # t04 is p2's


def test_paginate_query_with_mapping_marker(session: Session) -> None:
    stmt = paginate_query(
        select(Thing),
        Thing,
        limit=3,
        sort_keys=["id"],
        sort_dirs=["asc"],
        marker={"id": "t10"},
    )
    assert [t.id for t in session.execute(stmt).scalars()] == ["t11", "t12", "t13"]


def test_paginate_query_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        paginate_query(select(Thing), Thing, limit=1, sort_keys=["nope"])
    with pytest.raises(ValueError):
        paginate_query(select(Thing), Thing, limit=1, sort_keys=["id"], sort_dirs=["up"])


# ------------------------------------------------------------------ list paging


def test_paginate_list() -> None:
    items = [{"id": str(i)} for i in range(5)]
    page = paginate_list(items, PageParams(limit=2, marker="1"))
    assert [i["id"] for i in page.items] == ["2", "3"] and page.has_more
    page = paginate_list(items, PageParams(limit=2, marker="2"))
    assert [i["id"] for i in page.items] == ["3", "4"] and not page.has_more
    assert len(paginate_list(items, PageParams()).items) == 5
    with pytest.raises(BadRequest):
        paginate_list(items, PageParams(limit=2, marker="9"))


# ------------------------------------------------------------------ links


def qs(href: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(href).query)


def test_with_query() -> None:
    url = with_query("http://h/x", QueryParams("a=1&marker=old&b=2&b=3"), marker="new", b=None)
    assert url == "http://h/x?a=1&marker=new"
    assert with_query("http://h/x", {}) == "http://h/x"


def test_nova_links_when_page_full() -> None:
    items = [{"id": "a"}, {"id": "b"}]
    links = nova_links("http://h/compute/v2.1/servers", QueryParams("limit=2"), "servers", items, 2)
    assert list(links) == ["servers_links"]
    (link,) = links["servers_links"]
    assert link["rel"] == "next"
    assert link["href"].startswith("http://h/compute/v2.1/servers?")
    assert qs(link["href"]) == {"limit": ["2"], "marker": ["b"]}
    assert nova_links("http://h/s", {}, "servers", items[:1], 2) == {}
    assert nova_links("http://h/s", {}, "servers", [], 0) == {}


def test_nova_links_uuid_key() -> None:
    items = [{"uuid": "u1"}]
    links = nova_links("http://h/s", {}, "flavors", items, 1, id_key="uuid")
    assert qs(links["flavors_links"][0]["href"])["marker"] == ["u1"]


def test_neutron_links() -> None:
    items = [{"id": "a"}, {"id": "b"}]
    first = Page(items=items, has_more=True, limit=2, marker=None)
    links = neutron_links("http://h/v2.0/networks", QueryParams("limit=2"), "networks", first)
    assert [link["rel"] for link in links["networks_links"]] == ["next"]
    middle = Page(items=items, has_more=True, limit=2, marker="z")
    links = neutron_links(
        "http://h/v2.0/networks", QueryParams("limit=2&marker=z"), "networks", middle
    )
    rels = {link["rel"]: qs(link["href"]) for link in links["networks_links"]}
    assert rels["next"] == {"limit": ["2"], "marker": ["b"]}
    assert rels["previous"] == {"limit": ["2"], "marker": ["a"], "page_reverse": ["True"]}
    last = Page(items=items, has_more=False, limit=2, marker=None)
    assert neutron_links("http://h/n", {}, "networks", last) == {}


def test_glance_next() -> None:
    items = [{"id": "a"}, {"id": "b"}]
    body = glance_next("/v2/images", QueryParams("limit=2&sort_key=name"), items, 2)
    assert body["next"].startswith("/v2/images?")
    assert qs(body["next"]) == {"limit": ["2"], "sort_key": ["name"], "marker": ["b"]}
    assert glance_next("/v2/images", {}, items, 3) == {}
    assert glance_next("/v2/images", {}, [], 0) == {}


def test_keystone_links() -> None:
    assert keystone_links("http://h/identity/v3/users") == {
        "self": "http://h/identity/v3/users",
        "previous": None,
        "next": None,
    }
    body = keystone_collection("users", [1, 2, 3], "http://h/v3/users", list_limit=2)
    assert body["users"] == [1, 2] and body["truncated"] is True
    body = keystone_collection("users", [1, 2], "http://h/v3/users", list_limit=2)
    assert "truncated" not in body


def test_pages_chain_through_links(session: Session) -> None:
    """Following nova next links page by page returns every row once."""
    seen: list[str] = []
    params: Any = QueryParams("limit=6&sort_key=size&sort_dir=asc")
    for _ in itertools.count():
        page_params = PageParams.from_query(params, max_limit=1000)
        keys, dirs = sort_params(params, ALLOWED)
        page = fetch_page(
            session, select(Thing), Thing, page_params, sort_keys=keys, sort_dirs=dirs
        )
        items = [{"id": t.id} for t in page.items]
        seen.extend(i["id"] for i in items)
        links = nova_links("http://h/things", params, "things", items, page_params.limit)
        if not links:
            break
        params = QueryParams(urlsplit(links["things_links"][0]["href"]).query)
    assert sorted(seen) == sorted(f"t{i:02d}" for i in range(40))
    assert len(seen) == 40
