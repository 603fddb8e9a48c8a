"""Small hand-built graphs in the exporters' spellings, one per construct a pass rewrites, and
the helpers to run one pass on them and compare outputs with ONNX Runtime.

Each builder returns a ModelProto with one float input `x` and one output `y` and random but
seeded weights of realistic magnitude (a rewrite that drops a term changes `y` visibly).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pipeline.contract.reference import runnable
from pipeline.onnx_io import ort_session
from pipeline.passes import PassContext, run_passes


class Graph:
    """`g.op("MatMul", a, b)` appends a node and returns its output; `g.const(array)` an
    initializer; `g.model(inputs, output)` the ModelProto."""

    def __init__(self, seed: int = 0):
        self.nodes, self.inits, self.n = [], [], 0
        self.rng = np.random.default_rng(seed)

    def op(self, op_type, *inputs, domain="", **attrs) -> str:
        self.n += 1
        out = f"{op_type.lower()}_{self.n}"
        self.nodes.append(
            helper.make_node(
                op_type, list(inputs), [out], name=f"{op_type}_{self.n}", domain=domain, **attrs
            )
        )
        return out

    def const(self, value, dtype=np.float32) -> str:
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def weight(self, *shape, scale=0.3) -> str:
        return self.const(self.rng.normal(0, scale, shape))

    def linear(self, x, n_in, n_out) -> str:
        """x @ W + b, as every exporter writes a Linear."""
        return self.op(
            "Add", self.op("MatMul", x, self.weight(n_in, n_out)), self.weight(n_out, scale=0.1)
        )

    def model(
        self, inputs: dict[str, list], output: str, shape: list, opset: int = 17
    ) -> onnx.ModelProto:
        self.nodes.append(helper.make_node("Identity", [output], ["y"], name="out"))
        graph = helper.make_graph(
            self.nodes,
            "block",
            [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
            self.inits,
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        return m


def _talking_heads(g: Graph, x: str, N, H, d, scale) -> str:
    C = H * d
    qkv = g.linear(x, C, 3 * C)
    split = g.op(
        "Transpose", g.op("Reshape", qkv, g.const([0, 0, 3, H, d], np.int64)), perm=[2, 0, 3, 1, 4]
    )  # (3, B, H, N, d)
    q, k, v = (g.op("Gather", split, g.const(i, np.int64), axis=0) for i in range(3))
    s = g.op("MatMul", g.op("Mul", q, g.const(scale)), g.op("Transpose", k, perm=[0, 1, 3, 2]))

    def mix(t):  # a Linear over the head axis, between two Transposes
        t = g.op("Transpose", t, perm=[0, 2, 3, 1])
        return g.op("Transpose", g.linear(t, H, H), perm=[0, 3, 1, 2])

    p = mix(g.op("Softmax", mix(s), axis=-1))
    o = g.op("Transpose", g.op("MatMul", p, v), perm=[0, 2, 1, 3])
    return g.op("Reshape", o, g.const([0, 0, C], np.int64))


def _class_attention(g: Graph, x: str, T, H, d, scale) -> str:
    C = H * d
    cls = g.op("Slice", x, g.const([0], np.int64), g.const([1], np.int64), g.const([1], np.int64))

    def heads(t, n, perm):
        return g.op("Transpose", g.op("Reshape", t, g.const([0, n, H, d], np.int64)), perm=perm)

    q = g.op("Mul", heads(g.linear(cls, C, C), 1, [0, 2, 1, 3]), g.const(scale))
    k = heads(g.linear(x, C, C), T, [0, 2, 3, 1])
    v = heads(g.linear(x, C, C), T, [0, 2, 1, 3])
    p = g.op("Softmax", g.op("MatMul", q, k), axis=-1)
    o = g.op("Transpose", g.op("MatMul", p, v), perm=[0, 2, 1, 3])
    return g.op("Reshape", o, g.const([0, 1, C], np.int64))


def talking_heads_block(N=5, H=4, d=8, scale=0.35, seed=0) -> onnx.ModelProto:
    """x (B, N, C) → qkv linear → talking-heads attention as the exporters write it → (B, N, C)."""
    g = Graph(seed)
    return g.model(
        {"x": ["batch", N, H * d]}, _talking_heads(g, "x", N, H, d, scale), ["batch", N, H * d]
    )


def class_attention_block(T=5, H=4, d=8, scale=0.35, seed=0) -> onnx.ModelProto:
    """x (B, T, C): the class token (row 0) attends to all T tokens → (B, 1, C)."""
    g = Graph(seed)
    return g.model(
        {"x": ["batch", T, H * d]}, _class_attention(g, "x", T, H, d, scale), ["batch", 1, H * d]
    )


def attention_tail(N=5, H=4, d=8, seed=0) -> onnx.ModelProto:
    """Both blocks in a row, as in CaiT: talking heads over the tokens, then class attention."""
    g = Graph(seed)
    th = _talking_heads(g, "x", N, H, d, 0.35)
    return g.model(
        {"x": ["batch", N, H * d]}, _class_attention(g, th, N, H, d, 0.25), ["batch", 1, H * d]
    )


def residual_layerscale(N=5, C=16, gamma=0.5, seed=0) -> onnx.ModelProto:
    """x + γ ⊙ (x @ W + b): a CaiT residual branch with LayerScale."""
    g = Graph(seed)
    branch = g.linear("x", C, C)
    scaled = g.op("Mul", g.const(np.full(C, gamma) * g.rng.uniform(0.5, 1.5, C)), branch)
    return g.model({"x": ["batch", N, C]}, g.op("Add", "x", scaled), ["batch", N, C])


def run_pass(module, model, lower=frozenset()):
    """(model after `module` alone, its rewrite count, the pass context)."""
    ctx = PassContext(lower=frozenset(lower))
    out, rows = run_passes(model, ctx, passes=[module])
    return out, rows[0][1], ctx


def outputs(model, x: np.ndarray) -> np.ndarray:
    """`y` of `model` on `x` (ONNX Runtime; fused nodes run their reference decomposition)."""
    return ort_session(runnable(model)).run(["y"], {"x": x})[0]


def sample(shape, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)


def ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]
