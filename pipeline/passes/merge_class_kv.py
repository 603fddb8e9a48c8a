"""merge_class_kv: the class-attention k and v linears → one MatMul with [Wk | Wv] and a Split.

Both read the same normalized tokens (B, T, C); one (C, 2C) GEMM reads them once instead of
twice. Matched on `CaitClassAttention` nodes whose k and v inputs are `x @ W + b` linears with
constant weights on the same x, each read only by the fused node.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from pipeline.contract import CLASS_ATTENTION, DOMAIN
from pipeline.passes.match import linear, new_const

NAME = "merge_class_kv"


def run(graph: gs.Graph, ctx) -> int:
    count = 0
    for node in [n for n in graph.nodes if n.op == CLASS_ATTENTION and n.domain == DOMAIN]:
        k, v = node.inputs[1], node.inputs[2]
        lk, lv = linear(k), linear(v)
        if lk is None or lv is None or lk[0] is not lv[0] or lk[1].shape != lv[1].shape:
            continue
        if lk[2] is None or lv[2] is None or len(k.outputs) != 1 or len(v.outputs) != 1:
            continue
        if k in graph.outputs or v in graph.outputs:
            continue
        x, c = lk[0], lk[1].shape[1]
        w = np.concatenate([lk[1], lv[1]], axis=1)
        b = np.concatenate([lk[2], lv[2]])
        mm_out = gs.Variable(f"{node.name}_kv_mm", dtype=k.dtype)
        kv = gs.Variable(f"{node.name}_kv", dtype=k.dtype)
        graph.nodes += [
            gs.Node(
                "MatMul",
                f"{node.name}_kv_matmul",
                inputs=[x, new_const(f"{node.name}_Wkv", w)],
                outputs=[mm_out],
            ),
            gs.Node(
                "Add",
                f"{node.name}_kv_bias",
                inputs=[mm_out, new_const(f"{node.name}_bkv", b)],
                outputs=[kv],
            ),
        ]
        # The Split writes the tensors the fused node already reads: cut the old linears' outputs.
        lk[4].outputs.clear()
        lv[4].outputs.clear()
        graph.nodes.append(
            gs.Node(
                "Split",
                f"{node.name}_kv_split",
                {"axis": -1},
                inputs=[kv, new_const(f"{node.name}_split", np.array([c, c], np.int64))],
                outputs=[k, v],
            )
        )
        count += 1
    return count
