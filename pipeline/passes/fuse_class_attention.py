"""fuse_class_attention: CaiT's class attention → one `CaitClassAttention` node.

Matched backwards from the head-merge Reshape (after `canonicalize`, so paddle2onnx and timm
read alike):

    q (B, 1, C) → Reshape (.., 1, H, d) → Transpose(0, 2, 1, 3) [· s]
    k (B, T, C) → Reshape (.., .., H, d) → Transpose(0, 2, 3, 1)          (kᵀ, merged permutes)
    MatMul(q, kᵀ) → Softmax(-1) → MatMul(·, v')                           scores (B, H, 1, T)
    v (B, T, C) → Reshape (.., .., H, d) → Transpose(0, 2, 1, 3) = v'
    → Transpose(0, 2, 1, 3) → Reshape (.., 1, C)

The fused node reads q, k, v as they leave their linears (the fused-op contract) and writes the head-merge
tensor; interior tensors must be private to the subgraph or the match is refused.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from pipeline.contract import CLASS_ATTENTION, DOMAIN, node_attrs
from pipeline.passes.match import Refused, dim, private_chain, producer, rank, split_const

NAME = "fuse_class_attention"


def _heads_view(t, perm, nodes, interior):
    """t = Transpose(Reshape(x, (.., T, H, d)), perm): (x, H, T) or None."""
    tr = producer(t, "Transpose", perm=perm)
    rs = producer(tr.inputs[0], "Reshape") if tr is not None else None
    if rs is None or rank(rs.outputs[0]) != 4 or rank(rs.inputs[0]) != 3:
        return None
    nodes += [tr, rs]
    interior += [t, tr.inputs[0]]
    return rs.inputs[0], dim(rs.outputs[0], 2), dim(rs.outputs[0], 1)


def match(graph, merge):
    nodes, interior = [merge], []
    if rank(merge.outputs[0]) != 3 or dim(merge.outputs[0], 1) != 1:
        return None
    t_out = producer(merge.inputs[0], "Transpose", perm=[0, 2, 1, 3])
    av = producer(t_out.inputs[0], "MatMul") if t_out is not None else None
    sm = producer(av.inputs[0], "Softmax") if av is not None else None
    if sm is None or sm.attrs.get("axis", -1) not in (-1, 3):
        return None
    qk = producer(sm.inputs[0], "MatMul")
    if qk is None or dim(qk.outputs[0], 2) != 1:
        return None
    nodes += [t_out, av, sm, qk]
    interior += [merge.inputs[0], t_out.inputs[0], av.inputs[0], sm.inputs[0]]
    q, scale = qk.inputs[0], 1.0
    mul = producer(q, "Mul")
    if mul is not None:
        c, q2 = split_const(mul)
        if c is None or c.size != 1:
            return None
        scale = float(c.reshape(()))
        nodes.append(mul)
        interior.append(q)
        q = q2
    views = [
        _heads_view(q, [0, 2, 1, 3], nodes, interior),
        _heads_view(qk.inputs[1], [0, 2, 3, 1], nodes, interior),
        _heads_view(av.inputs[1], [0, 2, 1, 3], nodes, interior),
    ]
    if any(v is None for v in views):
        return None
    (q_in, h, one), (k_in, hk, _), (v_in, hv, _) = views
    # The q view (B, 1, H, d) proves a single query even where shape inference lost q's own
    # shape (paddle2onnx's class-token Expand).
    if h is None or h != hk or h != hv or one != 1:
        return None
    private_chain(graph, interior, nodes)
    return {
        "inputs": [q_in, k_in, v_in],
        "out": merge.outputs[0],
        "attrs": node_attrs(CLASS_ATTENTION, num_heads=int(h), scale=scale),
    }


def run(graph: gs.Graph, ctx) -> int:
    count = 0
    for merge in [n for n in graph.nodes if n.op == "Reshape"]:
        try:
            spec = match(graph, merge)
        except Refused as e:
            ctx.refused.append((NAME, str(e)))
            continue
        if spec is None:
            continue
        out = spec["out"]
        merge.outputs.clear()  # cut the outputs
        graph.nodes.append(
            gs.Node(
                CLASS_ATTENTION,
                f"{CLASS_ATTENTION}_{count}",
                spec["attrs"],
                inputs=spec["inputs"],
                outputs=[out],
                domain=DOMAIN,
            )
        )
        ctx.fused_outputs.append(out.name)
        count += 1
    ctx.fused[CLASS_ATTENTION] = count
    return count
