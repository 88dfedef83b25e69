"""The package's import graph: no circles among speechunits modules, a cheap root with the main API."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import speechunits

SRC = Path(speechunits.__file__).resolve().parent.parent


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is_package)}`` for every module of the speechunits source tree."""
    out = {}
    for path in sorted((SRC / "speechunits").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path, package)
    return out


def _imports(name: str, path: Path, package: bool, modules: dict) -> list[tuple[str, str | None, int]]:
    """Every speechunits import of one module as ``(target module, imported name, line)``.

    All imports count: module level, inside functions (lazy) and under ``TYPE_CHECKING``; an
    import circle made lazy is still a circle in the design. ``from pkg import sub`` where
    ``sub`` is a module points to ``pkg.sub``.
    """
    here = name if package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name in modules]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                if f"{target}.{a.name}" in modules:
                    found.append((f"{target}.{a.name}", None, node.lineno))
                elif target in modules:
                    found.append((target, a.name, node.lineno))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {t for t, _, _ in _imports(name, p, pkg, modules)} for name, (p, pkg) in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:  # Tarjan; the graph (~250 modules) is shallow enough to recurse
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_a_circle():
    # The check itself must be able to fail: a two-module circle and a self-import are found.
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": set(), "d": {"d"}}
    assert import_cycles(graph) == [["a", "b"], ["d"]]


def test_no_import_cycles_among_speechunits_modules():
    graph = import_graph()
    assert len(graph) > 100 and graph["speechunits.fit"] >= {"speechunits.tokenizer"}
    cycles = import_cycles(graph)
    assert cycles == [], "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_submodules_take_only_the_version_from_the_package_root():
    # The root re-exports the API lazily; a submodule importing it from there would close a circle
    # through the root that the graph above cannot see (the root's imports are by name).
    modules = _modules()
    bad = [f"{p.relative_to(SRC)}:{line}: from speechunits import {what}"
           for name, (p, pkg) in modules.items() if name != "speechunits"
           for target, what, line in _imports(name, p, pkg, modules)
           if target == "speechunits" and what != "__version__"]
    assert bad == []


def test_root_exports_the_main_api():
    from speechunits import Tokenizer, fit_tokenizer, load, load_encoder
    from speechunits.audio import load as audio_load
    from speechunits.tokenizer import Tokenizer as T

    assert Tokenizer is T and load is audio_load and callable(load_encoder) and callable(fit_tokenizer)
    for name in speechunits.__all__:  # every advertised name resolves, to its defining object
        value = getattr(speechunits, name)
        if name != "__version__":
            module = sys.modules[speechunits._EXPORTS[name]]
            assert value is getattr(module, name), name
    assert {"Tokenizer", "load", "load_encoder", "evaluate", "pnmi", "codebook_stats"} <= set(speechunits.__all__)
    assert "Tokenizer" in dir(speechunits)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        speechunits.nope  # noqa: B018


def test_import_speechunits_stays_cheap():
    code = ("import json, sys, speechunits; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformers', 'numpy', 'speechunits'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["speechunits"]
