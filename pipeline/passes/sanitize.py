"""sanitize: remove Identity nodes, fold constants, drop arithmetic no-ops.

paddle2onnx emits hundreds of Identity nodes (361 in xxs_24), keeps weights as Constant nodes and
writes the attention scale as `Mul(q, s) + 0.0` (paddle2onnx 2.1.0); timm's export routes initializers
through Identity too and computes the SDPA scale from `Shape`. After this pass every weight is an
initializer, every shape-derived constant is folded (onnx-graphsurgeon's `fold_constants`, which
evaluates constant subgraphs with ONNX Runtime; `fold_shapes` folds Shape→Gather/Slice of static
dims), and `x + 0`, `x · 1` with scalar constants are gone — so later passes see one spelling.

Memory: folding evaluates only the constant subgraph, so peak memory stays near two copies of
the weights; `size_threshold` keeps folding from materializing large broadcast constants.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from pipeline.passes.match import const, new_const, refresh_shapes, reroute, scalar, shape_dims

NAME = "sanitize"
_FOLD_LIMIT = 64 << 20  # bytes: do not create folded constants larger than this


def _bypass(graph: gs.Graph, node, keep) -> bool:
    """Remove `node`, feeding its consumers with `keep` (unless its output is a graph output)."""
    out = node.outputs[0]
    if out in graph.outputs:
        # Keep the graph output's name: let keep's producer write it directly, if it may.
        src = keep.inputs[0] if isinstance(keep, gs.Variable) and len(keep.inputs) == 1 else None
        if src is None or len(keep.outputs) != 1 or keep in graph.outputs or keep in graph.inputs:
            return False
        src.outputs[src.outputs.index(keep)] = out
        node.outputs.clear()
        node.inputs.clear()
        return True
    reroute(out, keep)
    node.outputs.clear()
    node.inputs.clear()
    return True


def _shape_safe(keep, out, c) -> bool:
    """Bypass only when dtype and shape are preserved (`x + 0` must not broadcast x)."""
    if keep.dtype is not None and out.dtype is not None and keep.dtype != out.dtype:
        return False
    if const(c).ndim == 0:
        return True  # a 0-d constant never changes the other operand's shape
    return keep.shape is not None and out.shape is not None and list(keep.shape) == list(out.shape)


def _castlike(graph, node) -> bool:
    """CastLike(constant, x) → the constant in x's dtype (the reference bodies' constants)."""
    c, like = node.inputs
    if const(c) is None or like.dtype is None:
        return False
    folded = new_const(f"{node.outputs[0].name}_value", const(c).astype(np.dtype(like.dtype)))
    out = node.outputs[0]
    if out in graph.outputs:
        return False
    reroute(out, folded)
    node.outputs.clear()
    return True


def _static_dims(node):
    """Gather(Shape(X), i) / Slice(Shape(X), a, b) whose selected dims of X are static → values."""
    found = shape_dims(node)
    return None if found is None else _ints(*found)


def _ints(dims, scalar=False):
    if dims is None or not all(isinstance(d, (int, np.integer)) and d >= 0 for d in dims):
        return None
    return np.array(dims[0] if scalar else dims, np.int64)


def _fold_static_shapes(graph) -> int:
    n = 0
    for node in [n for n in graph.nodes if n.op in ("Gather", "Slice") and n.inputs]:
        values = _static_dims(node)
        if values is not None and node.outputs[0] not in graph.outputs:
            reroute(node.outputs[0], new_const(f"{node.outputs[0].name}_static", values))
            node.outputs.clear()
            n += 1
    return n


def run(graph: gs.Graph, ctx) -> int:
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # folding runs ORT: keep its warnings off
    count = 0
    for node in list(graph.nodes):
        if node.op == "Identity" and _bypass(graph, node, node.inputs[0]):
            count += 1
    before = len(graph.nodes)
    graph.fold_constants(size_threshold=_FOLD_LIMIT, error_ok=True).cleanup()
    for _ in range(3):
        # CastLike of constants (the reference bodies) and shape slices of static dims (timm's
        # SDPA scale is 1/√(Shape(q)[-1:])) that fold_constants leaves alone when another dim,
        # the batch, is dynamic; each round can expose more static shapes.
        changed = sum(_castlike(graph, n) for n in list(graph.nodes) if n.op == "CastLike")
        refresh_shapes(graph)
        changed += _fold_static_shapes(graph)
        if not changed:
            break
        graph.fold_constants(size_threshold=_FOLD_LIMIT, error_ok=True).cleanup()
    count += max(0, before - len(graph.nodes))
    for node in list(graph.nodes):
        if node.op not in ("Add", "Mul", "Sub", "Div") or len(node.inputs) != 2:
            continue
        neutral = 0.0 if node.op in ("Add", "Sub") else 1.0
        a, b = node.inputs
        for c, keep in ((b, a), (a, b)):
            if node.op in ("Sub", "Div") and c is a:
                continue  # 0 - x and 1 / x are not no-ops
            v = scalar(c)
            if (
                v is not None
                and v == neutral
                and not isinstance(keep, gs.Constant)
                and _shape_safe(keep, node.outputs[0], c)
                and _bypass(graph, node, keep)
            ):
                count += 1
                break
    return count
