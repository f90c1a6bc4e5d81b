"""Finding, checking and ending the daemons we start, by the mark on their command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from onestack.host import procs


def test_a_process_is_ours_only_while_it_carries_the_mark(tmp_path: Path) -> None:
    marker = str(tmp_path / "mark.conf")
    proc = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); "
                             "time.sleep(60)", marker], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"  # exec'd
        pidfile = tmp_path / "pid"
        pidfile.write_text(f"{proc.pid}\n")
        assert procs.read_pidfile(pidfile) == proc.pid
        assert procs.carries(proc.pid, marker)
        assert procs.running(pidfile, marker) == proc.pid
        assert procs.running(pidfile, str(tmp_path / "other")) is None
        assert procs.find(marker) == [proc.pid]
        assert procs.terminate(proc.pid, marker, timeout=5)
        assert procs.gone(proc.pid)
        assert not procs.terminate(proc.pid, marker)
        assert procs.running(pidfile, marker) is None and procs.find(marker) == []
    finally:
        proc.kill()
        proc.wait()


def test_pid_files(tmp_path: Path) -> None:
    assert procs.read_pidfile(tmp_path / "none") is None
    (tmp_path / "bad").write_text("abc")
    assert procs.read_pidfile(tmp_path / "bad") is None
    assert procs.cmdline(2**22 + 7) is None
