"""Small ONNX models built with onnx.helper: a toy classifier and lone plugin nodes."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

H = 4  # heads of the toy plugin nodes


def tiny_classifier(size: int = 32, opset: int = 17, classes: int = 1000) -> onnx.ModelProto:
    """(B,3,S,S) → mean colour per channel → Gemm → (B,classes) logits.

    Class 1 reacts to red, class 2 to blue (weights on the normalized channel means), so the
    top-1 class of a pure red / blue image is known: a runtime test can check real predictions.
    """
    w = np.zeros((3, classes), np.float32)
    w[0, 1] = 10.0  # red channel → class 1
    w[2, 2] = 10.0  # blue channel → class 2
    b = np.zeros(classes, np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["feat"], name="flatten"),
        helper.make_node("Gemm", ["feat", "W", "b"], ["logits"], name="head"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def plugin_attrs(missing=()):
    attrs = dict(
        num_heads=H,
        scale=1.0,
        pre_weight=[0.0] * H * H,
        pre_bias=[0.0] * H,
        post_weight=[0.0] * H * H,
        post_bias=[0.0] * H,
        plugin_version="1",
        plugin_namespace="",
    )
    return {k: v for k, v in attrs.items() if k not in missing}


def talking_heads_model(missing=(), opset: int = 17, with_function: bool = False):
    """input (B,N,3C) → CaitTalkingHeadsAttention → (B,N,C): one plugin node per the contract."""
    C = H * 48
    node = helper.make_node(
        "CaitTalkingHeadsAttention", ["qkv"], ["out"], name="th0", **plugin_attrs(missing)
    )
    graph = helper.make_graph(
        [node],
        "th",
        [helper.make_tensor_value_info("qkv", TensorProto.FLOAT, ["batch", 16, 3 * C])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 16, C])],
    )
    functions = []
    if with_function:  # a body named like the plugin: what the verification copy carries
        body = helper.make_node("Identity", ["x"], ["y"])
        functions.append(
            helper.make_function(
                "",
                "CaitTalkingHeadsAttention",
                ["x"],
                ["y"],
                [body],
                [helper.make_opsetid("", opset)],
            )
        )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], functions=functions
    )
    model.ir_version = 8
    return model


def float_types_consistent(model) -> list[str]:
    """Strong typing: every node's float inputs share one dtype (Cast and Q/DQ excepted).
    Returns the offending nodes (empty = consistent)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        vi.name: vi.type.tensor_type.elem_type
        for vi in list(inferred.graph.value_info)
        + list(inferred.graph.input)
        + list(inferred.graph.output)
    }
    types.update({i.name: i.data_type for i in model.graph.initializer})
    bad = []
    for n in model.graph.node:
        if n.op_type in ("Cast", "QuantizeLinear", "DequantizeLinear"):
            continue
        fl = {types.get(i) for i in n.input if i and types.get(i) in (1, 10)}
        if len(fl) > 1:
            bad.append(f"{n.name} ({n.op_type}): {sorted(fl)}")
    return bad
