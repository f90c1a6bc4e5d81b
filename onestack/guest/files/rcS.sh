#!/bin/busybox sh
# onestack test guest: system start (run once by busybox init).
# The boot scripts run in busybox's shell, which runs its applets without
# exec (or in-process): each exec costs under TCG. (Users' /bin/sh is dash, so
# that `ip`, `ping`... are iproute2's and iputils' there.)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
umask 022
grep -qw onestack.debug /proc/cmdline && { export ONESTACK_DEBUG=1; set -x; }
grep -q ' /proc ' /proc/mounts 2>/dev/null || mount -t proc proc /proc
grep -q ' /sys ' /proc/mounts || mount -t sysfs sysfs /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs -o mode=0755 devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/onestack /var/log /var/lib/onestack /tmp
# seconds since the kernel started, at each step (bench/guest-boot reads them)
stamp() { read -r up _ < /proc/uptime; echo "$1 $up" >> /run/onestack/boot-times; }
cat /dev/.boot-times > /run/onestack/boot-times 2>/dev/null
rm -f /dev/.boot-times
stamp rcS
chmod 1777 /tmp
[ -s /etc/hostname ] && hostname -F /etc/hostname
ip link set lo up
echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range
syslogd -C64
# Hot-plugged NICs get DHCP, other new devices their modules.
setsid uevent /etc/onestack/hotplug.sh </dev/null >/dev/null 2>&1 &
# SSH: host keys are made on first use (-R) and kept on the disk; the ed25519
# one (what clients pick) now, while DHCP waits for the network.
mkdir -p /etc/dropbear
hk=/etc/dropbear/dropbear_ed25519_host_key
[ -s $hk ] || { dropbearkey -t ed25519 -f $hk.new >/dev/null 2>&1 && mv $hk.new $hk; } &
dropbear -R -g -P /run/dropbear.pid
# DHCP on every NIC, in parallel; each udhcpc returns once bound (or gives up).
pids=""
for dev in /sys/class/net/*; do
  iface=${dev##*/}
  [ "$iface" = lo ] && continue
  /etc/onestack/dhcp.sh start "$iface" &
  pids="$pids $!"
done
# (never a bare `wait`: that would wait for the uevent listener too)
[ -n "$pids" ] && wait $pids
stamp dhcp
/etc/onestack/metadata.sh
stamp metadata
/etc/onestack/banner.sh > /dev/console
stamp banner
# The rest (CD-ROM, virtio-scsi, SATA, VFAT, balloon, RNG, power button...); acpid
# then powers off on the ACPI power button.
# /dev/disk/by-label links (a config drive found by its label) once the CD-ROM
# and SCSI drivers are in.
(modprobe -a $(cat /etc/onestack/modules.cdrom /etc/onestack/modules.late) 2>/dev/null
 /etc/onestack/labels.sh
 acpid -l /dev/null) &
/etc/onestack/userdata.sh
stamp user-data
exit 0
