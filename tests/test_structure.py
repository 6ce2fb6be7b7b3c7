"""The code's structure: no module of the harness imports one that imports it back.

Every import is counted, at module level or inside a function (a lazy import that closes a
circle still ties the two modules), read from the source with `ast`, nothing run.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("archs", "bench")


def module_of(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path, known):
    """The harness modules `path` imports.

    `from package import module` names that module; `from module import name` the module. A
    package's `__init__` that only gathers its modules' names (its face) is not counted as
    imported by the submodules Python runs it before.
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known
                     else node.module for alias in node.names]  # fmt: skip
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def graph():
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    known = {module_of(p) for p in files}
    return {module_of(p): imports(p, known) - {module_of(p)} for p in files}


def circles(edges):
    """Tarjan's strongly connected components with more than one module."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_one_that_imports_it_back():
    edges = graph()
    assert len(edges) > 50  # the walk found the harness
    assert circles(edges) == []


def test_the_circle_finder_finds_a_planted_circle():
    edges = graph()
    edges["bench.storage.schema"] = edges["bench.storage.schema"] | {"bench.cli.commands"}
    assert any("bench.storage.schema" in c and "bench.cli.commands" in c for c in circles(edges))


def test_nothing_below_the_command_line_reads_its_options():
    edges = graph()
    readers = sorted(m for m, uses in edges.items() if "bench.cli.options" in uses
                     and not m.startswith(("bench.cli", "bench.__main__")))  # fmt: skip
    assert readers == []
