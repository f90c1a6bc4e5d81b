#!/bin/busybox sh
# Runs the user data when it is a script (starts with #!), once per instance.
# Output goes to /var/log/user-data.log; the exit status to
# /var/lib/onestack/user-data.status.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ -n "$ONESTACK_DEBUG" ] && set -x
ud=/run/onestack/data/user_data
[ -f "$ud" ] || exit 0
[ "$(head -c 2 "$ud")" = "#!" ] || exit 0
iid=$(cat /run/onestack/instance-id 2>/dev/null)
done=/var/lib/onestack/user-data.done
[ -f "$done" ] && [ "$(cat "$done")" = "$iid" ] && exit 0
cp "$ud" /var/lib/onestack/user-data
chmod 700 /var/lib/onestack/user-data
echo "$iid" > "$done"
sync
(cd / && /var/lib/onestack/user-data) > /var/log/user-data.log 2>&1 < /dev/null
echo $? > /var/lib/onestack/user-data.status
sync
exit 0
