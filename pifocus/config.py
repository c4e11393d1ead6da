"""TOML configuration -> validated dataclasses.

One file (``systemd/pifocus.toml`` is the documented example) with the tables ``[source]``,
``[analysis]``, ``[outputs]``, ``[drive]``, ``[autofocus]``, ``[web]``, ``[mqtt]``.  Each table maps onto
a frozen dataclass owned by the module that uses it (``AnalysisParams`` in
:mod:`pifocus.focus`, ``OutputsParams`` in :mod:`pifocus.outputs`, ...); this module only
reads TOML, rejects unknown keys (with a did-you-mean), coerces types and lets the
dataclass validate ranges.  Every problem is a :class:`~pifocus.exc.ConfigError` naming the
key, the value and what is allowed.
"""

import dataclasses
import difflib
import importlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from .exc import ConfigError, FileRefusedError
from .safeio import CONFIG_MAX_BYTES, read_limited

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore


@dataclass(frozen=True)
class SourceConfig:
    """Config table ``[source]``.

    Attributes:
        name: source string: ``sim``, ``sim:IMAGE``, ``picamera2[:N]``, ``opencv:INDEX_OR_URL``,
            a folder of images or a video file.
        options: keyword options for that source (e.g. ``width``, ``height``, ``fps``,
            ``sensor_mode``, ``exposure_us``); every other key of the table lands here and
            is checked by the source itself when it is made.
        max_pixels: recorded images whose header announces more pixels are skipped
            unread (decompression bombs); default 50 000 000.
    """

    name: str = "sim"
    options: Dict[str, Any] = field(default_factory=dict)
    max_pixels: int = 50_000_000

    @classmethod
    def from_table(cls, table: dict) -> "SourceConfig":
        """Build from the ``[source]`` table."""
        if not isinstance(table, dict):
            raise ConfigError(f"[source] must be a table, got {type(table).__name__} ({table!r}); "
                              "write [source] on its own line, then name = \"sim\"")
        table = dict(table)
        name = table.pop("name", cls.name)
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"source.name = {name!r} is invalid; allowed: a source string such as "
                              "'sim', 'picamera2', 'opencv:0', or a folder path")
        mp = table.pop("max_pixels", cls.max_pixels)
        if isinstance(mp, bool) or not isinstance(mp, int) or not 1 <= mp <= 4_000_000_000:
            raise ConfigError(f"source.max_pixels = {mp!r} is invalid; allowed: an integer 1..4000000000 "
                              f"(default {cls.max_pixels}; the HQ Camera's full frame is 12.3 MP)")
        return cls(name=name, options=table, max_pixels=mp)


#: table name -> "module:Class" of the dataclass that holds it.  Sections whose module is
#: not present in this build are rejected with a clear message.
SECTIONS = {
    "analysis": "pifocus.focus:AnalysisParams",
    "outputs": "pifocus.outputs:OutputsParams",
    "drive": "pifocus.drive:DriveParams",
    "autofocus": "pifocus.autofocus:AutofocusParams",
    "web": "pifocus.web:WebParams",
    "mqtt": "pifocus.rig:MqttParams",
}

#: Keys of ``[analysis]`` that belong to its nested parameter objects.
_NESTED = {
    "analysis": {
        "verdict": ("pifocus.focus.verdict:VerdictParams",
                    ("on_fraction", "off_fraction", "dwell_frames", "min_informative_tiles",
                     "approach_fraction", "decisive_margin", "peak_meter")),
        "peak": ("pifocus.focus.verdict:PeakHoldParams", ("scene_change", "peak_decay_per_frame")),
    }
}
_RENAMES = {"peak_decay_per_frame": "decay_per_frame"}


def _resolve(spec: str):
    mod, _, name = spec.partition(":")
    return getattr(importlib.import_module(mod), name)


def _coerce(section: str, key: str, value, annotation, default):
    """Coerce a TOML value to the field's type; raise ConfigError naming the key."""
    def bad(allowed):
        shown = "***" if key in ("token", "password") else repr(value)  # a secret never goes into a message or log
        return ConfigError(f"{section}.{key} = {shown} has the wrong type; allowed: {allowed}")

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union and type(None) in args:
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _coerce(section, key, value, inner, default)
    if origin is typing.Union:
        # e.g. Union[int, str] ("auto" or a number): any member type; the dataclass validates.
        if isinstance(value, bool) or not isinstance(value, args):
            raise bad(" or ".join(a.__name__ for a in args))
        return value
    target = annotation if isinstance(annotation, type) else (type(default) if default is not None else None)
    if origin in (tuple, list) or target in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise bad("a list, e.g. [0.25, 0.25, 0.5, 0.5]")
        return tuple(value)
    if target is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if target is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise bad("an integer")
        return value
    if target is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if target is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    return value


def build(cls, table: dict, section: str):
    """Make dataclass ``cls`` from a TOML table, rejecting unknown keys.

    Raises:
        ConfigError: an unknown key (with the closest known one), a wrong type, or a value
            out of range (from the dataclass's own validation).
    """
    if not isinstance(table, dict):
        raise ConfigError(f"[{section}] must be a table, got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    nested = _NESTED.get(section, {})
    nested_keys = {k: name for name, (_, keys) in nested.items() for k in keys}
    kwargs, sub = {}, {name: {} for name in nested}
    for key, value in table.items():
        if key in nested_keys:
            sub[nested_keys[key]][_RENAMES.get(key, key)] = value
            continue
        if key not in fields or key in nested:
            known = sorted([k for k in fields if k not in nested] + list(nested_keys))
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown key {section}.{key}{hint} (known keys: {', '.join(known)})")
        f = fields[key]
        default = f.default if f.default is not dataclasses.MISSING else None
        kwargs[key] = _coerce(section, key, value, hints.get(key), default)
    for name, values in sub.items():
        if values:
            sub_cls = _resolve(nested[name][0])
            sub_hints = typing.get_type_hints(sub_cls)
            sub_fields = {f.name: f for f in dataclasses.fields(sub_cls)}
            kwargs[name] = sub_cls(**{k: _coerce(section, k, v, sub_hints.get(k), sub_fields[k].default)
                                      for k, v in values.items()})
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[{section}]: {e}") from e


@dataclass(frozen=True)
class Config:
    """The whole configuration: one attribute per table (``None`` = table not supported
    by this build and not given)."""

    source: SourceConfig = field(default_factory=SourceConfig)
    analysis: Any = None
    outputs: Any = None
    drive: Any = None
    autofocus: Any = None
    web: Any = None
    mqtt: Any = None
    path: Optional[str] = None

    def replace(self, **changes) -> "Config":
        """A copy with some tables replaced (CLI flags override the file this way)."""
        return dataclasses.replace(self, **changes)


def from_dict(data: dict, path: Optional[str] = None) -> Config:
    """Validate a parsed TOML document into a :class:`Config`.

    Raises:
        ConfigError: unknown tables or keys, wrong types, values out of range.
    """
    known = ["source"] + list(SECTIONS)
    for table in data:
        if table not in known:
            close = difflib.get_close_matches(table, known, n=1)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            raise ConfigError(f"unknown table [{table}]{hint} (known tables: {', '.join(known)})")
    values = {"source": SourceConfig.from_table(data.get("source", {}))}
    for name, spec in SECTIONS.items():
        try:
            cls = _resolve(spec)
        except (ImportError, AttributeError):
            if name in data:
                raise ConfigError(f"[{name}] is not supported by this pifocus build "
                                  f"({spec} is missing); remove the table") from None
            continue
        values[name] = build(cls, data.get(name, {}), name)
    check_pin_conflicts(values.get("outputs"), values.get("drive"))
    return Config(path=path, **values)


# 40-pin header position -> BCM GPIO (BOARDnn / J8:nn pin names).
_HEADER_TO_BCM = {3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24,
                  19: 10, 21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12,
                  33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21}


def bcm_number(pin) -> Optional[int]:
    """The BCM GPIO number of a pin name (``17``, ``"GPIO17"``, ``"BCM17"``, ``"BOARD11"``,
    ``"J8:11"``), or None (empty/disabled/unknown)."""
    import re

    if isinstance(pin, bool) or pin is None:
        return None
    if isinstance(pin, int):
        return pin
    text = str(pin).strip().upper()
    m = re.fullmatch(r"(?:GPIO|BCM)?(\d{1,2})", text)
    if m:
        return int(m.group(1))
    m = re.fullmatch(r"(?:BOARD|J8:)(\d{1,2})", text)
    if m:
        return _HEADER_TO_BCM.get(int(m.group(1)))
    return None


def _drive_pin_keys(drive) -> list:
    """``(key, BCM number)`` of every GPIO the configured drive claims."""
    kind = str(getattr(drive, "name", "")).partition(":")[0].strip().lower()
    keys = []
    if kind == "stepper":
        keys = [("step_pin", drive.step_pin), ("dir_pin", drive.dir_pin), ("enable_pin", drive.enable_pin)]
        keys += [(f"ms_pins[{i}]", p) for i, p in enumerate(drive.ms_pins)]
    elif kind == "uln2003":
        keys = [(f"coil_pins[{i}]", p) for i, p in enumerate(drive.coil_pins)]
    if kind in ("stepper", "uln2003"):
        keys.append(("limit_pin", drive.limit_pin))
    return [(k, bcm_number(p)) for k, p in keys if bcm_number(p) is not None]


def check_pin_conflicts(outputs, drive) -> None:
    """Raise :class:`ConfigError` when an ``[outputs]`` pin is also one of the ``[drive]``'s
    pins (an LED on the stepper's STEP pin), naming both keys."""
    if outputs is None or drive is None or not hasattr(outputs, "_pin_keys"):
        return
    mine = {}
    for key, pin in outputs._pin_keys():
        mine.setdefault(bcm_number(pin), key)
    for key, pin in _drive_pin_keys(drive):
        if pin in mine:
            raise ConfigError(f"GPIO{pin} is used twice: outputs.{mine[pin]} = {pin} and drive.{key} = "
                              f"'GPIO{pin}' ({drive.name} drive); wire one of them to another free GPIO "
                              "and change that key")


def load(path) -> Config:
    """Read and validate a TOML config file.

    Raises:
        ConfigError: the file is missing, not valid TOML, or holds bad keys or values.
    """
    p = Path(path)
    try:
        data = tomllib.loads(read_limited(p, "config file", CONFIG_MAX_BYTES).decode("utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"config file {str(p)!r} not found; copy systemd/pifocus.toml as a start") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {e}") from e
    except FileRefusedError as e:
        raise ConfigError(f"--config / config file: {e}") from e
    except OSError as e:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {e}") from e
    try:
        return from_dict(data, path=str(p))
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from e


def default() -> Config:
    """The configuration with every table at its defaults."""
    return from_dict({})
