#!/bin/bash
# Install pifocus as a systemd service on a Raspberry Pi (Raspberry Pi OS Bookworm/Trixie).
#
#   sudo systemd/install.sh                 install from this checkout, enable and start
#   sudo systemd/install.sh --dry-run       print what would be done
#
# What it does:
#   1. creates the system user "pifocus" (groups video, gpio);
#   2. makes a venv in $PREFIX/venv with --system-site-packages (picamera2 and lgpio come
#      from apt) and pip-installs this checkout into it (numpy < 2 when apt's numpy is 1.x);
#   3. copies systemd/pifocus.toml to /etc/pifocus/pifocus.toml (kept if it exists);
#   4. installs systemd/pifocus.service, then enables and starts it.
#
# Options:
#   --prefix DIR        venv location parent [/opt/pifocus]
#   --config FILE       config to install [systemd/pifocus.toml]
#   --force-config      overwrite an existing /etc/pifocus/pifocus.toml (a .bak is kept)
#   --apt               apt-get install the system packages first (python3-venv,
#                       python3-picamera2, python3-lgpio)
#   --no-start          install and enable, but do not start now
#   --dry-run           print the commands instead of running them
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(dirname "$HERE")"
PREFIX=/opt/pifocus
CONFIG="$HERE/pifocus.toml"
FORCE_CONFIG=0
APT=0
START=1
DRY=0
USER_NAME=pifocus
ETC=/etc/pifocus
STATE=/var/lib/pifocus
UNIT=/etc/systemd/system/pifocus.service

die() { echo "install.sh: error: $*" >&2; exit 1; }
run() { if [ "$DRY" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --config) CONFIG="${2:?--config needs a file}"; shift 2 ;;
    --force-config) FORCE_CONFIG=1; shift ;;
    --apt) APT=1; shift ;;
    --no-start) START=0; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[ "$DRY" = 1 ] || [ "$(id -u)" = 0 ] || die "run as root: sudo $0 $*"
[ -f "$CONFIG" ] || die "config $CONFIG not found"
[ -f "$SRC/setup.py" ] || die "$SRC is not a pifocus checkout (no setup.py)"
command -v systemctl >/dev/null || [ "$DRY" = 1 ] || die "systemctl not found: this script is for systemd systems"
VENV="$PREFIX/venv"

if [ "$APT" = 1 ]; then
  run apt-get update
  run apt-get install -y python3-venv python3-pip python3-picamera2 python3-lgpio
fi

# 1. user and groups.  The unit's SupplementaryGroups need both groups to exist.
for g in video gpio; do
  getent group "$g" >/dev/null || run groupadd --system "$g"
done
if ! id "$USER_NAME" >/dev/null 2>&1; then
  run useradd --system --user-group --home-dir "$STATE" --no-create-home \
      --shell /usr/sbin/nologin --comment "pifocus service" "$USER_NAME"
fi
run usermod -a -G video,gpio "$USER_NAME"

# 2. venv with the system site packages (picamera2, lgpio from apt).
run install -d -m 0755 "$PREFIX"
[ -x "$VENV/bin/python" ] || run python3 -m venv --system-site-packages "$VENV"
CONSTRAINTS=()
if python3 -c 'import numpy, sys; sys.exit(0 if numpy.__version__.startswith("1.") else 1)' 2>/dev/null; then
  # apt's picamera2/simplejpeg are built for numpy 1.x: do not let pip pull numpy 2.
  C="$PREFIX/constraints.txt"
  if [ "$DRY" = 1 ]; then echo "+ write $C: numpy<2, opencv-python-headless<4.12"
  else printf 'numpy<2\nopencv-python-headless<4.12\n' > "$C"; fi
  CONSTRAINTS=(-c "$C")
fi
EXTRAS=""
[ "$(uname -m)" = aarch64 ] && EXTRAS="[pi]"
run "$VENV/bin/pip" install --upgrade pip
run "$VENV/bin/pip" install "${CONSTRAINTS[@]}" "$SRC$EXTRAS"

# 3. config (readable by the service, not by everyone: it may hold the web token).
run install -d -m 0750 -o root -g "$USER_NAME" "$ETC"
if [ -f "$ETC/pifocus.toml" ] && [ "$FORCE_CONFIG" = 0 ]; then
  echo "keeping existing $ETC/pifocus.toml (use --force-config to replace it)"
else
  [ -f "$ETC/pifocus.toml" ] && run cp -p "$ETC/pifocus.toml" "$ETC/pifocus.toml.bak"
  run install -m 0640 -o root -g "$USER_NAME" "$CONFIG" "$ETC/pifocus.toml"
fi
run install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$STATE"

# 4. the unit, pointing at this venv.
if [ "$DRY" = 1 ]; then
  echo "+ install $HERE/pifocus.service -> $UNIT (ExecStart=$VENV/bin/pifocus ...)"
else
  sed "s#/opt/pifocus/venv/bin/pifocus#$VENV/bin/pifocus#" "$HERE/pifocus.service" > "$UNIT.tmp"
  chmod 0644 "$UNIT.tmp"
  mv "$UNIT.tmp" "$UNIT"
fi
if command -v systemd-analyze >/dev/null; then
  run systemd-analyze verify "$UNIT" || die "the installed unit does not verify"
fi
run systemctl daemon-reload
if [ "$START" = 1 ]; then
  run systemctl enable --now pifocus.service
  echo "pifocus is running: systemctl status pifocus; journalctl -u pifocus -f"
else
  run systemctl enable pifocus.service
fi
echo "web page: ssh -L 8080:localhost:8080 pi@<rig>, then http://localhost:8080/ (or set [web] host and token)"
