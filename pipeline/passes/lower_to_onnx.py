"""lower_to_onnx: fused nodes of the ops in `ctx.lower` → their reference decomposition, inlined.

The plugin-free fast path is, by construction, the verification reference
(`pipeline/contract/reference.py`) inlined into the graph, then constant-folded: talking heads
with the head mixing as an (H×H) MatMul on the head axis (no transposes of the score tensor),
class attention in single-query form. Ops not in `ctx.lower` stay plugin nodes.
"""

from __future__ import annotations

import itertools

import onnx
import onnx_graphsurgeon as gs

from pipeline.contract import DOMAIN
from pipeline.contract.reference import inline_reference
from pipeline.passes import sanitize

NAME = "lower_to_onnx"


def run(graph: gs.Graph, ctx) -> int:
    fused = [n for n in graph.nodes if n.domain == DOMAIN and n.op in ctx.lower]
    if not fused:
        return 0
    model = gs.export_onnx(graph)
    inlined = inline_reference(model, ops=ctx.lower)
    lowered = gs.import_onnx(onnx.shape_inference.infer_shapes(inlined, data_prop=True))
    # The inliner leaves names empty; later passes derive names from them, and a graph lowered
    # before (one op now, another later) already holds names of this form: keep them unique.
    taken = {n.name for n in lowered.nodes if n.name}
    serial = itertools.count()
    for node in (n for n in lowered.nodes if not n.name):
        while not node.name or node.name in taken:
            node.name = f"{node.op}_lowered_{next(serial)}"
        taken.add(node.name)
    sanitize.run(lowered, ctx)  # bake the attribute constants into initializers
    # Swap the graph's content in place: the runner exports `graph` after this pass.
    graph.nodes, graph.inputs, graph.outputs = lowered.nodes, lowered.inputs, lowered.outputs
    if not any(n.domain == DOMAIN for n in graph.nodes):
        graph.import_domains = [d for d in (graph.import_domains or []) if d.domain != DOMAIN]
    return len(fused)
