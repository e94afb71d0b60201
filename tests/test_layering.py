"""The package's import graph (built from the source with ``ast``) has no cycles, and modules stay small.

Two graphs are checked: modules (``seqrec.data.prepare`` -> ``seqrec.data.datasets``) and subpackages
(``seqrec.eval`` -> ``seqrec.train`` counts as one edge between the packages ``eval`` and ``train``). Data flows
one way (data -> models -> losses -> train -> eval ...); a cycle at either level means a layer reaches back.
``from pkg import submodule`` is an edge to the submodule, not to ``pkg/__init__``; imports inside functions
count too (a lazy import is still a dependency); imports under ``if TYPE_CHECKING:`` do not (annotations only).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "seqrec"
MAX_MODULE_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = {f"{target}.{a.name}" for a in node.names} & mods.keys()
                if subs:
                    graph[name].update(subs)
                    if len(subs) < len(node.names) and target in mods:
                        graph[name].add(target)
                elif target in mods:
                    graph[name].add(target)
        graph[name].discard(name)
    return graph


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def package_of(module: str) -> str:
    """``seqrec.data.prepare`` -> ``seqrec.data``; top-level modules (``seqrec.config``) are their own node."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 and (PKG / parts[1]).is_dir() else module


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_no_subpackage_import_cycle():
    packages: dict[str, set[str]] = {}
    for module, deps in import_graph().items():
        src = package_of(module)
        packages.setdefault(src, set()).update(package_of(d) for d in deps if package_of(d) != src)
    cycle = find_cycle(packages)
    assert cycle is None, " -> ".join(cycle or [])


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_modules_stay_under_the_size_limit():
    sizes = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in PKG.rglob("*.py")}
    long = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
