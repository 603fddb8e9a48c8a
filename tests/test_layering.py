"""Data flows one way through `pipeline/`: a module imports only its own package or lower layers,
and no two modules import each other, directly or around a cycle.

Every import counts, the ones inside functions too (those are only for heavy or optional
third-party code, never to hide a dependency). The layers, top to bottom, are in LAYERS; a
package missing from the table fails the test, so a new package gets a place on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"

# Top to bottom. A module may import modules of its own unit or of any unit further down.
LAYERS = [
    {"__main__"},
    {"cli"},  # parses arguments, prints errors
    {"commands"},  # one module per command: validate, chain stages
    {"stages"},  # artifact → artifact, each a StageRecord
    {"runners"},  # run a model: Paddle, ONNX Runtime, TensorRT
    {"passes", "trt", "parity", "serving"},  # surgery; TensorRT side; ladder; serving configs
    {"models", "contract", "numerics"},  # Paddle CaiT; the fused-op contract; comparisons
    {"weights", "data"},  # checkpoints; images
    {"presets", "artifacts", "onnx_io", "cpu"},  # facts and file handling shared by everyone
    {"errors", "__init__"},
]
RANK = {unit: depth for depth, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def unit(module: str) -> str:
    """`pipeline.stages.fuse` → "stages"; `pipeline` → "__init__"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(source: str, me: str, is_package: bool, modules: set[str]) -> set[str]:
    """First-party modules that module `me` (whose code is `source`) imports, anywhere in it."""
    package = me if is_package else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "pipeline"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "pipeline":
                continue
            for a in node.names:  # `from pipeline.passes import sanitize` imports a module
                sub = f"{base}.{a.name}"
                out.add(sub if sub in modules else base)
    return out - {me}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {
        module_name(f): imports(f.read_text(), module_name(f), f.name == "__init__.py", modules)
        for f in files
    }


def test_every_unit_has_a_layer(graph):
    missing = sorted({unit(m) for m in graph} - set(RANK))
    assert not missing, f"add {missing} to LAYERS in {__file__}"


def test_no_upward_import(graph):
    upward = [
        f"{m} → {d}"
        for m, deps in graph.items()
        for d in deps
        if unit(d) != unit(m) and RANK[unit(d)] < RANK[unit(m)]
    ]
    assert not upward, "imports against the flow:\n" + "\n".join(sorted(upward))


def test_no_sideways_import_between_units(graph):
    """Units of one layer are independent of each other (else one belongs lower)."""
    sideways = [
        f"{m} → {d}"
        for m, deps in graph.items()
        for d in deps
        if unit(d) != unit(m) and RANK[unit(d)] == RANK[unit(m)] and unit(d) != "__init__"
    ]
    assert not sideways, "imports within a layer:\n" + "\n".join(sorted(sideways))


def test_no_import_cycle(graph):
    # A package's __init__ importing its own submodules is how packages work, not a cycle.
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if d in edges and not state.get(d):
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if not state.get(m):
            visit(m)


def test_the_checker_sees_an_upward_import():
    """The rules can fail: an upward import in a scratch copy of a module is reported."""
    source = (PACKAGE / "data" / "sampling.py").read_text()
    found = imports(
        source + "\n    from pipeline.stages import fuse\n".replace("    ", ""),
        "pipeline.data.sampling",
        False,
        {"pipeline.stages.fuse"},
    )
    assert "pipeline.stages.fuse" in found
    assert RANK[unit("pipeline.stages.fuse")] < RANK[unit("pipeline.data.sampling")]
