#!/bin/busybox sh
# udhcpc event script: configures the address, routes (RFC 3442 classless
# static routes when given, else the router), MTU and DNS of $interface.
# (Few processes: each one costs under TCG.)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ -n "$ONESTACK_DEBUG" ] && set -x
state=/run/onestack
resolv() {
  cat "$state"/resolv.* > /etc/resolv.conf.new 2>/dev/null
  mv /etc/resolv.conf.new /etc/resolv.conf
}
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    if [ -f "$state/resolv.$interface" ]; then
      rm -f "$state/resolv.$interface"
      resolv
    fi
    rm -f "$state/ip.$interface"
    ;;
  bound|renew)
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    old=""
    [ -f "$state/ip.$interface" ] && read -r old < "$state/ip.$interface"
    if [ "$1" = bound ] || [ "$old" != "$ip/${mask:-24}" ]; then
      ip -4 addr flush dev "$interface"
      ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    fi
    read -r ifindex < "/sys/class/net/$interface/ifindex"
    metric=$((ifindex * 10))
    if [ -n "$staticroutes" ]; then
      set -- $staticroutes
      while [ $# -ge 2 ]; do
        if [ "$2" = 0.0.0.0 ]; then
          ip route replace "$1" dev "$interface" metric "$metric"
        else
          ip route replace "$1" via "$2" dev "$interface" metric "$metric"
        fi
        shift 2
      done
    elif [ -n "$router" ]; then
      for r in $router; do
        ip route replace default via "$r" dev "$interface" metric "$metric"
        break
      done
    fi
    {
      [ -n "$domain" ] && echo "search $domain"
      for d in $dns; do echo "nameserver $d"; done
    } > "$state/resolv.$interface"
    [ -s "$state/resolv.$interface" ] && resolv
    [ -n "$hostname" ] && echo "$hostname" > "$state/dhcp-hostname"
    echo "$ip/${mask:-24}" > "$state/ip.$interface"
    ;;
esac
exit 0
