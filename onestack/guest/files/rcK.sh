#!/bin/busybox sh
# onestack test guest: system stop.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
for pid in /var/run/udhcpc.*.pid; do
  [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null
done
[ -f /run/dropbear.pid ] && kill "$(cat /run/dropbear.pid)" 2>/dev/null
sync
mount -o remount,ro / 2>/dev/null
exit 0
