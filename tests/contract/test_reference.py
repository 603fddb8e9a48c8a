"""The reference decompositions implement the fused-op contract (checked against numpy written
from the contract text, with non-symmetric mixing so that M's orientation matters) and stay
dtype-generic (the same bodies run on fp16 inputs)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from pipeline.contract import CLASS_ATTENTION, DOMAIN, TALKING_HEADS, node_attrs
from pipeline.contract.reference import attach_reference_functions, inline_reference

H, D, N, B = 4, 48, 7, 2


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _talking_heads_numpy(qkv, scale, pre_w, pre_b, post_w, post_b):
    """Straight from the contract: s'_o = Σ_i M[o·H+i]·s_i + b[o]."""
    q, k, v = qkv.reshape(B, N, 3, H, D).transpose(2, 0, 3, 1, 4)
    s = scale * q @ k.transpose(0, 1, 3, 2)
    M, P = np.array(pre_w).reshape(H, H), np.array(post_w).reshape(H, H)
    s = np.einsum("oi,bikl->bokl", M, s) + np.array(pre_b)[None, :, None, None]
    p = _softmax(s)
    p = np.einsum("oi,bikl->bokl", P, p) + np.array(post_b)[None, :, None, None]
    return (p @ v).transpose(0, 2, 1, 3).reshape(B, N, H * D)


def _model(op, inputs, attrs, dtype):
    node = helper.make_node(op, [i for i, _ in inputs], ["out"], domain=DOMAIN, **attrs)
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(i, dtype, s) for i, s in inputs],
        [helper.make_tensor_value_info("out", dtype, None)],
    )
    return helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)]
    )


def _run(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_talking_heads_reference_matches_contract(dtype):
    rng = np.random.default_rng(0)
    qkv = rng.normal(0, 1, (B, N, 3 * H * D)).astype(np.float32)
    vals = dict(
        num_heads=H,
        scale=0.3,
        pre_weight=rng.normal(0, 1, H * H).tolist(),
        pre_bias=rng.normal(0, 1, H).tolist(),
        post_weight=rng.normal(0, 1, H * H).tolist(),
        post_bias=rng.normal(0, 1, H).tolist(),
    )
    onnx_dtype = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    model = _model(
        TALKING_HEADS,
        [("qkv", [None, None, 3 * H * D])],
        node_attrs(TALKING_HEADS, **vals),
        onnx_dtype,
    )
    want = _talking_heads_numpy(
        qkv,
        vals["scale"],
        vals["pre_weight"],
        vals["pre_bias"],
        vals["post_weight"],
        vals["post_bias"],
    )
    got = _run(attach_reference_functions(model), {"qkv": qkv.astype(dtype)})
    assert got.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 3e-2
    assert np.abs(got.astype(np.float32) - want).max() <= tol * np.abs(want).max()
    # The fast path is the same body inlined: same numbers, no plugin op left.
    inlined = inline_reference(model)
    assert not any(n.domain == DOMAIN for n in inlined.graph.node)
    again = _run(inlined, {"qkv": qkv.astype(dtype)}).astype(np.float32)
    assert np.abs(again - got.astype(np.float32)).max() <= tol * np.abs(want).max()


def test_class_attention_reference_matches_contract():
    rng = np.random.default_rng(1)
    T = N + 1
    q = rng.normal(0, 1, (B, 1, H * D)).astype(np.float32)
    k, v = (rng.normal(0, 1, (B, T, H * D)).astype(np.float32) for _ in range(2))
    scale = 0.2
    qh = q.reshape(B, 1, H, D).transpose(0, 2, 1, 3)
    kh, vh = (x.reshape(B, T, H, D).transpose(0, 2, 1, 3) for x in (k, v))
    want = (_softmax(scale * qh @ kh.transpose(0, 1, 3, 2)) @ vh).transpose(0, 2, 1, 3)
    want = want.reshape(B, 1, H * D)
    model = _model(
        CLASS_ATTENTION,
        [("q", [None, 1, H * D]), ("k", [None, None, H * D]), ("v", [None, None, H * D])],
        node_attrs(CLASS_ATTENTION, num_heads=H, scale=scale),
        TensorProto.FLOAT,
    )
    got = _run(attach_reference_functions(model), {"q": q, "k": k, "v": v})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_function_bodies_hold_no_fixed_dtype_constants():
    """Every constant in a body is cast like the op's input (onnxconverter-common would leave them fp32)."""
    model = attach_reference_functions(
        _model(
            CLASS_ATTENTION,
            [("q", [1, 1, 8]), ("k", [1, 2, 8]), ("v", [1, 2, 8])],
            node_attrs(CLASS_ATTENTION, num_heads=2, scale=1.0),
            TensorProto.FLOAT,
        )
    )
    for f in model.functions:
        users = {i for n in f.node for i in n.input if n.op_type == "CastLike"}
        for n in f.node:
            if n.op_type == "Constant" and n.attribute[0].type in (
                onnx.AttributeProto.FLOAT,
                onnx.AttributeProto.FLOATS,
            ):
                assert n.output[0] in users, f"{f.name}: float constant {n.output[0]} not CastLike"
