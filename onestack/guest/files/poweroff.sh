#!/bin/busybox sh
# ACPI power button (busybox acpid): a clean shutdown.
/sbin/poweroff
