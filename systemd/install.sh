#!/bin/bash
# Install pifocus as a systemd service on a Raspberry Pi (Raspberry Pi OS Bookworm/Trixie).
#
#   sudo systemd/install.sh                 install from this checkout, enable and start
#   sudo systemd/install.sh --source picamera2:1 --drive stepper
#   sudo systemd/install.sh --dry-run       print what would be done
#
# What it does:
#   1. creates the system user "pifocus" (groups video, gpio);
#   2. makes a venv in $PREFIX/venv with --system-site-packages (picamera2 and lgpio come
#      from apt) and pip-installs this checkout into it.  When apt's numpy is 1.x (Bookworm)
#      the pins numpy<1.25 (apt's minor) and opencv-python-headless<4.12 go to $PREFIX/constraints.txt and the
#      venv's pip.conf, so every later pip run in that venv keeps them too.  The extras follow
#      the userland, not the kernel: a 32-bit Raspberry Pi OS on a 64-bit kernel says aarch64
#      in uname -m but gets [pi,tflite-runtime] and apt's python3-opencv;
#   3. writes /etc/pifocus/pifocus.toml (kept if it exists) from systemd/pifocus.toml for a
#      rig: [source] name = --source (picamera2), [drive] name = --drive (none), and the
#      simulator-only key realtime commented out;
#   4. installs systemd/pifocus.service, then enables and starts it.
#
# Options:
#   --source SRC        camera for [source] name: picamera2[:N] | opencv:INDEX_OR_URL |
#                       sim[:IMAGE] | a folder or video [picamera2]
#   --drive DRIVE       focus drive for [drive] name: none | stepper | uln2003 | libcamera |
#                       sim | replay:DIR [none]
#   --prefix DIR        venv location parent [/opt/pifocus]
#   --config FILE       config to start from [systemd/pifocus.toml]
#   --force-config      overwrite an existing /etc/pifocus/pifocus.toml (a .bak is kept)
#   --print-config      print the config that would be installed, then exit
#   --apt               apt-get install the system packages first (python3-venv,
#                       python3-picamera2, python3-lgpio; python3-opencv on 32-bit)
#   --no-start          install and enable, but do not start now
#   --dry-run           print the commands instead of running them
#
# Then edit /etc/pifocus/pifocus.toml for the rig ([outputs] pins, [drive] pins and limits,
# [web] host/token) and apply it with: sudo systemctl reload pifocus
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(dirname "$HERE")"
PREFIX=/opt/pifocus
CONFIG="$HERE/pifocus.toml"
FORCE_CONFIG=0
APT=0
START=1
DRY=0
PRINT_CONFIG=0
SOURCE=picamera2
DRIVE=none
PYTHON="${PIFOCUS_INSTALL_PYTHON:-python3}"   # the interpreter the venv is made from
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
    --source) SOURCE="${2:?--source needs a source string, e.g. picamera2 or picamera2:1}"; shift 2 ;;
    --drive) DRIVE="${2:?--drive needs none, stepper, uln2003, libcamera, sim or replay:DIR}"; shift 2 ;;
    --print-config) PRINT_CONFIG=1; shift ;;
    --force-config) FORCE_CONFIG=1; shift ;;
    --apt) APT=1; shift ;;
    --no-start) START=0; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

case "$SOURCE" in
  picamera2|picamera2:[0-9]|picamera2:[0-9][0-9]|opencv:?*|sim|sim:?*|/*) ;;
  *) die "--source $SOURCE is not a source string; allowed: picamera2[:N] (N = camera index 0-99), opencv:INDEX_OR_URL, sim[:IMAGE], or an absolute path to a folder or video" ;;
esac
case "$DRIVE" in
  none|stepper|uln2003|libcamera|sim|replay:/?*) ;;
  *) die "--drive $DRIVE is not a drive; allowed: none (default), stepper, uln2003, libcamera, sim, replay:/ABSOLUTE/SWEEP/DIR" ;;
esac
[ -f "$CONFIG" ] || die "config $CONFIG not found"

# The config for this rig: [source] name and [drive] name set, simulator-only keys off.
rig_config() {
  awk -v src="$SOURCE" -v drv="$DRIVE" '
    /^\[[^]]+\]/ { table = $0; sub(/^\[/, "", table); sub(/\].*$/, "", table) }
    table == "source" && /^name[ \t]*=/ { print "name = \"" src "\"    # set by install.sh --source"; next }
    table == "source" && src !~ /^sim/ && /^realtime[ \t]*=/ { print "# " $0 "    # sim only"; next }
    table == "drive" && /^name[ \t]*=/ { print "name = \"" drv "\"    # set by install.sh --drive (none = no drive)"; next }
    { print }
  ' "$CONFIG"
}
if [ "$PRINT_CONFIG" = 1 ]; then rig_config; exit 0; fi

[ "$DRY" = 1 ] || [ "$(id -u)" = 0 ] || die "run as root: sudo $0 $*"
[ -f "$SRC/setup.py" ] || die "$SRC is not a pifocus checkout (no setup.py)"
command -v systemctl >/dev/null || [ "$DRY" = 1 ] || die "systemctl not found: this script is for systemd systems"
VENV="$PREFIX/venv"

# The userland decides the extras, not the kernel: 32-bit Raspberry Pi OS on a Pi 4/5 has a
# 64-bit kernel (uname -m says aarch64) but only armv7l wheels fit its Python.  Same test as
# setup.py's arm32_userland(): the interpreter's pointer size and multiarch triplet.
USERLAND="$("$PYTHON" -c '
import platform, struct, sysconfig
m = platform.machine().lower()
arm = m.startswith("arm") or m == "aarch64"
bits32 = platform.architecture()[0] == "32bit" or struct.calcsize("P") == 4 \
    or str(sysconfig.get_config_var("MULTIARCH") or "").startswith("arm-")
print(("arm32" if bits32 else "arm64") if arm else "other")
' 2>/dev/null)" || die "$PYTHON cannot run: install python3 first (apt-get install python3 python3-venv)"
APT_PKGS=(python3-venv python3-pip python3-picamera2 python3-lgpio)
case "$USERLAND" in
  arm64) EXTRAS="[pi]" ;;
  arm32) EXTRAS="[pi,tflite-runtime]"; APT_PKGS+=(python3-opencv python3-numpy)
         echo "32-bit userland (uname -m says $(uname -m)): LiteRT and the OpenCV wheel have no armv7l builds; using tflite-runtime and apt's python3-opencv" ;;
  *) EXTRAS="" ;;
esac

if [ "$APT" = 1 ]; then
  run apt-get update
  run apt-get install -y "${APT_PKGS[@]}"
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
[ -x "$VENV/bin/python" ] || run "$PYTHON" -m venv --system-site-packages "$VENV"
CONSTRAINTS=()
# "numpy<2" is not enough: the newest matplotlib would still replace apt's 1.24 with pip's 1.26.
NUMPY_PIN="$("$PYTHON" -c 'import numpy; v = numpy.__version__.split("."); print(f"numpy<{v[0]}.{int(v[1]) + 1}" if v[0] == "1" else "")' 2>/dev/null || true)"
if [ -n "$NUMPY_PIN" ]; then
  # apt's picamera2/simplejpeg/OpenCV are built for numpy 1.x: pip must never pull numpy 2,
  # now or later (an extra with matplotlib would): the venv's pip.conf carries the pins.
  C="$PREFIX/constraints.txt"
  if [ "$DRY" = 1 ]; then
    echo "+ write $C: $NUMPY_PIN, opencv-python-headless<4.12"
    echo "+ write $VENV/pip.conf: [global] constraint = $C"
  else
    printf '%s\nopencv-python-headless<4.12\n' "$NUMPY_PIN" > "$C"
    printf '[global]\nconstraint = %s\n' "$C" > "$VENV/pip.conf"
  fi
  CONSTRAINTS=(-c "$C")
fi
run "$VENV/bin/pip" install "${CONSTRAINTS[@]}" --upgrade pip
run "$VENV/bin/pip" install "${CONSTRAINTS[@]}" "$SRC$EXTRAS"

# 3. config (readable by the service, not by everyone: it may hold the web token).
run install -d -m 0750 -o root -g "$USER_NAME" "$ETC"
if [ -f "$ETC/pifocus.toml" ] && [ "$FORCE_CONFIG" = 0 ]; then
  echo "keeping existing $ETC/pifocus.toml (use --force-config to replace it)"
else
  [ -f "$ETC/pifocus.toml" ] && run cp -p "$ETC/pifocus.toml" "$ETC/pifocus.toml.bak"
  if [ "$DRY" = 1 ]; then
    echo "+ write $ETC/pifocus.toml from $CONFIG: [source] name = \"$SOURCE\", [drive] name = \"$DRIVE\""
  else
    rig_config > "$ETC/pifocus.toml.tmp"
    chown root:"$USER_NAME" "$ETC/pifocus.toml.tmp"
    chmod 0640 "$ETC/pifocus.toml.tmp"
    mv "$ETC/pifocus.toml.tmp" "$ETC/pifocus.toml"
  fi
  echo "edit $ETC/pifocus.toml for the rig ([outputs] pins, [drive], [web]); then: sudo systemctl reload pifocus"
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
