"""The KVM probe's boot sector, and how the accelerator is chosen."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from onestack.host import kvm

SOURCE = Path(kvm.__file__).with_name("kvmprobe.S")


def test_boot_sector_is_a_boot_sector() -> None:
    sector = kvm.boot_sector()
    assert len(sector) == 512 and sector[-2:] == b"\x55\xaa"
    assert sector.startswith(kvm.PROBE_CODE)


@pytest.mark.skipif(not (shutil.which("as") and shutil.which("ld")), reason="no binutils")
def test_carried_bytes_are_the_assembled_source(tmp_path: Path) -> None:
    subprocess.run(["as", "--32", "-o", str(tmp_path / "p.o"), str(SOURCE)], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-Ttext", "0x7c00", "--oformat", "binary",
                    "-o", str(tmp_path / "p.bin"), str(tmp_path / "p.o")], check=True)
    assert (tmp_path / "p.bin").read_bytes() == kvm.boot_sector()


def test_a_setting_or_the_environment_forces_the_accelerator(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONESTACK_QEMU_ACCEL", "kvm")
    assert kvm.accelerator() == "kvm"
    assert kvm.accelerator("tcg") == "tcg"
    monkeypatch.setenv("ONESTACK_QEMU_ACCEL", "TCG ")
    assert kvm.accelerator() == "tcg"
    monkeypatch.setenv("ONESTACK_QEMU_ACCEL", "xen")
    with pytest.raises(ValueError, match="kvm, tcg or auto"):
        kvm.accelerator()


def test_auto_follows_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONESTACK_QEMU_ACCEL", raising=False)
    monkeypatch.setattr(kvm, "_verdict", (False, "a guest did not run under KVM"))
    assert kvm.accelerator() == "tcg" and kvm.accelerator("auto") == "tcg"
    monkeypatch.setattr(kvm, "_verdict", (True, "KVM ran the probe guest"))
    assert kvm.accelerator() == "kvm"
