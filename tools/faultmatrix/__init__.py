"""The fault matrix of issue 14: bad input, faults and security cases against pifocus.

``tools/fault_matrix.py`` is the command; this package holds the cases and the harness:

* :mod:`.harness`  -- :class:`Case`, the outcomes, :func:`run_forked` (one case in a forked
  child: stdout/stderr captured, a wall-clock bound, an address-space limit, peak RSS
  measured) and :func:`judge_cli` (a ``pifocus`` exit judged against what was expected)
* :mod:`.inputs`   -- config errors (every documented key, malformed files), unbounded CLI
  values (every bounded option of the real parser)
* :mod:`.files`    -- special files wherever a path is read or written, decompression bombs
  in every decoded format, corrupt model files and metadata
* :mod:`.lens`     -- fractional soft limits, mistyped ``sweep.csv`` positions, randomized AF
  runs, ``kill -9`` during state writes
* :mod:`.service`  -- SIGHUP reloads with bad configs, full disk on a private tmpfs
* :mod:`.web`      -- ``pifocus serve`` under slow clients, floods, rebinding Host, framing
  tricks, path traversal, slow viewers, a bad SIGHUP
* :mod:`.webclient` -- the daemon subprocess and the raw, time-bounded HTTP client

Every case is bounded in count and time; servers listen on 127.0.0.1 only; device nodes are
made in a scratch folder (never the real ``/dev`` entries) so a regression cannot replace a
system file.
"""
