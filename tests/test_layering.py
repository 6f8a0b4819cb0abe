"""The package layering holds: no private imports across package lines, no import circles.

Walks the source tree with ``ast`` (nothing is imported), so a new import that
breaks the layering fails here, naming the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = ("benchmarks", "papers", "scripts", "examples")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for n in ast.walk(node))
    return out


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """``(line, absolute module, names)`` of every import in ``path`` that runs (``TYPE_CHECKING`` skipped)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((node.lineno, module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, []) for a in node.names)
    return out


def _resolve(module: str, names: list[str]) -> list[str]:
    """The modules an import loads: ``from pkg import sub`` names the submodule ``pkg.sub``."""
    found = []
    for n in names:
        cand = f"{module}.{n}"
        rel = Path(*cand.split("."))
        if (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file():
            found.append(cand)
    return found or [module]


def _owner_of_private(module: str) -> list[str] | None:
    """The package a private module belongs to (``probekit.store._manifest`` -> ``probekit.store``), or None."""
    parts = module.split(".")
    for i, p in enumerate(parts[1:], start=1):
        if p.startswith("_") and not p.startswith("__"):
            return parts[:i]
    return None


def _sources(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py") if (ROOT / top).is_dir())


def private_import_violations() -> list[str]:
    bad = []
    for path in _sources("probekit", *OUTSIDE):
        here = _module_name(path).split(".")
        for line, module, names in imports(path):
            if not module.startswith("probekit"):
                continue
            for target in _resolve(module, names):
                owner = _owner_of_private(target)
                if owner is None:
                    continue
                if here[0] == "probekit" and len(owner) > 1 and here[: len(owner)] == owner:
                    continue  # a subpackage's own private module
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return bad


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in _sources("probekit"):
        src = _module_name(path)
        deps = graph.setdefault(src, set())
        for _, module, names in imports(path):
            if module.startswith("probekit"):
                deps.update(t for t in _resolve(module, names) if t != src)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_private_imports_across_packages():
    assert private_import_violations() == []


def test_no_import_circles():
    # imports inside functions count too: a circle dodged by a late import is still a circle
    assert cycles(import_graph()) == []


def test_core_does_not_know_variants():
    core = [m for m in import_graph() if m.startswith("probekit.model")]
    graph = import_graph()
    for m in core:
        assert not any(d.startswith(("probekit.variants", "probekit.store", "probekit.pipeline")) for d in graph[m]), m


def test_store_and_probes_do_not_know_variants():
    # they take any model-like object (probekit.model.ModelLike); spec strings of variants are resolved at the edges
    graph = import_graph()
    bad = [(m, d) for m, deps in graph.items() if m.startswith(("probekit.store", "probekit.probes"))
           for d in deps if d.startswith("probekit.variants")]
    assert bad == []


def test_no_private_model_members_outside_the_model_core():
    # other packages use HookedModel's public blocks, module_of(site) and check_interventions
    private = {"_blocks", "_module_hook", "_intervention_target", "_runner"}
    bad = []
    for path in _sources("probekit", *OUTSIDE):
        if path.is_relative_to(ROOT / "probekit" / "model"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in private:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} uses .{node.attr}")
    assert bad == []


def test_subpackages_do_not_import_the_facade():
    graph = import_graph()
    assert [m for m, deps in graph.items() if m.count(".") >= 1 and "probekit" in deps] == []


@pytest.mark.parametrize("source,expected", [
    ("from probekit.store._manifest import read_json\n", ["store"]),
    ("from probekit._memory import peak_rss_kb\n", ["memory"]),
    ("from probekit.store import read_json\n", []),
])
def test_checker_catches_private_imports(tmp_path, monkeypatch, source, expected):
    # the walker itself: a benchmark-like file outside probekit/ importing private modules is caught
    import tests.test_layering as me

    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "b.py").write_text(source)
    monkeypatch.setattr(me, "ROOT", tmp_path)
    monkeypatch.setattr(me, "OUTSIDE", ("benchmarks",))
    found = me.private_import_violations()
    assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found))


def test_checker_catches_circles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
