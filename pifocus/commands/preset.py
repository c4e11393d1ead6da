"""``pifocus preset``: named lens positions (rack focus) -- list, save, go, delete."""

from . import _common
from .autofocus import add_drive_args, open_configured_drive
from ..argtypes import POSITION, bounded_float
from ..exc import ConfigError

SPEED = bounded_float(0.1, 1e6)

HELP = "rack focus: save named lens positions (A, B, ...) and move between them at a set speed"
DESCRIPTION = """\
Store lens positions under names and move between them at a set speed -- a follow-focus
pull between two marks.  Presets live in presets.json in the state dir ($PIFOCUS_STATE_DIR,
else ~/.local/state/pifocus; /var/lib/pifocus under systemd), the same file the phone page
uses, written atomically.  A move goes in small legs at --speed and lands from the drive's
approach side, so backlash drops out.

  pifocus preset list
  pifocus preset save A --drive stepper          the drive's current position as A
  pifocus preset save B --position 1480          a position typed in (drive units)
  pifocus preset go B --speed 150 --drive stepper
  pifocus preset delete A
  pifocus preset go A --drive sim --json         (try it on the simulated lens)
"""


def add_arguments(p):
    p.add_argument("action", choices=("list", "save", "go", "delete"), help="what to do")
    p.add_argument("name", nargs="?", help="preset name (1..24 letters, digits, space, _ or -)")
    p.add_argument("--position", type=POSITION, metavar="POS",
                   help=f"save: this position (drive units, {POSITION.range}) instead of the drive's current one")
    p.add_argument("--speed", type=SPEED, metavar="UNITS_S", default=200.0,
                   help=f"go: lens speed in drive units per second ({SPEED.range}) [200]")
    p.add_argument("--file", metavar="PATH", help="presets file [presets.json in the state dir]")
    _common.add_config_arg(p)
    _common.add_source_args(p)
    add_drive_args(p)


def run(args, console) -> int:
    from ..presets import PresetStore, RackParams, leg_count, rack_legs

    store = PresetStore(args.file)
    if args.action == "list":
        presets = store.load()
        for name in sorted(presets):
            v = presets[name]
            console.result(dict(v, name=name), f"{name:>12s}  {v['position']:g} {v.get('units', '')}")
        if not presets:
            console.note(f"no presets yet in {store.path}; save one with: pifocus preset save A --drive DRIVE")
        return 0
    if not args.name:
        raise ConfigError(f"pifocus preset {args.action}: give the preset NAME, e.g. pifocus preset {args.action} A")
    if args.action == "delete":
        store.delete(args.name)
        console.result({"deleted": args.name}, f"deleted preset {args.name}")
        return 0
    if args.action == "save" and args.position is not None:
        p = store.save(args.name, args.position)
        console.result(p, f"preset {p['name']} = {p['position']:g}")
        return 0
    if args.action == "go":
        preset = store.get(args.name)  # before opening (and maybe homing) the drive
    cfg = _common.load_config(args)
    drive, source = open_configured_drive(cfg, args)
    try:
        drive.open()
        if args.action == "save":
            p = store.save(args.name, float(drive.position), getattr(drive, "units", "steps"))
            console.result(p, f"preset {p['name']} = {p['position']:g} {p['units']}")
            return 0
        rp = RackParams(speed_units_s=args.speed)
        start = float(drive.position)
        n = leg_count(start, preset["position"], rp)
        pos = start
        for pos in console.progress(rack_legs(drive, preset["position"], rp), total=n,
                                    desc=f"to {preset['name']}", unit="leg"):
            pass
        console.result({"name": preset["name"], "from": start, "position": pos, "speed_units_s": args.speed},
                       f"at preset {preset['name']}: {pos:g} (from {start:g}, {args.speed:g} units/s)")
        return 0
    finally:
        drive.close()
        if source is not None and source is not getattr(drive, "source", None):
            source.close()
