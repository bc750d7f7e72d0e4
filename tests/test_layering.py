"""The core knows no stage: an AST walk over every import of ``faceforge/`` (function bodies included).

Layers, bottom up: ``faceforge`` (core: imaging, faces, models, pipelines, on-device runners) <-
``training``, ``export``, ``server``, ``benchmarks`` (stages). A stage may import the core and, where
documented, another stage's public API; the core imports no stage. The command-line layer is the one
exception: it wires stages together (``faceforge serve`` starts the server, ``faceforge train`` the
trainers), so ``faceforge/cli/`` may import them.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("training", "export", "server", "benchmarks")
CLI_PACKAGE = "faceforge.cli"
"""The command-line layer: ``faceforge/cli/`` (the group, ``demo`` and the per-task commands)."""

CLI_MODULES = {"faceforge.__main__"}
"""Command modules not yet moved into ``faceforge/cli/`` (written while the package was being made)."""


def _is_cli(name: str) -> bool:
    return name == CLI_PACKAGE or name.startswith(CLI_PACKAGE + ".") or name in CLI_MODULES




def _modules(package: str = "faceforge") -> dict[str, Path]:
    """Module name -> file of every module of the top-level ``package``."""
    mods = {}
    for path in (REPO / package).rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path], module_level_only: bool) -> list[tuple[str, int]]:
    """``(imported module, line)`` pairs of one file; ``from pkg import sub`` counts as ``pkg.sub``."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Call) and _dynamic_import(node):  # importlib.import_module("pkg.mod")
            found.append((node.args[0].value, node.lineno))
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.append((sub if sub in mods else module, node.lineno))
    return found


def _dynamic_import(node: ast.Call) -> bool:
    """``importlib.import_module("literal")`` or ``__import__("literal")``: an import the statements miss."""
    f = node.func
    named = (isinstance(f, ast.Attribute) and f.attr == "import_module") or (isinstance(f, ast.Name) and
                                                                              f.id in ("import_module", "__import__"))
    return named and bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)


def _graph(module_level_only: bool, package: str = "faceforge") -> dict[str, set[str]]:
    """Import graph among the modules of one top-level package (``module_level_only``: imports at module
    level only, else function bodies included)."""
    mods = _modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for imported, _ in _imports(name, path, mods, module_level_only):
            while imported and imported not in mods:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_core_imports_no_stage():
    mods = _modules()
    offenders = [f"{path.relative_to(REPO)}:{line} imports {imported}"
                 for name, path in sorted(mods.items()) if not _is_cli(name)
                 for imported, line in _imports(name, path, mods, module_level_only=False)
                 if imported.split(".")[0] in STAGES]
    assert not offenders, "the core imports a stage:\n" + "\n".join(offenders)


def test_no_import_cycles_at_module_level():
    assert _cycles(_graph(module_level_only=True)) == []


def test_no_import_cycles_through_function_level_imports():
    """No allowance: an import inside a function body still makes a cycle (the StyleGAN2 converters
    that closed checkpoints -> models.registry -> models.stylegan2 -> checkpoints moved to
    ``faceforge/models/stylegan2_convert.py``)."""
    cycles = _cycles(_graph(module_level_only=False))
    assert cycles == [], f"import cycles (hidden by imports inside functions): {cycles}"


def test_stylegan2_converters_sit_above_format_and_network():
    """The converter module imports the checkpoint format and the network; neither imports it back,
    and the checkpoint format imports no model."""
    graph = _graph(module_level_only=False)
    assert {"faceforge.checkpoints", "faceforge.models.stylegan2"} <= graph["faceforge.models.stylegan2_convert"]
    assert not {m for m in graph["faceforge.checkpoints"] if m.startswith("faceforge.models")}
    assert "faceforge.models.stylegan2_convert" not in graph["faceforge.models.stylegan2"]


def test_the_walker_sees_function_level_imports(tmp_path):
    """The checks above would pass vacuously if imports inside functions were missed."""
    mods = _modules()
    found = _imports("faceforge.cli.demo", mods["faceforge.cli.demo"], mods, module_level_only=False)
    assert any(imported.startswith("server") for imported, _ in found)  # demo's lazy server import
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    import importlib\n    return importlib.import_module('faceforge.models.stylegan2')\n")
    dynamic = _imports("faceforge.lazy", lazy, mods, module_level_only=False)
    assert any(imported == "faceforge.models.stylegan2" for imported, _ in dynamic)  # importlib seen


def _stage_files(*stages: str) -> list[Path]:
    return sorted(p for stage in stages for p in (REPO / stage).rglob("*.py"))


def _private_training_imports(path: Path) -> list[str]:
    """``from training.x import _name`` and ``<alias of training.x>._name`` uses in one file."""
    tree = ast.parse(path.read_text())
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "training":
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.append(f"{where}:{node.lineno} imports {node.module}.{alias.name}")
                else:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "training":
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                found.append(f"{where}:{node.lineno} uses {aliases[base.id]}...{node.attr}")
    return found


def test_export_and_benchmarks_use_no_private_name_of_training():
    """Export calibration and the benchmarks read datasets through ``faceforge.data``; what they still take
    from ``training`` (e.g. ``training.emotion.classification_report``) is its public API, never a
    ``_private`` helper or a replay of its random draws."""
    offenders = [o for path in _stage_files("export", "benchmarks") for o in _private_training_imports(path)]
    assert not offenders, "a stage uses a private name of training:\n" + "\n".join(offenders)


def test_private_name_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from training.unpaired import _split_indices\n    import training.gpen as tg\n"
                   "    return tg._square\n")
    found = _private_training_imports(bad)
    assert len(found) == 2 and "_split_indices" in found[0] and "_square" in found[1]


def test_data_layer_imports_no_stage_and_needs_no_data(tmp_path, monkeypatch):
    """``faceforge.data`` is core: it imports no stage (the walk above covers it) and importing it reads no
    data; a missing dataset is a :class:`DatasetNotFoundError` (a ``FileNotFoundError`` too) naming the path."""
    import importlib

    import pytest

    from faceforge.errors import DatasetNotFoundError

    graph = _graph(module_level_only=False)
    data_modules = [m for m in graph if m == "faceforge.data" or m.startswith("faceforge.data.")]
    assert {"faceforge.data.fer2013", "faceforge.data.utkface", "faceforge.data.pose_pairs"} <= set(data_modules)
    assert not {t for m in data_modules for t in graph[m] if t.split(".")[0] in STAGES}
    monkeypatch.setenv("FACEFORGE_DATA", str(tmp_path / "nowhere"))
    data = importlib.import_module("faceforge.data")
    for call in (lambda: data.load_fer2013("train"), lambda: data.scan_utkface(data.utkface_dir()),
                 lambda: data.list_images(tmp_path / "nowhere"), lambda: data.young_faces("test")):
        with pytest.raises(DatasetNotFoundError, match="nowhere"):
            call()


def test_training_has_no_import_cycles():
    """The trainers sit below their command line: ``training.cli`` imports the trainers (lazily), the trainers
    import the skeleton, configs and options, never ``training.cli`` (``python -m training.<x>`` entry points
    build their command from the same generated options)."""
    graph = _graph(module_level_only=False, package="training")
    assert {"training.loop", "training.configs", "training.options"} <= set(graph)
    assert _cycles(graph) == []
    assert not {m for m, targets in graph.items() if "training.cli" in targets}
