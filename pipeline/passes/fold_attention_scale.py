"""fold_attention_scale: move the softmax scale 1/√d from the q tensor into the q weights.

Matches `q · s` (s a scalar constant) where q is produced, through layout-only ops, by a linear
`x @ W + b` with constant W and b:
- talking heads: q = Gather(Transpose(Reshape(qkv, (.., 3, H, d)), perm[0] = 2), 0): only the q
  third of the qkv columns is scaled (W[:, 0:C], b[0:C]);
- class attention: q = Transpose(Reshape(x @ Wq + bq)): all columns of Wq, bq are scaled.
Every tensor on the path must be read only by the path (a scaled qkv must not leak elsewhere).
The fused ops then carry `scale = 1.0`. New constants are created, never mutated in place: a
weight shared by two nodes stays correct for the other.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from pipeline.passes.match import const, dim, linear, new_const, producer, reroute, scalar

NAME = "fold_attention_scale"
_LAYOUT = ("Reshape", "Transpose", "Unsqueeze", "Squeeze")


def _single(t) -> bool:
    return len(t.outputs) == 1


def _trace(graph, t):
    """Walk from q back to its linear: (linear match, column slice) or None."""
    cols = None
    while True:
        lin = linear(t)
        if lin is not None:
            return lin, cols
        if t in graph.outputs:
            return None
        g = producer(t, "Gather", axis=0)
        if g is not None and cols is None and _single(t):
            idx = const(g.inputs[1])
            tr = producer(g.inputs[0], "Transpose")
            rs = producer(tr.inputs[0], "Reshape") if tr is not None else None
            if idx is None or idx.size != 1 or rs is None or list(tr.attrs["perm"])[0] != 2:
                return None
            parts = dim(rs.outputs[0], 2)
            width = dim(rs.inputs[0], -1)
            if parts is None or width is None or width % parts or len(rs.outputs[0].shape) != 5:
                return None
            j, w = int(idx.reshape(())), width // parts
            cols = slice(j * w, (j + 1) * w)
            if not all(c.op == "Gather" for c in tr.outputs[0].outputs):
                return None  # the 5-D view must only be split into q, k, v
            if not (_single(rs.outputs[0]) and _single(rs.inputs[0])):
                return None
            t = rs.inputs[0]
            continue
        p = producer(t, _LAYOUT)
        if p is None or not _single(t):
            return None
        t = p.inputs[0]


def run(graph: gs.Graph, ctx) -> int:
    count = 0
    for mul in [n for n in graph.nodes if n.op == "Mul"]:
        a, b = mul.inputs
        s, q = (scalar(b), a) if scalar(b) is not None else (scalar(a), b)
        if s is None or const(q) is not None or not _single(q):
            continue
        consumer = mul.outputs[0].outputs
        if len(consumer) != 1 or consumer[0].op != "MatMul" or mul.outputs[0] in graph.outputs:
            continue  # only a scale feeding q·kᵀ is an attention scale
        found = _trace(graph, q)
        if found is None:
            continue
        (x, w, bias, mm, add), cols = found
        cols = cols or slice(0, w.shape[1])
        w = w.copy()
        w[:, cols] *= np.asarray(s, w.dtype)
        mm.inputs[1] = new_const(f"{mm.name}_W_scaled", w)
        if bias is not None:
            bias = bias.copy()
            bias[cols] *= np.asarray(s, bias.dtype)
            k = 0 if const(add.inputs[0]) is not None else 1
            add.inputs[k] = new_const(f"{add.name}_b_scaled", bias)
        # Bypass the Mul: its reader now takes q directly.
        out = mul.outputs[0]
        reroute(out, q)
        mul.outputs.clear()
        mul.inputs.clear()
        count += 1
    return count
