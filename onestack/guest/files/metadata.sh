#!/bin/busybox sh
# Reads the instance data - from the config drive (ISO 9660 or VFAT labelled
# config-2) when one is attached, else from the metadata service at
# 169.254.169.254 (OpenStack meta_data.json and the EC2 paths) - then sets the
# hostname and installs the SSH public keys for root and cirros.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ -n "$ONESTACK_DEBUG" ] && set -x
data=/run/onestack/data
rm -rf "$data"
mkdir -p "$data"
mds=http://169.254.169.254
# fetch NAME=PATH...: all at once (their round trips overlap); what fails
# (404, no service) leaves no file. busybox wget: static, so it starts fast
# under TCG (its -T crashes: timeout instead).
fetch_one() {
  if timeout 5 wget -q -O "$data/$1.tmp" "$mds/$2" 2>/dev/null && [ -s "$data/$1.tmp" ]; then
    mv "$data/$1.tmp" "$data/$1"
  else
    rm -f "$data/$1.tmp"
  fi
}
fetch() {
  fetch_pids=""
  for pair in "$@"; do
    fetch_one "${pair%%=*}" "${pair#*=}" &
    fetch_pids="$fetch_pids $!"
  done
  wait $fetch_pids
}

config_drive() {
  cdev=$(findfs LABEL=config-2 2>/dev/null || findfs LABEL=CONFIG-2 2>/dev/null)
  [ -n "$cdev" ] || return 1
  mnt=/run/onestack/config-drive
  mkdir -p "$mnt"
  mount -o ro "$cdev" "$mnt" 2>/dev/null || return 1
  for f in meta_data.json user_data network_data.json vendor_data.json; do
    [ -f "$mnt/openstack/latest/$f" ] && cp "$mnt/openstack/latest/$f" "$data/$f"
  done
  umount "$mnt"
}
metadata_service() {
  fetch meta_data.json=openstack/latest/meta_data.json instance-id=latest/meta-data/instance-id
  [ -f "$data/meta_data.json" ] || [ -f "$data/instance-id" ]
}
uptime_s() { read -r up _ < /proc/uptime; echo "${up%.*}"; }
cdrom_drivers() {  # a config drive is an IDE CD-ROM under Nova (ISO 9660)
  modprobe -a $(cat /etc/onestack/modules.cdrom) 2>/dev/null
}

# The metadata service when it answers at once (no need for the CD-ROM drivers
# yet: they load after the banner), else a config drive, else the metadata
# service again - it may need a moment (a proxy starting) or be away a while
# (the cloud restarting: no answer, then 404s until its proxy knows the
# ports again): tried every second for up to 60 s, as cirros tries 20 times.
source=none
have_ip=$(ls /run/onestack/ip.* 2>/dev/null)
if [ -n "$have_ip" ] && metadata_service; then
  source=metadata-service
else
  cdrom_drivers
  if config_drive; then
    source=config-drive
  elif [ -n "$have_ip" ]; then
    give_up=$(($(uptime_s) + 60))
    while [ "$(uptime_s)" -lt "$give_up" ]; do
      sleep 1
      if metadata_service; then
        source=metadata-service
        break
      fi
    done
  fi
fi
if [ "$source" = metadata-service ]; then
  fetch user_data=openstack/latest/user_data ec2-user-data=latest/user-data \
    hostname=latest/meta-data/hostname ec2-keys=latest/meta-data/public-keys/
  [ ! -f "$data/user_data" ] && [ -f "$data/ec2-user-data" ] && mv "$data/ec2-user-data" "$data/user_data"
  if [ -f "$data/ec2-keys" ]; then
    pairs=""
    for entry in $(cat "$data/ec2-keys"); do
      idx=${entry%%=*}
      pairs="$pairs ec2-key.$idx=latest/meta-data/public-keys/$idx/openssh-key"
    done
    [ -n "$pairs" ] && fetch $pairs
  fi
fi
echo "$source" > "$data/source"
[ "$source" = none ] && exit 0

[ -f "$data/meta_data.json" ] && awk -f /etc/onestack/json.awk "$data/meta_data.json" > "$data/meta_data.flat"
touch "$data/meta_data.flat"
value() { awk -F '\t' -v k="$1" '$1 == k { sub(/^[^\t]*\t/, ""); print; exit }' "$data/meta_data.flat"; }

# instance id
iid=$(value uuid)
[ -z "$iid" ] && [ -f "$data/instance-id" ] && iid=$(cat "$data/instance-id")
echo "${iid:-unknown}" > /run/onestack/instance-id

# hostname (short form)
host=$(value hostname)
[ -z "$host" ] && [ -f "$data/hostname" ] && host=$(cat "$data/hostname")
[ -z "$host" ] && [ -f /run/onestack/dhcp-hostname ] && host=$(cat /run/onestack/dhcp-hostname)
host=${host%%.*}
if [ -n "$host" ]; then
  hostname "$host"
  echo "$host" > /etc/hostname
  grep -v '^127\.0\.1\.1' /etc/hosts > /etc/hosts.new
  echo "127.0.1.1 $host" >> /etc/hosts.new
  mv /etc/hosts.new /etc/hosts
fi

# SSH public keys: meta_data.json public_keys and the EC2 openssh-key entries
{
  awk -F '\t' '$1 ~ /^public_keys\// { sub(/^[^\t]*\t/, ""); print }' "$data/meta_data.flat"
  cat "$data"/ec2-key.* 2>/dev/null
} | sed -e 's/[[:space:]]*$//' -e '/^$/d' | sort -u > "$data/authorized_keys"
if [ -s "$data/authorized_keys" ]; then
  for home in /root /home/cirros; do
    mkdir -p "$home/.ssh"
    cp "$data/authorized_keys" "$home/.ssh/authorized_keys"
    chmod 700 "$home/.ssh"
    chmod 600 "$home/.ssh/authorized_keys"
  done
  chown -R cirros:cirros /home/cirros/.ssh
fi
exit 0
