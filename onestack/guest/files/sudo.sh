#!/bin/sh
# A small sudo: runs a command (or a shell) as root for members of the group
# "sudo", through a setuid-root setpriv that only that group may execute.
helper=/usr/lib/onestack/setpriv-root
login=0
shell=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n|-E|-H|-S|-k|-b|-P|--preserve-env|--non-interactive) shift ;;
    --preserve-env=*) shift ;;
    -u|--user)
      case "$2" in root|0|'#0') ;; *) echo "sudo: only root is supported" >&2; exit 1 ;; esac
      shift 2 ;;
    -i|--login) login=1; shift ;;
    -s|--shell) shell=1; shift ;;
    -V|--version) echo "onestack sudo shim 1"; exit 0 ;;
    -h|--help) echo "usage: sudo [-nEHi] [-s] [-u root] [command [args...]]"; exit 0 ;;
    --) shift; break ;;
    -*) echo "sudo: unsupported option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then
  if [ $login = 1 ] || [ $shell = 1 ]; then
    set -- /bin/sh -l
  else
    echo "usage: sudo [-nEHi] [-s] [-u root] [command [args...]]" >&2
    exit 1
  fi
elif [ $shell = 1 ] || [ $login = 1 ]; then
  set -- /bin/sh -c "$*"
fi
if [ "$(id -u)" = 0 ]; then
  exec env HOME=/root USER=root LOGNAME=root "$@"
fi
if [ ! -x "$helper" ]; then
  echo "sudo: $(id -un) is not allowed to run sudo" >&2
  exit 1
fi
exec "$helper" --reuid=0 --regid=0 --init-groups -- env HOME=/root USER=root LOGNAME=root "$@"
