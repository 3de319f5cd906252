"""skewlab's import graph, read from the source with ``ast``, and the layer rules checked on it.

One helper for tests/unit/test_layers.py, used both on the real package and on small fake
packages (so the checks are shown to fail when a forbidden import is added).

The graph holds every ``import`` / ``from ... import`` anywhere in a module: at the top, inside
functions and methods, under ``try`` or ``if``. Imports under ``if TYPE_CHECKING:`` are kept
apart (``ImportGraph.typing_only``): they never run, but they are still a dependency of the
design. Relative imports are resolved; ``from pkg import name`` where ``pkg.name`` is a module
counts as importing that submodule, otherwise as importing ``pkg`` (its ``__init__``).

Two views of the graph:

- the modules a module names (``edges`` plus ``typing_only``: ``dependencies``). Cycles are
  looked for here, type-only imports included (a cycle of annotations is still a cycle of
  design, and becomes a runtime one as soon as an annotation turns into a call).
  Python also runs every parent package's ``__init__`` before a submodule, but that implicit
  step needs no name from the parent, so it is not an edge. Hence the rule for packages: a
  package ``__init__`` may import its submodules, provided no submodule imports (names from)
  the package ``__init__`` back — ``from skewlab.clocks import Reading`` inside
  ``skewlab/clocks/sources.py`` would close a cycle, ``from skewlab.clocks import base``
  (a submodule) does not.
- what importing a module loads (``loaded``): the imports that run (``edges``, function-level
  ones included, ``TYPE_CHECKING`` ones not) plus every parent package's ``__init__``,
  transitively. The leaf rule (the spec needs neither pyarrow nor numpy) is checked here, since
  a heavy import in a parent ``__init__`` is paid by every submodule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass
class ImportGraph:
    """Modules of one package (dotted names) and what each imports."""

    root: str
    files: dict[str, Path] = field(default_factory=dict)
    # module → internal module → line numbers of the import statements
    edges: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    # module → top-level external module (numpy, pyarrow, json, ...) → line numbers
    external: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    # imports under ``if TYPE_CHECKING:`` (never run): module → internal module → lines
    typing_only: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def dependencies(self, mod: str) -> dict[str, list[int]]:
        """Every internal module ``mod`` names, type-only imports included → line numbers."""
        out = {k: list(v) for k, v in self.edges.get(mod, {}).items()}
        for k, v in self.typing_only.get(mod, {}).items():
            out.setdefault(k, []).extend(v)
        return out

    def is_package(self, mod: str) -> bool:
        return self.files[mod].name == "__init__.py"

    def parents(self, mod: str) -> list[str]:
        """The packages whose ``__init__`` runs before ``mod`` (outermost first)."""
        parts = mod.split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts))]

    def loaded(self, mod: str) -> dict[str, list[str]]:
        """Every internal module that importing ``mod`` may load, each with one import chain.

        Function-level imports count (they run when the function is called); parent packages'
        ``__init__`` count (Python runs them first).
        """
        chains: dict[str, list[str]] = {}
        todo: list[tuple[str, list[str]]] = [(mod, [mod])]
        while todo:
            m, chain = todo.pop()
            if m in chains:
                continue
            chains[m] = chain
            for p in self.parents(m):
                if p not in chains:
                    todo.append((p, [*chain, f"{p} (parent package)"]))
            for dst in self.edges.get(m, {}):
                if dst not in chains:
                    todo.append((dst, [*chain, dst]))
        return chains


def module_name(path: Path, src: Path) -> str:
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement in the tree, with whether it sits under ``if TYPE_CHECKING:``."""

    def visit(
        node: ast.AST, typing_only: bool
    ) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, typing_only
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, True)
            for child in node.orelse:
                yield from visit(child, typing_only)
            return
        for child in ast.iter_child_nodes(node):
            yield from visit(child, typing_only)

    yield from visit(tree, False)


def build_graph(src: Path = SRC, root: str = "skewlab") -> ImportGraph:
    """Parse every module of package ``root`` under ``src`` and record its imports."""
    g = ImportGraph(root)
    for path in sorted((src / root).rglob("*.py")):
        g.files[module_name(path, src)] = path
    for mod, path in g.files.items():
        edges: dict[str, list[int]] = {}
        external: dict[str, list[int]] = {}
        typing_only: dict[str, list[int]] = {}
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, tc in _imports(tree):
            for target in _targets(g, mod, node):
                if target == mod:
                    continue
                if target == root or target.startswith(root + "."):
                    target = _known(g, target)
                    (typing_only if tc else edges).setdefault(target, []).append(node.lineno)
                elif not tc:
                    external.setdefault(target.split(".")[0], []).append(node.lineno)
        g.edges[mod], g.external[mod], g.typing_only[mod] = edges, external, typing_only
    return g


def _known(g: ImportGraph, target: str) -> str:
    """The longest prefix of ``target`` that is a module of the package (``a.b.Name`` → ``a.b``)."""
    while target not in g.files and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def _targets(g: ImportGraph, mod: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:  # relative: resolve against the importing module's package
        pkg = mod.split(".") if g.is_package(mod) else mod.split(".")[:-1]
        if node.level > 1:
            pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join([*pkg, node.module] if node.module else pkg)
    else:
        base = node.module or ""
    out = []
    for a in node.names:
        sub = f"{base}.{a.name}"
        out.append(sub if a.name != "*" and sub in g.files else base)
    return out


# --- the rules ---------------------------------------------------------------------------------


def heavy_imports(g: ImportGraph, mod: str, forbidden: Iterable[str]) -> list[str]:
    """Forbidden external modules that importing ``mod`` may load, each with its chain."""
    bad = set(forbidden)
    out = []
    for m, chain in sorted(g.loaded(mod).items()):
        for ext, lines in sorted(g.external.get(m, {}).items()):
            if ext in bad:
                out.append(f"{' -> '.join(chain)} imports {ext} (line {lines[0]})")
    return out


def forbidden_edges(g: ImportGraph, layer: str, forbidden: Iterable[str]) -> list[str]:
    """Direct imports from modules in ``layer`` (a package or module) into ``forbidden`` ones."""
    fb = tuple(forbidden)

    def inside(m: str, prefix: str) -> bool:
        return m == prefix or m.startswith(prefix + ".")

    out = []
    for src in sorted(g.edges):
        if not inside(src, layer):
            continue
        for dst, lines in sorted(g.edges[src].items()):
            if any(inside(dst, f) for f in fb):
                out.append(f"{src} imports {dst} (line {lines[0]})")
    return out


def cycles(g: ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan) over ``dependencies``:
    function-level and ``TYPE_CHECKING`` imports included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def strong(v: str) -> None:  # recursion depth ≤ number of modules (~100)
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in g.dependencies(v):
            if w not in index:
                strong(w)
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

    for v in sorted(g.files):
        if v not in index:
            strong(v)
    return sorted(out)


def describe_cycle(g: ImportGraph, comp: list[str]) -> str:
    """One line per edge inside a cycle, with the importing line."""
    members = set(comp)
    edges = [
        f"  {a} -> {b} (line {lines[0]})"
        for a in comp
        for b, lines in sorted(g.dependencies(a).items())
        if b in members
    ]
    return "cycle " + ", ".join(comp) + ":\n" + "\n".join(edges)
