"""FP16 stage: strongly typed graph, LayerNorm fp32, unsafe weights kept fp32, plugin I/O fp16."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from pipeline.artifacts import read_manifest
from pipeline.stages.precision import convert_fp16, fp16_safety, to_fp16
from tests.support.graphs import float_types_consistent


def _producers(model):
    return {o: n for n in model.graph.node for o in n.output}


def test_fp16_safety_flags_layerscale_products_and_overflow():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.02, (64, 64)).astype(np.float32)
    assert fp16_safety(w) is None
    assert "precision" in fp16_safety(w * 1e-5) or "underflow" in fp16_safety(w * 1e-5)
    assert "underflow" in fp16_safety(w * 1e-9)
    assert "overflow" in fp16_safety(np.array([1e5, 1.0], np.float32))


def test_to_fp16_structure(xxs1, tmp_path):
    dst = tmp_path / "model.fp16.onnx"
    rec = to_fp16(xxs1.onnx, dst)
    m = onnx.load(str(dst))
    onnx.checker.check_model(m)
    assert m.graph.input[0].type.tensor_type.elem_type == T.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == T.FLOAT
    assert float_types_consistent(m) == []
    prod = _producers(m)
    inits = {i.name: i for i in m.graph.initializer}
    lns = [n for n in m.graph.node if n.op_type == "LayerNormalization"]
    assert len(lns) == 2 * 1 + 2 * 2 + 1
    for ln in lns:  # LayerNorm in fp32: input from a Cast to FLOAT, fp32 scale/bias
        assert prod[ln.input[0]].op_type == "Cast"
        assert prod[ln.input[0]].attribute[0].i == T.FLOAT
        assert inits[ln.input[1]].data_type == T.FLOAT
    # every Linear/Conv weight is fp16
    for n in m.graph.node:
        if n.op_type in ("MatMul", "Conv") and n.input[1] in inits:
            assert inits[n.input[1]].data_type == T.FLOAT16, n.name
    # the random-init LayerScale γ (1e-5) is below fp16's normal range: kept fp32, with a reason
    kept = {k["initializer"] for k in rec["kept_fp32"]}
    assert kept and all("layer_scale" in k for k in kept)
    assert all(inits[k].data_type == T.FLOAT for k in kept)
    man = read_manifest(tmp_path)["stages"]["fp16"]
    assert man["kept_fp32"] == rec["kept_fp32"] and man["settings"]["fp16_io"] is False


def test_to_fp16_matches_fp32(xxs1, tmp_path):
    from pipeline.numerics import compare, sample_images
    from pipeline.onnx_io import ort_session

    dst = tmp_path / "model.fp16.onnx"
    to_fp16(xxs1.onnx, dst)
    x = sample_images(2, 224)
    ref = ort_session(xxs1.onnx).run(None, {"image": x})[0]
    out = ort_session(dst).run(None, {"image": x})[0]
    assert out.dtype == np.float32
    c = compare(ref, out)
    assert c["cosine_min"] > 0.9999 and c["max_abs"] < 5e-3


def test_fp16_io(xxs1, tmp_path):
    from pipeline.onnx_io import ort_session

    dst = tmp_path / "model.fp16.onnx"
    to_fp16(xxs1.onnx, dst, fp16_io=True)
    m = onnx.load(str(dst))
    assert m.graph.input[0].type.tensor_type.elem_type == T.FLOAT16
    assert m.graph.output[0].type.tensor_type.elem_type == T.FLOAT16
    out = ort_session(dst).run(None, {"image": np.zeros((1, 3, 224, 224), np.float16)})[0]
    assert out.dtype == np.float16


def _plugin_graph(gamma: float, marker: bool):
    """x → MatMul(W) → CaitClassAttention(q,k,v) → MatMul(W·γ, marked) → LayerNorm → y."""
    rng = np.random.default_rng(0)
    C = 96
    w = numpy_helper.from_array(rng.normal(0, 0.05, (C, C)).astype(np.float32), "w")
    wg = numpy_helper.from_array((rng.normal(0, 0.05, (C, C)) * gamma).astype(np.float32), "wg")
    s = numpy_helper.from_array(np.ones(C, np.float32), "s")
    b = numpy_helper.from_array(np.zeros(C, np.float32), "b")
    proj = helper.make_node("MatMul", ["att", "wg"], ["p"], name="proj")
    if marker:
        proj.doc_string = "LayerScale gamma_1 folded into these weights"
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="lin"),
        helper.make_node(
            "CaitClassAttention",
            ["h", "h", "h"],
            ["att"],
            name="ca",
            domain="trt.plugins",
            num_heads=2,
            scale=0.1,
            plugin_version="1",
            plugin_namespace="",
        ),
        proj,
        helper.make_node("LayerNormalization", ["p", "s", "b"], ["y"], axis=-1, name="ln"),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", T.FLOAT, [1, 5, C])],
        [helper.make_tensor_value_info("y", T.FLOAT, [1, 5, C])],
        [w, wg, s, b],
    )
    return helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("trt.plugins", 1)]
    )


@pytest.mark.parametrize(
    "gamma,marker,kept", [(1e-6, True, True), (0.5, True, False), (1e-6, False, True)]
)
def test_plugin_nodes_fp16_and_layerscale(gamma, marker, kept):
    m = _plugin_graph(gamma, marker)
    info = convert_fp16(m)
    prod = _producers(m)
    ca = next(n for n in m.graph.node if n.op_type == "CaitClassAttention")
    # plugin input comes straight from the fp16 MatMul: fp16 I/O, no Cast in between
    assert prod[ca.input[0]].op_type == "MatMul"
    inits = {i.name: i for i in m.graph.initializer}
    lin = next(n for n in m.graph.node if n.name == "lin")
    assert inits[lin.input[1]].data_type == T.FLOAT16
    proj = next(n for n in m.graph.node if n.name == "proj")
    ln = next(n for n in m.graph.node if n.op_type == "LayerNormalization")
    if not kept:  # behind the plugin shape inference knows no dtype: LN still gets its Cast
        assert prod[ln.input[0]].op_type == "Cast" and prod[ln.input[0]].attribute[0].i == T.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == T.FLOAT
    if kept:
        # the γ-carrying weight stays fp32; its node computes fp32 (plugin output cast up)
        assert inits[proj.input[1]].data_type == T.FLOAT
        assert prod[proj.input[0]].op_type == "Cast"
        entry = next(k for k in info.kept_fp32 if k["node"] == "proj")
        assert ("folded LayerScale" in entry["reason"]) == marker
    else:
        assert inits[proj.input[1]].data_type == T.FLOAT16
        assert info.kept_fp32 == []


@pytest.mark.slow
def test_fp16_agreement_on_trained_digits(digits, tmp_path):
    """FP16 top-1 agreement with fp32 ≥ 99.5 % on the held-out digits (real predictions)."""
    from pipeline.data import ImageFolderDataset, iter_batches
    from pipeline.runners.ort import OrtRunner

    dst = tmp_path / "model.fp16.onnx"
    to_fp16(digits.onnx, dst)
    ref, half = OrtRunner(digits.onnx), OrtRunner(dst)
    ds = ImageFolderDataset.from_dir(digits.heldout)
    a, b, y = [], [], []
    for batch in iter_batches(ds.samples, 32, 64):
        a.append(ref.run(batch.images))
        b.append(half.run(batch.images))
        y.append(batch.labels)
    a, b, y = np.concatenate(a), np.concatenate(b), np.concatenate(y)
    agree = float(np.mean(a.argmax(1) == b.argmax(1)))
    print(
        f"\nfp16 on {len(y)} held-out digits: agreement {agree:.2%}, "
        f"fp32 top-1 {np.mean(a.argmax(1) == y):.2%}, fp16 top-1 {np.mean(b.argmax(1) == y):.2%}"
    )
    assert np.mean(a.argmax(1) == y) > 0.9  # the fixture is really trained
    assert agree >= 0.995
