"""Package dependencies point one way (pure parts, services, daemon and CLI): every
import between wattd's subpackages, lazy and typing-only ones included, goes to the same
layer or a lower one, and no two subpackages, nor two modules, import each other in a
circle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import wattd

ROOT = Path(wattd.__file__).resolve().parent

# Bottom to top. A unit is a subpackage or a top-level module of wattd.
LAYERS: list[set[str]] = [
    # pure parts and shared definitions
    {"errors", "logsetup", "readings", "lineprotocol", "energy", "config", "protocols",
     "allocator", "backoff", "netaddr", "secretfile", "loadgen"},
    # services, each usable on its own
    {"journal", "clock", "markers", "sources", "sinks", "simulator", "report", "grafana",
     "experiment", "probe", "metrics"},
    # composition and entry points; the package root re-exports wattd.markers.api lazily
    {"daemon", "cli", "__main__", "wattd"},
]


def module_name(path: Path) -> str:
    parts = ("wattd", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "wattd"


def imports(module: str, text: str, *, is_package: bool = False) -> Iterator[str]:
    """Every wattd module the source ``text`` of ``module`` imports, wherever the import
    statement stands (module level, a function, ``if TYPE_CHECKING:``)."""
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from wattd import x" names a module when x is one
            names = [f"{base}.{alias.name}" if (ROOT / alias.name).exists()
                     or (ROOT / f"{alias.name}.py").exists() else base
                     for alias in node.names] if base == "wattd" else [base]
        else:
            continue
        yield from (name for name in names if name == "wattd" or name.startswith("wattd."))


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        module = module_name(path)
        edges.setdefault(module, set()).update(
            imports(module, path.read_text(), is_package=path.name == "__init__.py"))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer(unit: str) -> int:
    for level, units in enumerate(LAYERS):
        if unit in units:
            return level
    raise AssertionError(f"wattd.{unit} is in no layer: add it to LAYERS in {__file__}")


def test_every_unit_has_a_layer() -> None:
    for module in graph():
        layer(unit_of(module))


def test_no_import_goes_up_a_layer() -> None:
    upward = sorted(f"{module} -> {target}"
                    for module, targets in graph().items() for target in targets
                    if target != "wattd"  # the root package (its __version__) is everyone's
                    and layer(unit_of(target)) > layer(unit_of(module)))
    assert upward == []


def test_no_cycle_between_subpackages() -> None:
    units: dict[str, set[str]] = {}
    for module, targets in graph().items():
        units.setdefault(unit_of(module), set()).update(
            unit_of(t) for t in targets if unit_of(t) != unit_of(module))
    for targets in units.values():  # the root package is every module's parent
        targets.discard("wattd")
    assert cycles(units) == []


def test_no_cycle_between_modules() -> None:
    edges = graph()
    for module, targets in edges.items():
        targets.discard("wattd")
        targets.discard(module)
        # a module importing its own package's __init__ is not a cycle of design
        edges[module] = {t for t in targets if not module.startswith(t + ".")}
    assert cycles(edges) == []


def test_the_checker_sees_typing_only_lazy_and_relative_imports() -> None:
    text = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from wattd.daemon.app import Daemon\n"
            "def f():\n    from wattd.cli import main\n"
            "from . import process\nfrom ..journal.writer import Journal\n")
    assert set(imports("wattd.sinks.wiring", text)) == {
        "wattd.daemon.app", "wattd.cli", "wattd.sinks", "wattd.journal.writer"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
