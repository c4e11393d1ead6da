"""The ``pifocus`` command: one subcommand per job.

``main(argv) -> int``.  Every subcommand takes ``--json`` (machine-readable results on
stdout, logs on stderr) and ``--debug`` (tracebacks).  A deliberate error prints one line
``pifocus: error: ...`` on stderr and exits with status 2 (1 for unexpected failures).
"""

import argparse
import errno
import importlib
import logging
import os
import signal
import sys
from typing import List, Optional

from . import __version__
from .commands import COMMANDS
from .console import Console
from .exc import ConfigError, PiFocusError

log = logging.getLogger("pifocus")

EPILOG = """\
examples:
  pifocus run --source sim --frames 120      focus pull on the built-in simulated lens
  pifocus score photo.jpg shots/ --json      judge stills or folders
  pifocus cull DCIM/ --out cull/            keep / maybe / reject a card of photos, XMP sidecars
  pifocus bench --source sim --frames 60     per-stage timings against a plain Laplacian
  pifocus run --source picamera2 --config /etc/pifocus/pifocus.toml

Source strings: sim[:IMAGE], picamera2[:N], opencv:INDEX_OR_URL, a folder of images
(natural order, sweep.csv when present), or a video file.
"""


class _JournalFormatter(logging.Formatter):
    """``<N>`` syslog priority prefixes, which journald turns into log levels."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record):
        return f"<{self.PRIORITY.get(record.levelno, 6)}>" + super().format(record)


def setup_logging(verbosity: int = 0, debug: bool = False) -> None:
    """Log to stderr; with journald prefixes when running under systemd (JOURNAL_STREAM)."""
    level = logging.DEBUG if debug or verbosity > 1 else logging.INFO if verbosity == 1 else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_pifocus", False):
            root.removeHandler(h)
    handler._pifocus = True
    root.addHandler(handler)
    root.setLevel(level)


class _Parser(argparse.ArgumentParser):
    """Bad command-line values end in the one-line ``pifocus: error: ...`` (status 2)."""

    def error(self, message):
        cmd = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        where = f"{cmd}: " if cmd else ""
        self.exit(2, f"pifocus: error: {where}{message} (see pifocus {cmd + ' ' if cmd else ''}--help)\n")


def build_parser():
    """The argument parser with every available subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true",
                        help="machine-readable output: JSON objects, one per line, on stdout")
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")

    parser = _Parser(
        prog="pifocus",
        description="Live focus assistant for Raspberry Pi cameras: tells you, with no screen, "
                    "whether the subject is sharp, and can turn the focus itself.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pifocus {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(f".commands.{modname}", __package__)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("pifocus.commands."):
                continue  # that job is not part of this build
            raise
        p = sub.add_parser(name, parents=[common], help=mod.HELP,
                           description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        modules[name] = mod
    return parser, modules


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``pifocus`` command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, modules = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help / --version (0) raise on; a bad value returns its status
        if e.code in (0, None):
            raise
        return int(e.code) if isinstance(e.code, int) else 2
    if not args.command:
        parser.print_help()
        return 2
    setup_logging(args.verbose, args.debug)
    console = Console(json_mode=args.json)
    old_term = _terminate_like_ctrl_c()
    try:
        return int(modules[args.command].run(args, console) or 0)
    except Terminated:
        console.note("pifocus: terminated (SIGTERM); motor de-energized, position saved or marked uncertain")
        return 143
    except KeyboardInterrupt:
        console.note("pifocus: interrupted")
        return 130
    except PiFocusError as e:
        if args.debug:
            log.exception("error")
        sys.stderr.write(f"pifocus: error: {e}\n")
        return 2
    except BrokenPipeError:
        return 0
    except OSError as e:  # the environment, not a bug: say which file and what to do
        if args.debug:
            log.exception("error")
        sys.stderr.write(f"pifocus: error: {os_error_line(e)}\n")
        return 2
    except Exception as e:  # unexpected: one line unless --debug
        if args.debug:
            raise
        sys.stderr.write(f"pifocus: error: unexpected {type(e).__name__}: {e} (run with --debug for details)\n")
        return 1
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


#: errno -> (what happened, how to fix it) for :func:`os_error_line`
_OS_ERRORS = {
    errno.ENOENT: ("no such file or folder", "check the path (does its folder exist?)"),
    errno.EACCES: ("permission denied", "choose a path this user may use, or fix the permissions"),
    errno.EPERM: ("operation not permitted", "choose a path this user may use, or fix the permissions"),
    errno.ENOSPC: ("no space left on the device", "free some space or write somewhere else"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write somewhere else"),
    errno.EISDIR: ("is a folder where a file is expected", "give a file path"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path"),
    errno.EROFS: ("read-only file system", "write somewhere writable"),
    errno.EEXIST: ("already exists", "remove it or choose another path"),
    errno.ENAMETOOLONG: ("file name too long", "use a shorter path"),
}


def os_error_line(e: OSError) -> str:
    """One line for an ``OSError`` naming the file, what went wrong and the fix."""
    what, fix = _OS_ERRORS.get(e.errno, (e.strerror or type(e).__name__, "check the path and the device"))
    name = e.filename if e.filename is not None else ""
    if e.filename2 is not None:
        name = f"{name} -> {e.filename2}"
    if not name:
        return f"{what} ({e}); {fix}"
    return f"{name!s}: {what}; {fix}"


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (``systemctl stop``, ``kill``): unwinds like Ctrl-C, so every
    ``with drive:`` de-energizes the motor and saves the position (or, mid-move, leaves it
    marked uncertain)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _terminate_like_ctrl_c():
    """Make SIGTERM raise :class:`Terminated` while a command runs (``run`` and ``serve``
    install their own handlers on top).  Returns the previous handler, or None when not in
    the main thread."""
    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
