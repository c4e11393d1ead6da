"""Bad input: config files (every documented key given wrong values, malformed TOML) and
every bounded command-line number given values outside its range.

Config cases start from ``systemd/pifocus.toml`` (the documented example: every key), made
small and hardware-free (160x120 sim frames, no CNN, mock pins, no state file), change one
key, and run ``pifocus run --config FILE --frames 1``: the change must be refused with status
2 and one line naming ``table.key`` -- or, for values that are legal (an empty string, a long
name), run cleanly.  CLI cases walk the real argument parser, so a new bounded option is
covered without editing this file.
"""

import math
from pathlib import Path
from typing import List

from .harness import Case, cli_case

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "systemd" / "pifocus.toml"

#: Keys changed in the base config so that a run is fast and touches no hardware.
SMALL = {("source", "name"): "sim", ("source", "width"): 160, ("source", "height"): 120,
         ("source", "realtime"): False, ("analysis", "use_cnn"): False, ("drive", "state_file"): "none",
         ("drive", "name"): "stepper",
         ("outputs", "pin_factory"): "mock", ("web", "token"): None}

#: Values that are wrong for a number: every one must be refused.
BAD_NUMBERS = [("nan", math.nan), ("inf", math.inf), ("neg-huge", -1e12), ("huge", 1e12),
               ("text", "12 px"), ("bool", True), ("list", [1]), ("table", {"a": 1})]
BAD_BOOLS = [("text", "yes"), ("int", 2), ("list", [True])]
#: Values for a GPIO pin key (``false`` = unused, a number, "GPIO17", "BCM17", "BOARD11").
BAD_PINS = [("negative", -1), ("too-high", 999), ("GPIO99", "GPIO99"), ("text", "led"), ("fraction", 1.5),
            ("true", True), ("nan", math.nan)]
#: Values for a string key: a number or a list must be refused; an empty or long string may
#: be legal (then the run must simply work or be refused cleanly).
BAD_STRINGS = [("int", 12, False), ("list", ["x"], False), ("empty", "", True), ("long", "z" * 5000, True),
               ("nul", "a\x00b", True)]


def toml_value(v) -> str:
    """``v`` as a TOML literal (strings escaped, nan/inf as TOML spells them)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in v) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def dump_toml(tables: dict) -> str:
    """``{"table" or "table.sub": {key: value}}`` as TOML text (``None`` values left out)."""
    out = []
    for name, table in tables.items():
        out.append(f"[{name}]")
        out += [f"{k} = {toml_value(v)}" for k, v in table.items() if v is not None]
        out.append("")
    return "\n".join(out)


def reference_tables() -> dict:
    """The documented example config as ``{table: {key: value}}``, made small (:data:`SMALL`)."""
    import tomllib

    data = tomllib.loads(REFERENCE.read_text())
    tables = {}

    def walk(prefix, d):
        tables[prefix] = {k: v for k, v in d.items() if not isinstance(v, dict)}
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}.{k}", v)
    for name, t in data.items():
        walk(name, t)
    for (t, k), v in SMALL.items():
        tables.setdefault(t, {})[k] = v
    return tables


def _config_case(work: Path, cid: str, text: str, refuse: bool, needles, accept_ok=False):
    path = work / "configs" / (cid.replace("/", "_") + ".toml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    return lambda: cli_case(["run", "--config", str(path), "--frames", "1"], refuse, needles,
                            accept_ok=accept_ok, timeout_s=40, label=cid)


def config_cases(work: Path) -> List[Case]:
    """One case per (documented key, wrong value), plus malformed files."""
    base = reference_tables()
    cases = []
    n = 0
    for table, keys in base.items():
        for key, good in keys.items():
            if (table, key) in SMALL or good is None:
                continue
            if key.endswith("_pin") or key == "limit_pin":
                bad = [(name, v, False) for name, v in BAD_PINS]
            elif key.endswith("_pins"):
                bad = [("one", [5], False), ("repeated", [5, 5, 6, 7], False), ("text", "GPIO5", False),
                       ("bad-pin", [5, 6, 999], False)]
            elif isinstance(good, bool):
                bad = [(name, v, False) for name, v in BAD_BOOLS]
            elif isinstance(good, (int, float)):
                bad = [(name, v, False) for name, v in BAD_NUMBERS]
            elif isinstance(good, str):
                bad = BAD_STRINGS
            else:
                bad = [("text", "nonsense", False), ("huge-list", list(range(100)), False)]
            for name, value, may_pass in bad:
                t2 = {t: dict(kv) for t, kv in base.items()}
                t2[table][key] = value
                cid = f"config/{table}.{key}={name}"
                # [source] extras go to the source class, whose messages name the key alone
                needle = key if "." in table or table == "source" else f"{table}.{key}"
                cases.append(Case(cid, "config", _config_case(work, cid, dump_toml(t2), True, [needle], may_pass),
                                  quick=n % 15 == 0))
                n += 1
    good_text = dump_toml(base)
    files = [
        ("syntax", good_text + "\n[source\nname = 3\n", ["config"]),
        ("binary", "\x00\x01\x02\xff" * 64, ["config"]),
        ("unknown-table", good_text + "\n[sauce]\nname = \"sim\"\n", ["sauce"]),
        ("unknown-key-typo", good_text.replace("led_pin =", "led_pni ="), ["led_pni", "led_pin"]),
        ("duplicate-key", good_text.replace("[analysis]\n", "[analysis]\nrows = 6\nrows = 7\n"), ["line"]),
        ("table-is-a-number", "source = 3\n", ["source"]),
        ("too-large", good_text + "#" + "x" * (1024 * 1024 + 10) + "\n", ["config"]),
        ("crlf-bom", "\ufeff" + good_text.replace("\n", "\r\n"), ["config"]),
    ]
    for name, text, needles in files:
        cid = f"config/file-{name}"
        cases.append(Case(cid, "config", _config_case(work, cid, text, True, needles, name == "crlf-bom"),
                          quick=True))
    for name, path, needles in [("missing", str(work / "no-such.toml"), ["not found"]),
                                ("directory", str(work), ["config"])]:
        cid = f"config/file-{name}"
        cases.append(Case(cid, "config", lambda p=path, nd=needles, c=cid: cli_case(
            ["run", "--config", p, "--frames", "1"], True, nd, label=c), quick=True))
    cid = "config/reference-as-is"   # the documented example itself must load and run
    cases.append(Case(cid, "config", _config_case(work, cid, good_text, False, []), quick=True))
    return cases


def _bounded_options():
    """``(command, option, converter)`` for every option with a bounded numeric type."""
    from pifocus.cli import build_parser

    parser, _ = build_parser()
    sub = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"][0]
    for cmd, p in sorted(sub.choices.items()):
        for a in p._actions:
            if a.option_strings and hasattr(a.type, "lo") and hasattr(a.type, "hi"):
                yield cmd, a.option_strings[-1], a.type


#: Extra arguments a command needs to get as far as parsing its numbers.
NEEDS = {"score": ["x.png"], "record": ["--out", "/nonexistent/out"], "convert": ["x.keras"]}


def cli_cases(work: Path) -> List[Case]:
    """Every bounded option: below, above, nan, inf, text, empty -- refused at parse time."""
    cases = []
    n = 0
    for cmd, opt, conv in _bounded_options():
        lo, hi = conv.lo, conv.hi
        is_int = conv.kind is int
        values = [("below", str(int(lo) - 1) if is_int else repr(lo - max(1.0, abs(lo)))),
                  ("above", str(int(hi) + 1) if is_int else repr(hi + max(1.0, abs(hi)))),
                  ("nan", "nan"), ("inf", "inf"), ("text", "ten"), ("empty", ""),
                  ("huge", "9" * 400)]
        if is_int:
            values.append(("fraction", "1.5"))
        for name, v in values:
            cid = f"cli/{cmd} {opt}={name}"
            argv = [cmd] + NEEDS.get(cmd, []) + [f"{opt}={v}"]
            cases.append(Case(cid, "cli", lambda a=argv, o=opt, c=cid: cli_case(a, True, [o], label=c, timeout_s=20),
                              quick=n % 14 == 0))
            n += 1
    for cid, argv, needles in [
        ("cli/run --roi=nan", ["run", "--roi", "nan,0,1,1"], ["--roi"]),
        ("cli/run --size=huge", ["run", "--size", "100000x100000"], ["--size"]),
        ("cli/run --grid=0x0", ["run", "--grid", "0x0"], ["--grid"]),
        ("cli/run -o gain=inf", ["run", "-o", "gain=inf"], ["gain"]),
        ("cli/autofocus --limits=nan", ["autofocus", "--limits", "nan:5"], ["--limits"]),
        ("cli/autofocus --limits=reversed", ["autofocus", "--limits", "900:100", "--no-cnn"], ["limits"]),
        ("cli/autofocus --limits=huge", ["autofocus", "--limits", "0:1e300"], ["--limits"]),
        ("cli/unknown-command", ["frobnicate"], ["frobnicate"]),
        ("cli/unknown-option", ["run", "--frmaes", "3"], ["--frmaes"]),
        ("cli/source-typo", ["run", "--source", "simm", "--frames", "1"], ["simm"]),
        ("cli/drive-typo", ["autofocus", "--drive", "stepr", "--no-cnn"], ["stepr"]),
    ]:
        cases.append(Case(cid, "cli", lambda a=argv, nd=needles, c=cid: cli_case(a, True, nd, label=c, timeout_s=30),
                          quick=True))
    return cases
