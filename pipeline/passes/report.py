"""Static figures of a graph: node counts and bytes of intermediate tensors per image.

The bytes materialized per image (batch 1, every floating-point activation counted at fp16 size,
views — Reshape, Squeeze, Unsqueeze, Flatten — excluded) are a static proxy for GPU memory
traffic: each activation is written once and read at least once. Shapes come from ONNX shape inference on a copy whose batch dimension is fixed to 1 (the
fused ops' shapes come from their reference functions; what happens inside a fused op is the
plugin's business and is not counted). Score tensors are the (…, H, N, N) attention maps that the
talking-heads plugin never writes.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
from onnx import TensorProto

from pipeline.contract.reference import attach_reference_functions
from pipeline.passes.skeleton import model_inputs, skeleton

_FLOAT = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
FP16_BYTES = 2
VIEW_OPS = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"}


def _batch_one(model: onnx.ModelProto) -> onnx.ModelProto:
    m = attach_reference_functions(skeleton(model))
    for vi in model_inputs(m):
        d0 = vi.type.tensor_type.shape.dim[0]
        d0.Clear()
        d0.dim_value = 1
    del m.graph.value_info[:]
    m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    # With the batch fixed every Shape is static: folding resolves what data propagation cannot
    # (paddle2onnx's class-token Expand goes through Max of shapes).
    import onnx_graphsurgeon as gs

    g = gs.import_onnx(m)
    g.fold_constants(error_ok=True).cleanup()
    m2 = gs.export_onnx(g)
    m2.functions.extend(m.functions)
    m2.opset_import.extend(
        o for o in m.opset_import if o.domain not in {x.domain for x in m2.opset_import}
    )
    return onnx.shape_inference.infer_shapes(m2, data_prop=True)


def _shapes(model: onnx.ModelProto) -> dict:
    out = {}
    for vi in list(model.graph.value_info) + list(model.graph.output):
        tt = vi.type.tensor_type
        dims = (
            [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if tt.HasField("shape")
            else None
        )
        out[vi.name] = (tt.elem_type, dims)
    return out


def _is_score(dims, heads) -> bool:
    """(1, H, N, N) in any axis order (the exporters permute it to (1, N, N, H) for the mixing),
    or its flat (1, H, N·N) view (the fast path's head mixing)."""
    if len(dims) == 3 and dims[0] == 1 and heads is not None and dims[1] == heads:
        n = int(round(dims[2] ** 0.5))
        return n > 1 and n * n == dims[2]
    if len(dims) != 4 or dims[0] != 1:
        return False
    rest = sorted(dims[1:])
    for h in set(rest):
        others = list(rest)
        others.remove(h)
        if others[0] == others[1] > 1 and (heads is None or h == heads) and h < others[0]:
            return True
    return False


def graph_figures(model: onnx.ModelProto, heads: int | None = None) -> dict:
    """Node counts, fp16 bytes of activations per image, and the score tensors still written."""
    inferred = _batch_one(model)
    shapes = _shapes(inferred)
    # Tensors folded away at batch 1 are shape arithmetic; count what the batch-1 graph computes.
    produced = [
        (o, n.op_type)
        for n in inferred.graph.node
        if n.op_type != "Constant"
        for o in n.output
        if o
    ]
    total, unknown, scores, largest = 0, [], [], (0, None)
    for name, op in produced:
        elem, dims = shapes.get(name, (None, None))
        if elem is not None and elem not in _FLOAT:
            continue  # shape arithmetic, not activations
        if dims is None or any(d is None for d in dims):
            unknown.append(name)
            continue
        nbytes = int(np.prod(dims, dtype=np.int64)) * FP16_BYTES
        if _is_score(dims, heads):  # every score-shaped tensor, views included
            scores.append(
                {"tensor": name, "shape": dims, "op": op, "bytes": 0 if op in VIEW_OPS else nbytes}
            )
        if op in VIEW_OPS:
            continue  # a reshape is a view in TensorRT: nothing is written
        total += nbytes
        largest = max(largest, (nbytes, name), key=lambda x: x[0])
    ops = collections.Counter(n.op_type for n in model.graph.node)
    return {
        "nodes": len(model.graph.node),
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        "activation_bytes_per_image_fp16": total,
        "largest_activation": {"tensor": largest[1], "bytes": largest[0]},
        "score_tensors": len(scores),
        "score_bytes_per_image_fp16": sum(s["bytes"] for s in scores),  # views: 0 bytes
        "score_tensor_examples": scores[:3],
        "unknown_shape_tensors": len(unknown),
    }


def markdown(report: dict) -> str:
    b, a = report["before"], report["after"]
    mb = lambda x: f"{x / 2**20:.2f} MiB"  # noqa: E731
    lines = [
        f"# Fusion report: {report['source']}",
        "",
        f"plain-ONNX ops: `{', '.join(report['lowered']) or 'none'}`, output: `{report['output']}`",
        "",
        "| pass | rewrites | seconds |",
        "|---|---:|---:|",
    ]
    lines += [f"| {p['pass']} | {p['rewrites']} | {p['seconds']} |" for p in report["passes"]]
    lines += [
        "",
        "before = the input after sanitize + canonicalize (no Identity, folded "
        "constants); after = the fused output. Bytes: batch 1, fp16, every non-view activation written once.",
        "",
        "| | before | after |",
        "|---|---:|---:|",
        f"| nodes (input: {report.get('input_nodes')}) | {b['nodes']} | {a['nodes']} |",
        f"| activations per image (fp16) | {mb(b['activation_bytes_per_image_fp16'])} | "
        f"{mb(a['activation_bytes_per_image_fp16'])} |",
        f"| H·N² score tensors | {b['score_tensors']} | {a['score_tensors']} |",
        f"| score bytes per image (fp16) | {mb(b['score_bytes_per_image_fp16'])} | "
        f"{mb(a['score_bytes_per_image_fp16'])} |",
        f"| tensors of unknown shape | {b['unknown_shape_tensors']} | "
        f"{a['unknown_shape_tensors']} |",
        "",
    ]
    lines.append(
        f"Fused: {report['fused']}; folded LayerScale γ into "
        f"{len(report['folded_gamma'])} linears (marker `cait.folded_gamma`)."
    )
    if report.get("verify"):
        v = report["verify"]
        lines.append(
            f"Parity (ONNX Runtime, fp32): max |Δlogit| {v['max_abs']:.3g} "
            f"(tolerance {v['tolerance']:g}) at batch {v['batches']}."
        )
    return "\n".join(lines) + "\n"
