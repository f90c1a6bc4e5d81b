"""A throwaway PostgreSQL server for the tests that run against PostgreSQL.

The cluster lives in a temporary directory, listens on 127.0.0.1 on a free port
(trust authentication, fsync off) and is stopped and removed at the end of the
session. PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` system user that Debian's package creates. Each test gets a new
database of its own.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.conftest import free_port


def _bindir() -> Path | None:
    base = Path("/usr/lib/postgresql")
    found = sorted(base.glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def skip_reason() -> str | None:
    if _bindir() is None:
        return "PostgreSQL is not installed (scripts/setup installs it)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (scripts/setup installs it)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
    return None


class Server:
    def __init__(self) -> None:
        bindir = _bindir()
        assert bindir is not None
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="onestack-pg-"))
        self.port = free_port()
        self.user: str | None = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run(["initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres",
                   "-E", "UTF8", "--no-sync"])
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200")
        self._run(["pg_ctl", "-D", str(self.dir / "data"), "-o", options,
                   "-l", str(self.dir / "log"), "-w", "start"])

    def _run(self, cmd: list[str]) -> None:
        cmd = [str(self.bindir / cmd[0]), *cmd[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, cwd=self.dir)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(["pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
