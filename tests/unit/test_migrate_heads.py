"""The fast head computation agrees with Alembic's."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from onestack.common import migrate


def test_heads_match_alembic() -> None:
    expected = set(ScriptDirectory.from_config(migrate._config()).get_heads())
    assert migrate.heads() == expected
    assert len(expected) >= 2  # one branch per service at least
