"""One module per ``pifocus`` subcommand.

Each module defines ``HELP`` (one line), ``DESCRIPTION`` (the ``--help`` text),
``add_arguments(parser)`` and ``run(args, console) -> int``.  :mod:`pifocus.cli` lists them
in :data:`COMMANDS`; a module that is missing (or whose optional dependency is missing when
it is imported) simply does not appear.
"""

#: Subcommand name -> module under pifocus.commands, in --help order.
COMMANDS = {
    "run": "run",
    "score": "score",
    "bench": "bench",
    "record": "record",
    "autofocus": "autofocus",
    "calibrate": "calibrate",
    "serve": "serve",
    "convert": "convert",
    "evaluate": "evaluate",
}
