"""The onestack test guest image (``onestack image build-test``)."""

from pathlib import Path

IMAGE_NAME = "onestack-test-guest"


def image_path(state_dir: Path) -> Path:
    """Where ``onestack image build-test`` puts the image for a state directory
    (the image service registers that file as the public image IMAGE_NAME).
    Here, not in ``build``, so that the image service need not import the builder."""
    return Path(state_dir) / "guest" / f"{IMAGE_NAME}.qcow2"


def boot_files(image: Path) -> tuple[Path, Path, Path]:
    """The kernel, initramfs and kernel command line exported next to ``image``
    for direct kernel boot (the image service registers them as the image's
    ``kernel_id``/``ramdisk_id`` and ``os_command_line``)."""
    stem = image.with_suffix("")
    return (stem.with_name(stem.name + ".vmlinux"), stem.with_name(stem.name + ".initrd"),
            stem.with_name(stem.name + ".cmdline"))
