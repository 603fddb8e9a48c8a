"""A weightless view of a model for the checker, shape inference and the static report.

Shape inference and the byte counts need the shapes of the weights, not their values, and a
full copy of a 1.4 GB model per pass would triple the fuse stage's peak memory. The skeleton
copies nodes, I/O, small initializers (shape constants) and declares every large initializer as
a typed graph input instead.
"""

from __future__ import annotations

import onnx
from onnx import helper

from pipeline.onnx_io import is_large

INPUTS_KEY = "skeleton.graph_inputs"  # how many leading graph inputs are the model's own


def model_inputs(model: onnx.ModelProto) -> list:
    """The model's real inputs (not initializers, not weights a skeleton declared as inputs)."""
    n = next((int(p.value) for p in model.metadata_props if p.key == INPUTS_KEY), None)
    inits = {i.name for i in model.graph.initializer}
    real = [i for i in model.graph.input if i.name not in inits]
    return real if n is None else real[:n]


def skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """Idempotent: the skeleton of a skeleton is itself."""
    g = model.graph
    own = model_inputs(model)
    small, weights = [], []
    for t in g.initializer:
        if is_large(t):
            weights.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            small.append(t)
    inputs = own + [i for i in g.input if i not in own] + weights
    graph = helper.make_graph(
        list(g.node), g.name, inputs, list(g.output), small, value_info=list(g.value_info)
    )
    out = helper.make_model(
        graph, opset_imports=list(model.opset_import), ir_version=model.ir_version
    )
    out.functions.extend(model.functions)
    out.metadata_props.extend(p for p in model.metadata_props if p.key != INPUTS_KEY)
    out.metadata_props.append(onnx.StringStringEntryProto(key=INPUTS_KEY, value=str(len(own))))
    return out


def copy_shapes(inferred: onnx.ModelProto, model: onnx.ModelProto) -> onnx.ModelProto:
    """Put the skeleton's inferred value_info onto the full model (in place); returns it."""
    weights = {i.name for i in model.graph.initializer}
    del model.graph.value_info[:]
    model.graph.value_info.extend(v for v in inferred.graph.value_info if v.name not in weights)
    return model
