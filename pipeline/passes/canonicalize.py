"""canonicalize: one spelling per construct, so that one matcher fits every exporter.

Rewrites (each counted):
- `Slice(x, i, i+1, axis a) → Squeeze(a)`  ⇒  `Gather(x, i, axis=a)` (paddle2onnx's qkv split;
  timm already uses Gather).
- `Gemm(A, B, C)` with constant B ⇒ `MatMul(A, B') + C` (timm's class-token q linear), so every
  linear reads `MatMul(x, W[in, out]) + b`.
- `Transpose(Transpose(x))` ⇒ one Transpose (paddle's class-attention kᵀ after the head permute).
- `MatMul(a·c1, b·c2)` with scalar constants ⇒ `MatMul(a·(c1·c2), b)`: timm's SDPA export splits
  the softmax scale as √scale on q and on kᵀ; afterwards the scale sits on q, as in paddle2onnx.
- `Reshape` whose shape is assembled from `Shape` of a tensor with the same symbolic dims ⇒ a
  constant shape with 0 ("copy this dim"): timm computes (B, N, 3, H, d) at run time.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from pipeline.passes.match import const, new_const, producer, scalar, shape_dims

NAME = "canonicalize"


def _slice_squeeze(graph, node) -> bool:
    if node.op != "Squeeze" or len(node.inputs) != 2:
        return False
    sl = producer(node.inputs[0], "Slice")
    axes_sq = const(node.inputs[1])
    if sl is None or axes_sq is None or axes_sq.size != 1 or len(node.inputs[0].outputs) != 1:
        return False
    vals = [const(t) for t in sl.inputs[1:]]
    if len(vals) < 3 or any(v is None or v.size != 1 for v in vals):
        return False
    start, end, axis = (int(v.reshape(())) for v in vals[:3])
    step = int(vals[3].reshape(())) if len(vals) > 3 else 1
    if end != start + 1 or step != 1 or start < 0 or axis != int(axes_sq.reshape(())):
        return False
    idx = new_const(f"{node.name}_index", np.array(start, np.int64))
    gather = gs.Node(
        "Gather", f"{node.name}_gather", {"axis": axis}, [sl.inputs[0], idx], list(node.outputs)
    )
    node.outputs.clear()
    graph.nodes.append(gather)
    return True


def _gemm(graph, node) -> bool:
    if node.op != "Gemm" or const(node.inputs[1]) is None or node.attrs.get("transA", 0):
        return False
    has_bias = len(node.inputs) > 2 and node.inputs[2] is not None
    if has_bias and const(node.inputs[2]) is None:
        return False
    w = const(node.inputs[1])
    if node.attrs.get("transB", 0):
        w = w.T
    w = w * np.asarray(node.attrs.get("alpha", 1.0), w.dtype)
    x, y = node.inputs[0], node.outputs[0]
    mid = gs.Variable(f"{node.name}_matmul_out", dtype=y.dtype)
    mm = gs.Node(
        "MatMul", f"{node.name}_matmul", inputs=[x, new_const(f"{node.name}_W", w)], outputs=[mid]
    )
    node.outputs.clear()
    graph.nodes.append(mm)
    if has_bias:
        c = const(node.inputs[2])
        c = c * np.asarray(node.attrs.get("beta", 1.0), c.dtype)
        graph.nodes.append(
            gs.Node(
                "Add",
                f"{node.name}_bias",
                inputs=[mid, new_const(f"{node.name}_b", c)],
                outputs=[y],
            )
        )
    else:
        mm.outputs = [y]
    return True


def _double_transpose(graph, node) -> bool:
    inner = producer(node.inputs[0], "Transpose") if node.op == "Transpose" else None
    if inner is None or len(node.inputs[0].outputs) != 1 or node.inputs[0] in graph.outputs:
        return False
    p1, p2 = list(inner.attrs["perm"]), list(node.attrs["perm"])
    node.attrs["perm"] = [p1[j] for j in p2]
    node.inputs[0] = inner.inputs[0]
    return True


def _scaled(t):
    """t = x · c with scalar constant c, t read once: (x, c, mul), else None."""
    mul = producer(t, "Mul")
    if mul is None or len(t.outputs) != 1:
        return None
    for c, x in ((mul.inputs[1], mul.inputs[0]), (mul.inputs[0], mul.inputs[1])):
        if scalar(c) is not None and const(x) is None:
            return x, scalar(c), mul
    return None


def _matmul_scales(graph, node) -> bool:
    if node.op != "MatMul":
        return False
    right = _scaled(node.inputs[1])
    if right is None:
        return False
    b, c2, _ = right
    left = _scaled(node.inputs[0])
    dtype = node.outputs[0].dtype or np.float32
    if left is not None:
        a, c1, mul = left
        k = 0 if const(mul.inputs[0]) is not None else 1
        mul.inputs[k] = new_const(f"{mul.name}_scale", np.array(c1 * c2, dtype))
    else:
        a = node.inputs[0]
        out = gs.Variable(f"{node.name}_lhs_scaled", dtype=a.dtype, shape=a.shape)
        graph.nodes.append(
            gs.Node(
                "Mul",
                f"{node.name}_lhs_scale",
                inputs=[a, new_const(f"{node.name}_s", np.array(c2, dtype))],
                outputs=[out],
            )
        )
        node.inputs[0] = out
    node.inputs[1] = b
    return True


def _same_dim(a, b) -> bool:
    return a is not None and b is not None and a == b and (isinstance(a, str) or a > 0)


def _shape_dims(piece):
    """Dims of X that `piece` copies: Unsqueeze(Gather(Shape(X), i)) or Slice(Shape(X), a, b)."""
    unsq = producer(piece, "Unsqueeze")
    if unsq is not None:
        found = shape_dims(producer(unsq.inputs[0], "Gather"))
        return found[0] if found and len(found[0]) == 1 else None
    found = shape_dims(producer(piece, "Slice"))
    return found[0] if found else None


def _reshape_shape(graph, node) -> bool:
    """Rewrite a run-time Reshape shape into a constant (0 = copy the input's dim)."""
    if node.op != "Reshape" or const(node.inputs[1]) is not None or node.attrs.get("allowzero"):
        return False
    cat = producer(node.inputs[1], "Concat")
    data = node.inputs[0]
    if cat is None or data.shape is None:
        return False
    values = []
    for piece in cat.inputs:
        v = const(piece)
        if v is not None:
            values.extend(int(x) for x in v.reshape(-1))
            continue
        dims = _shape_dims(piece)
        pos = len(values)
        if (
            dims is None
            or pos + len(dims) > len(data.shape)
            or not all(_same_dim(d, data.shape[pos + i]) for i, d in enumerate(dims))
        ):
            return False
        values.extend([0] * len(dims))
    node.inputs[1] = new_const(f"{node.name}_shape", np.array(values, np.int64))
    return True


_REWRITES = (_slice_squeeze, _gemm, _double_transpose, _matmul_scales, _reshape_shape)


def run(graph: gs.Graph, ctx) -> int:
    count = 0
    for rewrite in _REWRITES:
        for node in list(graph.nodes):
            if node.outputs and rewrite(graph, node):
                count += 1
        graph.cleanup()
    return count
