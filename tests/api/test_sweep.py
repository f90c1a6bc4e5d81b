"""A quick malformed-request sweep over every identity and image route (tests/api/sweep.py;
``python -m tests.api.sweep [--postgresql]`` runs the whole one): odd path segments, query
strings, bodies and methods never get a 5xx, a header that cannot go on the wire, or an
error outside the service's own shape. Each defect it found has its own exact test
(test_edges, test_project_tags, test_update_rules, test_auth_bad_input); this guards the
routes nobody wrote a case for."""

from __future__ import annotations

from typing import Any

from tests.api import sweep


def test_odd_requests_to_every_route_get_well_formed_4xx(api: Any) -> None:
    count, problems = sweep.run(api, sweep.QUICK)
    assert count > 4000, count  # every route was swept
    assert problems == [], "\n".join(problems[:40])
