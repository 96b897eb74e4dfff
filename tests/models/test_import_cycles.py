"""Modules that used to import each other in a circle (through in-function imports) no longer do:
EncDec's model, decoding and seeding share `tracking.teacher`; `train.locality` imports `train.data`,
never the reverse; the registry's family hooks import `tracking.families` only when called."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import trackpipe

PACKAGE = Path(trackpipe.__file__).parent


def import_graph() -> dict[str, set[str]]:
    """Module -> trackpipe modules it imports anywhere in its source (top level or inside functions)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("trackpipe",) + path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start along imports, or None."""
    parent, stack = {start: None}, [start]
    while stack:
        node = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1] + [start]
            if nxt not in parent:
                parent[nxt] = node
                stack.append(nxt)
    return None


@pytest.fixture(scope="module")
def graph():
    return import_graph()


@pytest.mark.parametrize("module", ["trackpipe.models.encdec", "trackpipe.tracking.encdec_decode",
                                    "trackpipe.tracking.seeding", "trackpipe.tracking.teacher",
                                    "trackpipe.train.data", "trackpipe.train.locality",
                                    "trackpipe.models.registry", "trackpipe.tracking.families"])
def test_no_import_cycle_through(graph, module):
    assert module in graph
    assert cycle_through(graph, module) is None, " -> ".join(cycle_through(graph, module))


def test_the_cycle_finder_finds_a_cycle():
    assert cycle_through({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a") == ["a", "b", "c", "a"]
    assert cycle_through({"a": {"b"}, "b": {"c"}, "c": set()}, "a") is None
