"""Reference decompositions of the fused operators, in standard ONNX ops.

One code path serves three uses:
- `attach_reference_functions(model)`: the *verification copy* — each fused op gets its
  decomposition as an ONNX local function (attribute references for num_heads, scale, the
  mixing weights), so ONNX Runtime can run the fused graph on the CPU. The precision stages
  call it on fp16/int8 copies: every constant in the bodies goes through `CastLike` to the
  op's input, so the bodies are dtype-generic (onnxconverter-common leaves function constants
  fp32, and ONNX Runtime then refuses the model).
- `inline_reference(model)`: the plugin-free fallback (`--attention onnx`) is the same functions
  inlined, then constant-folded by the sanitize pass.
- shape inference of the fused graph (the functions tell ONNX the output shapes).

The bodies are the *fast* forms: talking-heads mixing is an (H×H) MatMul on the head axis of the
(B, H, N·N) score view (no transposes of the score tensor; 1.47× faster on CPU), class
attention is a single-query form (the (B, 1, C) query reshapes to (B, H, 1, d) without a
transpose).
"""

from __future__ import annotations

import onnx
from onnx import AttributeProto, TensorProto, helper

from pipeline.contract.specs import CLASS_ATTENTION, DOMAIN, TALKING_HEADS, function_attributes

_OPSET = 17


class _Body:
    """Tiny builder: `b.op("MatMul", x, y)` appends a node and returns its output name."""

    def __init__(self, prefix: str):
        self.nodes: list[onnx.NodeProto] = []
        self.prefix = prefix
        self.n = 0

    def op(self, op_type: str, *inputs: str, outputs: list[str] | None = None, **attrs) -> str:
        self.n += 1
        outs = outputs or [f"{self.prefix}_{op_type.lower()}_{self.n}"]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0]

    def ints(self, *values: int) -> str:
        t = helper.make_tensor(f"c{self.n}", TensorProto.INT64, [len(values)], list(values))
        return self.op("Constant", value=t)

    def ref(self, attr: str, kind: str, like: str | None = None) -> str:
        """A Constant whose value is the caller's attribute `attr` (value_int/float/floats)."""
        self.n += 1
        out = f"{self.prefix}_{attr}"
        node = helper.make_node("Constant", [], [out])
        a = AttributeProto()
        a.name, a.ref_attr_name = kind, attr
        a.type = {
            "value_int": AttributeProto.INT,
            "value_float": AttributeProto.FLOAT,
            "value_floats": AttributeProto.FLOATS,
        }[kind]
        node.attribute.append(a)
        self.nodes.append(node)
        return self.op("CastLike", out, like) if like else out


def _heads(b: _Body) -> str:
    """[H] as a 1-D int64 tensor from the num_heads attribute."""
    return b.op("Unsqueeze", b.ref("num_heads", "value_int"), b.ints(0))


def _mix(b: _Body, s: str, weight: str, bias: str, heads: str, like: str) -> str:
    """s'_o = Σ_i M[o, i]·s_i + bias[o] over the head axis of s (B, H, N, N), as one MatMul."""
    m = b.op(
        "Reshape", b.ref(weight, "value_floats", like), b.op("Concat", heads, b.ints(-1), axis=0)
    )  # (H, H)
    bias_col = b.op("Reshape", b.ref(bias, "value_floats", like), b.ints(-1, 1))  # (H, 1)
    flat = b.op("Reshape", s, b.ints(0, 0, -1))  # (B, H, N·N)
    mixed = b.op("Add", b.op("MatMul", m, flat), bias_col)
    return b.op("Reshape", mixed, b.op("Shape", s))


def talking_heads_function() -> onnx.FunctionProto:
    b = _Body("th")
    heads = _heads(b)
    qkv5 = b.op("Reshape", "qkv", b.op("Concat", b.ints(0, 0, 3), heads, b.ints(-1), axis=0))
    t = b.op("Transpose", qkv5, perm=[2, 0, 3, 1, 4])  # (3, B, H, N, d)
    q, k, v = (
        b.op(
            "Gather",
            t,
            b.op("Constant", value=helper.make_tensor(f"i{i}", TensorProto.INT64, [], [i])),
            axis=0,
        )
        for i in range(3)
    )
    q = b.op("Mul", q, b.ref("scale", "value_float", "qkv"))
    s = b.op("MatMul", q, b.op("Transpose", k, perm=[0, 1, 3, 2]))  # (B, H, N, N)
    s = _mix(b, s, "pre_weight", "pre_bias", heads, "qkv")
    p = b.op("Softmax", s, axis=-1)
    p = _mix(b, p, "post_weight", "post_bias", heads, "qkv")
    o = b.op("Transpose", b.op("MatMul", p, v), perm=[0, 2, 1, 3])  # (B, N, H, d)
    b.op("Reshape", o, b.ints(0, 0, -1), outputs=["out"])
    return helper.make_function(
        DOMAIN,
        TALKING_HEADS,
        ["qkv"],
        ["out"],
        b.nodes,
        [helper.make_opsetid("", _OPSET)],
        attributes=function_attributes(TALKING_HEADS),
    )


def class_attention_function() -> onnx.FunctionProto:
    b = _Body("ca")
    heads = _heads(b)
    # (B, 1, C) → (B, H, 1, d) is a pure reshape: the single query needs no transpose.
    q = b.op("Reshape", "q", b.op("Concat", b.ints(0), heads, b.ints(1, -1), axis=0))
    q = b.op("Mul", q, b.ref("scale", "value_float", "q"))
    kv_shape = b.op("Concat", b.ints(0, 0), heads, b.ints(-1), axis=0)
    kt = b.op("Transpose", b.op("Reshape", "k", kv_shape), perm=[0, 2, 3, 1])  # (B, H, d, T)
    vt = b.op("Transpose", b.op("Reshape", "v", kv_shape), perm=[0, 2, 1, 3])  # (B, H, T, d)
    p = b.op("Softmax", b.op("MatMul", q, kt), axis=-1)  # (B, H, 1, T)
    b.op("Reshape", b.op("MatMul", p, vt), b.ints(0, 1, -1), outputs=["out"])  # (B, 1, C)
    return helper.make_function(
        DOMAIN,
        CLASS_ATTENTION,
        ["q", "k", "v"],
        ["out"],
        b.nodes,
        [helper.make_opsetid("", _OPSET)],
        attributes=function_attributes(CLASS_ATTENTION),
    )


def reference_functions() -> list[onnx.FunctionProto]:
    return [talking_heads_function(), class_attention_function()]


def attach_reference_functions(model: onnx.ModelProto, dtype=None) -> onnx.ModelProto:
    """A copy of `model` whose fused nodes carry their decomposition as local functions.

    `dtype` is accepted for the precision stage's convenience and ignored: the bodies cast every
    constant like the op's input, so one body serves fp32, fp16 and Q/DQ graphs. The bodies
    import the model's default-domain opset (17 for an export, 19 after Q/DQ): the checker and
    ONNX Runtime want the two equal, and the ops they use mean the same from 17 to 19.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.functions[:]
    used = {n.op_type for n in out.graph.node if n.domain == DOMAIN}
    out.functions.extend(f for f in reference_functions() if f.name in used)
    version = next((o.version for o in out.opset_import if o.domain in ("", "ai.onnx")), None)
    for f in out.functions if version else ():
        for o in f.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = version
    ensure_domain(out)
    return out


def ensure_domain(model: onnx.ModelProto) -> None:
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, 1))


def drop_domain(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove the plugin domain's opset import (in place) once no node uses it; returns model."""
    if not any(n.domain == DOMAIN for n in model.graph.node):
        keep = [o for o in model.opset_import if o.domain != DOMAIN]
        del model.opset_import[:]
        model.opset_import.extend(keep)
    return model


def strip_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model handed to TensorRT: plugin nodes only, no local functions. TensorRT 10.3 would
    import a local function's body instead of the plugin (and 10.15+ prefers the body)."""
    del model.functions[:]
    return drop_domain(model)


def inline_reference(model: onnx.ModelProto, ops=None) -> onnx.ModelProto:
    """Replace fused nodes by their decomposition (the plugin-free `--attention onnx` graph).

    `ops`: the fused op types to inline (default: all); the others stay plugin nodes."""
    import onnx.inliner

    attached = _same_opset(attach_reference_functions(model))
    if ops is not None:  # only functions present are inlined: the other fused nodes stay
        inline = [f for f in attached.functions if f.name in set(ops)]
        del attached.functions[:]
        attached.functions.extend(inline)
    inlined = onnx.inliner.inline_local_functions(attached)
    del inlined.functions[:]
    return drop_domain(inlined)


def runnable(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy ONNX Runtime can run: plugin nodes get their decomposition as local functions
    (ORT refuses a custom op without a body); the model itself when it has no plugin nodes."""
    if not any(n.domain == DOMAIN for n in model.graph.node):
        return model
    return _same_opset(attach_reference_functions(model))


def _same_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """Function bodies import the default domain at the exporter's opset; ONNX Runtime and the
    inliner want the model's (a Q/DQ model is opset 19). Their ops mean the same at both."""
    ver = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    for f in model.functions:
        for o in f.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = ver
    return model
