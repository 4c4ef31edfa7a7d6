"""The package's shape, kept: no import cycle, the core never imports the command line, git only
in the git layer, no long function without its reason, nothing citing documents we do not ship."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "tools" / "wealist"
CLI_LAYER = {"wealist.cli", "wealist.options", "wealist.output"}  # and wealist.commands.*
LONG = 45  # lines; a longer function says why in its docstring ("Long because ...")


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """Every module of the package that ``name`` imports, at any depth of its code."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            found |= {f"{target}.{alias.name}" for alias in node.names} | {target}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found |= set(names)
    return found


def test_no_import_cycle() -> None:
    mods = modules()
    graph = {name: {i for i in imports(name, path) if i in mods and i != name} for name, path in mods.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*trail, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_the_core_never_imports_the_command_line() -> None:
    for name, path in modules().items():
        if name in CLI_LAYER or name.startswith("wealist.commands"):
            continue
        imported = imports(name, path)
        upward = {i for i in imported if i in CLI_LAYER or i.startswith("wealist.commands") or i == "click"}
        assert not upward, f"{name} imports {sorted(upward)}"


def test_git_runs_only_in_the_git_layer() -> None:
    for name, path in modules().items():
        if name == "wealist.gitrepo":
            continue
        text = path.read_text()
        assert not {i for i in imports(name, path) if i == "git" or i.startswith("git.")}, name
        assert '"git",' not in text and "GitCommandError" not in text, name


def test_long_functions_say_why() -> None:
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > LONG:
                assert "Long because" in (ast.get_docstring(node) or ""), f"{name}.{node.name}"


def test_the_product_cites_no_document_it_does_not_ship() -> None:
    hits = subprocess.run(
        ["git", "grep", "-nE", r"\.\./shared|SPEC §|SPEC section", "--", "tools", "README.md", ".github"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert hits == ""
