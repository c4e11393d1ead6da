"""One module per ``pifocus`` subcommand.

Each module defines ``HELP`` (one line), ``DESCRIPTION`` (the ``--help`` text),
``add_arguments(parser)`` and ``run(args, console) -> int``.  :mod:`pifocus.cli` lists them
in :data:`COMMANDS`; a module that is missing (or whose optional dependency is missing when
it is imported) simply does not appear.

* :mod:`.run` -- ``pifocus run``, the live loop;  :mod:`.score` -- ``pifocus score``, stills;
* :mod:`.bench` -- ``pifocus bench``, stage timings against the bare Laplacian baseline;
* :mod:`.cull` -- ``pifocus cull``, keep / maybe / reject a card of photos, XMP sidecars;
* :mod:`.record` -- ``pifocus record``, frames and lens sweeps in the replay format;
* :mod:`.autofocus` -- ``pifocus autofocus`` (and the drive options other commands share);
* :mod:`.calibrate` -- ``pifocus calibrate``, backlash and usable range of a drive;
* :mod:`.serve` -- ``pifocus serve``, the headless service;
* :mod:`.convert`, :mod:`.evaluate` -- the model tools (need the ``train`` extra);
* :mod:`._common` -- options and builders shared by the subcommands (config + flags -> objects).
"""

#: Subcommand name -> module under pifocus.commands, in --help order.
COMMANDS = {
    "run": "run",
    "score": "score",
    "cull": "cull",
    "bench": "bench",
    "record": "record",
    "autofocus": "autofocus",
    "calibrate": "calibrate",
    "serve": "serve",
    "convert": "convert",
    "evaluate": "evaluate",
}
