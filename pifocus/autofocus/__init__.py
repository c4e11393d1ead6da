"""Autofocus: turn the focus verdict into focus.

Strategies (selectable by name, one parameter object each; :data:`STRATEGIES`):

* ``model`` (:class:`ModelParams`) -- model-guided: uses the *shape* of the focus measure.
  Laplacian variance of a frame reduced 8x is, near focus, a Gaussian of the lens position
  whose width is ~8x that of the full-resolution measure, so it sees the peak from far
  away: three samples of it give the peak position and the curve width by a log-parabola
  fit; the jump goes straight there, the width sets the spacing of the fine samples, and a
  full-resolution fit through three samples around the peak finishes.  ~10 frames.
* ``sweep`` (:class:`SweepParams`) -- the contrast-detect baseline: a coarse sweep over the
  whole range, a fine sweep around the best sample, a peak fit (Gaussian = parabola in
  log-sharpness, or a plain parabola) through the best samples, all approached from one
  side.  Several dozen frames.
* ``continuous`` (:class:`ContinuousAF`, :class:`ContinuousParams`) -- watch the ROI; search
  locally only when sharpness drops and stays down (not a one-frame flicker, not a scene
  cut), without hunting while focus is good.

Every run ends with the **quality gate** (:class:`GateParams`): too little light or
texture (no detail at full resolution nor 2x or 4x reduced), a flat curve, a peak at the
edge of the range the curve still climbs at, a multi-peaked curve (another local maximum
near the best's height) or a poor fit around a peak not closely bracketed make the run fail
with the reason -- each given only when it is true -- and the drive is returned to the best
position seen, never left wandering.  ``success`` means the final position is within the
depth of focus of the best position of a peak with lower samples on both sides (or at a
range end the curve turns over at, noted in ``reason``).
The :class:`AutofocusResult` carries final position, frames used, moves, time, the sampled
curve (``[[position, score], ...]``), success, reason and the fit.

The curve score (``[autofocus] score``, default ``multiscale``) is the geometric mean of the
ROI's noise-corrected Laplacian variance at full resolution and reduced 2x, 4x and 8x,
weighted towards the ROI's centre (``centre_sigma``: the subject is where the ROI is aimed;
a background plane at its edges counts less).  The CNN's ``p_in_focus`` (when a model is
loaded) is recorded per sample, reported for the final frame and used by continuous AF to
decide whether a new scene needs focusing; everything works in Laplacian-only mode.

Modules of the package (each imports only the ones above it in this list):

* ``base`` -- :class:`Strategy` (the interface: ``name``, ``params_field``,
  ``search(run) -> (fit, target)``), :data:`REGISTRY` and :func:`register`,
  :class:`AutofocusResult`, :data:`SCALES`;
* ``params`` -- :class:`AutofocusParams` and its sub-tables :class:`SweepParams`,
  :class:`ModelParams`, :class:`ContinuousParams`, :class:`BlurParams`, :class:`GateParams`;
* ``run`` -- the bookkeeping of one run: :class:`Sample`, :func:`multiscale` (the measure),
  ``_Run`` (move, settle, read, score, count), ``_grid``;
* ``fit`` -- peak fits: :func:`fit_peak` (with R²), :func:`fit_eval`, neighbourhood helpers;
* ``gate`` -- the quality gate and its R² check (``_gate``, ``_quality_r2``);
* ``engine`` -- :func:`autofocus`: set up, search with the registered strategy, gate,
  final approach, verify;
* ``sweep`` -- the ``sweep`` strategy (:class:`SweepStrategy`);
* ``model`` -- the ``model`` strategy (:class:`ModelStrategy`): coarse scan, fine search,
  look further if flat, refit;
* ``blur`` -- the ``blur`` strategy (:class:`BlurStrategy`): depth from defocus with the
  model's blur estimate -- probe, jump to the V's centre, fine fit (about 6 frames);
* ``explore`` -- where the ``dfd`` search looks besides its jumps: the best sample's bracket,
  the point best covering the unsampled range, the look past a peak (bracketed or at a range
  end) where the 8x-reduced measure climbs;
* ``dfd`` -- the ``dfd`` strategy (:class:`DfdStrategy`): depth from defocus (the blur head's
  estimate, else a model-free one from the measure's scales) to jump, a short local fit to
  land (about 6 frames);
* ``continuous`` -- the ``continuous`` strategy (:class:`LocalSearchStrategy`, a local
  hill-climb) and :class:`ContinuousAF`.

This module registers the built-in strategies (a new one: a module with a
:class:`Strategy` subclass, plus one entry in the tuple below) and re-exports the API.
"""

from .base import REGISTRY, SCALES, AutofocusResult, Strategy, register
from .blur import BlurStrategy, fit_v
from .continuous import ContinuousAF, LocalSearchStrategy
from .dfd import DfdStrategy, relative_blur
from .engine import autofocus, frame_limit, search_budget
from .fit import fit_eval, fit_peak
from .model import ModelStrategy
from .params import (AutofocusParams, BlurParams, ContinuousParams, DfdParams, GateParams, ModelParams,
                     SweepParams)
from .run import Sample, _Run, multiscale  # noqa: F401  (_Run: pifocus calibrate, tests)
from .sweep import SweepStrategy

# The order here is the order of STRATEGIES (and of "use one of ..." in error messages).
for _cls in (ModelStrategy, SweepStrategy, LocalSearchStrategy, BlurStrategy, DfdStrategy):
    register(_cls)
del _cls

#: Names of the registered strategies (``[autofocus] strategy`` values).
STRATEGIES = tuple(REGISTRY)

__all__ = ["AutofocusParams", "SweepParams", "ModelParams", "ContinuousParams", "GateParams",
           "AutofocusResult", "autofocus", "ContinuousAF", "fit_peak", "fit_eval", "multiscale", "STRATEGIES",
           "SCALES", "Strategy", "REGISTRY", "register", "Sample", "SweepStrategy", "ModelStrategy",
           "LocalSearchStrategy", "BlurStrategy", "BlurParams", "fit_v", "search_budget", "frame_limit",
           "DfdStrategy", "DfdParams", "relative_blur"]
