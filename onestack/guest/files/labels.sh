#!/bin/busybox sh
# labels.sh [DEVICE...]: /dev/disk/by-label/LABEL -> ../../DEVICE for the
# labelled block devices named (default: all), as udev makes them elsewhere.
# libblkid (`blkid -L config-2`), findfs and `mount LABEL=` look there first,
# without opening the device: so they find a config drive for users too (the
# device nodes are root's), as Tempest's `blkid -L config-2 -o device` as
# cirros expects. One blkid for all devices (each exec costs under TCG).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ -n "$ONESTACK_DEBUG" ] && set -x
if [ $# -eq 0 ]; then
  for d in /sys/class/block/*; do set -- "$@" "${d##*/}"; done
fi
devs=""
for d in "$@"; do devs="$devs /dev/${d#/dev/}"; done
dir=/dev/disk/by-label
mkdir -p "$dir"
link() {
  case "$label" in
    ''|*/*|.|..) ;;
    *) ln -sfn "../../${dev#/dev/}" "$dir/$label" ;;
  esac
  dev=""
  label=""
}
dev=""
label=""
blkid -o export $devs 2>/dev/null | {
  while IFS='=' read -r key value; do
    case "$key" in
      DEVNAME) dev=$value ;;
      LABEL) label=$value ;;
      '') link ;;
    esac
  done
  link
}
exit 0
