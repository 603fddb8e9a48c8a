"""fuse_talking_heads: the talking-heads attention subgraph → one `CaitTalkingHeadsAttention` node.

Matched backwards from the head-merge Reshape (after `sanitize` and `canonicalize`):

    qkv (B, N, 3C) → Reshape (.., .., 3, H, d) → Transpose(2, 0, 3, 1, 4) → Gather 0 | 1 | 2
    q [· s] ─ MatMul ─ k → Transpose(0, 1, 3, 2)                                 scores (B,H,N,N)
    → Transpose(0, 2, 3, 1) → MatMul(W_l) [+ b_l] → Transpose(0, 3, 1, 2)       pre-softmax mix
    → Softmax(-1)
    → Transpose(0, 2, 3, 1) → MatMul(W_w) [+ b_w] → Transpose(0, 3, 1, 2)       post-softmax mix
    → MatMul(·, v) → Transpose(0, 2, 1, 3) → Reshape (.., .., C)

The mixing Linear computes s'_o = Σ_i s_i W[i, o] + b[o] (W is [in, out]), so the contract's
row-major M (s'_o = Σ_i M[o·H+i] s_i) is Wᵀ. Replacement in three steps: cut the inputs (the
fused node reads qkv), cut the outputs (it writes the head-merge tensor), insert the node; the
old nodes become unreachable and `cleanup()` removes them. Every interior tensor must be private
to the subgraph (`private_chain`), otherwise the match is refused and reported.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from pipeline.contract import DOMAIN, TALKING_HEADS, node_attrs
from pipeline.passes.match import Refused, const, dim, private_chain, producer, rank, split_const

NAME = "fuse_talking_heads"


def _mix(t, nodes, interior):
    """Undo `Transpose(0,3,1,2) ∘ Linear ∘ Transpose(0,2,3,1)` ending at t: (input, M, bias)."""
    back = producer(t, "Transpose", perm=[0, 3, 1, 2])
    if back is None:
        return None
    y, bias = back.inputs[0], None
    mine, own = [back], [y]
    add = producer(y, "Add")
    if add is not None:
        bias, y = split_const(add)
        if bias is None:
            return None
        mine.append(add)
        own.append(y)
    mm = producer(y, "MatMul")
    w = const(mm.inputs[1]) if mm is not None else None
    if w is None or w.ndim != 2 or w.shape[0] != w.shape[1]:
        return None
    fwd = producer(mm.inputs[0], "Transpose", perm=[0, 2, 3, 1])
    h = w.shape[0]
    bias = np.zeros(h, np.float32) if bias is None else bias.reshape(-1)
    if fwd is None or bias.size != h:
        return None
    nodes += mine + [mm, fwd]
    interior += own + [mm.inputs[0]]
    return fwd.inputs[0], w.T.astype(np.float32), bias.astype(np.float32)


def match(graph, merge):
    """Match the block ending at head-merge Reshape `merge`; returns the fused node's spec."""
    nodes, interior = [merge], []
    o1 = merge.inputs[0]
    t_out = producer(o1, "Transpose", perm=[0, 2, 1, 3])
    av = producer(t_out.inputs[0], "MatMul") if t_out is not None else None
    if av is None or rank(merge.outputs[0]) != 3:
        return None
    nodes += [t_out, av]
    interior += [o1, t_out.inputs[0]]
    post = _mix(av.inputs[0], nodes, interior)
    if post is None:
        return None
    p, m_post, b_post = post
    interior.append(av.inputs[0])
    sm = producer(p, "Softmax")
    if sm is None or sm.attrs.get("axis", -1) not in (-1, 3):
        return None
    nodes.append(sm)
    interior.append(p)
    pre = _mix(sm.inputs[0], nodes, interior)
    if pre is None:
        return None
    s, m_pre, b_pre = pre
    interior.append(sm.inputs[0])
    qk = producer(s, "MatMul")
    if qk is None:
        return None
    nodes.append(qk)
    interior.append(s)
    q, kt = qk.inputs
    scale = 1.0
    mul = producer(q, "Mul")
    if mul is not None:
        c, q2 = split_const(mul)
        if c is None or c.size != 1:
            return None
        scale = float(c.reshape(()))
        nodes.append(mul)
        interior.append(q)
        q = q2
    tk = producer(kt, "Transpose", perm=[0, 1, 3, 2])
    if tk is None:
        return None
    nodes.append(tk)
    interior.append(kt)
    gathers = [producer(x, "Gather", axis=0) for x in (q, tk.inputs[0], av.inputs[1])]
    if any(g is None for g in gathers):
        return None
    split = gathers[0].inputs[0]
    idx = [const(g.inputs[1]) for g in gathers]
    if any(g.inputs[0] is not split for g in gathers) or any(i is None or i.size != 1 for i in idx):
        return None
    if [int(i.reshape(())) for i in idx] != [0, 1, 2]:
        return None  # q, k, v must sit at 0, 1, 2 of the (3, H, d) layout of the contract
    tr = producer(split, "Transpose", perm=[2, 0, 3, 1, 4])
    rs = producer(tr.inputs[0], "Reshape") if tr is not None else None
    if rs is None or rank(rs.outputs[0]) != 5 or dim(rs.outputs[0], 2) != 3:
        return None
    heads = dim(rs.outputs[0], 3)
    if heads is None or heads != m_pre.shape[0] or heads != m_post.shape[0]:
        return None
    nodes += gathers + [tr, rs]
    interior += [q, tk.inputs[0], av.inputs[1], split, tr.inputs[0]]
    private_chain(graph, interior, nodes)
    return {
        "qkv": rs.inputs[0],
        "out": merge.outputs[0],
        "nodes": nodes,
        # limits are the fuse stage's call: a node past them can still be lowered to ONNX
        "attrs": node_attrs(
            TALKING_HEADS,
            check_limits=False,
            num_heads=int(heads),
            scale=scale,
            pre_weight=[float(x) for x in m_pre.reshape(-1)],
            pre_bias=[float(x) for x in b_pre],
            post_weight=[float(x) for x in m_post.reshape(-1)],
            post_bias=[float(x) for x in b_post],
        ),
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
        node = gs.Node(
            TALKING_HEADS,
            f"{TALKING_HEADS}_{count}",
            spec["attrs"],
            inputs=[spec["qkv"]],
            outputs=[out],
            domain=DOMAIN,
        )  # cut inputs, insert
        graph.nodes.append(node)
        ctx.fused_outputs.append(out.name)
        ctx.num_heads = spec["attrs"]["num_heads"]
        count += 1
    ctx.fused[TALKING_HEADS] = count
    return count
