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
* :mod:`.position` -- ``pifocus position``, show, set or home a drive's saved position;
* :mod:`.serve` -- ``pifocus serve``, the headless service;
* :mod:`.rig` -- ``pifocus rig``, the rig dashboard over MQTT;
* :mod:`.stack` -- ``pifocus stack``, focus bracketing from the depth of focus, optional fusion;
* :mod:`.preset` -- ``pifocus preset``, named lens positions and rack-focus moves between them;
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
    "position": "position",
    "serve": "serve",
    "rig": "rig",
    "preset": "preset",
    "stack": "stack",
    "convert": "convert",
    "evaluate": "evaluate",
}
