"""Host effects: the only code that changes the machine.

Network namespaces, links, addresses, routes and sysctls over netlink
(``netns``, ``links``: pyroute2), nftables tables (``nft``), dnsmasq
(``dnsmasq``), disk images (``qemu_img``), QEMU guests and QMP (``qemu``,
``qmp``, ``kvm``), with process hygiene for the daemons (``procs``). Agents and
drivers receive a :class:`onestack.host.base.Host` (``base.linux_host()`` for
the real machine, ``fake.FakeHost()`` in tests) and reach the machine only
through it. Nothing here knows about OpenStack, and nothing here imports a
service package. Importing this package loads nothing else: each module
imports what it needs (pyroute2 costs 0.1 s) when it is used.
"""
