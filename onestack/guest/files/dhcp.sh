#!/bin/busybox sh
# dhcp.sh start|stop IFACE: run (or stop) udhcpc on one interface.
# The pid file /var/run/udhcpc.IFACE.pid stays while udhcpc runs.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ -n "$ONESTACK_DEBUG" ] && set -x
action=$1
iface=$2
pidfile=/var/run/udhcpc.$iface.pid
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
case "$action" in
  start)
    running && exit 0
    ip link set "$iface" up
    exec udhcpc -i "$iface" -p "$pidfile" -s /etc/onestack/udhcpc.sh -b -t 4 -T 1 -A 5 \
      -O mtu -O staticroutes -x hostname:"$(hostname)" >/dev/null 2>&1
    ;;
  stop)
    running && kill "$(cat "$pidfile")"
    rm -f "$pidfile" "/run/onestack/ip.$iface" "/run/onestack/resolv.$iface"
    ;;
esac
exit 0
