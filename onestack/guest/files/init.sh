#!/bin/sh
# onestack test guest: initramfs /init. Loads the storage, network and
# filesystem modules, mounts the root file system (LABEL=onestack-root by
# default, or root= on the kernel command line) read-write and switches to it.
export PATH=/bin
mount -t devtmpfs -o mode=0755 devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
stamp() { read -r up _ < /proc/uptime; echo "$1 $up" >> /dev/.boot-times; }
stamp initramfs
root=LABEL=onestack-root
rootfstype=ext4
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root="${arg#root=}" ;;
    rootfstype=*) rootfstype="${arg#rootfstype=}" ;;
    onestack.debug) set -x ;;
  esac
done
load() {
  while read -r m; do
    insmod "/lib/modules/$m" 2>/dev/null
  done < "/lib/modules/$1"
}
find_root() {
  case "$root" in
    LABEL=*|UUID=*) dev=$(findfs "$root" 2>/dev/null) ;;
    *) [ -b "$root" ] && dev="$root" ;;
  esac
  [ -n "$dev" ]
}
# virtio first; the other storage drivers only when the root is not there
# (the system loads them later anyway).
dev=""
load early.order
find_root || load late.order
i=0
while ! find_root && [ $i -lt 100 ]; do
  i=$((i + 1))
  usleep 50000
done
if [ -z "$dev" ] || ! mount -t "$rootfstype" -o rw,noatime "$dev" /newroot; then
  echo "onestack-guest: cannot mount the root file system $root; dropping to a shell" > /dev/console
  exec sh < /dev/console > /dev/console 2>&1
fi
stamp root-mounted
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
exec switch_root /newroot /sbin/init
