"""Virt drivers: the seam between the compute agent and the host."""
