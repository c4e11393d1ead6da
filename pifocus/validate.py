"""One helper for validating parameter objects, so every bad value reads the same way."""

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
