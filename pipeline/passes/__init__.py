"""Graph passes of the fuse stage (torch-tensorrt lowering style: a file per pass, explicit order).

Each pass is a module with `NAME` and `run(graph, ctx) -> int` (the number of rewrites it made)
on an onnx-graphsurgeon graph. After every pass `run_passes` cleans up and toposorts the graph,
exports it, runs `onnx.checker` and ONNX shape inference (with the fused ops' reference functions
attached, so shapes flow through them) and re-imports it: a pass always sees inferred shapes and
never builds on a broken graph.

Order matters:
1. sanitize            Identity removal, constant folding, x+0 / x·1 removal
2. canonicalize        one spelling per construct (Gather for Slice+Squeeze, MatMul+Add for
                       Gemm, merged Transposes, SDPA's √scale·√scale → one scale on q, constant
                       Reshape shapes), so the fusions below match paddle2onnx and timm alike
3. fold_attention_scale  the softmax scale goes into the q weights and bias
4. fold_layerscale     LayerScale γ goes into the attention projection / fc2 (marked, see there)
5. fuse_talking_heads  → CaitTalkingHeadsAttention
6. fuse_class_attention → CaitClassAttention
7. merge_class_kv      the class attention's k and v linears → one MatMul + Split
and, when some fused op is to run as plain ONNX (`--attention onnx`, `th=onnx`, …):
8. lower_to_onnx       those fused nodes → their reference decomposition, inlined and folded

Adding a pass: a module with `NAME` and `run(graph, ctx) -> int`, one line in `PASSES`, and a
small-graph test in tests/passes/ (CONTRIBUTING.md shows one).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import onnx
import onnx_graphsurgeon as gs

from pipeline.contract.reference import attach_reference_functions, strip_functions
from pipeline.passes import (
    canonicalize,
    fold_attention_scale,
    fold_layerscale,
    fuse_class_attention,
    fuse_talking_heads,
    lower_to_onnx,
    merge_class_kv,
    sanitize,
)
from pipeline.passes.skeleton import copy_shapes, skeleton

log = logging.getLogger(__name__)

PASSES = [
    sanitize,
    canonicalize,
    fold_attention_scale,
    fold_layerscale,
    fuse_talking_heads,
    fuse_class_attention,
    merge_class_kv,
]
ONNX_ONLY = [lower_to_onnx]


@dataclasses.dataclass
class PassContext:
    """What passes learn along the way, for the report and for later stages."""

    lower: frozenset = frozenset()  # fused ops to inline as ONNX
    folded_gamma: list = dataclasses.field(default_factory=list)  # see fold_layerscale
    refused: list = dataclasses.field(default_factory=list)  # (pass, reason)
    fused: dict = dataclasses.field(default_factory=dict)  # op → count
    fused_outputs: list = dataclasses.field(default_factory=list)  # output tensor of each
    num_heads: int | None = None
    node_docs: dict = dataclasses.field(default_factory=dict)  # node name → doc_string
    tensor_docs: dict = dataclasses.field(default_factory=dict)  # initializer → doc_string
    keep_snapshots: tuple = ()  # pass names to keep models of
    snapshots: dict = dataclasses.field(default_factory=dict)


def passes_for(lower=frozenset()) -> list:
    """The ordered pass list; `lower_to_onnx` only when some fused op is to be plain ONNX."""
    return PASSES + (ONNX_ONLY if lower else [])


def check_and_infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """`onnx.checker` + shape inference, with reference functions so fused ops have shapes.

    Both run on the weightless skeleton (the weights were made by onnx-graphsurgeon from numpy
    arrays); the inferred shapes are copied onto `model`, which is returned.
    """
    verified = attach_reference_functions(skeleton(model))
    onnx.checker.check_model(verified)
    inferred = onnx.shape_inference.infer_shapes(verified, data_prop=True)
    return strip_functions(copy_shapes(inferred, model))


def export(graph: gs.Graph) -> onnx.ModelProto:
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    return gs.export_onnx(graph)


def run_passes(model: onnx.ModelProto, ctx: PassContext, passes=None) -> tuple:
    """Run `passes` (default: those for ctx.lower); returns (model, [(name, count, s)])."""
    rows = []
    ctx.snapshots = {}
    model = check_and_infer(model)
    for p in passes if passes is not None else passes_for(ctx.lower):
        t0 = time.perf_counter()
        graph = gs.import_onnx(model)
        count = p.run(graph, ctx)
        out = export(graph)
        fold_layerscale.apply_markers(out, ctx)
        model = check_and_infer(out)
        seconds = time.perf_counter() - t0
        rows.append((p.NAME, int(count), round(seconds, 2)))
        if p.NAME in ctx.keep_snapshots:
            ctx.snapshots[p.NAME] = skeleton(model)  # for the report: shapes, not weights
        log.debug("pass %-22s %4d rewrites in %.2f s", p.NAME, count, seconds)
    return model, rows
