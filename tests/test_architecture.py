"""The layout holds: small modules, imports one way with no cycle, and the command line starts
without loading torch, pandas or matplotlib."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seqrec"
MAX_LINES = 350
CORE = ("batches", "layers", "losses", "model", "negatives", "objectives", "time_layers", "optim")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, name: str) -> set[str]:
    """seqrec modules ``path`` imports anywhere (module level or inside functions)."""
    modules = _modules()
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = node.module
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("seqrec") and m in modules and m != name}


def test_no_module_is_longer_than_a_screen_or_two():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_imports_have_no_cycle():
    graph = {name: _imports(path, name) for name, path in _modules().items()}
    # a package's __init__ that only re-exports its submodules is not a cycle of theirs
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_nothing_of_ours_but_the_catalogue_constants(module):
    imported = _imports(PACKAGE / f"{module}.py", f"seqrec.{module}")
    allowed = {"seqrec.data.catalogue", "seqrec.errors", *(f"seqrec.{m}" for m in CORE)}
    assert imported <= allowed, imported - allowed


def test_the_data_package_imports_only_itself_and_the_errors():
    for name, path in _modules().items():
        if name.startswith("seqrec.data"):
            assert {m for m in _imports(path, name)
                    if not m.startswith("seqrec.data")} <= {"seqrec.errors", "seqrec"}, name


def test_the_command_line_starts_without_torch_pandas_or_matplotlib():
    code = ("import sys, seqrec.cli; "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'sklearn', 'lightning_fabric')"
            " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
