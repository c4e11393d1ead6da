"""The shape of the package: no import cycles, no halls, every room labelled.

Read with :mod:`ast` from the source tree, so nothing is imported and no hardware library is
needed.  The rules (issue "a house one can live in"):

* **No import cycle** among ``pifocus`` modules, counting imports inside functions too.  The
  one allowed exception is a package's ``__init__`` lazily importing *its own* submodules
  inside a function: that is the factory/registry pattern (``open_source``, ``open_drive``,
  ``load_classifier``) where the implementations import their base class from the package.
* No module over :data:`MAX_MODULE_LINES` lines, no class over :data:`MAX_CLASS_LINES`.
* Every subpackage ``__init__`` has a docstring that names each of its modules.
* The web server depends on the controls interface only, never on the daemon.
"""

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

PKG = Path(__file__).resolve().parents[1] / "pifocus"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300


def _modules() -> Dict[str, Tuple[Path, bool]]:
    """``{dotted name: (path, is_package)}`` for every module under ``pifocus/``."""
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (p, is_pkg)
    return out


def _resolve(module: str, level: int, here: str, is_pkg: bool) -> str:
    """Absolute name of ``from <level dots><module> import ...`` written in ``here``."""
    if level == 0:
        return module
    base = here.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def import_edges(modules=None) -> Dict[str, Set[str]]:
    """``{module: {pifocus modules it imports}}``, function-level imports included, minus
    the allowed factory edges (a package ``__init__`` importing its own submodule lazily)."""
    modules = _modules() if modules is None else modules
    edges: Dict[str, Set[str]] = {}
    for name, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        lazy_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                      for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        deps: Set[str] = set()
        for node in ast.walk(tree):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node.module or "", node.level, name, is_pkg)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in modules:  # "import pifocus.sources.simulated.x" -> the module
                    t = t.rpartition(".")[0]
                if not t or t == name:
                    continue
                own_submodule = is_pkg and t.startswith(name + ".")
                if own_submodule and id(node) in lazy_nodes:
                    continue  # the factory pattern: allowed
                deps.add(t)
        edges[name] = deps
    return edges


def find_cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    cycles: List[List[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        cycles.append(sorted(comp))
    return cycles


def test_cycle_finder_finds_a_cycle_and_passes_a_tree():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_edges_see_function_level_imports(tmp_path):
    pkg = tmp_path / "pifocus"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from .a import f\n")
    (pkg / "sub" / "__init__.py").write_text("def make():\n    from .impl import X\n")
    (pkg / "sub" / "impl.py").write_text("from . import make\nclass X: pass\n")
    mods = {}
    for p in pkg.rglob("*.py"):
        parts = list(p.relative_to(tmp_path).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    edges = import_edges(mods)
    assert "pifocus.b" in edges["pifocus.a"]          # lazy import counted
    assert "pifocus.sub.impl" not in edges["pifocus.sub"]  # factory edge allowed
    assert find_cycles(edges) == [["pifocus.a", "pifocus.b"]]


def test_no_import_cycles_in_pifocus():
    cycles = find_cycles(import_edges())
    assert not cycles, "import cycles (break them; see this module's docstring): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_web_server_depends_on_controls_not_on_the_daemon():
    edges = import_edges()
    web = {m: d for m, d in edges.items() if m.startswith("pifocus.web")}
    bad = {m: sorted(x for x in d if x.startswith("pifocus.service")) for m, d in web.items()}
    assert not any(bad.values()), f"the web package imports the service: {bad}"


def _sizes():
    for name, (path, _) in _modules().items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        classes = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
        yield name, len(text.splitlines()), classes


def test_no_module_over_500_lines_and_no_class_over_300():
    too_long = []
    for name, lines, classes in _sizes():
        if lines > MAX_MODULE_LINES:
            too_long.append(f"module {name}: {lines} lines > {MAX_MODULE_LINES}")
        too_long += [f"class {name}.{c}: {n} lines > {MAX_CLASS_LINES}" for c, n in classes if n > MAX_CLASS_LINES]
    assert not too_long, "split these: " + "; ".join(too_long)


@pytest.mark.parametrize("init", sorted(p for p in PKG.rglob("__init__.py") if p.parent != PKG),
                         ids=lambda p: p.parent.name)
def test_every_subpackage_docstring_names_its_modules(init):
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    assert doc, f"{init} has no docstring"
    mods = sorted(p.stem for p in init.parent.glob("*.py") if p.name != "__init__.py")
    mods += sorted(p.name for p in init.parent.iterdir() if (p / "__init__.py").is_file())
    missing = [m for m in mods if m not in doc]
    assert not missing, f"{init.relative_to(PKG.parent)} docstring does not name: {', '.join(missing)}"
