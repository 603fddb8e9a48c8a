"""fold_layerscale: fold LayerScale γ into the linear that precedes it.

CaiT's residual branches read `x + γ ⊙ (h @ W + b)` with a per-channel constant γ (C,). Folding
gives `x + (h @ (W·γ) + b·γ)`: one elementwise pass over (B, N, C) less per branch (2 per block).
Matched structurally: `Mul(γ, Add(MatMul(h, W), b))` with γ constant of C elements broadcast on
the last axis only, the linear's output read only by that Mul, and the Mul's output feeding an
Add (the residual). Both the attention projection and the MLP's fc2 qualify.

γ marker (read by the FP16 stage, see docs/precision.md): γ starts at 1e-5 / 1e-6, below fp16's smallest
normal (6.1e-5), so W·γ and b·γ may flush to zero in fp16. Every folded node is marked three ways:
- the MatMul and the Add node each get `doc_string = "cait.folded_gamma"` followed by a JSON
  object on the same line: {"gamma_min_abs", "gamma_max_abs", "weight", "bias"} (initializer
  names);
- the folded weight and bias initializers get `doc_string = "cait.folded_gamma"`;
- the model gets `metadata_props["cait.folded_gamma"]` = JSON list of {"matmul", "add", "weight",
  "bias", "gamma_min_abs", "gamma_max_abs", "weight_min_abs_nonzero", "fp16_flush_risk"} where
  fp16_flush_risk says whether any non-zero folded weight or bias is below fp16's smallest normal
  (6.103515625e-05): those must stay fp32 (or keep γ unfolded) in the fp16 model.
The same list is in the fusion report under "folded_gamma".
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from pipeline.passes.match import const, linear, new_const, split_const

NAME = "fold_layerscale"
MARKER = "cait.folded_gamma"
FP16_MIN_NORMAL = 6.103515625e-05


def _min_abs_nonzero(a: np.ndarray) -> float:
    nz = np.abs(a[a != 0])
    return float(nz.min()) if nz.size else 0.0


def run(graph: gs.Graph, ctx) -> int:
    count = 0
    for mul in [n for n in graph.nodes if n.op == "Mul"]:
        gamma, y = split_const(mul)
        if gamma is None or gamma.ndim < 1 or gamma.size != gamma.shape[-1] or gamma.size < 2:
            continue
        if not any(c.op == "Add" for c in mul.outputs[0].outputs):
            continue  # not a residual branch
        lin = linear(y)
        if lin is None or len(y.outputs) != 1 or y in graph.outputs:
            continue
        x, w, b, mm, add = lin
        if w.shape[-1] != gamma.size:
            continue
        g = gamma.reshape(-1).astype(w.dtype)
        w2 = w * g[None, :]
        mm.inputs[1] = new_const(f"{mm.name}_W_gamma", w2)
        wname = mm.inputs[1].name
        last = mm
        b2, bname = np.zeros(0, w.dtype), None
        if b is not None:
            b2 = b * g
            k = 0 if const(add.inputs[0]) is not None else 1
            add.inputs[k] = new_const(f"{add.name}_b_gamma", b2)
            bname = add.inputs[k].name
            last = add
        # Bypass the Mul: the linear's last node now writes the Mul's output tensor.
        out = mul.outputs[0]
        mul.outputs.clear()
        mul.inputs.clear()
        last.outputs[0] = out
        folded = np.abs(np.concatenate([w2.ravel(), b2.ravel()]))
        folded = folded[folded > 0]
        entry = {
            "matmul": mm.name,
            "add": add.name if add is not None else None,
            "weight": wname,
            "bias": bname,
            "gamma_min_abs": float(np.abs(g).min()),
            "gamma_max_abs": float(np.abs(g).max()),
            "weight_min_abs_nonzero": _min_abs_nonzero(w2),
        }
        entry["fp16_flush_risk"] = bool(folded.size and folded.min() < FP16_MIN_NORMAL)
        ctx.folded_gamma.append(entry)
        doc = (
            MARKER
            + " "
            + json.dumps(
                {k: entry[k] for k in ("gamma_min_abs", "gamma_max_abs", "weight", "bias")}
            )
        )
        for name in (mm.name, add.name if add is not None else None):
            if name:
                ctx.node_docs[name] = doc
        for name in (wname, bname):
            if name:
                ctx.tensor_docs[name] = MARKER
        count += 1
    return count


def apply_markers(model: onnx.ModelProto, ctx) -> None:
    """Write the markers into an exported model (onnx-graphsurgeon keeps no doc_strings); the
    pass runner calls this after every pass so later passes cannot lose them."""
    for node in model.graph.node:
        if node.name in ctx.node_docs:
            node.doc_string = ctx.node_docs[node.name]
    for init in model.graph.initializer:
        if init.name in ctx.tensor_docs:
            init.doc_string = ctx.tensor_docs[init.name]
    props = [p for p in model.metadata_props if p.key != MARKER]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    if ctx.folded_gamma:
        model.metadata_props.append(
            onnx.StringStringEntryProto(key=MARKER, value=json.dumps(ctx.folded_gamma))
        )


def gamma_entries(model: onnx.ModelProto) -> list[dict]:
    """The folded-γ list of a fused model (for the precision stage)."""
    for p in model.metadata_props:
        if p.key == MARKER:
            return json.loads(p.value)
    return []
