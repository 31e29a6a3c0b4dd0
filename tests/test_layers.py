"""The package's layers import downward only (docs/ARCHITECTURE.md, "Layers").

Every top-level package or module of ``onnxprune`` has a place in :data:`LAYERS`; a module may
import from its own layer and from layers listed before it. Imports inside functions count (they
are dependencies all the same); imports under ``if TYPE_CHECKING:`` do not (annotations only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "onnxprune"

#: Lowest first. ``runtime`` (ONNX Runtime sessions and providers) sits low because
#: ``defaults`` and the analysis's measured shapes run models; ``sparsity`` and ``blocks`` are
#: kinds of pruning built on the layers below them and used by ``pipeline``.
LAYERS = (
    "errors",
    "_version",
    "option_text",
    "io",
    "graph",
    "passes",
    "runtime",
    "defaults",
    "analysis",
    "calibrate",
    "autodiff",
    "importance",
    "allocate",
    "rewrite",
    "stats",
    "recover",
    "evaluate",
    "sensitivity",
    "sparsity",
    "blocks",
    "report",
    "pipeline",
    "prune",
    "cli",
    "__init__",
)


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside ``onnxprune`` (``''`` is the package itself)."""
    return module.split(".")[0] if module else "__init__"


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                skipped.update(id(inner) for child in node.body for inner in ast.walk(child))
    return skipped


def imported_layers(source: str, module_parts: tuple[str, ...]) -> set[str]:
    """Layers that a module's source imports from (``module_parts``: its path inside the
    package, e.g. ``("pipeline", "api.py")``, to resolve relative imports)."""
    tree = ast.parse(source)
    skipped = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(module_parts[:-1])[: len(module_parts) - node.level]
                dotted = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module == "onnxprune":
                # ``from onnxprune import defaults``: a submodule when it is one.
                for alias in node.names:
                    is_module = (PACKAGE / f"{alias.name}.py").exists() or (
                        PACKAGE / alias.name
                    ).is_dir()
                    found.add(alias.name if is_module else "__init__")
                continue
            elif node.module and node.module.startswith("onnxprune."):
                dotted = node.module.removeprefix("onnxprune.")
            else:
                continue
            found.add(layer_of(dotted))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("onnxprune."):
                    found.add(layer_of(alias.name.removeprefix("onnxprune.")))
    return found


def upward_imports() -> list[str]:
    """``"path: layer -> higher layer"`` for every import that runs up the layers."""
    rank = {layer: index for index, layer in enumerate(LAYERS)}
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        layer = parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")
        if layer not in rank:
            problems.append(f"{path.relative_to(PACKAGE)}: layer {layer!r} is not in LAYERS")
            continue
        for target in imported_layers(path.read_text(), parts):
            if target not in rank:
                problems.append(f"{path.relative_to(PACKAGE)}: imports unknown layer {target!r}")
            elif rank[target] > rank[layer]:
                problems.append(f"{path.relative_to(PACKAGE)}: {layer} -> {target}")
    return problems


def test_every_import_runs_down_the_layers():
    assert upward_imports() == []


def test_every_layer_exists():
    for layer in LAYERS:
        assert (PACKAGE / layer).is_dir() or (PACKAGE / f"{layer}.py").exists(), layer


@pytest.mark.parametrize(
    ("source", "parts", "expected"),
    [
        ("from onnxprune.cli.options import x", ("pipeline", "config.py"), {"cli"}),
        ("def f():\n    from onnxprune.pipeline import api", ("sensitivity", "m.py"), {"pipeline"}),
        ("from ..rewrite import editor", ("analysis", "context.py"), {"rewrite"}),
        ("from . import labels", ("analysis", "context.py"), {"analysis"}),
        ("from onnxprune import defaults", ("importance", "m.py"), {"defaults"}),
        ("from onnxprune import optimize", ("cli", "m.py"), {"__init__"}),
        ("import onnxprune.io.load", ("graph", "m.py"), {"io"}),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from onnxprune.rewrite import E",
            ("analysis", "context.py"),
            set(),
        ),
    ],
)
def test_imported_layers_reads_every_import_form(source, parts, expected):
    assert imported_layers(source, parts) == expected
