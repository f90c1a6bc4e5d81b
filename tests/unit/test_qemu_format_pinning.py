"""Every qemu-img command line in the code names the image format (``-f``, and
``-F`` for a backing file) and every QEMU ``-drive`` its ``format=``: QEMU
never probes a format, so an image cannot pass itself off as another one
(a raw image whose bytes look like a qcow2 header with a backing file is
read as raw, not followed to the host file it names)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("onestack", "bench", "tests")
SUBCOMMANDS = {"amend", "bench", "bitmap", "check", "commit", "compare", "convert", "create", "dd", "info",
               "map", "measure", "rebase", "resize", "snapshot"}


def _sources() -> list[Path]:
    files: list[Path] = []
    for tree in TREES:
        files += sorted((ROOT / tree).rglob("*.py"))
    files += [p for p in sorted((ROOT / "bench").iterdir()) if p.is_file() and not p.suffix]
    return files


def _strings(node: ast.AST) -> list[str]:
    return [e.value for e in getattr(node, "elts", []) if isinstance(e, ast.Constant) and isinstance(e.value, str)]


def _command_lines() -> list[tuple[str, list[str]]]:
    found = []
    for path in _sources():
        try:
            tree = ast.parse(path.read_text(), str(path))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.List | ast.Tuple):
                words = _strings(node)
                if len(words) > 1 and words[0].endswith("qemu-img") and words[1] in SUBCOMMANDS:
                    found.append((f"{path.relative_to(ROOT)}:{node.lineno}", words))
    return found


def test_every_qemu_img_command_pins_the_format() -> None:
    lines = _command_lines()
    assert lines, "no qemu-img command lines found: the scan is broken"
    for where, words in lines:
        assert "-f" in words, f"{where}: qemu-img without -f: {words}"
        if "-b" in words:
            assert "-F" in words, f"{where}: backing file without -F: {words}"


def test_every_qemu_drive_names_its_format() -> None:
    checked = 0
    for path in _sources():
        if path == Path(__file__).resolve():
            continue
        text = path.read_text()
        for lineno, line in enumerate(text.splitlines(), 1):
            if "file={" in line and ("-drive" in line or "drive = " in line):
                checked += 1
                assert "format=" in line, f"{path.relative_to(ROOT)}:{lineno}: a drive without format="
    assert checked, "no -drive found: the scan is broken"
