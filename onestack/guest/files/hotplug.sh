#!/bin/busybox sh
# Run by `uevent` for every kernel event: DHCP on hot-plugged NICs, modules
# for other new devices (block device nodes come from devtmpfs).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
case "$ACTION/$SUBSYSTEM" in
  add/net)
    [ "$INTERFACE" != lo ] && /etc/onestack/dhcp.sh start "$INTERFACE" </dev/null >/dev/null 2>&1 &
    ;;
  remove/net)
    /etc/onestack/dhcp.sh stop "$INTERFACE"
    ;;
  add/block)
    [ -n "$DEVNAME" ] && /etc/onestack/labels.sh "$DEVNAME" </dev/null >/dev/null 2>&1 &
    ;;
  remove/block)  # links left pointing at nothing
    for l in /dev/disk/by-label/*; do [ -L "$l" ] && [ ! -e "$l" ] && rm -f "$l"; done
    ;;
esac
if [ "$ACTION" = add ] && [ -n "$MODALIAS" ]; then
  modprobe -q "$MODALIAS" 2>/dev/null
fi
exit 0
