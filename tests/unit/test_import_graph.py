"""The package structure of ``services/``: no import cycle, dev tools apart, no private cross-imports.

Every module under ``services/`` is parsed with :mod:`ast` (nothing is imported) and each
``import``/``from ... import`` statement becomes an edge from the module to the module it names
(``from services.audit.sources import kafka`` names ``services.audit.sources.kafka``; ``from
services.audit.sources.kafka import KafkaSource`` names ``services.audit.sources.kafka``).
Imports of anything outside ``services`` are left out.

What counts, and why:

- **Cycles: every import counts, at module level or inside a function.** An import deferred into
  a function still makes the two modules depend on each other; it only moves the failure from
  import time to call time (that is how the audit's Kafka reader and replay modules hid theirs).
  Imports under ``if TYPE_CHECKING:`` are left out: they never run, and annotating with a type
  of a module that imports you is the usual way to keep a one-way dependency.
- **Cycles between packages too**, not only between modules: a package (a folder of
  ``services/``) whose modules import another package's modules, while that one's import back,
  are one tangle even when no two modules close a loop (the scenario importer and the launcher
  were).
- **Dev tools** (``services.devtools``: the local broker runner, the launcher, the scenario
  importer, the synthetic log) are never imported by production code, at any level. The one
  exception is the ``baotuan`` command (``services/cli.py``), which may load them inside its
  commands, never at module level. A second test imports ``services.cli`` for real and checks
  that serving a service loads no dev tool.
- **No private name** (``_x``) is imported from another module of ``services``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SERVICES = PROJECT_ROOT / "services"
DEV_TOOLS = "services.devtools"
#: The ``baotuan`` command: may import dev tools inside its commands (not at module level).
CLI = "services.cli"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str  # a module of services/
    names: tuple[str, ...]  # the names taken from it (empty for ``import x``)
    module_level: bool
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(SERVICES.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    """The imports of one module that name a module of services/."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    def walk(node: ast.AST, module_level: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from walk(ast.Module(body=child.orelse, type_ignores=[]), module_level)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    target = known(alias.name)
                    if target is not None and alias.name.startswith("services"):
                        yield Import(name, target, (), module_level, child.lineno)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parent, *([base] if base else [])])
                if not base.startswith("services"):
                    continue
                for alias in child.names:
                    submodule = f"{base}.{alias.name}"
                    if submodule in modules:  # from package import module
                        yield Import(name, submodule, (), module_level, child.lineno)
                    elif (target := known(base)) is not None:
                        yield Import(name, target, (alias.name,), module_level, child.lineno)
            else:
                inner = module_level and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                yield from walk(child, inner)

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    yield from walk(tree, True)


def _all_imports() -> list[Import]:
    modules = _modules()
    return [item for name, path in modules.items() for item in _imports(name, path, modules)
            if item.imported != item.importer]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for after in sorted(edges.get(node, ())):
            if after not in index:
                visit(after)
                low[node] = min(low[node], low[after])
            elif after in on_stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _explain(component: list[str], imports: list[Import], unit: dict[str, str] | None = None) -> str:
    members = set(component)
    lines = [" <-> ".join(component)]
    for item in imports:
        a, b = (unit[item.importer], unit[item.imported]) if unit else (item.importer, item.imported)
        if a in members and b in members and a != b:
            where = "module level" if item.module_level else "in a function"
            lines.append(f"    {item.importer}:{item.line} imports {item.imported} ({where})")
    return "\n".join(dict.fromkeys(lines))


def test_the_parser_sees_the_imports_it_is_meant_to_judge() -> None:
    """A guard against a test that passes because it sees nothing."""
    modules = _modules()
    imports = _all_imports()
    assert len(modules) > 50
    assert DEV_TOOLS in modules, f"the dev-tools package {DEV_TOOLS} is gone: update this test"
    pairs = {(item.importer, item.imported) for item in imports}
    assert ("services.ledger.app", "services.ledger.api") in pairs
    assert any(not item.module_level for item in imports)  # imports inside functions are seen
    assert ("services.web.cli", "services.web.books_cache") not in pairs  # under TYPE_CHECKING only


def test_no_import_cycle_between_modules() -> None:
    imports = _all_imports()
    edges: dict[str, set[str]] = {}
    for item in imports:
        edges.setdefault(item.importer, set()).add(item.imported)
    cycles = _cycles(edges)
    assert not cycles, "import cycles (every import counts, also inside functions):\n" + "\n".join(
        _explain(component, imports) for component in cycles)


def test_no_import_cycle_between_packages() -> None:
    modules = _modules()
    unit = {name: name if path.name == "__init__.py" else name.rpartition(".")[0] for name, path in modules.items()}
    imports = _all_imports()
    edges: dict[str, set[str]] = {}
    for item in imports:
        a, b = unit[item.importer], unit[item.imported]
        if a != b:
            edges.setdefault(a, set()).add(b)
    cycles = _cycles(edges)
    assert not cycles, "packages that import each other:\n" + "\n".join(
        _explain(component, imports, unit) for component in cycles)


def _is_dev_tool(module: str) -> bool:
    return module == DEV_TOOLS or module.startswith(DEV_TOOLS + ".")


def test_production_code_does_not_import_the_dev_tools() -> None:
    wrong = [item for item in _all_imports()
             if _is_dev_tool(item.imported) and not _is_dev_tool(item.importer)
             and (item.importer != CLI or item.module_level)]
    assert not wrong, "production modules importing dev tools:\n" + "\n".join(
        f"    {item.importer}:{item.line} imports {item.imported}"
        + (" at module level" if item.module_level else "") for item in wrong)


def test_no_private_name_is_imported_from_another_module() -> None:
    wrong = [item for item in _all_imports() for name in item.names if name.startswith("_")]
    assert not wrong, "private names imported across modules:\n" + "\n".join(
        f"    {item.importer}:{item.line} imports {', '.join(item.names)} from {item.imported}" for item in wrong)


def test_serving_a_service_loads_no_dev_tool() -> None:
    """``baotuan serve`` (every service process) and the service apps load nothing of the dev tools."""
    script = ("import sys, services.cli, services.ledger.app, services.rentals.app, services.dividends.app, "
              "services.members.app, services.web.app, services.audit.cli\n"
              "services.cli.main.get_command(None, 'serve')\n"
              f"print(sorted(m for m in sys.modules if m == {DEV_TOOLS!r} or m.startswith({DEV_TOOLS + '.'!r})))")
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_lazy_command_of_baotuan_loads_under_its_name() -> None:
    import click

    from services.cli import LAZY_COMMANDS, main

    context = click.Context(main)
    assert set(LAZY_COMMANDS) <= set(main.list_commands(context))
    for name in LAZY_COMMANDS:
        command = main.get_command(context, name)
        assert command is not None and command.name == name
