"""The onestack test guest image (``onestack image build-test``)."""

from pathlib import Path

IMAGE_NAME = "onestack-test-guest"


def image_path(state_dir: Path) -> Path:
    """Where ``onestack image build-test`` puts the image for a state directory
    (the image service registers that file as the public image IMAGE_NAME).
    Here, not in ``build``, so that the image service need not import the builder."""
    return Path(state_dir) / "guest" / f"{IMAGE_NAME}.qcow2"
