"""The package's architecture, checked: no import cycle, each folder imports only the layers
below it, records and decisions import without IREE, no file over 400 lines, and every module
has a test file (or a named one that covers it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "python" / "quantune_iree"
TESTS = ROOT / "tests"

# What each folder may import from the package (besides errors and itself). `io` holds files
# and text: dataset/output/report import only records; run_vmfb runs a shipped vmfb.
ALLOWED = {
    "model": set(),
    "algo": {"model"},
    "ir": {"model", "io.output"},
    "backend": {"model", "ir"},
    "stages": {"model", "algo", "ir", "backend"},
    "io": {"model", "io"},
    "io.run_vmfb": {"model", "io", "backend"},
    "zoo": {"io.output"},
}
# Modules tested by a test file named after another module.
COVERED_BY = {
    "__init__": "test_cli.py",
    "__main__": "test_cli.py",
    "cli_args": "test_cli.py",
    "errors": "test_bad_inputs.py",
    "model/graph": "ir/test_importer.py",
    "model/layer": "model/test_results.py",
    "model/target": "backend/test_targets.py",
    "io/run_vmfb": "test_cli.py",
    "io/sidecar": "io/test_report.py",
    "ir/mlir_input": "test_toolchain.py",
    "stages/analysis": "stages/test_search.py",
    "zoo/checkpoint": "zoo/test_zoo.py",
    "zoo/graphs": "zoo/test_zoo.py",
}


def _modules() -> dict[str, Path]:
    """'algo.ranking' → path, for every module of the package (packages by their __init__)."""
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules `name` imports anywhere in its body (function-level imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("quantune_iree"):
                mod = node.module.removeprefix("quantune_iree").lstrip(".")
            else:
                continue
            targets = [f"{mod}.{a.name}".lstrip(".") for a in node.names] + [mod]
        elif isinstance(node, ast.Import):
            targets = [
                a.name.removeprefix("quantune_iree").lstrip(".")
                for a in node.names
                if a.name.startswith("quantune_iree")
            ]
        for t in targets:
            if t in modules and t != name:
                found.add(t)
                break
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in graph[n]:
            if state.get(m) == 1:
                raise AssertionError("import cycle: " + " → ".join([*stack, n, m]))
            if m not in state:
                visit(m, [*stack, n])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [])


def _rule(name: str) -> set[str] | None:
    for key in sorted(ALLOWED, key=len, reverse=True):
        if name == key or name.startswith(key + "."):
            return ALLOWED[key]
    return None  # top level (cli, job): anything


def test_each_folder_imports_only_the_layers_below() -> None:
    bad = []
    for name, deps in _graph().items():
        allowed = _rule(name)
        if allowed is None:
            continue
        own = name.split(".")[0]
        for dep in deps:
            ok = dep in ("", "errors") or dep.split(".")[0] == own
            ok = ok or any(dep == a or dep.startswith(a + ".") for a in allowed)
            if not ok:
                bad.append(f"{name} imports {dep}")
    assert not bad, bad


def test_records_and_decisions_import_without_iree() -> None:
    """model/ and algo/ (and the report) with iree and the native extension made unimportable."""
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "iree" or name.startswith("iree.") or name.endswith("_native"):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
import importlib, pkgutil, quantune_iree
for pkg in ("model", "algo"):
    mod = importlib.import_module(f"quantune_iree.{pkg}")
    for info in pkgutil.iter_modules(mod.__path__):
        importlib.import_module(f"quantune_iree.{pkg}.{info.name}")
importlib.import_module("quantune_iree.io.report")
assert not any(m == "iree" or m.startswith("iree.") for m in sys.modules), "iree was imported"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_no_source_file_over_400_lines() -> None:
    files = [*PKG.rglob("*.py"), *(ROOT / "cpp").rglob("*.[ch]*"), *TESTS.rglob("*.py")]
    files += [*(ROOT / "tools").glob("*.py")]
    long = {
        str(f.relative_to(ROOT)): n for f in files if (n := len(f.read_text().splitlines())) > 400
    }
    assert not long, long


def test_every_module_has_its_test_file() -> None:
    missing = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        if rel.name == "__init__" and rel.parent != Path("."):
            continue  # a folder's docstring
        key = rel.as_posix()
        mirror = TESTS / rel.parent / f"test_{rel.name}.py"
        named = COVERED_BY.get(key)
        if not mirror.exists() and not (named and (TESTS / named).exists()):
            missing.append(key)
    assert not missing, missing
