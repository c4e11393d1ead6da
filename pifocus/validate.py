"""Validation helpers, so every bad value reads the same way: :func:`require` for parameter
objects, :func:`require_matplotlib` for an option that needs the optional plotting library."""

from .exc import ConfigError


def require(ok: bool, section: str, key: str, value, allowed: str, fix: str = "") -> None:
    """Raise :class:`ConfigError` naming ``section.key``, the bad value and what is allowed.

    Args:
        ok: the condition that must hold.
        section: config table or object, e.g. ``"analysis"``.
        key: the parameter name.
        value: the offending value.
        allowed: human description of the allowed values, e.g. ``"1..32"``.
        fix: optional hint appended to the message.
    """
    if not ok:
        msg = f"{section}.{key} = {value!r} is invalid; allowed: {allowed}"
        if fix:
            msg += f"; {fix}"
        raise ConfigError(msg)


# Where matplotlib comes from.  On Raspberry Pi OS Bookworm, matplotlib from PyPI pulls numpy 2
# into the venv, which breaks apt's picamera2, simplejpeg and OpenCV (built for numpy 1.24).
MATPLOTLIB_FIX = ("on Raspberry Pi OS: sudo apt install python3-matplotlib (the venv sees it; "
                  "matplotlib from PyPI pulls numpy 2 there and breaks apt's picamera2 and OpenCV); "
                  "elsewhere: pip install 'pifocus[plot]'")


def require_matplotlib(option: str = "--plot") -> None:
    """Check that matplotlib imports, before any long work whose result ``option`` would plot.

    Args:
        option: the option or parameter that asked for the plot, named in the error.

    Raises:
        ConfigError: matplotlib cannot be imported; the message says how to install it
            without breaking a Raspberry Pi's apt packages.
    """
    try:
        import matplotlib  # noqa: F401  (optional: the [plot] extra or apt's python3-matplotlib)
    except ImportError as e:
        raise ConfigError(f"{option} needs matplotlib, which is not installed ({e}); "
                          f"{MATPLOTLIB_FIX}") from e
