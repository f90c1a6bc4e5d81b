#!/bin/busybox sh
# The login banner: the image, the host name and every address.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
. /etc/os-release
addrs=""
for f in /run/onestack/ip.*; do
  [ -f "$f" ] && addrs="$addrs ${f##*/ip.}=$(cat "$f")"
done
echo
echo "=== $PRETTY_NAME ==="
echo "hostname: $(hostname)  instance-id: $(cat /run/onestack/instance-id 2>/dev/null || echo none)  data: $(cat /run/onestack/data/source 2>/dev/null || echo none)"
echo "addresses:${addrs:- none}"
echo "login: ssh root@ADDRESS or cirros@ADDRESS with your key; console: cirros / gocubsgo; sudo runs as root"
echo "==="
printf '%s %s%s\n' "$NAME" "$(hostname)" "$addrs" > /etc/issue
