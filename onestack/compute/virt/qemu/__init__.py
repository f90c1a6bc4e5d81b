"""The real virt driver: QEMU guests (KVM or TCG) through ``onestack/host``.

``driver.QemuDriver`` implements ``onestack.compute.virt.base.Driver``; the
modules below it, top-down: ``actions`` (hot-plug, snapshot, rebuild, resize,
rescue), ``machine`` (instances' records, locks, QEMU started and stopped),
``disks``, ``taps``, ``imagecache`` (the host's ``_base``), ``domain`` (an
instance's machine, pure) and ``layout`` (files and the record). Importing
this package loads none of them.
"""
