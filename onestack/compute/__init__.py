"""Compute (Nova v2.1): servers on QEMU/KVM guests."""
