"""The image list filters, sorts and pages in SQL exactly as Glance's rules say.

A reference implementation of those rules in plain Python (what the list did
before it moved into SQL: every visible row loaded, filtered, sorted with
NULLs first ascending and last descending, then cut after the marker) is run
beside the API on a few hundred generated queries, as the admin and as the
demo user, on SQLite and on PostgreSQL; every page must be the same. Plus
the inputs SQL could trip on (huge integers, NUL characters, odd property
names) get Glance's answers, never a 500.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import delete, select

from onestack.image.models import Image, ImageMember
from tests.api.conftest import Api
from tests.api.test_image import V2, assert_glance_error, project_of

PROPS = ("os_distro", "hw_disk_bus", "odd.key\"'$x")
NAMES = ("alpha", "beta", "gamma", "delta", "epsilon", "alpha2", None)
TAGS = ("t1", "t2", "t3", "with space", "\u00e9t\u00e9")
WHEN = datetime(2026, 3, 1, 12, 0, 0)
PREFIX = "sqlist"


@pytest.fixture(scope="module")
def rows(api: Api) -> list[dict[str, Any]]:
    """Sixty images written straight into the database, varied in every listed attribute."""
    rng = random.Random(1234)
    admin, demo = project_of(api, "admin"), project_of(api, "demo")
    other = uuid.uuid4().hex
    made: list[dict[str, Any]] = []
    with api.cloud.db.write() as s:
        s.execute(delete(ImageMember))
        s.execute(delete(Image))
        for i in range(60):
            owner = rng.choice([admin, demo, other, other])
            visibility = rng.choice(["public", "private", "shared", "shared", "community"])
            size = rng.choice([None, 0, 10, 10, 300, 5000, 1 << 40])
            values: dict[str, Any] = {
                "id": str(uuid.UUID(int=rng.getrandbits(128))),
                "name": rng.choice(NAMES),
                "status": rng.choice(["active", "active", "queued", "deactivated"]),
                "visibility": visibility,
                "protected": rng.random() < 0.3,
                "os_hidden": rng.random() < 0.15,
                "owner": owner,
                "size": size,
                "virtual_size": None if size is None else size * rng.choice([1, 2]),
                "checksum": None if size is None else f"{i:032x}",
                "os_hash_algo": None, "os_hash_value": None,
                "min_ram": rng.choice([0, 0, 512, 1024]),
                "min_disk": rng.choice([0, 1, 10]),
                "disk_format": rng.choice(["raw", "qcow2", None]),
                "container_format": rng.choice(["bare", None]),
                "location": None, "staging": None,
                "tags": rng.sample(TAGS, rng.randrange(0, 3)),
                "properties": {k: rng.choice(["a", "b", "ubuntu"]) for k in PROPS if rng.random() < 0.5},
                # equal times too, so the id tie-breaker matters
                "created_at": WHEN + timedelta(minutes=rng.randrange(0, 20)),
                "updated_at": WHEN + timedelta(minutes=rng.randrange(0, 40)),
            }
            s.add(Image(**values))
            made.append(values)
            if visibility == "shared" and rng.random() < 0.6:
                s.add(ImageMember(image_id=values["id"], member=demo,
                                  status=rng.choice(["accepted", "pending", "rejected"]),
                                  created_at=WHEN, updated_at=WHEN))
    return made


# --------------------------------------------------------------------------- the reference


def members(api: Api) -> dict[str, str]:
    demo = project_of(api, "demo")
    with api.cloud.db.read() as s:
        return {m.image_id: m.status for m in s.scalars(select(ImageMember).where(ImageMember.member == demo))}


def visible(row: dict[str, Any], who: str, api: Api, params: dict[str, str], shared: dict[str, str]) -> bool:
    vis = params.get("visibility")
    if vis not in (None, "all") and row["visibility"] != vis:
        return False
    if who == "admin":
        return True
    project = project_of(api, "demo")
    status = params.get("member_status", "accepted")
    member_ok = row["id"] in shared and (status == "all" or shared[row["id"]] == status)
    ok = (row["owner"] == project or row["visibility"] == "public"
          or (row["visibility"] == "shared" and member_ok)
          or (vis in ("community", "all") and row["visibility"] == "community"))
    if vis == "shared":
        ok = ok and (row["owner"] == project or member_ok)
    return ok


OPS = {"eq": lambda a, b: a == b, "neq": lambda a, b: a != b, "gt": lambda a, b: a > b,
       "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
COLUMNS = ("id", "name", "status", "owner", "disk_format", "container_format", "min_ram",
           "min_disk", "size", "virtual_size", "checksum", "os_hash_value")


def matches(row: dict[str, Any], filters: list[tuple[str, str]]) -> bool:
    hidden = False
    for key, value in filters:
        if key == "size_min":
            if row["size"] is None or row["size"] < int(value):
                return False
        elif key == "size_max":
            if row["size"] is None or row["size"] > int(value):
                return False
        elif key in ("protected", "os_hidden"):
            hidden = hidden or key == "os_hidden"
            if row[key] != (value == "true"):
                return False
        elif key in ("created_at", "updated_at"):
            op, _, when = value.partition(":")
            if not OPS[op](row[key], datetime.fromisoformat(when.rstrip("Z"))):
                return False
        elif key == "tag":
            if value not in row["tags"]:
                return False
        else:
            wanted = value[3:].split(",") if value.startswith("in:") else [value]
            actual = row[key] if key in COLUMNS else row["properties"].get(key)
            if actual is None or str(actual) not in wanted:
                return False
    return hidden or not row["os_hidden"]


def ordered(rows: list[dict[str, Any]], sort: list[tuple[str, str]]) -> list[dict[str, Any]]:
    out = list(rows)
    for key, direction in reversed(sort):
        out.sort(key=lambda r, k=key: (0, 0) if r[k] is None else (1, r[k]), reverse=direction == "desc")
    return out


def reference(api: Api, rows: list[dict[str, Any]], who: str, params: list[tuple[str, str]],
              shared: dict[str, str]) -> list[str]:
    """Every id the walk through all pages shows, as the rules say."""
    single = dict(params)
    filters = [(k, v) for k, v in params if k not in ("limit", "marker", "sort", "visibility", "member_status")]
    sort = [tuple(p.split(":")) for p in single.get("sort", "created_at:desc").split(",")]
    for tie in ("created_at", "id"):
        if tie not in [k for k, _ in sort]:
            sort.append((tie, sort[-1][1]))
    candidates = [r for r in rows if visible(r, who, api, single, shared)]
    result = ordered([r for r in candidates if matches(r, filters)], sort)  # type: ignore[arg-type]
    if "marker" in single:
        marker = next(r for r in rows if r["id"] == single["marker"])
        if marker not in result:
            result = ordered([*result, marker], sort)  # type: ignore[arg-type]
        result = result[result.index(marker) + 1:]
    return [r["id"] for r in result]


def walk(api: Api, who: str, params: list[tuple[str, str]]) -> list[str]:
    url: str | None = f"{V2}/images?" + urlencode(params)
    ids: list[str] = []
    limit = int(dict(params).get("limit", 25))
    while url:
        r = api.get(url, who)
        assert r.status_code == 200, r.text
        body = r.json()
        page = [i["id"] for i in body["images"]]
        assert len(page) <= limit
        ids += page
        assert ("next" in body) == (len(page) == limit and limit > 0)
        url = f"/image{body['next']}" if "next" in body else None
        assert len(ids) <= 200
    return ids


def random_query(rng: random.Random, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    choices = [
        lambda: ("name", rng.choice([n for n in NAMES if n])),
        lambda: ("name", "in:" + ",".join(rng.sample([n for n in NAMES if n], 2))),
        lambda: ("status", rng.choice(["active", "queued", "in:active,queued"])),
        lambda: ("size_min", str(rng.choice([0, 10, 301]))),
        lambda: ("size_max", str(rng.choice([10, 5000, 1 << 41]))),
        lambda: ("tag", rng.choice(TAGS)),
        lambda: (rng.choice(PROPS), rng.choice(["a", "ubuntu", "in:a,b"])),
        lambda: ("protected", rng.choice(["true", "false"])),
        lambda: ("os_hidden", rng.choice(["true", "false"])),
        lambda: ("created_at", rng.choice(["gt", "gte", "lt", "lte", "eq", "neq"]) + ":"
                 + (WHEN + timedelta(minutes=rng.randrange(0, 20))).isoformat() + "Z"),
        lambda: ("min_ram", rng.choice(["0", "512"])),
        lambda: ("size", rng.choice(["10", "300"])),
        lambda: ("disk_format", rng.choice(["raw", "qcow2"])),
        lambda: ("visibility", rng.choice(["public", "private", "shared", "community", "all"])),
        lambda: ("member_status", rng.choice(["accepted", "pending", "all"])),
    ]
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        params.append(rng.choice(choices)())
    if rng.random() < 0.7:
        keys = rng.sample(["name", "status", "size", "created_at", "updated_at", "min_ram", "disk_format",
                           "owner", "virtual_size", "protected", "os_hidden", "visibility", "id"],
                          rng.choice([1, 1, 2, 3]))
        params.append(("sort", ",".join(f"{k}:{rng.choice(['asc', 'desc'])}" for k in keys)))
    params.append(("limit", str(rng.choice([3, 9, 25]))))
    if rng.random() < 0.3:
        params.append(("marker", rng.choice(rows)["id"]))
    return params


@pytest.mark.parametrize("who", ["admin", "demo"])
def test_sql_list_equals_the_rules(api: Api, rows: list[dict[str, Any]], who: str) -> None:
    rng = random.Random(99 if who == "admin" else 7)
    shared = members(api)
    checked = 0
    for _ in range(60):
        params = random_query(rng, rows)
        single = dict(params)
        if "marker" in single:
            marker = next(r for r in rows if r["id"] == single["marker"])
            can_see = who == "admin" or marker["owner"] == project_of(api, "demo") or marker["visibility"] in (
                "public", "community") or (marker["visibility"] == "shared" and marker["id"] in shared)
            if not can_see:
                r = api.get(f"{V2}/images?" + urlencode(params), who)
                assert_glance_error(r, 400)
                assert r.json()["message"] == f"Invalid marker. Image {single['marker']} could not be found."
                continue
        assert walk(api, who, params) == reference(api, rows, who, params, shared), params
        checked += 1
    assert checked > 35


@pytest.mark.parametrize(
    ("query", "expect"),
    [
        ("size_min=99999999999999999999999999", 0),  # beyond any 64-bit size: nothing
        ("size_max=99999999999999999999999999", None),  # everything with a size
        ("size_min=-99999999999999999999999999", None),
        ("odd.key%22%27%24x=a", None),
        ("%5B%2A%5D=a", 0),
        ("created_at=gt:9999-12-31T23:59:59Z", 0),
    ],
)
def test_inputs_sql_could_trip_on(api: Api, rows: list[dict[str, Any]], query: str, expect: int | None) -> None:
    r = api.get(f"{V2}/images?{query}&limit=1000")
    assert r.status_code == 200, r.text
    got = r.json()["images"]
    if expect is not None:
        assert len(got) == expect
    else:
        assert got


@pytest.mark.parametrize("query", ["name=%00", "name=in:alpha,%00", "tag=%00", "x%00y=a", "marker=%00"])
def test_a_nul_in_the_query_is_400(api: Api, rows: list[dict[str, Any]], query: str) -> None:
    """No image can hold a NUL (PostgreSQL cannot store one): the edge refuses it for every
    service alike (common/web.py)."""
    r = api.get(f"{V2}/images?{query}&limit=1000")
    assert_glance_error(r, 400)
    assert r.json()["message"] == "The request URL holds a NUL character (%00)."


@pytest.mark.parametrize("marker", ["not-a-uuid", "'; DROP TABLE image; --", str(uuid.UUID(int=5))])
def test_bad_markers(api: Api, rows: list[dict[str, Any]], marker: str) -> None:
    r = api.get(f"{V2}/images?marker={marker}")
    assert_glance_error(r, 400)
    assert r.json()["message"].startswith("Invalid marker. Image ")
