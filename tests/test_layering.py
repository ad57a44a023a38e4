"""The package's layering (docs/architecture.md, "Layers"): every import, at module level or inside a
function, goes down the stack, and no two files import each other, directly or round a loop."""

import ast
import importlib.metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"hw": "leopard.hw", "model": "leopard.model", "verif": "leopard.verif", "sw": "leopard.sw",
           "scripts": "leopard.scripts"}

SPEC = "leopard.hw"
LAYERS = {
    SPEC: {SPEC},
    "leopard.hw.rtl": {SPEC, "leopard.hw.rtl"},
    "leopard.hw.fpga": {SPEC, "leopard.hw.rtl", "leopard.hw.fpga"},
    "leopard.hw.asic": {SPEC, "leopard.hw.rtl", "leopard.hw.fpga", "leopard.hw.asic"},
    "leopard.model.reference": {SPEC, "leopard.model.reference"},
    "leopard.model.training": {SPEC, "leopard.model.reference", "leopard.model.training"},
    "leopard.sw": {SPEC, "leopard.model.reference", "leopard.sw"},
    "leopard.verif": {SPEC, "leopard.hw.rtl", "leopard.hw.fpga", "leopard.hw.asic", "leopard.model.reference",
                      "leopard.sw", "leopard.verif"},
    "leopard.scripts": set(),
}
"""Each layer and the layers it may import (``scripts``, on top, may import anything)."""

TRAINING_ONLY = ("torch", "safetensors", "tokenizers", "tqdm", "transformers")


def module_files() -> dict[str, Path]:
    files = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join((package, *parts))] = path
    return files


MODULES = module_files()


def layer(module: str) -> str:
    """The layer of a module: its subpackage, or the spec for the files directly in ``hw/``."""
    for name in sorted(LAYERS, key=len, reverse=True):
        if name != SPEC and (module == name or module.startswith(name + ".")):
            return name
    return SPEC


def imports(module: str, source: str) -> set[str]:
    """Every module ``source`` imports (absolute names; ``from P import m`` counts ``P.m`` when it is a
    module)."""
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return found


def graph() -> dict[str, set[str]]:
    return {module: imports(module, path.read_text()) for module, path in MODULES.items()}


def forbidden(edges: dict[str, set[str]]) -> list[str]:
    """Every import that goes up or sideways, and every import of a training package outside training."""
    wrong = []
    for module, targets in sorted(edges.items()):
        allowed = LAYERS[layer(module)]
        for target in sorted(targets):
            if target.startswith("leopard.") and target in MODULES:
                if MODULES[target].name == "__init__.py" and not MODULES[target].read_text().strip():
                    continue
                if allowed and layer(target) not in allowed:
                    wrong.append(f"{module} imports {target}")
            elif target.split(".")[0] in TRAINING_ONLY and layer(module) not in (
                "leopard.model.training", "leopard.scripts"
            ):
                wrong.append(f"{module} imports {target}")
    return wrong


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one file (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in MODULES or target == node:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_import_goes_down_the_layers():
    assert forbidden(graph()) == []


def test_no_files_import_each_other():
    assert cycles(graph()) == []


@pytest.mark.parametrize(("module", "line", "expected"), [
    ("leopard.hw.regmap", "from leopard.hw.rtl import engine", "leopard.hw.regmap imports leopard.hw.rtl.engine"),
    ("leopard.hw.rtl.lane", "from leopard.model.reference import golden",
     "leopard.hw.rtl.lane imports leopard.model.reference.golden"),
    ("leopard.model.reference.cycles", "import torch", "leopard.model.reference.cycles imports torch"),
    ("leopard.sw.driver", "from leopard.verif import bench", "leopard.sw.driver imports leopard.verif.bench"),
])
def test_an_upward_import_is_caught(module, line, expected):
    edges = graph()
    edges[module] = edges[module] | imports(module, line)
    assert expected in forbidden(edges)


def test_a_loop_of_files_is_caught():
    edges = graph()
    edges["leopard.hw.config"] = edges["leopard.hw.config"] | {"leopard.hw.regmap"}
    assert ["leopard.hw.config", "leopard.hw.regmap"] in cycles(edges)


def test_the_training_packages_are_an_extra():
    requirements = importlib.metadata.requires("leopard")
    plain = [r for r in requirements if "extra ==" not in r]
    train = [r for r in requirements if 'extra == "train"' in r]
    assert not [r for r in plain if r.split("=")[0].split(">")[0].split("<")[0] in TRAINING_ONLY]
    assert any(r.startswith("torch") for r in train)
