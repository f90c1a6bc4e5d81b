"""The state directory holds token keys and password hashes: owner-only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from onestack.app import build_cloud
from onestack.config import load_settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_state_dir_and_database_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        state = tmp_path / "state"
        cloud = build_cloud(load_settings(state, env={}), modules=())
        with cloud.db.write() as s:
            s.connection().exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert _mode(state) == 0o700
        for f in state.iterdir():
            assert _mode(f) & 0o077 == 0, f"{f.name} is readable by others"
    finally:
        os.umask(old)


def test_existing_open_state_dir_is_tightened(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        state = tmp_path / "state"
        state.mkdir(mode=0o755)
        state.chmod(0o755)
        build_cloud(load_settings(state, env={}), modules=())
        assert _mode(state) == 0o700
    finally:
        os.umask(old)
