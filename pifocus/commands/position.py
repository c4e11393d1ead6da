"""``pifocus position``: show, set or home the position a focus drive keeps in its state file."""

import logging

from . import _common
from .autofocus import drive_params
from ..argtypes import POSITION
from ..exc import ConfigError

log = logging.getLogger(__name__)

HELP = "show a focus drive's saved position, say where the lens is (--set POS), or home it (--home)"
DESCRIPTION = """\
A stepper or ULN2003 drive counts steps: it knows where the lens is only from its state
file.  When a move was interrupted (power cut, kill -9, a driver fault) the position is
*uncertain* and the drive refuses to move -- autofocus, presets and the soft limits would
otherwise trust a wrong count.  The focus verdict and the LED keep working meanwhile.

  pifocus position --config /etc/pifocus/pifocus.toml            # what the state file says
  pifocus position --config /etc/pifocus/pifocus.toml --set 0    # lens turned to its 0 mark
  pifocus position --config /etc/pifocus/pifocus.toml --home     # home against the stop/switch

Without --set or --home nothing moves and no pin is touched (the state file is only read).
--set POS writes POS (drive units, inside the drive's native range) as a known position.
--home needs [drive] homing = "endstop" or "switch".  Stop `pifocus serve` first: the
service reads the state file when it opens the drive.
"""


def add_arguments(p):
    _common.add_config_arg(p)
    p.add_argument("--drive", metavar="DRIVE",
                   help="stepper, uln2003 or sim [default: the config's [drive] name]")
    p.add_argument("--state-file", metavar="FILE", help="the drive's state file [the configured one]")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--set", type=POSITION, metavar="POS", dest="set_position",
                     help=f"the lens is at POS now, drive units ({POSITION.range}); clears an uncertain position")
    act.add_argument("--home", action="store_true",
                     help="home the drive against its end stop or limit switch ([drive] homing)")


def _describe(drive, st) -> dict:
    """The state as a JSON-ready dict."""
    out = {"drive": drive.name, "units": drive.units, "state_file": drive.state_path,
           "native_range": list(drive.native_range), "limits": list(drive.limits)}
    if st is None:
        out.update(position=None, known=False, uncertain=True, reason="nothing saved", homed=False)
        return out
    uncertain = bool(st.get("moving") or st.get("uncertain"))
    reason = ""
    if st.get("moving"):
        reason = "the last run stopped during a " + ("homing" if st.get("homing") else "move")
    elif st.get("uncertain"):
        reason = "marked uncertain (an interrupted move or an unknown start)"
    out.update(position=st["position"], known=True, uncertain=uncertain, reason=reason,
               homed=bool(st.get("homed")), target=st.get("target"))
    return out


def _text(d: dict) -> str:
    if not d["known"]:
        pos = "unknown (nothing saved)"
    else:
        pos = f"{d['position']:g} {d['units']}" + (f" -- UNCERTAIN: {d['reason']}" if d["uncertain"] else "")
    lines = [f"drive {d['drive']}: position {pos}", f"  state file: {d['state_file']}"]
    if d["uncertain"]:
        lines.append("  moves are refused until it is known: `pifocus position --set POS` after turning the lens "
                     "to a known mark, or --home with [drive] homing configured")
    return "\n".join(lines)


def run(args, console) -> int:
    from ..drive import open_drive, read_state

    cfg = _common.load_config(args)
    dp = drive_params(cfg, args)
    kind = dp.name.partition(":")[0].lower()
    if kind not in ("stepper", "uln2003", "sim"):
        raise ConfigError(f"pifocus position: drive {dp.name!r} sets its position absolutely (or replays a "
                          "recording) and keeps nothing to fix; use stepper, uln2003 or sim")
    drive = open_drive(dp.name, params=dp)
    if not drive.state_path:
        raise ConfigError(f"drive {dp.name!r} keeps no state file (state_file = 'none'); give --state-file FILE "
                          "or set [drive] state_file")
    if args.home:
        with drive:   # opening an uncertain drive with homing configured homes it already
            if not drive.homed_on_open:
                drive.home()
            pos = drive.position
        d = _describe(drive, read_state(drive.state_path))
        console.result(dict(d, action="home"), f"drive {drive.name}: homed; lens at {pos:g} {drive.units}")
        return 0
    if args.set_position is not None:
        before = _describe(drive, read_state(drive.state_path))
        drive.set_position(args.set_position)
        d = _describe(drive, read_state(drive.state_path))
        console.result(dict(d, action="set", previous=before["position"], previous_uncertain=before["uncertain"]),
                       f"drive {drive.name}: position set to {args.set_position:g} {drive.units} "
                       f"(was {'unknown' if not before['known'] else format(before['position'], 'g')}"
                       f"{', uncertain' if before['uncertain'] and before['known'] else ''})")
        return 0
    d = _describe(drive, read_state(drive.state_path))
    console.result(d, _text(d))
    return 0
